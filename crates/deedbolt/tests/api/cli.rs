//! The `client` commands of the real CLI, against a running server on the same data
//! directory: what they print, what they never print, and that changes apply at once.

use serde_json::Value;

use crate::helpers::{eventually, spawn_app, Creds, TestApp};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn list(app: &TestApp) -> Vec<Value> {
    app.cli_json(&["client", "list", "--json"])
        .as_array()
        .expect("client list prints an array")
        .clone()
}

async fn token_status(app: &TestApp, creds: &Creds) -> (u16, Value) {
    let res = app
        .post_token(Some(creds), "grant_type=client_credentials")
        .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn create_without_json_shows_the_secret_once_with_a_warning() {
    let app = spawn_app().await;
    let out = app.cli(&[
        "client",
        "create",
        "--name",
        "Rent Collector",
        "--grant",
        "client_credentials",
        "--scope",
        "property:read financial:read",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let field = |name: &str| -> String {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}:")))
            .collect();
        assert_eq!(lines.len(), 1, "one `{name}:` line in:\n{text}");
        lines[0].split_once(':').unwrap().1.trim().to_owned()
    };
    let id = field("client_id");
    let secret = field("client_secret");
    assert!(id.starts_with("dbc_"), "{id}");
    assert!(secret.starts_with("dbs_"), "{secret}");
    assert_eq!(text.matches(&secret).count(), 1, "secret printed once");
    assert_eq!(field("name"), "Rent Collector");
    assert_eq!(field("scope"), "property:read financial:read");
    let warning = stderr(&out);
    assert!(
        warning.contains("shown only this once"),
        "warning on stderr: {warning}"
    );
    assert!(!warning.contains(&secret), "the secret is not on stderr");

    // The printed credentials work.
    let creds = Creds { id, secret };
    let (status, body) = token_status(&app, &creds).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "property:read financial:read");
}

#[tokio::test]
async fn list_and_show_never_reveal_secrets() {
    let app = spawn_app().await;
    let a = app.create_client("property:read");
    let b = app.create_client("tenant:read tenant:write");

    let out = app.cli(&["client", "list", "--json"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let clients: Vec<Value> = serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(clients.len(), 2);
    let find = |id: &str| {
        clients
            .iter()
            .find(|c| c["client_id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {text}"))
            .clone()
    };
    assert_eq!(find(&a.id)["scope"], "property:read");
    let listed_b = find(&b.id);
    assert_eq!(listed_b["scope"], "tenant:read tenant:write");
    assert_eq!(listed_b["name"], "test-client");
    assert_eq!(
        listed_b["grant_types"],
        serde_json::json!(["client_credentials"])
    );

    let out_text = app.cli(&["client", "list"]);
    assert!(out_text.status.success());
    let table = stdout(&out_text);
    assert!(table.contains(&a.id) && table.contains(&b.id), "{table}");

    let out_show = app.cli(&["client", "show", &a.id, "--json"]);
    assert!(out_show.status.success());
    let show_text = stdout(&out_show);
    let shown: Value = serde_json::from_str(&show_text).unwrap();
    assert_eq!(shown["client_id"], a.id.as_str());
    assert_eq!(shown["name"], "test-client");
    assert_eq!(shown["scope"], "property:read");
    assert_eq!(
        shown["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert!(shown["created_at"].is_i64());
    let show_plain = stdout(&app.cli(&["client", "show", &a.id]));
    assert!(show_plain.contains(&a.id), "{show_plain}");

    for (what, out) in [
        ("list --json", &text),
        ("list", &table),
        ("show --json", &show_text),
        ("show", &show_plain),
    ] {
        for secret in [&a.secret, &b.secret] {
            assert!(!out.contains(secret.as_str()), "{what} prints a secret");
        }
        // `token_endpoint_auth_method: client_secret_basic` names a method, not a secret.
        let lower = out.to_lowercase().replace("client_secret_basic", "");
        assert!(
            !lower.contains("secret") && !lower.contains("hash"),
            "{what} mentions a secret or hash:\n{out}"
        );
    }
}

#[tokio::test]
async fn show_or_change_an_unknown_client_fails_clearly() {
    let app = spawn_app().await;
    for args in [
        vec!["client", "show", "dbc_nonexistent"],
        vec!["client", "show", "dbc_nonexistent", "--json"],
        vec!["client", "rotate-secret", "dbc_nonexistent"],
        vec!["client", "delete", "dbc_nonexistent"],
    ] {
        let out = app.cli(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(
            err.contains("no client with id dbc_nonexistent"),
            "{args:?}: {err}"
        );
        assert!(
            stdout(&out).is_empty(),
            "{args:?} printed: {}",
            stdout(&out)
        );
    }
}

/// Waits until `creds` are refused with 401 invalid_client by the running server.
async fn eventually_refused(app: &TestApp, creds: &Creds, what: &str) {
    eventually(what, || async move {
        let (status, body) = token_status(app, creds).await;
        status == 401 && body["error"] == "invalid_client"
    })
    .await;
}

#[tokio::test]
async fn rotate_secret_takes_effect_on_the_running_server() {
    let app = spawn_app().await;
    let old = app.create_client("property:read");
    assert_eq!(token_status(&app, &old).await.0, 200);

    let rotated = app.cli_json(&["client", "rotate-secret", &old.id, "--json"]);
    assert_eq!(rotated["client_id"], old.id.as_str());
    let new = Creds {
        id: old.id.clone(),
        secret: rotated["client_secret"].as_str().unwrap().to_owned(),
    };
    assert_ne!(new.secret, old.secret);
    assert!(new.secret.starts_with("dbs_"));

    // The server notices within its refresh interval (100 ms in tests).
    eventually_refused(&app, &old, "the old secret is refused").await;
    let (status, body) = token_status(&app, &new).await;
    assert_eq!(status, 200, "new secret refused: {body}");
    // client_secret_post too.
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        old.id, old.secret
    );
    assert_eq!(app.post_token(None, &form).await.status(), 401);

    // Without --json: the new secret and a warning that the old one is dead.
    let out = app.cli(&["client", "rotate-secret", &old.id]);
    assert!(out.status.success());
    let text = stdout(&out);
    let third = Creds {
        id: old.id.clone(),
        secret: text
            .lines()
            .find_map(|l| l.strip_prefix("client_secret:"))
            .expect("client_secret line")
            .trim()
            .to_owned(),
    };
    assert!(stderr(&out).contains("stop accepting the old secret"));
    assert!(!stderr(&out).contains(&third.secret));
    eventually_refused(&app, &new, "the second secret is refused").await;
    assert_eq!(token_status(&app, &third).await.0, 200);
}

#[tokio::test]
async fn delete_stops_token_issuance() {
    let app = spawn_app().await;
    let keep = app.create_client("property:read");
    let gone = app.create_client("property:read");
    assert_eq!(token_status(&app, &gone).await.0, 200);

    let out = app.cli(&["client", "delete", &gone.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&gone.id));

    eventually_refused(&app, &gone, "the deleted client is refused").await;
    assert_eq!(token_status(&app, &keep).await.0, 200, "others unaffected");
    let ids: Vec<String> = list(&app)
        .iter()
        .map(|c| c["client_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [keep.id.as_str()]);
    assert!(!app.cli(&["client", "show", &gone.id]).status.success());
    // Deleting twice fails.
    assert!(!app.cli(&["client", "delete", &gone.id]).status.success());
}

#[tokio::test]
async fn rotate_secret_and_delete_say_when_running_servers_notice() {
    // The server caches clients and notices changes made by other processes at its next
    // sync; the CLI must say so rather than promise an immediate effect.
    let app = spawn_app().await;
    let rotated = app.create_client("property:read");
    let deleted = app.create_client("property:read");
    assert_eq!(token_status(&app, &rotated).await.0, 200);
    assert_eq!(token_status(&app, &deleted).await.0, 200);

    let out = app.cli(&["client", "rotate-secret", &rotated.id]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("within their sync interval"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("no longer works"));
    let out = app.cli(&["client", "delete", &deleted.id]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("at their next sync"),
        "{}",
        stderr(&out)
    );

    eventually(
        "the rotated-away secret and the deleted client are refused",
        || async {
            token_status(&app, &rotated).await.0 == 401
                && token_status(&app, &deleted).await.0 == 401
        },
    )
    .await;
}

#[tokio::test]
async fn invalid_registrations_are_refused_and_create_nothing() {
    let app = spawn_app().await;
    let existing = app.create_client("property:read");
    let before = list(&app);
    assert_eq!(before.len(), 1);

    let base = |name: &'static str, grant: &'static str, scope: &'static str| {
        vec![
            "client", "create", "--name", name, "--grant", grant, "--scope", scope, "--json",
        ]
    };
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            base("ok", "client_credentials", "property:read bogus"),
            &["unknown scope", "bogus"],
        ),
        (base("ok", "client_credentials", "admin"), &["admin"]),
        (
            base("ok", "client_credentials", "property:read  financial:read"),
            &["single spaces"],
        ),
        (base("ok", "client_credentials", ""), &["empty scope"]),
        (base("", "client_credentials", "property:read"), &["name"]),
        (
            base("   ", "client_credentials", "property:read"),
            &["name"],
        ),
        (base("ok", "password", "property:read"), &["password"]),
        (
            base("ok", "authorization_code", "property:read"),
            &["redirect-uri"],
        ),
        (
            base("ok", "refresh_token", "property:read"),
            &["refresh_token", "authorization_code"],
        ),
        (
            vec![
                "client",
                "create",
                "--name",
                "ok",
                "--scope",
                "property:read",
            ],
            &["--grant"],
        ),
    ];
    for (args, expect) in cases {
        let out = app.cli(&args);
        assert!(
            !out.status.success(),
            "{args:?} succeeded: {}",
            stdout(&out)
        );
        let err = stderr(&out);
        for e in expect {
            assert!(err.contains(e), "{args:?}: stderr lacks `{e}`:\n{err}");
        }
        assert!(!stdout(&out).contains("dbs_"), "{args:?} printed a secret");
    }
    assert_eq!(list(&app), before, "nothing was created");
    assert_eq!(token_status(&app, &existing).await.0, 200);
}

#[tokio::test]
async fn client_list_is_oldest_first() {
    let app = spawn_app().await;
    let created: Vec<String> = (0..5)
        .map(|_| app.create_client("property:read").id)
        .collect();
    let listed: Vec<String> = list(&app)
        .iter()
        .map(|c| c["client_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, created);
}

/// The CLI run in `cwd` with no `DEEDBOLT_*` variable but `DEEDBOLT_LOG=warn`.
fn cli_in(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(crate::helpers::bin());
    cmd.current_dir(cwd).args(args).env("DEEDBOLT_LOG", "warn");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("DEEDBOLT_") && k != "DEEDBOLT_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run deedbolt")
}

#[test]
fn a_management_command_never_creates_an_implicit_data_dir() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        &["client", "list"][..],
        &["user", "list"],
        &["keys", "list"],
        &["audit", "search"],
    ] {
        let out = cli_in(cwd.path(), args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        let shown = cwd.path().join("deedbolt-data");
        for hint in [
            shown.to_string_lossy().as_ref(),
            "--data-dir",
            "DEEDBOLT_DATA_DIR",
            "data_dir",
        ] {
            assert!(err.contains(hint), "{args:?}: `{hint}` missing from: {err}");
        }
        assert!(!shown.exists(), "{args:?} created {}", shown.display());
    }
    // Once it exists (e.g. made by `serve` or `seed-demo`) it is used, and said so.
    std::fs::create_dir(cwd.path().join("deedbolt-data")).unwrap();
    let out = cli_in(cwd.path(), &["client", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[]");
    assert!(
        stderr(&out).contains("using the data directory"),
        "{}",
        stderr(&out)
    );
    // A named directory is created as before.
    let named = cwd.path().join("named");
    let out = cli_in(
        cwd.path(),
        &[
            "--data-dir",
            named.to_str().unwrap(),
            "user",
            "list",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(named.exists());
    assert!(
        stderr(&out).contains("creating a new, empty data directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn invalid_enum_values_list_the_valid_ones_and_help_names_the_master_key() {
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path().to_str().unwrap();
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &[
                "user",
                "create",
                "--email",
                "a@example.com",
                "--role",
                "landlord",
            ],
            &["landlord", "tenant", "manager", "admin"],
        ),
        (
            &[
                "client",
                "create",
                "--name",
                "x",
                "--scope",
                "property:read",
                "--grant",
                "password",
            ],
            &["password", "client_credentials", "authorization_code"],
        ),
        (
            &["audit", "search", "--type", "logins"],
            &["logins", "token_issued", "alert"],
        ),
        (
            &["keys", "rotate", "--alg", "HS256"],
            &["HS256", "ES256", "RS256", "EdDSA"],
        ),
    ];
    for (args, expect) in cases {
        let mut all = vec!["--data-dir", dir];
        all.extend_from_slice(args);
        let out = cli_in(cwd.path(), &all);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        for e in expect {
            assert!(err.contains(e), "{args:?}: `{e}` missing from: {err}");
        }
    }
    let help = stdout(&cli_in(cwd.path(), &["--help"]));
    assert!(help.contains("DEEDBOLT_MASTER_KEY"), "{help}");
    assert!(help.contains("generate-master-key"), "{help}");
    let serve_help = stdout(&cli_in(cwd.path(), &["serve", "--help"]));
    assert!(serve_help.contains("--rate-limit-token"), "{serve_help}");
    assert!(serve_help.contains("DEEDBOLT_MASTER_KEY"), "{serve_help}");
}

#[tokio::test]
async fn lists_are_aligned_tables_with_headers_and_utc_times() {
    let app = spawn_app().await;
    app.create_client("property:read");
    app.create_client("property:read financial:read");
    let rita = app.create_user("rita.tenant@example.com", "tenant", "correct horse battery");
    let tables = [
        (
            vec!["client", "list"],
            vec!["CLIENT_ID", "NAME", "TYPE", "GRANTS", "CREATED", "SCOPE"],
            2,
        ),
        (
            vec!["user", "list"],
            vec!["EMAIL", "ROLE", "NAME", "CREATED", "USER_ID"],
            1,
        ),
        (
            vec!["keys", "list"],
            vec!["KID", "ALG", "STATUS", "CREATED", "RETIRED", "SEALED"],
            1,
        ),
        (
            vec!["audit", "search"],
            vec!["ID", "TIME", "TYPE", "RESULT", "CLIENT"],
            3,
        ),
    ];
    for (args, headers, at_least) in tables {
        let out = app.cli(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > at_least, "{args:?}: {text}");
        // Every header names a column, and every row's cell starts where its header does.
        let mut starts = Vec::new();
        for h in &headers {
            let at = lines[0]
                .find(&format!("{h} "))
                .or_else(|| lines[0].ends_with(h).then(|| lines[0].len() - h.len()))
                .unwrap_or_else(|| panic!("{args:?}: no header {h}: {text}"));
            starts.push(at);
        }
        for row in &lines[1..] {
            for &at in &starts[1..] {
                let before = row.as_bytes().get(at - 1).copied();
                let here = row.as_bytes().get(at).copied();
                assert!(
                    before == Some(b' ') && here.is_some_and(|c| c != b' '),
                    "{args:?}: a cell does not start at column {at}:\n{text}"
                );
            }
            assert!(row.contains(" UTC"), "{args:?}: no readable time in {row}");
        }
    }
    // `--user` is an email everywhere, the audit log's filter too.
    let out = app.cli(&[
        "audit",
        "search",
        "--json",
        "--user",
        "rita.tenant@example.com",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!records.is_empty());
    assert!(
        records.iter().all(|r| r["user_id"] == rita.as_str()),
        "{records:?}"
    );
    let out = app.cli(&["audit", "search", "--user", "nobody@example.com"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--user-id"), "{}", stderr(&out));
}
