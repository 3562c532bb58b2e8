//! End to end in a real browser: the authorization-code flow with PKCE, login and consent
//! driven in headless Chromium through chromedriver (W3C WebDriver, via `fantoccini`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`). Without them the tests print a loud notice and pass, unless
//! `CI` is set, where they fail. Run them alone with
//! `cargo test -p deedbolt --test api browser::`.
//!
//! Everything is bounded in time: each WebDriver step, each wait, and each test as a whole.
//! chromedriver and Chromium are killed by a drop guard whatever happens.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use crate::helpers::{jwt_part, pkce_pair, pkce_s256, random_b64url, spawn_app, unix_now, TestApp};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// The whole of one browser test.
const TEST_BUDGET: Duration = Duration::from_secs(50);
/// chromedriver answering `/status` with `ready: true`.
const DRIVER_READY: Duration = Duration::from_secs(10);
/// Starting Chromium (a new WebDriver session).
const SESSION_START: Duration = Duration::from_secs(20);
/// One WebDriver command (page loads are also capped by the session's pageLoad timeout).
const STEP: Duration = Duration::from_secs(15);
/// Waiting for an element, a URL or the callback request. Generous because a login runs
/// argon2id, slow in unoptimized test builds, while the rest of the suite runs in parallel.
const WAIT: Duration = Duration::from_secs(10);

/// The Chromium command line. The networking flags keep Chromium from phoning home (it
/// otherwise floods a closed network with update, sync and metrics requests); the host
/// resolver rule makes any name lookup it still attempts fail locally. We only ever
/// navigate to 127.0.0.1.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-default-browser-check",
    "--password-store=basic",
    "--disable-features=Translate,MediaRouter,OptimizationHints,PasswordLeakDetection,AutofillServerCommunication",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--window-size=1024,768",
];

// ---------------------------------------------------------------------------------------
// chromedriver + Chromium
// ---------------------------------------------------------------------------------------

/// Whether chromedriver and Chromium are installed. When they are not: panics if `CI` is
/// set, otherwise prints a loud notice and returns false (the test then returns early).
pub(crate) fn browser_available(test: &str) -> bool {
    let missing: Vec<&str> = [CHROMEDRIVER, CHROMIUM]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "browser test {test}: {} not installed, and CI is set so this cannot be skipped \
             (apt-get install chromium chromium-driver; .ci/run does this)",
            missing.join(" and ")
        );
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing
    // tests, and a skip must not go unnoticed.
    let _ = writeln!(
        std::io::stderr(),
        "\n\
         ************************************************************************\n\
         *** skipping browser test {test}:\n\
         *** chromedriver not installed (apt-get install chromium chromium-driver)\n\
         *** missing: {}\n\
         ************************************************************************",
        missing.join(", ")
    );
    false
}

/// A running chromedriver, its log, and Chromium's profile directory. Dropping it ends
/// chromedriver and the browser it started.
struct Driver {
    child: Child,
    port: u16,
    /// Holds `profile/` (Chromium's --user-data-dir) and `chromedriver.log`.
    dir: TempDir,
    /// The browser's process id, once a session exists.
    browser_pid: Option<u32>,
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it is ready. Retries
    /// with another port if the one picked was taken in between.
    async fn start() -> Driver {
        let mut last_err = String::new();
        for _ in 0..3 {
            match Driver::try_start().await {
                Ok(d) => return d,
                Err(e) => last_err = e,
            }
        }
        panic!("chromedriver did not start: {last_err}");
    }

