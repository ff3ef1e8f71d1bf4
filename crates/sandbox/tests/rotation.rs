//! The three rotation modes side by side: concurrent refreshes with one token, reuse before
//! and after the new access token's first use, the grace window in each mode, and the counters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kit_sandbox::SandboxHandle;
use serde_json::Value;

/// Ten refreshes with one refresh token at once, each on its own connection:
/// (200s, invalid_grants, others).
async fn concurrent_refreshes(sb: &SandboxHandle, rt: &str) -> (usize, usize, usize) {
    let url = sb.url("/v4/oauth/token");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (url, rt) = (url.clone(), rt.to_owned());
            tokio::spawn(async move {
                let resp = http()
                    .post(url)
                    .basic_auth(CLIENT, Some(SECRET))
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let ok = answers.iter().filter(|(st, _)| *st == 200).count();
    let invalid = answers
        .iter()
        .filter(|(st, e)| *st == 400 && e["error"] == "invalid_grant")
        .count();
    (ok, invalid, answers.len() - ok - invalid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_refreshes_with_one_token_in_each_mode() {
    for (mode, expected) in [
        (Rotation::RevokeOnUse, (10, 0, 0)),
        (Rotation::Strict, (1, 9, 0)),
        (Rotation::ReuseDetection, (1, 9, 0)),
    ] {
        let sb = confidential().rotation(mode).spawn().await.unwrap();
        let t = tokens(&sb, &[]).await;
        let counted = concurrent_refreshes(&sb, &s(&t, "refresh_token")).await;
        assert_eq!(counted, expected, "{mode}");
        let stats = sb.stats();
        assert_eq!(stats.refreshes_ok, expected.0 as u64, "{mode}");
        assert_eq!(stats.refresh_reuse_attempts, 9, "{mode}");
        let accepted = if mode == Rotation::RevokeOnUse { 9 } else { 0 };
        assert_eq!(stats.refresh_reuse_accepted, accepted, "{mode}");
        assert_eq!(stats.invalid_grant_total, expected.1 as u64, "{mode}");
        // Reuse detection: the first reuse revoked the grant, the other eight found it dead.
        let alive = mode != Rotation::ReuseDetection;
        assert_eq!(sb.grants()[0].alive, alive, "{mode}");
        assert_eq!(stats.grants_revoked, u64::from(!alive), "{mode}");
        if !alive {
            assert_eq!(stats.invalid_grant["refresh_reused"], 1);
            assert_eq!(stats.invalid_grant["refresh_revoked"], 8);
        }
    }
}

#[tokio::test]
async fn revoke_on_use_spends_the_old_pair_at_the_new_access_tokens_first_use() {
    let sb = confidential().spawn().await.unwrap();
    assert_eq!(sb.config().rotation, Rotation::RevokeOnUse, "the default");
    let t1 = tokens(&sb, &[]).await;
    let (_, t2) = refresh(&sb, &s(&t1, "refresh_token")).await;
    // Until AT2 is used: AT1 works, RT1 issues yet another pair.
    assert_eq!(get_account(&sb, &s(&t1, "access_token")).await.0, 200);
    let (st, t3) = refresh(&sb, &s(&t1, "refresh_token")).await;
    assert_eq!(st, 200);
    assert_ne!(t3["refresh_token"], t2["refresh_token"]);
    // The first use of AT2 ends pair 1; AT3 and RT2/RT3 live on (a branch, as on Doorkeeper).
    assert_eq!(get_account(&sb, &s(&t2, "access_token")).await.0, 200);
    assert_eq!(get_account(&sb, &s(&t1, "access_token")).await.0, 401);
    let (st, e) = refresh(&sb, &s(&t1, "refresh_token")).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(get_account(&sb, &s(&t3, "access_token")).await.0, 200);
    let (st, _) = refresh(&sb, &s(&t2, "refresh_token")).await;
    assert_eq!(st, 200);
    let stats = sb.stats();
    assert_eq!(stats.refreshes_ok, 3);
    assert_eq!(stats.refresh_reuse_attempts, 2);
    assert_eq!(stats.refresh_reuse_accepted, 1);
    assert_eq!(stats.invalid_grant["refresh_spent"], 1);
    assert_eq!(stats.grants_revoked, 0);
    assert!(sb.grants()[0].alive);
}

#[tokio::test]
async fn a_long_chain_keeps_the_latest_pair_working_in_every_mode() {
    for mode in [
        Rotation::RevokeOnUse,
        Rotation::Strict,
        Rotation::ReuseDetection,
    ] {
        let sb = confidential().rotation(mode).spawn().await.unwrap();
        let mut t = tokens(&sb, &[]).await;
        for _ in 0..50 {
            let (st, next) = refresh(&sb, &s(&t, "refresh_token")).await;
            assert_eq!(st, 200, "{mode}: {next}");
            assert_eq!(get_account(&sb, &s(&next, "access_token")).await.0, 200);
            assert_eq!(
                get_account(&sb, &s(&t, "access_token")).await.0,
                401,
                "{mode}: the previous pair is spent once the new one is used"
            );
            t = next;
        }
        let stats = sb.stats();
        assert_eq!(stats.refreshes_ok, 50, "{mode}");
        assert_eq!(stats.refresh_reuse_attempts, 0, "{mode}");
        assert_eq!(stats.invalid_grant_total, 0, "{mode}");
        assert_eq!(sb.grants()[0].refreshes, 50, "{mode}");
    }
}

#[tokio::test]
async fn reuse_grace_composes_with_every_mode() {
    for mode in [
        Rotation::RevokeOnUse,
        Rotation::Strict,
        Rotation::ReuseDetection,
    ] {
        let sb = confidential()
            .rotation(mode)
            .reuse_grace(30)
            .spawn()
            .await
            .unwrap();
        let t1 = tokens(&sb, &[]).await;
        let (_, t2) = refresh(&sb, &s(&t1, "refresh_token")).await;
        // Spend RT1 in every mode (revoke-on-use needs AT2's first use).
        assert_eq!(get_account(&sb, &s(&t2, "access_token")).await.0, 200);
        sb.advance_clock(10);
        let (st, again) = refresh(&sb, &s(&t1, "refresh_token")).await;
        assert_eq!((st, &again), (200, &t2), "{mode}: the same pair once");
        let (st, _) = refresh(&sb, &s(&t1, "refresh_token")).await;
        assert_eq!(st, 400, "{mode}: only once");
        let stats = sb.stats();
        assert_eq!(stats.refresh_grace_hits, 1, "{mode}");
        assert_eq!(stats.refresh_reuse_attempts, 2, "{mode}");
        let detected = mode == Rotation::ReuseDetection;
        assert_eq!(stats.grants_revoked, u64::from(detected), "{mode}");
        let after = get_account(&sb, &s(&t2, "access_token")).await.0;
        assert_eq!(after, if detected { 401 } else { 200 }, "{mode}");
    }
}

#[tokio::test]
async fn the_control_api_reports_the_mode() {
    for mode in [
        Rotation::RevokeOnUse,
        Rotation::Strict,
        Rotation::ReuseDetection,
    ] {
        let sb = confidential().rotation(mode).spawn().await.unwrap();
        let cfg: Value = http()
            .get(sb.url("/_sandbox/config"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(cfg["rotation"], mode.as_str());
        assert_eq!(mode.as_str().parse::<Rotation>().unwrap(), mode);
    }
    assert!("lenient".parse::<Rotation>().is_err());
}
