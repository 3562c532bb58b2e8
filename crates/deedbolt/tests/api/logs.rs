//! Secrets never reach the logs (even at debug level) or the database in plain text.

use std::ffi::OsStr;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::helpers::{contains_bytes, data_dir_files, run_bin_with_timeout, Creds, ServeProcess};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[tokio::test]
async fn debug_logs_and_the_database_never_contain_secrets_or_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");

    // Register through the real CLI, with debug logs on: stdout has the secret, stderr not.
    let created = run_bin_with_timeout(
        &[
            os("--data-dir"),
            data_dir.as_os_str(),
            os("client"),
            os("create"),
            os("--name"),
            os("logger"),
            os("--grant"),
            os("client_credentials"),
            os("--scope"),
            os("property:read"),
            os("--json"),
        ],
        &[("DEEDBOLT_LOG", "debug")],
        Duration::from_secs(15),
    );
    assert!(created.status.success());
    let v: Value = serde_json::from_slice(&created.stdout).unwrap();
    let creds = Creds {
        id: v["client_id"].as_str().unwrap().to_owned(),
        secret: v["client_secret"].as_str().unwrap().to_owned(),
    };
    let cli_stderr = String::from_utf8_lossy(&created.stderr).into_owned();
    assert!(
        !cli_stderr.contains(&creds.secret),
        "CLI logs the secret: {cli_stderr}"
    );

    let mut server = ServeProcess::start(
        &[
            os("serve"),
            os("--data-dir"),
            data_dir.as_os_str(),
            os("--listen"),
            os("127.0.0.1:0"),
        ],
        &[("DEEDBOLT_LOG", "debug")],
    );
    let base = server.wait_ready();
    let http = reqwest::Client::new();
    let token_req = |form: String| {
        http.post(format!("{base}/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
    };

    // 1. client_secret_basic.
    let res = token_req("grant_type=client_credentials".into())
        .basic_auth(&creds.id, Some(&creds.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // 2. client_secret_post.
    let res = token_req(format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        creds.id, creds.secret
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let token_post = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // 3. A wrong secret, both ways.
    let wrong = "dbs_ThisIsTheWrongSecretDoNotLogItAnywhere123";
    let res = token_req("grant_type=client_credentials".into())
        .basic_auth(&creds.id, Some(wrong))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = token_req(format!(
        "grant_type=client_credentials&client_id={}&client_secret={wrong}",
        creds.id
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 401);
    // 4. The API with the token.
    let res = http
        .get(format!("{base}/api/properties"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // 5. The API with a tampered token (last signature character changed).
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let res = http
        .get(format!("{base}/api/properties"))
        .bearer_auth(&tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // While the server runs (the WAL holds recent writes).
    let secret_body = creds.secret.trim_start_matches("dbs_").to_owned();
    for (name, bytes) in data_dir_files(&data_dir) {
        assert!(
            !contains_bytes(&bytes, creds.secret.as_bytes())
                && !contains_bytes(&bytes, secret_body.as_bytes()),
            "{name} contains the client secret in plain text"
        );
    }

    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
    let logs = server.logs().join("\n");

    // The logs were really captured at debug level and cover the requests above.
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "no debug lines:\n{logs}"
    );
    assert!(logs.contains("access token issued"), "{logs}");
    assert!(
        logs.contains(&creds.id),
        "token requests are logged with the client id: {logs}"
    );

    let signature = token.rsplit('.').next().unwrap().to_owned();
    let tampered_sig = tampered.rsplit('.').next().unwrap().to_owned();
    let basic_header =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", creds.id, creds.secret));
    let wrong_basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{wrong}", creds.id));
    let forbidden = [
        ("the client secret", creds.secret.as_str()),
        ("the client secret's random part", secret_body.as_str()),
        ("the wrong secret", wrong),
        ("the Basic credentials", basic_header.as_str()),
        ("the wrong Basic credentials", wrong_basic.as_str()),
        ("the access token", token.as_str()),
        ("the access token's signature", signature.as_str()),
        ("the client_secret_post token", token_post.as_str()),
        ("the tampered token", tampered.as_str()),
        ("the tampered token's signature", tampered_sig.as_str()),
    ];
    for (what, value) in forbidden {
        assert!(!logs.contains(value), "the logs contain {what}");
    }

    // And the database after shutdown.
    let files = data_dir_files(&data_dir);
    assert!(files.iter().any(|(n, _)| n == "deedbolt.db"));
    for (name, bytes) in files {
        assert!(
            !contains_bytes(&bytes, creds.secret.as_bytes())
                && !contains_bytes(&bytes, secret_body.as_bytes()),
            "{name} contains the client secret in plain text"
        );
        assert!(
            !contains_bytes(&bytes, signature.as_bytes()),
            "{name} contains the access token"
        );
    }
}

#[tokio::test]
async fn every_request_gets_an_access_log_line_without_its_query_string() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServeProcess::start(
        &[
            os("serve"),
            os("--data-dir"),
            dir.path().as_os_str(),
            os("--listen"),
            os("127.0.0.1:0"),
        ],
        // The default filter: access lines are at info.
        &[],
    );
    let base = server.wait_ready();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let secrets = [
        "CODE-NEVER-LOGGED",
        "STATE-NEVER-LOGGED",
        "CHALLENGE-NEVER-LOGGED",
    ];
    let res = http
        .get(format!(
            "{base}/api/properties/42?code={}&state={}",
            secrets[0], secrets[1]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = http
        .get(format!(
            "{base}/authorize?response_type=code&client_id=nobody&code_challenge={}",
            secrets[2]
        ))
        .send()
        .await
        .unwrap();
    let authorize_status = res.status().as_u16();
    let res = http
        .get(format!("{base}/no/such/page?code={}", secrets[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    server.terminate();
    server.wait_exit(Duration::from_secs(10)).expect("exits");
    let logs = server.logs();
    let access: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "deedbolt::access")
        .collect();
    let line = |route: &str| {
        access
            .iter()
            .find(|v| v["route"] == route)
            .unwrap_or_else(|| panic!("no access line for {route}: {logs:#?}"))
    };
    let api = line("/api/properties/{id}");
    assert_eq!(api["level"], "INFO");
    assert_eq!(api["method"], "GET");
    assert_eq!(api["status"], 401);
    assert!(
        api["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{api}"
    );
    assert_eq!(line("/authorize")["status"], authorize_status);
    // An unmatched path is not echoed either (it is whatever the client sent).
    assert_eq!(line("unmatched")["status"], 404);
    assert_eq!(access.len(), 3, "one line per request: {access:#?}");
    let all = logs.join("\n");
    for s in secrets
        .iter()
        .chain(&["/no/such/page", "/api/properties/42"])
    {
        assert!(!all.contains(s), "`{s}` logged:\n{all}");
    }
}

#[test]
fn text_logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // Without a master key, `client create` warns about development mode: a log line.
    let out = run_bin_with_timeout(
        &[
            os("--data-dir"),
            dir.path().as_os_str(),
            os("client"),
            os("create"),
            os("--name"),
            os("plain"),
            os("--grant"),
            os("client_credentials"),
            os("--scope"),
            os("property:read"),
        ],
        &[("DEEDBOLT_LOG", "info")],
        Duration::from_secs(15),
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN"), "a log line: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "ANSI escape codes: {stderr:?}");
}