    async fn try_start() -> Result<Driver, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        std::fs::create_dir(dir.path().join("profile")).map_err(|e| format!("profile: {e}"))?;
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {CHROMEDRIVER}: {e}"))?;
        let mut driver = Driver {
            child,
            port,
            dir,
            browser_pid: None,
        };
        let status_url = format!("{}/status", driver.url());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let deadline = Instant::now() + DRIVER_READY;
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                return Err(format!(
                    "chromedriver exited with {status} on port {port}; log:\n{}",
                    driver.log_tail()
                ));
            }
            if let Ok(res) = http.get(&status_url).send().await {
                if let Ok(v) = res.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        return Ok(driver);
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "chromedriver not ready after {DRIVER_READY:?}; log:\n{}",
                    driver.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn profile(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    /// The last lines of chromedriver's log.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("chromedriver.log"))
            .unwrap_or_else(|e| format!("(no log: {e})"));
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver's /shutdown quits the browsers it started; then make sure of both,
        // by process id.
        if matches!(self.child.try_wait(), Ok(None)) {
            shutdown_request(self.port);
            if crate::helpers::wait_child(&mut self.child, Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if let Some(pid) = self.browser_pid {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// `GET /shutdown` to chromedriver, blocking and bounded (used from `Drop`).
fn shutdown_request(port: u16) {
    use std::io::Read as _;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = s.write_all(
        format!("GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    let mut buf = [0u8; 512];
    let _ = s.read(&mut buf);
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A WebDriver session in headless Chromium, and the chromedriver behind it. Also used
/// by the admin page's browser test (admin.rs).
pub(crate) struct Browser {
    client: Option<Client>,
    driver: Driver,
}

impl Browser {
    pub(crate) async fn start() -> Browser {
        let mut driver = Driver::start().await;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", driver.profile().display()));
        let caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "pageLoad": 10_000, "script": 5_000, "implicit": 0 },
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                "prefs": {
                    "credentials_enable_service": false,
                    "profile.password_manager_enabled": false,
                },
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let mut builder = ClientBuilder::rustls().expect("rustls WebDriver connector");
        builder.capabilities(caps);
        let client = match timeout(SESSION_START, builder.connect(&driver.url())).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!(
                "could not start Chromium through chromedriver: {e}\nchromedriver log:\n{}",
                driver.log_tail()
            ),
            Err(_) => panic!(
                "Chromium did not start within {SESSION_START:?}\nchromedriver log:\n{}",
                driver.log_tail()
            ),
        };
        driver.browser_pid = client
            .capabilities()
            .and_then(|c| c.get("goog:processID"))
            .and_then(Value::as_u64)
            .map(|p| p as u32);
        Browser {
            client: Some(client),
            driver,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("session is open")
    }

    /// Ends the session (Chromium quits); the drop guard then stops chromedriver.
    pub(crate) async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = timeout(Duration::from_secs(5), c.close()).await;
        }
    }

    /// Runs one WebDriver command, bounded by [`STEP`]; on error or timeout fails with the
    /// current page.
    pub(crate) async fn step<T, E: std::fmt::Display>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> T {
        match timeout(STEP, fut).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => self.fail(&format!("{what}: {e}")).await,
            Err(_) => {
                self.fail(&format!("{what}: no answer within {STEP:?}"))
                    .await
            }
        }
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.step(&format!("open {url}"), self.client().goto(url))
            .await
    }

    pub(crate) async fn current_url(&self) -> String {
        self.step("read the current URL", self.client().current_url())
            .await
            .to_string()
    }

    pub(crate) async fn source(&self) -> String {
        self.step("read the page source", self.client().source())
            .await
    }

    /// The visible text of the page.
    pub(crate) async fn text(&self) -> String {
        let body = self.wait_for("body").await;
        self.step("read the page text", body.text()).await
    }

    /// Polls for the element matching `css` for up to [`WAIT`].
    pub(crate) async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + WAIT;
        loop {
            let last = match timeout(STEP, self.client().find(Locator::Css(css))).await {
                Ok(Ok(el)) => return el,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("find took longer than {STEP:?}"),
            };
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "no element `{css}` on the page after {WAIT:?} ({last})"
                ))
                .await
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into the element matching `css`.
    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let el = self.wait_for(css).await;
        self.step(&format!("type into `{css}`"), el.send_keys(text))
            .await
    }

    /// Clicks the element matching `css`.
    pub(crate) async fn click(&self, css: &str) {
        let el = self.wait_for(css).await;
        self.step(&format!("click `{css}`"), el.click()).await
    }

    /// Polls the current URL until it starts with `prefix`, for up to [`WAIT`].
    pub(crate) async fn wait_for_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.current_url().await;
            if url.starts_with(prefix) {
                return url;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "browser still at {url} after {WAIT:?}, expected a URL starting with {prefix}"
                ))
                .await
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Panics with `msg`, the current URL and the page source (each read with a short
    /// bound: this is also used when the browser is stuck).
    pub(crate) async fn fail(&self, msg: &str) -> ! {
        let short = Duration::from_secs(3);
        let url = match timeout(short, self.client().current_url()).await {
            Ok(Ok(u)) => u.to_string(),
            Ok(Err(e)) => format!("(unavailable: {e})"),
            Err(_) => "(unavailable: timed out)".into(),
        };
        let source = match timeout(short, self.client().source()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => format!("(unavailable: {e})"),
            Err(_) => "(unavailable: timed out)".into(),
        };
        panic!(
            "browser: {msg}\n--- current URL: {url}\n--- page source:\n{source}\n--- end of page \
             source\n--- chromedriver log (tail):\n{}",
            self.driver.log_tail()
        );
    }
}

/// Runs `test` bounded by [`TEST_BUDGET`]. If the budget runs out, the test future (and
/// with it the browser's drop guard) is dropped first, so nothing is left running.
pub(crate) async fn within_budget(test: impl Future<Output = ()>) {
    if timeout(TEST_BUDGET, test).await.is_err() {
        panic!("browser test took longer than {TEST_BUDGET:?}");
    }
}

// ---------------------------------------------------------------------------------------
// The client's redirect URI: a tiny HTTP server that records request lines.
// ---------------------------------------------------------------------------------------

/// An HTTP server on 127.0.0.1 that answers every request `200 ok` and reports each
/// request line (e.g. `GET /callback?code=... HTTP/1.1`).
struct Callback {
    /// `http://127.0.0.1:PORT/callback`
    redirect_uri: String,
    requests: mpsc::UnboundedReceiver<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Callback {
    async fn start() -> Callback {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind callback server");
        let port = listener.local_addr().expect("callback addr").port();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                // One task per connection: Chromium opens speculative connections that
                // never send anything, and those must not hold up the real request.
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 2048];
                    let read_head = async {
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16_384 {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return false,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        true
                    };
                    if !matches!(timeout(Duration::from_secs(10), read_head).await, Ok(true)) {
                        return;
                    }
                    let head = String::from_utf8_lossy(&head);
                    let line = head.lines().next().unwrap_or("").to_owned();
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\
                              connection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = stream.shutdown().await;
                    let _ = tx.send(line);
                });
            }
        });
        Callback {
            redirect_uri: format!("http://127.0.0.1:{port}/callback"),
            requests: rx,
            task,
        }
    }

    /// Waits (up to [`WAIT`]) for a request to the redirect URI and returns its query
    /// parameters. Other requests (e.g. `/favicon.ico`) are ignored.
    async fn next_redirect(&mut self) -> HashMap<String, String> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.requests.recv()).await {
                Ok(Some(line)) => {
                    let target = line.split(' ').nth(1).unwrap_or("").to_owned();
                    if target == "/callback" || target.starts_with("/callback?") {
                        return query_params(&format!("http://127.0.0.1{target}"));
                    }
                    seen.push(line);
                }
                _ => panic!(
                    "no request to the redirect URI {} within {WAIT:?} (saw: {seen:?})",
                    self.redirect_uri
                ),
            }
        }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The query parameters of `url`; panics if one is repeated (RFC 6749 §3.1).
