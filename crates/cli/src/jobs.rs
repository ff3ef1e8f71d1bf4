//! The fleet jobs: refresh (one, all, due), key rotation, revocation and removal.

use kit_oauth::core::{ConnectionId, ConnectionStore as _, ListQuery, StateName};
use kit_oauth::{KitOAuth, Removal};
use serde_json::json;

use crate::{Failure, bar, connections, failed};

/// `refresh ID | --all | --due`; returns whether every refresh succeeded.
pub(crate) async fn refresh(
    kit: &KitOAuth,
    id: Option<ConnectionId>,
    all: bool,
    due: bool,
    as_json: bool,
) -> Result<bool, Failure> {
    let ids: Vec<ConnectionId> = match (id, all, due) {
        (Some(id), _, _) => vec![id],
        (None, true, _) => connections::all(
            kit,
            ListQuery {
                state: Some(StateName::Authorized),
                ..ListQuery::default()
            },
        )
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect(),
        (None, false, true) => {
            let now = kit.manager().clock().now();
            kit.manager()
                .store()
                .list_due(now, 100_000)
                .await
                .map_err(failed)?
        }
        (None, false, false) => {
            return Err(Failure::Usage(
                "refresh needs a connection id, --all or --due".into(),
            ));
        }
    };
    let progress = bar(ids.len(), "refreshing");
    let mut failures = Vec::new();
    for id in &ids {
        let result = if due {
            kit.manager().refresh_if_scheduled(id).await
        } else {
            kit.manager().force_refresh(id, None).await.map(drop)
        };
        if let Err(error) = result {
            failures.push(json!({"id": id.as_str(), "error": error.to_string()}));
        }
        if let Some(bar) = &progress {
            bar.inc(1);
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if as_json {
        println!(
            "{}",
            json!({"refreshed": ids.len() - failures.len(), "failed": failures})
        );
    } else {
        println!("{:<10} {:>8}", "RESULT", "COUNT");
        println!("{:<10} {:>8}", "refreshed", ids.len() - failures.len());
        println!("{:<10} {:>8}", "failed", failures.len());
        for f in &failures {
            println!("  {}: {}", f["id"], f["error"]);
        }
    }
    Ok(failures.is_empty())
}

/// `keys rotate`: re-encrypts every row under the current key, in batches; resumable.
pub(crate) async fn rotate_keys(kit: &KitOAuth, as_json: bool) -> Result<(), Failure> {
    let store = kit.manager().store();
    let first = store.reencrypt_batch(200).await.map_err(failed)?;
    let total = first.reencrypted + first.remaining;
    let progress = bar(
        usize::try_from(total).unwrap_or(usize::MAX),
        "re-encrypting",
    );
    let mut done = first.reencrypted;
    let mut remaining = first.remaining;
    if let Some(bar) = &progress {
        bar.set_position(done);
    }
    while remaining > 0 {
        let step = store.reencrypt_batch(200).await.map_err(failed)?;
        done += step.reencrypted;
        if step.reencrypted == 0 && step.remaining >= remaining {
            return Err(Failure::Failed(format!(
                "{} rows could not be re-encrypted (changing concurrently?); run again",
                step.remaining
            )));
        }
        remaining = step.remaining;
        if let Some(bar) = &progress {
            bar.set_position(done);
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if as_json {
        println!(
            "{}",
            json!({"reencrypted": done, "current_key": store.keys().current_key_id()})
        );
    } else {
        println!(
            "re-encrypted {done} rows; every row now uses key {}",
            store.keys().current_key_id()
        );
    }
    Ok(())
}

/// `remove ID [--force]`: revoke at Kit, then delete; forced, delete even when Kit keeps the
/// grant (and say so).
pub(crate) async fn remove(
    kit: &KitOAuth,
    id: &ConnectionId,
    force: bool,
    as_json: bool,
) -> Result<(), Failure> {
    let manager = kit.manager();
    if !force {
        manager.remove(id).await.map_err(|e| {
            Failure::Failed(match e {
                kit_oauth::ManagerError::KitKeptGrant { reason, .. } => format!(
                    "Kit did not revoke the grant, so the connection was kept: {reason} \
                     (retry, or pass --force to remove it anyway)"
                ),
                other => other.to_string(),
            })
        })?;
        if as_json {
            println!(
                "{}",
                json!({"removed": id.as_str(), "revoked_at_kit": true})
            );
        } else {
            println!("revoked at Kit and removed {id}");
        }
        return Ok(());
    }
    match manager.remove_forced(id).await.map_err(failed)? {
        Removal::Revoked if as_json => {
            println!(
                "{}",
                json!({"removed": id.as_str(), "revoked_at_kit": true})
            );
        }
        Removal::Revoked => println!("revoked at Kit and removed {id}"),
        Removal::KitNotTold { reason } if as_json => println!(
            "{}",
            json!({"removed": id.as_str(), "revoked_at_kit": false, "kit_reason": reason})
        ),
        Removal::KitNotTold { reason } => println!(
            "removed {id}; Kit was NOT told ({reason}): the grant lives at Kit until the \
             creator uninstalls the app"
        ),
    }
    Ok(())
}
