//! `deedbolt serve` as a real process: bad settings fail closed before anything starts,
//! a TOML config file is honoured, and SIGTERM shuts down gracefully.

use std::ffi::OsStr;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{jwt_part, run_bin_with_timeout, run_cli, Creds, ServeProcess};

/// Runs `deedbolt --data-dir <tmp> serve [--listen 127.0.0.1:0] <extra>` and asserts it
/// exits on its own with a failure whose stderr contains every string of `expect`.
fn assert_serve_refuses(extra: &[&OsStr], envs: &[(&str, &str)], expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("--data-dir"),
        dir.path().as_os_str(),
        OsStr::new("serve"),
    ];
    // An ephemeral port unless the case is about --listen (clap refuses a repeated flag),
    // so that a wrongly accepted setting cannot collide with anything.
    if !extra.contains(&OsStr::new("--listen")) {
        args.extend([OsStr::new("--listen"), OsStr::new("127.0.0.1:0")]);
    }
    args.extend_from_slice(extra);
    let out = run_bin_with_timeout(&args, envs, Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "serve {extra:?} {envs:?} succeeded; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("error:"),
        "an error line on stderr: {stderr}"
    );
    for e in expect {
        assert!(
            stderr.contains(e),
            "serve {extra:?} {envs:?}: stderr lacks `{e}`:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("deedbolt is ready"),
        "the server started: {stderr}"
    );
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn out_of_range_token_lifetime_is_refused() {
    assert_serve_refuses(
        &[os("--access-token-ttl"), os("2h")],
        &[],
        &["between 300 and 3600"],
    );
    assert_serve_refuses(
        &[os("--access-token-ttl"), os("1m")],
        &[],
        &["between 300 and 3600"],
    );
    assert_serve_refuses(
        &[os("--access-token-ttl"), os("15 minutes")],
        &[],
        &["access-token lifetime"],
    );
}

#[test]
fn symmetric_or_unknown_signing_algorithms_are_refused() {
    for alg in ["HS256", "none", "es256"] {
        assert_serve_refuses(
            &[os("--signing-alg"), os(alg)],
            &[],
            &["unsupported signing algorithm", alg],
        );
    }
    // The same through the environment.
    assert_serve_refuses(
        &[],
        &[("DEEDBOLT_SIGNING_ALG", "HS256")],
        &["unsupported signing algorithm"],
    );
}

#[test]
fn a_nonsense_listen_address_is_refused() {
    assert_serve_refuses(
        &[os("--listen"), os("nonsense")],
        &[],
        &["invalid listen address `nonsense`"],
    );
    // A wildcard address needs an explicit public issuer.
    assert_serve_refuses(
        &[os("--listen"), os("0.0.0.0:0")],
        &[],
        &["needs an explicit issuer"],
    );
}

#[test]
fn a_non_https_non_loopback_issuer_is_refused() {
    assert_serve_refuses(
        &[os("--issuer"), os("http://example.com")],
        &[],
        &["http://example.com", "https"],
    );
    assert_serve_refuses(
        &[os("--issuer"), os("https://example.com/tenant")],
        &[],
        &["must not have a path"],
    );
    assert_serve_refuses(
        &[os("--issuer"), os("https://example.com/")],
        &[],
        &["must not end with a slash"],
    );
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deedbolt.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\nacess_token_ttl = \"5m\"\n",
    )
    .unwrap();
    assert_serve_refuses(
        &[os("--config"), path.as_os_str()],
        &[],
        &["invalid config file", "acess_token_ttl"],
    );
    // A missing file is an error too, not a silent default.
    let missing = dir.path().join("missing.toml");
    assert_serve_refuses(
        &[os("--config"), missing.as_os_str()],
        &[],
        &["cannot read config file"],
    );
    // Bad values inside a well-formed file are checked like flags.
    let bad_ttl = dir.path().join("ttl.toml");
    std::fs::write(&bad_ttl, "access_token_ttl = \"2h\"\n").unwrap();
    assert_serve_refuses(
        &[os("--config"), bad_ttl.as_os_str()],
        &[],
        &["between 300 and 3600"],
    );
}

#[test]
fn other_out_of_range_settings_are_refused() {
    assert_serve_refuses(
        &[os("--key-refresh-interval"), os("10ms")],
        &[],
        &["key refresh interval must be between 50ms and 1h"],
    );
    assert_serve_refuses(
        &[os("--audience"), os(" ")],
        &[],
        &["audience must not be empty"],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.toml");
    std::fs::write(&path, "log_format = \"xml\"\n").unwrap();
    assert_serve_refuses(
        &[os("--config"), path.as_os_str()],
        &[],
        &["log_format", "xml", "`text` or `json`"],
    );
}

#[test]
fn a_malformed_master_key_in_the_environment_is_refused() {
    assert_serve_refuses(
        &[],
        &[("DEEDBOLT_MASTER_KEY", "short")],
        &["DEEDBOLT_MASTER_KEY must be 32 random bytes"],
    );
}

#[tokio::test]
async fn a_config_file_is_honoured_and_sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("deedbolt.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\naccess_token_ttl = \"5m\"\nsigning_alg = \"EdDSA\"\n",
    )
    .unwrap();

    let created = run_cli(
        &data_dir,
        None,
        &[
            "client",
            "create",
            "--name",
            "cfg",
            "--grant",
            "client_credentials",
            "--scope",
            "property:read",
            "--json",
        ],
    );
    assert!(created.status.success());
    let v: Value = serde_json::from_slice(&created.stdout).unwrap();
    let creds = Creds {
        id: v["client_id"].as_str().unwrap().to_owned(),
        secret: v["client_secret"].as_str().unwrap().to_owned(),
    };

    let mut server = ServeProcess::start(
        &[
            os("serve"),
            os("--config"),
            config.as_os_str(),
            os("--data-dir"),
            data_dir.as_os_str(),
        ],
        &[],
    );
    let base = server.wait_ready();
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{base}/token"))
        .basic_auth(&creds.id, Some(&creds.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 300, "access_token_ttl from the file");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        jwt_part(token, 0)["alg"],
        "EdDSA",
        "signing_alg from the file"
    );
    let claims = jwt_part(token, 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    assert_eq!(claims["iss"], base.as_str());
    let res = http
        .get(format!("{base}/api/properties"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("deedbolt exits within 10 s of SIGTERM");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let logs = server.logs();
    let messages: Vec<String> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("shutdown signal received")),
        "{logs:?}"
    );
    assert!(messages.iter().any(|m| m == "deedbolt stopped"), "{logs:?}");
    // Every line is JSON, as --log-format json asks.
    for line in &logs {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
    }
}
