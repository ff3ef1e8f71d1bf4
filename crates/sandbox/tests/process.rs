//! The `kit-sandbox` binary as a process, and a fuzz-style property test of every endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use proptest::prelude::*;

fn spawn_bin(args: &[&str], envs: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kit-sandbox"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim_end()
        .strip_prefix("kit-sandbox listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn binary_serves_the_flow_and_stops_on_sigterm() {
    let (mut child, url) = spawn_bin(
        &[
            "--bind",
            "127.0.0.1:0",
            "--client-id",
            CLIENT,
            "--client-secret",
            SECRET,
            "--redirect-uri",
            "http://127.0.0.1:9/other",
            "--redirect-uri",
            REDIRECT,
            "--auto-approve",
            "--rotation",
            "strict",
            "--lowercase-token-type",
            "--access-ttl",
            "1234",
        ],
        &[],
    );
    assert!(url.starts_with("http://127.0.0.1:"));
    let authorize = format!(
        "{url}/v4/oauth/authorize?client_id={CLIENT}&response_type=code&redirect_uri={}&state=x",
        urlencode(REDIRECT)
    );
    let resp = http().get(&authorize).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let code = query_param(resp.headers()["location"].to_str().unwrap(), "code").unwrap();
    let t: serde_json::Value = http()
        .post(format!("{url}/v4/oauth/token"))
        .json(&serde_json::json!({"client_id": CLIENT, "client_secret": SECRET, "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["expires_in"], 1234);
    let cfg: serde_json::Value = http()
        .get(format!("{url}/_sandbox/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["rotation"], "strict");
    assert_eq!(cfg["redirect_uris"].as_array().unwrap().len(), 2);
    signal(&child, "-TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        http()
            .get(format!("{url}/_sandbox/stats"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn binary_reads_env_and_stops_on_sigint() {
    let (mut child, url) = spawn_bin(
        &[],
        &[
            ("KIT_SANDBOX_BIND", "127.0.0.1:0"),
            ("KIT_SANDBOX_CLIENT_ID", "env-client"),
            (
                "KIT_SANDBOX_REDIRECT_URI",
                "http://127.0.0.1:9/a,http://127.0.0.1:9/b",
            ),
            ("KIT_SANDBOX_OMIT_SCOPE", "true"),
            ("KIT_SANDBOX_REUSE_GRACE", "15"),
            ("KIT_SANDBOX_RATE_LIMIT", "7"),
            (
                "KIT_SANDBOX_APP_AUTHORIZATION_URL",
                "http://127.0.0.1:9/kit/oauth",
            ),
        ],
    );
    let cfg: serde_json::Value = http()
        .get(format!("{url}/_sandbox/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["client_id"], "env-client");
    assert_eq!(cfg["confidential"], false);
    assert_eq!(cfg["omit_scope"], true);
    assert_eq!(cfg["reuse_grace"], 15);
    assert_eq!(cfg["rate_limit"], 7);
    assert_eq!(
        cfg["redirect_uris"],
        serde_json::json!(["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"])
    );
    signal(&child, "-INT");
    assert!(child.wait().unwrap().success());
}

#[test]
fn binary_help_documents_every_flag_and_bad_config_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_kit-sandbox"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--bind",
        "--client-id",
        "--client-secret",
        "--redirect-uri",
        "--access-ttl",
        "--refresh-access-ttl",
        "--code-ttl",
        "--auto-approve",
        "--rotation",
        "revoke-on-use",
        "strict",
        "reuse-detection",
        "exactly-once",
        "--reuse-grace",
        "--revoke-on-code-replay",
        "--revoke-on-reauthorization",
        "--revoke-expired",
        "--rate-limit",
        "--lowercase-token-type",
        "--omit-scope",
        "--app-authorization-url",
        "--app-name",
        "--default-account",
        "--max-body-bytes",
        "KIT_SANDBOX_BIND",
        "KIT_SANDBOX_ROTATION",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kit-sandbox"))
        .args(["--bind", "127.0.0.1:0", "--redirect-uri", "not a url"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("redirect_uri"));
    // An unknown mode is refused by name, from the flag and from the variable; a known one
    // from the variable is what the control API reports.
    let out = Command::new(env!("CARGO_BIN_EXE_kit-sandbox"))
        .args(["--bind", "127.0.0.1:0", "--rotation", "lenient"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("unknown rotation mode \"lenient\""), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_kit-sandbox"))
        .args(["--bind", "127.0.0.1:0"])
        .env("KIT_SANDBOX_ROTATION", "sometimes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn rotation_comes_from_the_environment_and_defaults_to_revoke_on_use() {
    for (env, shown) in [
        (None, "revoke-on-use"),
        (Some("reuse-detection"), "reuse-detection"),
    ] {
        let envs: Vec<(&str, &str)> = env
            .map(|v| ("KIT_SANDBOX_ROTATION", v))
            .into_iter()
            .collect();
        let (child, url) = spawn_bin(&["--bind", "127.0.0.1:0"], &envs);
        let cfg: serde_json::Value = http()
            .get(format!("{url}/_sandbox/config"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(cfg["rotation"], shown);
        signal(&child, "-TERM");
        let mut child = child;
        assert!(child.wait().unwrap().success());
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

const PATHS: &[&str] = &[
    "/v4/oauth/authorize",
    "/oauth/authorize",
    "/v4/oauth/token",
    "/oauth/token",
    "/v4/oauth/revoke",
    "/oauth/revoke",
    "/v4/account",
    "/v4/subscribers",
    "/apps/1/install",
    "/apps/1",
    "/_sandbox/faults",
    "/_sandbox/clock",
    "/_sandbox/grants/1/revoke",
    "/",
];

const CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
];

fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "[a-z_]{1,12}=[%A-Za-z0-9+&=]{0,40}(&[a-z_]{1,12}=[%A-Za-z0-9+&=]{0,40}){0,6}"
            .prop_map(String::into_bytes),
        proptest::sample::select(vec![
            "grant_type=refresh_token&refresh_token=x&client_id=test-client&client_secret=test-secret",
            "grant_type=authorization_code&code=x&redirect_uri=y&client_id=test-client&client_secret=test-secret",
            "{\"grant_type\":\"refresh_token\",\"refresh_token\":{\"a\":1}}",
            "{\"grant_type\":\"refresh_token\",\"grant_type\":null}",
            "{\"endpoint\":\"token\",\"kind\":\"status\",\"status\":99999}",
            "{\"advance_secs\":18446744073709551615}",
            "client_id=test-client&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fkit%2Foauth%2Fcallback&response_type=code&decision=allow&code_challenge=%ff",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_never_get_a_5xx(
        path in proptest::sample::select(PATHS),
        method in proptest::sample::select(&["GET", "POST", "DELETE"][..]),
        content_type in proptest::sample::select(CONTENT_TYPES),
        query in interesting_bytes(),
        body in interesting_bytes(),
        auth in proptest::option::of("(Bearer|Basic|bearer) [ -~]{0,40}"),
    ) {
        let rt = runtime();
        let base = base_url(rt);
        let query: String = url::form_urlencoded::byte_serialize(&query).collect::<String>()
            .replace("%3D", "=").replace("%26", "&").replace("%25", "%");
        let status = rt.block_on(async {
            let mut req = http()
                .request(method.parse().unwrap(), format!("{base}{path}?{query}"))
                .body(body);
            if !content_type.is_empty() {
                req = req.header("content-type", content_type);
            }
            if let Some(a) = &auth {
                req = req.header("authorization", a.as_str());
            }
            req.send().await.map(|r| r.status().as_u16())
        });
        let status = status.map_err(|e| TestCaseError::fail(format!("transport error: {e}")))?;
        prop_assert!(status < 500, "{method} {path}?{query} -> {status}");
        // Still alive.
        let alive = rt.block_on(async { http().get(format!("{base}/_sandbox/stats")).send().await.map(|r| r.status().as_u16()) });
        prop_assert_eq!(alive.ok(), Some(200));
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    use std::sync::OnceLock;
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
}

fn base_url(rt: &'static tokio::runtime::Runtime) -> &'static str {
    use std::sync::OnceLock;
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        rt.block_on(async {
            let sb = confidential()
                .auto_approve(false)
                .app_authorization_url("http://127.0.0.1:9/a")
                .spawn()
                .await
                .unwrap();
            let url = sb.base_url().to_owned();
            // Keep it running for the whole test binary.
            std::mem::forget(sb);
            url
        })
    })
}
