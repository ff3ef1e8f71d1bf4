//! `kit-oauth import FILE`: adopt many grants at once, resumably, at a pace Kit tolerates.
//!
//! Each record goes through `Manager::import` (the same path as `POST /v1/connections`).
//! Finished lines (imported, already present, replaced, refused by Kit, by the spent list or
//! because another tenant's connection holds the refresh token) are
//! appended to `FILE.progress`, so a rerun skips them; lines that failed for a reason that may
//! pass (Kit or the database unavailable, the client credentials refused) and malformed lines
//! are not, so a rerun — after fixing the file or the configuration — retries exactly those.
//!
//! Kit's published limit is per access token (600 requests a minute), which an import never
//! approaches for one token; the token endpoint's limit is not published. So starts are paced
//! (`--per-second`, default 20) and bounded (`--concurrency`, default 4), and a temporary
//! failure pauses new starts for a few seconds before going on.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kit_oauth::core::TenantName;
use kit_oauth::{ImportError, ImportOutcome, KitOAuth};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::records::{self, Record};
use crate::{Failure, bar, blocking, failed};

/// How long new starts pause after Kit or the database said "later".
const BACKOFF: Duration = Duration::from_secs(3);

/// The options of `kit-oauth import`.
pub(crate) struct ImportArgs {
    pub(crate) file: PathBuf,
    pub(crate) dry_run: bool,
    pub(crate) concurrency: usize,
    pub(crate) per_second: u32,
}

/// What one record came to.
enum Done {
    Outcome(ImportOutcome),
    /// Refused for good (Kit's reason, the spent list, or another tenant's connection holding
    /// the refresh token): recorded as done, and listed with its reason.
    Refused(String),
    /// Malformed: left for a rerun once the line is fixed.
    Retry(String),
    /// Failed for a reason that may pass (Kit or the database unavailable, the client
    /// credentials refused): left for a rerun, and new starts pause.
    Later(String),
}

#[derive(Default)]
struct Summary {
    counts: [u64; 5],
    refused: Vec<(usize, String)>,
    retry: Vec<(usize, String)>,
    skipped: usize,
}

const LABELS: [&str; 5] = [
    "imported",
    "already present",
    "replaced",
    "checked (dry run)",
    "would spend one refresh (dry run)",
];

fn slot(outcome: &ImportOutcome) -> usize {
    match outcome {
        ImportOutcome::Created => 0,
        ImportOutcome::AlreadyPresent => 1,
        ImportOutcome::Replaced => 2,
        ImportOutcome::Checked => 3,
        ImportOutcome::NeedsRefresh => 4,
    }
}

fn progress_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".progress");
    PathBuf::from(name)
}

async fn one(manager: kit_oauth::Manager, record: Record, dry_run: bool) -> (usize, Done) {
    let line = record.line;
    let body = match record.body {
        Ok(body) => body,
        Err(reason) => return (line, Done::Retry(reason)),
    };
    let tenant = match body.tenant.as_deref().map(TenantName::parse).transpose() {
        Ok(tenant) => tenant,
        Err(e) => return (line, Done::Retry(format!("tenant: {e}"))),
    };
    let request = match body.into_request(tenant) {
        Ok(request) => request,
        Err(reason) => return (line, Done::Retry(reason)),
    };
    let done = match manager.import(request, dry_run).await {
        Ok(imported) => Done::Outcome(imported.outcome),
        Err(
            error @ (ImportError::Spent { .. }
            | ImportError::HeldElsewhere { .. }
            | ImportError::SuccessorToHolder { .. }
            | ImportError::Refused { .. }
            | ImportError::AccountAfterRefresh(_)
            | ImportError::Token(_)),
        ) => Done::Refused(error.to_string()),
        Err(error) => Done::Later(error.to_string()),
    };
    (line, done)
}

