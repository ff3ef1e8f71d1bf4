//! `kit-oauth-bench`: see the library's documentation and `--help`.

fn main() -> std::process::ExitCode {
    kit_oauth_bench::cli::main()
}
