//! `kit-oauth export --to FILE`: every live grant's tokens, decrypted, as the JSON lines
//! `kit-oauth import` reads — for an operator moving away from kit-oauth (issue 15.2).
//!
//! The file holds working credentials for every connected creator: it is refused without
//! `--i-understand-this-writes-secrets`, created new (never over an existing file) with mode
//! 0600, and the command says so loudly on stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use kit_oauth::KitOAuth;
use kit_oauth::core::{ConnectionStore as _, Grant, ListQuery, StateName};
use serde_json::json;

use crate::{Failure, blocking, failed};

const WARNING: &str = "\
WARNING: this file holds the live access and refresh tokens of every connected creator, in the
clear. Anyone who reads it can act on those Kit accounts. Keep it on an encrypted disk, move it
only over an encrypted channel, and delete it once imported elsewhere. While this broker keeps
running it will rotate these refresh tokens: stop it (or its refresher) before exporting, or the
exported refresh tokens will already be spent.";

/// Without `--i-understand-this-writes-secrets`: the warning, and nothing opened or written.
pub(crate) fn run_refused(to: &Path) -> Result<(), Failure> {
    Err(Failure::Usage(format!(
        "{WARNING}\n\nRefused: pass --i-understand-this-writes-secrets to write {}",
        to.display()
    )))
}

/// Writes the export.
pub(crate) async fn run(kit: &KitOAuth, to: PathBuf, as_json: bool) -> Result<(), Failure> {
    eprintln!("{WARNING}");
    let store = kit.manager().store();
    let mut query = ListQuery {
        state: Some(StateName::Authorized),
        limit: 500,
        ..ListQuery::default()
    };
    let mut lines = Vec::new();
    loop {
        let page = store.list(&query).await.map_err(failed)?;
        let full = page.len() == query.limit as usize;
        query.after = page.last().map(|r| r.id.clone());
        for record in &page {
            let Grant::Active(tokens) = &record.grant else {
                continue;
            };
            lines.push(
                json!({
                    "refresh_token": tokens.refresh().expose_secret(),
                    "access_token": tokens.access().expose_secret(),
                    "expires_at": tokens.expires_at().unix_seconds(),
                    "tenant": record.tenant.as_ref().map(kit_oauth::core::TenantName::as_str),
                })
                .to_string(),
            );
        }
        if !full {
            break;
        }
    }
    let count = lines.len();
    let path = to.clone();
    blocking(move || {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        for line in &lines {
            writeln!(file, "{line}")?;
        }
        file.sync_all()
    })
    .map_err(|e| failed(format!("{}: {e}", to.display())))?;
    if as_json {
        println!(
            "{}",
            json!({"exported": count, "to": to.display().to_string()})
        );
    } else {
        println!(
            "exported {count} grants to {} (mode 0600); re-import with `kit-oauth import`",
            to.display()
        );
    }
    Ok(())
}
