//! The demo: `deedbolt seed-demo` and `deedbolt serve --demo` (the portfolio, its users
//! and clients, the demo app's stored settings), the landing page, `/app` without a
//! backend-for-frontend, start-up validation of the backend-for-frontend's settings, the
//! demo app's manager and tenant views, and the pages in headless Chromium (screenshots).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use deedbolt::config::ServeOverrides;
use deedbolt_core::seal::MasterKey;
use reqwest::Method;
use serde_json::{json, Value};

use crate::bff::{bff_csrf, bff_send, bff_session, bff_sign_in};
use crate::bff_browser::{client, js, wait_displayed, wait_text};
use crate::browser::{browser_available, within_budget, Browser};
use crate::helpers::*;

const TOM: &str = "tom.tenant@example.com";
const MAYA: &str = "maya.manager@example.com";
const ADA: &str = "ada.admin@example.com";

fn seed(dir: &std::path::Path) -> std::process::Output {
    run_cli(dir, None, &["seed-demo", "--json"])
}

/// Email -> password from `seed-demo --json`.
fn passwords(demo: &Value) -> HashMap<String, String> {
    demo["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| {
            (
                u["email"].as_str().unwrap().to_owned(),
                u["password"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Email -> password from the user table `serve --demo` and `seed-demo` print.
fn printed_passwords(stdout: &[String]) -> HashMap<String, String> {
    stdout
        .iter()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            match cols.as_slice() {
                [role, email, password]
                    if ["admin", "manager", "tenant"].contains(role) && email.contains('@') =>
                {
                    Some(((*email).to_owned(), (*password).to_owned()))
                }
                _ => None,
            }
        })
        .collect()
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn bff_json(app: &TestApp, path: &str, jar: &Jar) -> Value {
    let res = app.browser_get(path, jar).await;
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.expect("JSON")
}

/// The seeded data directory and its `seed-demo --json` output.
async fn seeded_dir() -> (Arc<tempfile::TempDir>, Value) {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let out = seed(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let demo: Value = serde_json::from_slice(&out.stdout).expect("seed-demo JSON");
    (dir, demo)
}

#[tokio::test]
async fn seed_demo_fills_a_portfolio_that_its_users_and_clients_can_use() {
    let (dir, demo) = seeded_dir().await;
    let pw = passwords(&demo);
    assert_eq!(pw.len(), 5);
    assert!(
        demo["bff"].get("client_secret").is_none(),
        "the demo app's secret stays in the data directory: {demo}"
    );

    // `serve --demo` on the seeded directory: no second seeding, the stored settings.
    let app = spawn_app_with(Options {
        data_dir: Some(dir.clone()),
        demo: true,
        ..Default::default()
    })
    .await;

    // The machine client sees the whole portfolio.
    let machine = Creds {
        id: demo["machine_client"]["client_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        secret: demo["machine_client"]["client_secret"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    let token = app.access_token(&machine, None).await;
    let properties: Value = app
        .get("/api/properties", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(items(&properties).len(), 3);
    let tenants: Value = app
        .get("/api/tenants", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(items(&tenants).len(), 4);

    // Tom signs in to the demo app with the printed password and sees his own tenancy:
    // three months charged, two paid; his session has no staff scope.
    let jar = bff_sign_in(&app, TOM, &pw[TOM]).await;
    let session = bff_session(&app, &jar).await;
    let scope = session["scope"].as_str().unwrap_or_default().to_owned();
    assert!(scope.contains("tenant:read"), "{session}");
    assert!(
        !scope.contains("property:read") && !scope.contains("maintenance:manage"),
        "a tenant's role trims the staff scopes: {session}"
    );
    let mine = items(&bff_json(&app, "/bff/api/tenants", &jar).await);
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["name"], "Tom Tenant");
    let id = mine[0]["id"].as_i64().unwrap();
    let balance = bff_json(&app, &format!("/bff/api/tenants/{id}/balance"), &jar).await;
    assert_eq!(balance["balance"], "1250.00");
    assert_eq!(balance["currency"], "GBP");
    let requests = bff_json(&app, "/bff/api/maintenance", &jar).await;
    assert_eq!(
        items(&requests).len(),
        2,
        "Tom's two requests, not the others'"
    );

    // A second run refuses and changes nothing.
    let again = seed(dir.path());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has the demo user"));
    let users = run_cli(dir.path(), None, &["user", "list", "--json"]);
    let users: Value = serde_json::from_slice(&users.stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 5);
    let clients = run_cli(dir.path(), None, &["client", "list", "--json"]);
    let clients: Value = serde_json::from_slice(&clients.stdout).unwrap();
    assert_eq!(
        clients.as_array().unwrap().len(),
        2,
        "the machine client and the demo app's: {clients}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_manager_sees_their_portfolio_in_the_demo_app_and_names_the_tenant_of_a_request() {
    let (dir, demo) = seeded_dir().await;
    let pw = passwords(&demo);
    let app = spawn_app_with(Options {
        data_dir: Some(dir.clone()),
        demo: true,
        ..Default::default()
    })
    .await;
    let jar = bff_sign_in(&app, MAYA, &pw[MAYA]).await;
    let session = bff_session(&app, &jar).await;
    let scope = session["scope"].as_str().unwrap_or_default().to_owned();
    for s in ["property:read", "tenant:read", "maintenance:manage"] {
        assert!(scope.contains(s), "a manager's session has {s}: {session}");
    }

    // Maya manages Harbour View and Mill Lofts, and sees their three tenants, not Tia
    // (Station Works is Mo's).
    let properties = items(&bff_json(&app, "/bff/api/properties", &jar).await);
    let mut names: Vec<&str> = properties
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Harbour View", "Mill Lofts"]);
    let tenants = items(&bff_json(&app, "/bff/api/tenants", &jar).await);
    let mut names: Vec<&str> = tenants
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Lee Lowe", "Sam Sharma", "Tom Tenant"]);
    // Her properties' requests: Tom's two and Lee's one.
    let requests = items(&bff_json(&app, "/bff/api/maintenance", &jar).await);
    assert_eq!(requests.len(), 3, "{requests:?}");

    // Staff must say which tenant a request is for.
    let csrf = bff_csrf(&app, &jar).await;
    let draft = json!({"title": "Gate sticks", "description": "The side gate sticks.", "priority": "normal"});
    let res = bff_send(
        &app,
        Method::POST,
        "/bff/api/maintenance",
        &jar,
        Some(&csrf),
        None,
        Some(&draft),
    )
    .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert!(body.to_string().contains("tenant_id"), "{body}");
    let sam = tenants
        .iter()
        .find(|t| t["name"] == "Sam Sharma")
        .expect("Sam");
    let mut draft = draft;
    draft["tenant_id"] = sam["id"].clone();
    let res = bff_send(
        &app,
        Method::POST,
        "/bff/api/maintenance",
        &jar,
        Some(&csrf),
        None,
        Some(&draft),
    )
    .await;
    assert_eq!(res.status(), 201);
    let made: Value = res.json().await.unwrap();
    assert_eq!(made["tenant_id"], sam["id"]);
    app.stop().await;
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `deedbolt <args>` (plus `--log-format json`) and waits until it is ready.
fn start(args: &[&str], envs: &[(&str, &str)]) -> (ServeProcess, String) {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let mut p = ServeProcess::start(&args, envs);
    let base = p.wait_ready();
    (p, base)
}

/// Stops the server; returns everything it printed on stdout.
fn stop(mut p: ServeProcess) -> Vec<String> {
    p.terminate();
    assert!(
        p.wait_exit(Duration::from_secs(15)).is_some(),
        "the server stops on SIGTERM"
    );
    p.stdout_lines()
}

/// Waits (up to 10 s) for a stdout line containing `needle`; returns stdout so far.
fn wait_stdout(p: &ServeProcess, needle: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = p.stdout_lines();
        if out.iter().any(|l| l.contains(needle)) {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no stdout line with {needle:?}: {out:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn serve_demo_on_a_fresh_data_dir_seeds_prints_passwords_once_and_reuses_its_settings() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let key = MasterKey::generate_encoded().expect("master key");
    let key = key.as_str().to_owned();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    // One address for both runs: the same issuer, so a session of the first run is one
    // the second accepts.
    let listen = format!("127.0.0.1:{}", free_port());
    let args = [
        "--data-dir",
        &data_dir,
        "serve",
        "--demo",
        "--listen",
        &listen,
    ];
    let envs = [("DEEDBOLT_MASTER_KEY", key.as_str())];

    let (p, base) = start(&args, &envs);
    // The last line printed says where the app is.
    let out = wait_stdout(&p, &format!("{base}/app"));
    let pw = printed_passwords(&out);
    assert_eq!(pw.len(), 5, "five users with passwords printed: {out:#?}");
    let app = TestApp::external(base.clone(), dir.clone(), Some(key.clone()));
    let landing = app.get("/", None).await;
    assert_eq!(landing.status(), 200);
    let html = landing.text().await.unwrap();
    assert!(!html.contains("not enabled"), "{html}");
    let jar = bff_sign_in(&app, TOM, &pw[TOM]).await;
    let mine = items(&bff_json(&app, "/bff/api/tenants", &jar).await);
    assert_eq!(mine[0]["name"], "Tom Tenant");
    stop(p);

    // The demo app's settings are stored sealed under the master key: no file of the data
    // directory holds them in clear.
    for (name, bytes) in data_dir_files(dir.path()) {
        for needle in [&b"\"cookie_keys\":"[..], b"\"client_secret\":", b"k1:"] {
            assert!(
                !contains_bytes(&bytes, needle),
                "{name} holds {} in clear",
                String::from_utf8_lossy(needle)
            );
        }
    }

    // Again: no second seeding, no password printed, the same users and the same demo
    // app client; a session sealed by the first run still opens (same cookie key).
    let (p, base) = start(&args, &envs);
    let app = TestApp::external(base, dir.clone(), Some(key.clone()));
    let session = bff_session(&app, &jar).await;
    assert_eq!(session["authenticated"], true, "{session}");
    let jar = bff_sign_in(&app, MAYA, &pw[MAYA]).await;
    let properties = items(&bff_json(&app, "/bff/api/properties", &jar).await);
    assert_eq!(properties.len(), 2);
    let out = stop(p);
    assert!(
        printed_passwords(&out).is_empty() && !out.iter().any(|l| l.contains("Users")),
        "passwords are printed only once: {out:#?}"
    );
    let clients = run_cli(dir.path(), Some(&key), &["client", "list", "--json"]);
    let clients: Value = serde_json::from_slice(&clients.stdout).unwrap();
    assert_eq!(clients.as_array().unwrap().len(), 2, "{clients}");

    // Without the master key the stored settings cannot be opened: refused, saying why.
    let refused = run_bin_with_timeout(
        &[
            OsStr::new("--data-dir"),
            dir.path().as_os_str(),
            OsStr::new("serve"),
            OsStr::new("--demo"),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
        ],
        &[],
        Duration::from_secs(20),
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("DEEDBOLT_MASTER_KEY"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[tokio::test]
async fn serve_demo_runs_on_postgresql_with_its_settings_stored_there() {
    let Some(mut opts) = postgres_options().await else {
        return;
    };
    opts.master_key = Some(
        MasterKey::generate_encoded()
            .expect("master key")
            .as_str()
            .to_owned(),
    );
    let first = spawn_app_with(opts.clone()).await;
    let demo = first.cli_json(&["seed-demo", "--json"]);
    let pw = passwords(&demo);
    first.stop().await;

    opts.demo = true;
    // A fresh data directory: the settings come from the database, like everything else.
    opts.data_dir = None;
    let app = spawn_app_with(opts).await;
    let jar = bff_sign_in(&app, MAYA, &pw[MAYA]).await;
    let properties = items(&bff_json(&app, "/bff/api/properties", &jar).await);
    assert_eq!(properties.len(), 2);
    let clients = app.cli_json(&["client", "list", "--json"]);
    assert_eq!(clients.as_array().unwrap().len(), 2, "{clients}");
    app.stop().await;
}

#[tokio::test]
async fn seed_demo_prints_a_serve_command_that_runs_the_demo() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let out = run_cli(dir.path(), None, &["seed-demo", "--issuer", &issuer]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let pw = printed_passwords(&lines);
    assert_eq!(pw.len(), 5, "{text}");
    let command = lines
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("deedbolt "))
        .unwrap_or_else(|| panic!("no command in {text}"))
        .to_owned();
    assert!(
        !text.contains("DEEDBOLT_BFF_"),
        "nothing to export by hand: {text}"
    );
    assert!(
        !command.contains('\''),
        "plain words (the temp dir has no spaces): {command}"
    );

    // Run exactly what it printed (the program name is this build's binary).
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[0], "deedbolt");
    let (p, base) = start(&words[1..], &[]);
    assert_eq!(base, issuer, "it listens where the issuer says");
    let app = TestApp::external(base, dir.clone(), None);
    let jar = bff_sign_in(&app, TOM, &pw[TOM]).await;
    let mine = items(&bff_json(&app, "/bff/api/tenants", &jar).await);
    assert_eq!(mine.len(), 1);
    stop(p);
}

#[tokio::test]
async fn serve_refuses_backend_for_frontend_settings_that_do_not_match_the_client() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let keys = format!("k1:{}", random_b64url(32));
    let make = |scope: &str, redirect: &str| {
        let out = run_cli(
            dir.path(),
            None,
            &[
                "client",
                "create",
                "--name",
                "web",
                "--grant",
                "authorization_code",
                "--grant",
                "refresh_token",
                "--scope",
                scope,
                "--redirect-uri",
                redirect,
                "--json",
            ],
        );
        assert!(out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().unwrap().to_owned(),
        )
    };
    let (good, good_secret) = make(
        "openid profile email tenant:read financial:read maintenance:request",
        "http://127.0.0.1/bff/callback",
    );
    let (elsewhere, elsewhere_secret) = make(
        "openid profile email tenant:read financial:read maintenance:request",
        "https://portal.example/bff/callback",
    );
    let (narrow, narrow_secret) = make("openid", "http://127.0.0.1/bff/callback");
    let (other, _) = make("openid", "http://127.0.0.1/other");
    let unknown = other.chars().rev().collect::<String>();
    let try_with = |id: &str, secret: &str| {
        let (dir, keys) = (dir.clone(), keys.clone());
        let (id, secret) = (id.to_owned(), secret.to_owned());
        async move {
            try_spawn_app(Options {
                data_dir: Some(dir),
                overrides: ServeOverrides {
                    bff_client_id: Some(id),
                    bff_client_secret: Some(secret),
                    bff_cookie_keys: Some(keys),
                    ..Default::default()
                },
                ..Default::default()
            })
            .await
        }
    };
    let refused = |r: anyhow::Result<TestApp>| match r {
        Ok(_) => panic!("the server started"),
        Err(e) => format!("{e:#}"),
    };

    let e = refused(try_with(&good, "not-the-secret").await);
    assert!(e.contains("DEEDBOLT_BFF_CLIENT_SECRET"), "{e}");
    let e = refused(try_with(&unknown, &good_secret).await);
    assert!(e.contains("not a registered client"), "{e}");
    assert!(e.contains(&unknown), "{e}");
    let e = refused(try_with(&elsewhere, &elsewhere_secret).await);
    assert!(e.contains("/bff/callback"), "{e}");
    assert!(e.contains("https://portal.example/bff/callback"), "{e}");
    let e = refused(try_with(&narrow, &narrow_secret).await);
    assert!(e.contains("DEEDBOLT_BFF_SCOPE"), "{e}");
    assert!(e.contains("tenant:read"), "{e}");

    // The right settings start.
    let app = try_with(&good, &good_secret).await.expect("starts");
    app.stop().await;
}

#[tokio::test]
async fn the_landing_page_links_what_there_is_and_app_without_a_bff_says_so() {
    let app = spawn_app().await;
    let res = app.get("/", None).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = res.text().await.unwrap();
    for href in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/jwks.json",
        "/app",
        "/admin",
        "/api/openapi.json",
    ] {
        assert!(
            html.contains(&format!("href=\"{href}\"")),
            "links {href}: {html}"
        );
        let res = app.get(href, None).await;
        let expected = if href == "/app" { 503 } else { 200 };
        assert_eq!(res.status(), expected, "{href}");
    }
    assert!(html.contains("serve --demo"), "{html}");

    let res = app.get("/app", None).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(html.contains("not enabled"), "{html}");
    assert!(html.contains("deedbolt serve --demo"), "{html}");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// In headless Chromium: screenshots under target/, and what can be asserted of them.
// ---------------------------------------------------------------------------------------

/// Where the screenshots go: `target/tmp/screenshots/` (not committed).
fn screenshot_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Saves a PNG of the viewport as `name.png`; asserts it is a PNG.
async fn screenshot(browser: &Browser, name: &str) {
    let c = client(browser).await;
    let png = browser.step("take a screenshot", c.screenshot()).await;
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write the screenshot");
}

/// Asserts the page does not scroll sideways.
async fn assert_no_horizontal_overflow(browser: &Browser, what: &str) {
    let v = js(
        browser,
        "return [document.scrollingElement.scrollWidth, window.innerWidth]",
    )
    .await;
    let (scroll, inner) = (v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
    if scroll > inner {
        browser
            .fail(&format!(
                "{what}: the page scrolls sideways ({scroll} px wide in a {inner} px window)"
            ))
            .await
    }
}

/// The computed `background-color` of the element matching `css`.
async fn background(browser: &Browser, css: &str) -> String {
    browser.wait_for(css).await;
    js(
        browser,
        &format!("return getComputedStyle(document.querySelector('{css}')).backgroundColor"),
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

/// Signs in through the login page (and the consent page, if shown) as `email`.
async fn sign_in(browser: &Browser, email: &str, password: &str, shot: Option<&str>) {
    browser.wait_for("#login").await;
    if let Some(name) = shot {
        let primary = background(browser, "#login").await;
        assert_ne!(primary, "rgba(0, 0, 0, 0)", "the sign-in button is styled");
        assert_no_horizontal_overflow(browser, "login").await;
        screenshot(browser, &format!("{name}-login")).await;
    }
    browser.type_into("input[name=email]", email).await;
    browser.type_into("input[type=password]", password).await;
    browser.click("#login").await;
}

#[tokio::test]
async fn demo_pages_look_right_in_a_browser_and_the_admin_fits_a_phone() {
    if !browser_available("demo_pages_look_right_in_a_browser_and_the_admin_fits_a_phone") {
        return;
    }
    let (dir, demo) = seeded_dir().await;
    let pw = passwords(&demo);
    within_budget(async {
        let app = spawn_app_with(Options {
            data_dir: Some(dir.clone()),
            demo: true,
            ..Default::default()
        })
        .await;
        let browser = Browser::start().await;

        // The tenant: login, consent (Allow primary, Deny secondary, no jargon), their view.
        browser.goto(&format!("{}/app", app.base)).await;
        browser.click("#signin").await;
        sign_in(&browser, TOM, &pw[TOM], Some("tenant")).await;
        browser.wait_for("#approve").await;
        let (allow, deny) = (
            background(&browser, "#approve").await,
            background(&browser, "#deny").await,
        );
        assert_ne!(allow, deny, "Allow stands out from Deny");
        let text = browser.text().await;
        for jargon in ["BFF", "backend-for-frontend", "tenant:read"] {
            assert!(!text.contains(jargon), "consent page shows {jargon}: {text}");
        }
        assert_no_horizontal_overflow(&browser, "consent").await;
        screenshot(&browser, "consent").await;
        browser.click("#approve").await;
        wait_text(&browser, "#status", "Up to date.", |t| t == "Up to date.").await;
        wait_displayed(&browser, "#tenant-view").await;
        let hidden = js(&browser, "return document.getElementById('staff-view').hidden").await;
        assert_eq!(hidden, true, "a tenant gets no portfolio");
        let shown = js(
            &browser,
            "return getComputedStyle(document.getElementById('tenant-choice')).display",
        )
        .await;
        assert_eq!(shown, "none", "a tenant is not asked which tenant a request is for");
        wait_text(&browser, "#tenant-name", "Tom Tenant", |t| t == "Tom Tenant").await;
        assert!(!browser.text().await.contains("BFF"));
        assert_no_horizontal_overflow(&browser, "app as tenant").await;
        screenshot(&browser, "app-tenant").await;
        browser.click("#signout").await;
        wait_displayed(&browser, "#signed-out").await;

        // The manager: their portfolio, not "My tenancy"; a new request asks for the tenant.
        let c = client(&browser).await;
        browser.step("clear cookies", c.delete_all_cookies()).await;
        browser.goto(&format!("{}/app", app.base)).await;
        browser.click("#signin").await;
        sign_in(&browser, MAYA, &pw[MAYA], None).await;
        browser.click("#approve").await;
        wait_text(&browser, "#status", "Up to date.", |t| t == "Up to date.").await;
        wait_displayed(&browser, "#staff-view").await;
        let hidden = js(&browser, "return document.getElementById('tenant-view').hidden").await;
        assert_eq!(hidden, true, "a manager is shown no tenancy of someone else");
        let rows = js(
            &browser,
            "return [document.querySelectorAll('#properties tbody tr').length, \
             document.querySelectorAll('#tenants tbody tr').length]",
        )
        .await;
        assert_eq!(rows, json!([2, 3]), "Maya's two properties and three tenants");
        wait_displayed(&browser, "#new-tenant").await;
        let options = js(
            &browser,
            "return Array.from(document.querySelectorAll('#new-tenant option')).map(o => o.textContent)",
        )
        .await;
        let options = options.to_string();
        assert!(options.contains("Sam Sharma — Harbour View, unit 2A"), "{options}");
        assert_no_horizontal_overflow(&browser, "app as manager").await;
        screenshot(&browser, "app-manager").await;
        // Without a tenant the form does not send; with one, the request is Sam's.
        browser.type_into("#new-title", "Gate sticks").await;
        browser
            .type_into("#new-description", "The side gate sticks.")
            .await;
        js(
            &browser,
            "document.getElementById('new-tenant').required = false; return true",
        )
        .await;
        browser.click("#submit-request").await;
        wait_displayed(&browser, "#form-error").await;
        js(
            &browser,
            "const s = document.getElementById('new-tenant');              s.value = Array.from(s.options).find(o => o.textContent.startsWith('Sam')).value;              return s.value",
        )
        .await;
        browser.click("#submit-request").await;
        wait_text(&browser, "#status", "Request sent.", |t| t == "Request sent.").await;
        wait_text(&browser, "#requests", "the new request, Sam's", |t| {
            t.contains("Gate sticks") && t.contains("for Sam Sharma (Harbour View, unit 2A)")
        })
        .await;

        // The admin console on a phone: 390 px wide, no sideways scrolling.
        browser
            .step("set a phone-sized window", c.set_window_size(390, 844))
            .await;
        browser.goto(&format!("{}/admin", app.base)).await;
        sign_in(&browser, ADA, &pw[ADA], None).await;
        browser.wait_for("#audit").await;
        let width = js(&browser, "return window.innerWidth").await;
        assert!(width.as_i64().unwrap() <= 390, "{width}");
        assert_no_horizontal_overflow(&browser, "admin at 390 px").await;
        // Each audit row reads as a card: its cells stacked, labelled.
        let label = js(
            &browser,
            "return getComputedStyle(document.querySelector('#audit tbody td:nth-child(3)'), \
             '::before').content",
        )
        .await;
        assert_eq!(label, "\"type\"", "cells are labelled on a phone");
        screenshot(&browser, "admin-390").await;
        browser.close().await;
        app.stop().await;
    })
    .await;
}
