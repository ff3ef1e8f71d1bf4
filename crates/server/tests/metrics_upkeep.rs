//! The Prometheus recorder keeps every histogram sample until an upkeep folds it into its
//! buckets. The broker records one sample per HTTP request, so without a periodic upkeep a
//! broker that nobody scrapes grows by ~16 bytes per request for ever (the 10-minute soak in
//! docs/benchmarks.md). These tests pin the fix: one upkeep thread per process, and samples
//! freed by the upkeep rather than kept.
//!
//! Its own test binary (one process; beside it only the small thread-count test), because the
//! second test reads the process's resident memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kit_oauth_server::metrics;

/// Names of this process's threads (Linux keeps at most 15 bytes of each).
#[cfg(target_os = "linux")]
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn the_recorder_starts_exactly_one_upkeep_thread() {
    for _ in 0..3 {
        assert!(metrics::handle().is_some());
    }
    metrics::install();
    let upkeep_threads = || {
        thread_names()
            .into_iter()
            .filter(|name| name == metrics::UPKEEP_THREAD)
            .count()
    };
    // A new thread names itself once it runs: wait for that (not a timing assertion).
    for _ in 0..1_000 {
        if upkeep_threads() > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(upkeep_threads(), 1);
}

/// `RssAnon` of this process (the heap, not the executable's pages as they are read), KiB.
#[cfg(target_os = "linux")]
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn upkeep_frees_histogram_samples() {
    const SAMPLES: u64 = 2_000_000;
    const PER_UPKEEP: u64 = 50_000;
    // Kept, 2,000,000 samples are ≈ 32,000 KiB (a 1,040-byte block per 64 samples); drained
    // every 50,000 samples, the live set is about 50,000 × 16 bytes ≈ 800 KiB, plus blocks
    // waiting for their epoch to be reclaimed.
    const BOUND_KIB: u64 = 6_000;
    assert!(metrics::handle().is_some());
    let histogram = ::metrics::histogram!(
        "kit_oauth_http_request_duration_seconds",
        "route" => "/upkeep-test"
    );
    // Warm up: the distribution entry, the allocator's first arenas.
    for _ in 0..PER_UPKEEP {
        histogram.record(0.001);
    }
    metrics::upkeep();
    let before = rss_kib();
    for i in 1..=SAMPLES {
        histogram.record(0.001);
        if i % PER_UPKEEP == 0 {
            metrics::upkeep();
        }
    }
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < BOUND_KIB,
        "{SAMPLES} histogram samples with an upkeep every {PER_UPKEEP} grew RssAnon by {grown} KiB"
    );
    // Every sample reached its bucket: the exposition counts them all.
    let rendered = metrics::handle().unwrap().render();
    let count_line = rendered
        .lines()
        .find(|l| {
            l.starts_with("kit_oauth_http_request_duration_seconds_count")
                && l.contains("/upkeep-test")
        })
        .unwrap();
    assert!(
        count_line.ends_with(&format!(" {}", SAMPLES + PER_UPKEEP)),
        "{count_line}"
    );
}