/// Runs the import; returns whether every record finished well.
pub(crate) async fn run(kit: &KitOAuth, args: ImportArgs, as_json: bool) -> Result<bool, Failure> {
    let file = args.file.clone();
    let text = blocking(move || std::fs::read_to_string(&file))
        .map_err(|e| Failure::Usage(format!("{}: {e}", args.file.display())))?;
    let all = records::parse(&text)
        .map_err(|e| Failure::Usage(format!("{}: {e}", args.file.display())))?;
    let progress_file = progress_path(&args.file);
    let done_lines: BTreeSet<usize> = if args.dry_run {
        BTreeSet::new()
    } else {
        let path = progress_file.clone();
        blocking(move || std::fs::read_to_string(path))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    let mut summary = Summary::default();
    let todo: Vec<Record> = all
        .into_iter()
        .filter(|r| {
            let skip = done_lines.contains(&r.line);
            summary.skipped += usize::from(skip);
            !skip
        })
        .collect();
    let mut progress_out = if args.dry_run {
        None
    } else {
        let path = progress_file.clone();
        Some(
            blocking(move || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
            })
            .map_err(|e| failed(format!("{}: {e}", progress_file.display())))?,
        )
    };
    let progress = bar(
        todo.len(),
        if args.dry_run {
            "checking"
        } else {
            "importing"
        },
    );
    let mut pace = (args.per_second > 0).then(|| {
        let mut every = tokio::time::interval(Duration::from_secs(1) / args.per_second);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every
    });
    let concurrency = args.concurrency.max(1);
    let mut queue = todo.into_iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < concurrency {
            let Some(record) = queue.next() else { break };
            if let Some(pace) = &mut pace {
                pace.tick().await;
            }
            running.spawn(one(kit.manager().clone(), record, args.dry_run));
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (line, done) = joined.map_err(failed)?;
        match done {
            Done::Outcome(outcome) => summary.counts[slot(&outcome)] += 1,
            Done::Refused(reason) => summary.refused.push((line, reason)),
            Done::Retry(reason) => summary.retry.push((line, reason)),
            Done::Later(reason) => {
                summary.retry.push((line, reason));
                tokio::time::sleep(BACKOFF).await;
            }
        }
        let finished = summary.retry.last().is_none_or(|(l, _)| *l != line);
        if let (Some(out), true) = (&mut progress_out, finished) {
            blocking(|| writeln!(out, "{line}").and_then(|()| out.flush()))
                .map_err(|e| failed(format!("{}: {e}", progress_file.display())))?;
        }
        if let Some(bar) = &progress {
            bar.inc(1);
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    summary.refused.sort();
    summary.retry.sort();
    print(&summary, args.dry_run, as_json);
    Ok(summary.refused.is_empty() && summary.retry.is_empty())
}

fn print(summary: &Summary, dry_run: bool, as_json: bool) {
    let list = |items: &[(usize, String)]| -> Value {
        Value::Array(
            items
                .iter()
                .map(|(line, reason)| json!({"line": line, "reason": reason}))
                .collect(),
        )
    };
    if as_json {
        println!(
            "{}",
            json!({
                "dry_run": dry_run,
                "imported": summary.counts[0],
                "already_present": summary.counts[1],
                "replaced": summary.counts[2],
                "checked": summary.counts[3],
                "needs_refresh": summary.counts[4],
                "skipped_done_before": summary.skipped,
                "refused": list(&summary.refused),
                "retry_later": list(&summary.retry),
            })
        );
        return;
    }
    println!("{:<36} {:>8}", "RESULT", "RECORDS");
    for (label, count) in LABELS.iter().zip(summary.counts) {
        if count > 0 || (!dry_run && *label == LABELS[0]) {
            println!("{label:<36} {count:>8}");
        }
    }
    println!("{:<36} {:>8}", "refused", summary.refused.len());
    println!("{:<36} {:>8}", "left for a rerun", summary.retry.len());
    if summary.skipped > 0 {
        println!("{:<36} {:>8}", "done in an earlier run", summary.skipped);
    }
    for (line, reason) in &summary.refused {
        println!("  line {line}: refused: {reason}");
    }
    for (line, reason) in &summary.retry {
        println!("  line {line}: not done: {reason}");
    }
}