fn query_params(url: &str) -> HashMap<String, String> {
    let url = url::Url::parse(url).unwrap_or_else(|e| panic!("bad URL {url}: {e}"));
    let mut out = HashMap::new();
    for (k, v) in url.query_pairs() {
        let k = k.into_owned();
        assert!(
            out.insert(k.clone(), v.into_owned()).is_none(),
            "parameter {k} repeated in {url}"
        );
    }
    out
}

// ---------------------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------------------

const EMAIL: &str = "alice@example.com";
const PASSWORD: &str = "plum-Orchard-Lantern-77-quietly";

/// A server with a tenant user and a public SPA client whose redirect URI is `callback`.
struct Setup {
    app: TestApp,
    client_id: String,
}

fn setup(app: TestApp, callback: &Callback) -> Setup {
    let out = app.cli_with_stdin(
        &[
            "user",
            "create",
            "--email",
            EMAIL,
            "--role",
            "tenant",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "deedbolt user create failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v = app.cli_json(&[
        "client",
        "create",
        "--name",
        "spa",
        "--grant",
        "authorization_code",
        "--redirect-uri",
        &callback.redirect_uri,
        "--public",
        "--scope",
        "openid profile email tenant:read financial:read",
        "--json",
    ]);
    let client_id = v["client_id"]
        .as_str()
        .unwrap_or_else(|| panic!("client create printed no client_id: {v}"))
        .to_owned();
    assert!(
        v.get("client_secret").is_none_or(Value::is_null),
        "a public client has no secret: {v}"
    );
    Setup { app, client_id }
}

