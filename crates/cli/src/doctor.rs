//! `kit-oauth doctor`: configuration, database, migrations, key ring and the token endpoint,
//! each checked on its own so one failure does not hide the others.

use std::time::Duration;

use kit_oauth::key_ring_from;
use kit_oauth_server::config::KitArgs;
use serde_json::{Value, json};

use crate::Failure;

pub(crate) async fn run(kit: &KitArgs, as_json: bool) -> Result<(), Failure> {
    let mut checks: Vec<(&str, Result<String, String>)> = Vec::new();
    let config = match kit.library_config() {
        Ok(config) => {
            checks.push(("configuration", Ok("every variable is valid".into())));
            Some(config)
        }
        Err(error) => {
            checks.push(("configuration", Err(error.to_string())));
            None
        }
    };
    if let Some(config) = &config {
        match key_ring_from(config) {
            Err(error) => checks.push(("key ring", Err(error.to_string()))),
            Ok(keys) => {
                checks.push((
                    "key ring",
                    Ok(format!("current key {}", keys.current_key_id())),
                ));
                let options = kit_oauth::store::StoreOptions {
                    migrate: false,
                    ..kit_oauth::store::StoreOptions::default()
                };
                match kit_oauth::store::SeaOrmStore::connect_with(
                    &config.database_url,
                    keys,
                    options,
                )
                .await
                {
                    Err(error) => {
                        checks.push(("database", Err(format!("cannot connect: {error}"))));
                    }
                    Ok(store) => {
                        checks.push(("database", Ok("reachable".into())));
                        checks.push((
                            "migrations",
                            store
                                .readiness()
                                .await
                                .map(|()| "applied".to_owned())
                                .map_err(|e| format!("{e} (run `kit-oauth migrate`)")),
                        ));
                    }
                }
            }
        }
        let reachable = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(client) => client
                .post(config.token_url.clone())
                .send()
                .await
                .map(|r| format!("answered HTTP {}", r.status().as_u16()))
                .map_err(|e| format!("unreachable: {}", e.without_url())),
            Err(error) => Err(format!("HTTP client: {error}")),
        };
        checks.push(("token endpoint", reachable));
    }
    let ok = checks.iter().all(|(_, r)| r.is_ok());
    if as_json {
        let list: Vec<Value> = checks
            .iter()
            .map(|(name, r)| match r {
                Ok(m) => json!({"check": name, "ok": true, "detail": m}),
                Err(m) => json!({"check": name, "ok": false, "detail": m}),
            })
            .collect();
        println!("{}", json!({"ok": ok, "checks": list}));
    } else {
        for (name, result) in &checks {
            match result {
                Ok(m) => println!("ok    {name}: {m}"),
                Err(m) => println!("FAIL  {name}: {m}"),
            }
        }
    }
    match (ok, config.is_some()) {
        (true, _) => Ok(()),
        (false, false) => Err(Failure::Usage("the configuration is not usable".into())),
        (false, true) => Err(Failure::Failed("some checks failed".into())),
    }
}
