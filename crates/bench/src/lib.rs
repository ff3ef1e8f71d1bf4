//! # kit-oauth-bench — the multi-process load harness
//!
//! Starts the real `kit-sandbox` binary and N real `kit-oauth-server` processes on one
//! database, seeds connections through real installs over loopback HTTP, and runs named
//! scenarios (`storm`, `fleet`, `steady`, `install`, `hot`, `crash`, `pg-restart`, `soak`).
//! Each prints a markdown table and the exact command; the counts a scenario promises
//! (duplicate refreshes, reuse attempts, lost connections, …) make the process exit non-zero
//! when violated. Timings are printed, never asserted.

pub mod bare;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod db;
pub mod demand;
pub mod error;
pub mod scenarios;
pub mod stats;
pub mod supervisor;