/// What the client sent to `/authorize`.
struct Request {
    url: String,
    state: String,
    nonce: String,
    verifier: String,
}

fn authorize_request(s: &Setup, redirect_uri: &str) -> Request {
    let state = random_b64url(16);
    let nonce = random_b64url(16);
    let (verifier, challenge) = pkce_pair();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &s.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid tenant:read")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    Request {
        url: format!("{}/authorize?{query}", s.app.base),
        state,
        nonce,
        verifier,
    }
}

/// Opens the authorization request, logs in as alice, and waits for the consent page.
async fn login_to_consent(browser: &Browser, req: &Request) {
    browser.goto(&req.url).await;
    browser.type_into("input[name=email]", EMAIL).await;
    browser
        .type_into("input[name=password][type=password]", PASSWORD)
        .await;
    browser.wait_for("input[name=csrf]").await;
    browser.click("button#login[type=submit]").await;
    browser.wait_for("button#approve").await;
    browser.wait_for("button#deny").await;
    let text = browser.text().await.to_lowercase();
    if !text.contains("tenant record") {
        browser
            .fail("the consent page does not describe tenant:read (expected \"tenant record\")")
            .await;
    }
}

/// The claims of a JWT (not verified here: the HTTP tests verify signatures).
fn claims(jwt: &str) -> Value {
    assert_eq!(jwt.split('.').count(), 3, "not a JWS compact JWT: {jwt}");
    jwt_part(jwt, 1)
}

/// OIDC Core §3.1.3.6: base64url of the left half of the hash of the access token, the
/// hash being that of the ID token's `alg` (SHA-256 for ES256/RS256/PS256).
fn at_hash_sha256(access_token: &str) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

#[tokio::test]
async fn browser_harness_opens_server_pages() {
    if !browser_available("browser_harness_opens_server_pages") {
        return;
    }
    within_budget(async {
        let app = spawn_app().await;
        let browser = Browser::start().await;

        browser.goto(&format!("{}/healthz", app.base)).await;
        assert_eq!(browser.current_url().await, format!("{}/healthz", app.base));

        browser
            .goto(&format!(
                "{}/.well-known/oauth-authorization-server",
                app.base
            ))
            .await;
        // Chromium shows JSON in a <pre>; its text is the document.
        let pre = browser.wait_for("pre").await;
        let text = browser.step("read the JSON", pre.text()).await;
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("metadata is not JSON ({e}): {text}"));
        assert_eq!(doc["issuer"], app.base.as_str());
        assert!(browser.source().await.contains(&app.base));

        browser.close().await;
    })
    .await;
}

