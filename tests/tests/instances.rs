//! What one instance changes, the others see within `ManagerConfig::cache_max_age`: a token
//! served from another instance's memory never outlives a revocation or a removal by longer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kit_oauth::ManagerError;
use kit_oauth_tests::{Db, World};

/// The default is 15 s; the shared clock moves in whole seconds.
const MAX_AGE_S: u64 = 15;

#[tokio::test]
async fn a_revocation_on_one_instance_reaches_the_others_within_the_cache_max_age() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let a = world.instance(&db).await;
    let b = world.instance(&db).await;
    let id = world.install(&a, "shared", None).await;
    let removed = world.install(&a, "removed", None).await;
    // B reads both rows and keeps their tokens in memory, at this instant of the managers'
    // clock (which moves only when told: `World::advance` would also add the real time the
    // installs took, and under load that alone can use up the window).
    let read_at = kit_oauth::core::Clock::now(&world.clock);
    let cached = b.manager().access_token(&id).await.unwrap();
    b.manager().access_token(&removed).await.unwrap();

    a.manager().revoke(&id).await.unwrap();
    a.manager().remove(&removed).await.unwrap();

    // Within the period B may still serve what it read (no I/O on the hot path)...
    let after = |secs| read_at.saturating_add(std::time::Duration::from_secs(secs));
    world.clock.set(after(MAX_AGE_S - 1));
    assert!(b.manager().access_token(&id).await.unwrap() == cached);
    // ...and not a moment after.
    world.clock.set(after(MAX_AGE_S));
    let err = b.manager().access_token(&id).await.unwrap_err();
    assert!(
        matches!(&err, ManagerError::ReauthRequired { reason, .. } if reason.contains("revoked")),
        "{err}"
    );
    let err = b.manager().access_token(&removed).await.unwrap_err();
    assert!(matches!(err, ManagerError::NotFound(_)), "{err}");
    // Nothing was refreshed on the way.
    assert_eq!(world.stats().refreshes_ok, 0);
}
