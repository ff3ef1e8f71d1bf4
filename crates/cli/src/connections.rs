//! `kit-oauth connections list|show`: the fleet as a table (or JSON), and one connection with
//! its audit trail.

use kit_oauth::core::{ConnectionId, ListQuery, StateName, TenantName, Timestamp};
use kit_oauth::{ConnectionStatus, KitOAuth};
use kit_oauth_server::web::rfc3339;
use serde_json::{Value, json};

use crate::{Failure, failed};

fn when(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "—".to_owned(), rfc3339)
}

/// A connection as `--json` prints it. Never a token.
pub(crate) fn to_json(s: &ConnectionStatus) -> Value {
    json!({
        "id": s.id.as_str(),
        "tenant": s.tenant.as_ref().map(TenantName::as_str),
        "account_id": s.account.id.as_str(),
        "account_name": s.account.name,
        "state": s.state.as_str(),
        "expires_at": s.expires_at.map(rfc3339),
        "last_refresh_at": s.last_refresh_at.map(rfc3339),
        "last_error": s.last_error,
    })
}

fn print_table(rows: &[ConnectionStatus]) {
    println!(
        "{:<24} {:<16} {:<24} {:<13} {:<26} LAST ERROR",
        "ID", "TENANT", "ACCOUNT", "STATE", "EXPIRES"
    );
    for s in rows {
        println!(
            "{:<24} {:<16} {:<24} {:<13} {:<26} {}",
            s.id.as_str(),
            s.tenant.as_ref().map_or("—", TenantName::as_str),
            s.account.name,
            s.state.as_str(),
            when(s.expires_at),
            s.last_error.as_deref().unwrap_or("")
        );
    }
}

/// Every connection matching `query`, page by page.
pub(crate) async fn all(
    kit: &KitOAuth,
    query: ListQuery,
) -> Result<Vec<ConnectionStatus>, Failure> {
    let mut query = ListQuery {
        limit: 500,
        ..query
    };
    let mut out = Vec::new();
    loop {
        let page = kit.manager().list(&query).await.map_err(failed)?;
        let full = page.len() == query.limit as usize;
        query.after = page.last().map(|s| s.id.clone());
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// `connections list [--state S] [--tenant T]`.
pub(crate) async fn list(
    kit: &KitOAuth,
    state: Option<&str>,
    tenant: Option<&str>,
    as_json: bool,
) -> Result<(), Failure> {
    let tenant = tenant
        .map(TenantName::parse)
        .transpose()
        .map_err(|e| Failure::Usage(format!("--tenant: {e}")))?;
    let state = state
        .map(|s| {
            StateName::parse(s)
                .filter(|s| matches!(s, StateName::Authorized | StateName::Unauthorized))
                .ok_or_else(|| {
                    Failure::Usage(format!("--state {s:?}: use authorized or unauthorized"))
                })
        })
        .transpose()?;
    let rows = all(
        kit,
        ListQuery {
            tenant: tenant.map(Some),
            state,
            ..ListQuery::default()
        },
    )
    .await?;
    if as_json {
        println!("{}", Value::Array(rows.iter().map(to_json).collect()));
    } else {
        print_table(&rows);
    }
    Ok(())
}

/// `connections show ID`: the connection and its events, oldest first.
pub(crate) async fn show(kit: &KitOAuth, id: &ConnectionId, as_json: bool) -> Result<(), Failure> {
    let status = kit.manager().status(id).await.map_err(failed)?;
    let events = kit.manager().store().events(id).await.map_err(failed)?;
    if as_json {
        let mut out = to_json(&status);
        out["events"] = Value::Array(
            events
                .iter()
                .map(|(kind, detail, at)| {
                    json!({
                        "kind": kind,
                        "at": rfc3339(*at),
                        "detail": serde_json::from_str::<Value>(detail)
                            .unwrap_or_else(|_| Value::String(detail.clone())),
                    })
                })
                .collect(),
        );
        println!("{out}");
    } else {
        print_table(std::slice::from_ref(&status));
        println!();
        println!("{:<26} {:<24} DETAIL", "AT", "EVENT");
        for (kind, detail, at) in &events {
            println!("{:<26} {kind:<24} {detail}", rfc3339(*at));
        }
        if events.is_empty() {
            println!("(no events recorded)");
        }
    }
    Ok(())
}
