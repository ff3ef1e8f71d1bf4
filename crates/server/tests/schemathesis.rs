//! schemathesis, an independent OpenAPI-driven fuzzer, against a live broker (in-process, with
//! the Kit sandbox and one installed connection), with every check it has.
//!
//! The CLI comes from `.ci/ensure-schemathesis` (a virtualenv under `target/schemathesis`) or
//! `KIT_OAUTH_SCHEMATHESIS`. Without it the test is reported *ignored* with the reason, and
//! under `CI=true`/`CI=1` it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use support::{API_KEY, Extra};

fn cli() -> Result<PathBuf, String> {
    let path = std::env::var_os("KIT_OAUTH_SCHEMATHESIS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/schemathesis/bin/st"),
        PathBuf::from,
    );
    match Command::new(&path).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(path),
        _ => Err(format!(
            "schemathesis is not installed at {} (run .ci/ensure-schemathesis)",
            path.display()
        )),
    }
}

fn fuzz_the_broker_api() -> Result<Completion, Failed> {
    let st = match cli() {
        Ok(st) => st,
        Err(why) if support::is_ci() => return Err(format!("{why}; required under CI").into()),
        Err(why) => return Ok(Completion::ignored_with(why)),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let broker = support::Broker::start(Extra::default()).await;
        let id = support::install(&broker.base, &broker.sandbox, "Ann").await;
        let base = broker.base.clone();
        let report = tempfile::tempdir().unwrap();
        // The installed connection's id in every path, so the fuzzer reaches past the 404 into
        // the token routes and the proxy (Kit's sandbox answering).
        let config = report.path().join("schemathesis.toml");
        // An import of schema-valid tokens Kit never issued is refused with Kit's reason (422):
        // the fuzzer cannot know which tokens are live, so 422 is an expected answer there.
        let import = "[[operations]]\ninclude-method = \"POST\"\ninclude-path = \"/v1/connections\"\n\
            checks.positive_data_acceptance.expected-statuses = \
            [\"2xx\", \"3xx\", \"401\", \"403\", \"404\", \"409\", \"422\", \"429\", \"5xx\"]\n";
        std::fs::write(
            &config,
            format!("[parameters]\n\"path.id\" = \"{id}\"\n{import}"),
        )
        .unwrap();
        let run = tokio::task::spawn_blocking(move || {
            Command::new(st)
                .arg("--config-file")
                .arg(&config)
                .args(["run", &format!("{base}/openapi.json")])
                .args(["--url", &base])
                .args(["--checks", "all"])
                .args(["--header", &format!("Authorization: Bearer {API_KEY}")])
                .args(["--max-examples", "40", "--workers", "2"])
                .arg("--generation-deterministic")
                .args(["--report-dir", &report.path().display().to_string()])
                .env("NO_COLOR", "1")
                // Its cache (`.schemathesis/`) goes beside the report, not into the source tree.
                .current_dir(report.path())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        broker.running.shutdown().await;
        let stdout = String::from_utf8_lossy(&run.stdout);
        if run.status.success() {
            // The summary (operations, phases, cases generated) for the log.
            let lines: Vec<&str> = stdout.lines().collect();
            eprintln!("{}", lines[lines.len().saturating_sub(40)..].join("\n"));
            Ok(Completion::Completed)
        } else {
            Err(format!(
                "schemathesis found problems:\n{stdout}\n{}",
                String::from_utf8_lossy(&run.stderr)
            )
            .into())
        }
    })
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![Trial::ignorable_test(
        "schemathesis_finds_nothing_in_the_broker_api",
        fuzz_the_broker_api,
    )];
    libtest_mimic::run(&args, trials).exit();
}