#[tokio::test]
async fn authorization_code_with_pkce_login_and_consent_in_a_real_browser() {
    if !browser_available("authorization_code_with_pkce_login_and_consent_in_a_real_browser") {
        return;
    }
    within_budget(async {
        let mut callback = Callback::start().await;
        let s = setup(spawn_app().await, &callback);
        let req = authorize_request(&s, &callback.redirect_uri);
        let browser = Browser::start().await;

        login_to_consent(&browser, &req).await;
        browser.click("button#approve[type=submit]").await;

        let params = callback.next_redirect().await;
        let final_url = browser.wait_for_url(&callback.redirect_uri).await;
        assert!(final_url.contains("state="), "final URL: {final_url}");
        browser.close().await;

        assert!(!params.contains_key("error"), "redirect: {params:?}");
        assert_eq!(
            params.get("state"),
            Some(&req.state),
            "redirect: {params:?}"
        );
        assert_eq!(params.get("iss"), Some(&s.app.base), "redirect: {params:?}");
        let code = params
            .get("code")
            .unwrap_or_else(|| panic!("no code in the redirect: {params:?}"));

        // The code for tokens: a public client, authenticated by the PKCE verifier alone.
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &callback.redirect_uri)
            .append_pair("client_id", &s.client_id)
            .append_pair("code_verifier", &req.verifier)
            .finish();
        let res = s.app.post_token(None, &form).await;
        let status = res.status();
        let body = res.text().await.expect("token response body");
        assert_eq!(status, 200, "token response: {body}");
        let body: Value = serde_json::from_str(&body).expect("token response JSON");
        assert!(
            body["token_type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
            "{body}"
        );

        let access_token = body["access_token"].as_str().expect("access_token");
        let at = claims(access_token);
        let sub = at["sub"].as_str().expect("access token sub");
        assert!(!sub.is_empty());
        assert_ne!(sub, s.client_id, "sub is the user, not the client");
        assert_eq!(at["client_id"], s.client_id.as_str());
        let scopes: Vec<&str> = at["scope"]
            .as_str()
            .expect("access token scope")
            .split(' ')
            .collect();
        assert!(scopes.contains(&"tenant:read"), "scope: {scopes:?}");
        assert!(
            !scopes.contains(&"financial:read"),
            "only what was asked for: {scopes:?}"
        );

        let id_token = body["id_token"].as_str().expect("id_token");
        let header = jwt_part(id_token, 0);
        let id = claims(id_token);
        assert_eq!(id["iss"], s.app.base.as_str());
        assert_eq!(id["sub"], sub);
        assert!(
            id["aud"] == s.client_id.as_str()
                || id["aud"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == s.client_id.as_str())),
            "aud: {}",
            id["aud"]
        );
        assert_eq!(id["nonce"], req.nonce.as_str());
        let at_hash = id["at_hash"].as_str().expect("at_hash");
        if matches!(header["alg"].as_str(), Some("ES256" | "RS256" | "PS256")) {
            assert_eq!(at_hash, at_hash_sha256(access_token));
        }
        let auth_time = id["auth_time"].as_i64().expect("auth_time");
        let now = unix_now();
        assert!(
            (now - 120..=now + 5).contains(&auth_time),
            "auth_time {auth_time}, now {now}"
        );

        let res = s.app.get("/userinfo", Some(access_token)).await;
        let status = res.status();
        let text = res.text().await.expect("userinfo body");
        assert_eq!(status, 200, "userinfo: {text}");
        let info: Value = serde_json::from_str(&text).expect("userinfo JSON");
        assert_eq!(info["sub"], sub);
    })
    .await;
}

#[tokio::test]
async fn deny_in_the_browser_redirects_with_access_denied() {
    if !browser_available("deny_in_the_browser_redirects_with_access_denied") {
        return;
    }
    within_budget(async {
        let mut callback = Callback::start().await;
        let s = setup(spawn_app().await, &callback);
        let req = authorize_request(&s, &callback.redirect_uri);
        let browser = Browser::start().await;

        login_to_consent(&browser, &req).await;
        browser.click("button#deny[type=submit]").await;

        let params = callback.next_redirect().await;
        let final_url = browser.wait_for_url(&callback.redirect_uri).await;
        assert!(final_url.contains("state="), "final URL: {final_url}");
        assert!(
            final_url.contains("error=access_denied"),
            "final URL: {final_url}"
        );
        browser.close().await;

        assert_eq!(
            params.get("error").map(String::as_str),
            Some("access_denied"),
            "redirect: {params:?}"
        );
        assert_eq!(
            params.get("state"),
            Some(&req.state),
            "redirect: {params:?}"
        );
        assert_eq!(params.get("iss"), Some(&s.app.base), "redirect: {params:?}");
        assert!(
            !params.contains_key("code"),
            "no code when denied: {params:?}"
        );
    })
    .await;
}

#[test]
fn pkce_helper_matches_rfc7636_appendix_b() {
    assert_eq!(
        pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}
