//! `spawn_app` and friends: what every integration test uses.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use deedbolt::config::{FileConfig, GlobalOverrides, ServeOverrides, ServeSettings};
use deedbolt::startup::Application;
use deedbolt_core::seal::MasterKey;
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Logs are silent unless TEST_LOG is set.
static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = deedbolt::telemetry::init(deedbolt::telemetry::LogFormat::Text, Some("debug"));
    }
});

/// A running server.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`, also the issuer.
    pub base: String,
    /// The data directory (kept alive for the test's duration).
    pub data_dir: Arc<TempDir>,
    /// The PostgreSQL database the server uses, if not the data directory's SQLite file.
    pub database_url: Option<String>,
    /// An HTTP client.
    pub http: reqwest::Client,
    /// `https://127.0.0.1:PORT` of the mutual-TLS listener, if one runs.
    pub mtls_base: Option<String>,
    /// The master key given to the server and the CLI, if any.
    pub master_key: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Options for [`spawn_app_with`].
#[derive(Default, Clone)]
pub struct Options {
    /// Reuse this data directory (for restart tests).
    pub data_dir: Option<Arc<TempDir>>,
    /// `DEEDBOLT_MASTER_KEY`.
    pub master_key: Option<String>,
    /// Flag-level overrides of the `serve` settings.
    pub overrides: ServeOverrides,
    /// Flag-level overrides of the shared settings (Redis); the data directory and the
    /// database come from the fields above.
    pub global: GlobalOverrides,
    /// `DEEDBOLT_DATABASE_URL`: PostgreSQL instead of SQLite (see [`postgres_options`]).
    pub database_url: Option<String>,
    /// `serve --demo`.
    pub demo: bool,
}

/// Options for a server on a fresh PostgreSQL database of the `DATABASE_URL` server;
/// `None` (after a warning) when `DATABASE_URL` is unset, so the test is skipped, except
/// under CI, where a missing `DATABASE_URL` fails the test.
pub async fn postgres_options() -> Option<Options> {
    let server = deedbolt_store_postgres::testing::database_url()?;
    let url = deedbolt_store_postgres::testing::fresh_database(&server)
        .await
        .expect("create a test database");
    Some(Options {
        database_url: Some(url),
        ..Options::default()
    })
}

/// The metrics token test servers get unless a test sets its own
/// (`DEEDBOLT_METRICS_TOKEN`): read `/metrics` with [`TestApp::metrics_text`].
pub const TEST_METRICS_TOKEN: &str = "test-metrics-token-0123456789abcdef";

/// A server with a fresh data directory and default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// A server with options.
pub async fn spawn_app_with(opts: Options) -> TestApp {
    try_spawn_app(opts).await.expect("server should start")
}

/// A server with options, or the start-up error.
pub async fn try_spawn_app(opts: Options) -> anyhow::Result<TestApp> {
    LazyLock::force(&TRACING);
    let data_dir = opts
        .data_dir
        .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("tempdir")));
    let mut overrides = opts.overrides;
    overrides.listen.get_or_insert_with(|| "127.0.0.1:0".into());
    overrides
        .key_refresh_interval
        .get_or_insert_with(|| "100ms".into());
    // Tests request many tokens; these limits are raised unless a test sets its own (the
    // login limit keeps its default: the login tests rely on it).
    for limit in [
        &mut overrides.rate_limit_token,
        &mut overrides.rate_limit_refresh,
        &mut overrides.rate_limit_api,
        &mut overrides.rate_limit_authorize,
        &mut overrides.rate_limit_register,
    ] {
        limit.get_or_insert_with(|| "1000000/1h".into());
    }
    overrides
        .metrics_token
        .get_or_insert_with(|| TEST_METRICS_TOKEN.into());
    let common = deedbolt::config::resolve_common(&GlobalOverrides {
        data_dir: Some(data_dir.path().to_path_buf()),
        database_url: opts.database_url.as_deref().map(str::parse).transpose()?,
        ..opts.global
    })?;
    let tls = overrides.tls_cert.is_some();
    let settings = ServeSettings::resolve(common, overrides, &FileConfig::default())?;
    let master = opts
        .master_key
        .as_deref()
        .map(MasterKey::parse)
        .transpose()?;
    let demo = if opts.demo {
        deedbolt::startup::Demo::On
    } else {
        deedbolt::startup::Demo::Off
    };
    let app = Application::build_with(settings, master, demo).await?;
    // https when the main listener speaks TLS.
    let scheme = if tls { "https" } else { "http" };
    let base = format!("{scheme}://{}", app.addr());
    let mtls_base = app.mtls_addr().map(|a| format!("https://{a}"));
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    Ok(TestApp {
        base,
        data_dir,
        database_url: opts.database_url,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        mtls_base,
        master_key: opts.master_key,
        shutdown: Some(tx),
        handle: Some(handle),
    })
}

/// The path of the `deedbolt` binary built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_deedbolt"))
}

/// Runs the CLI on `data_dir`, with `master_key` as DEEDBOLT_MASTER_KEY if given.
pub fn run_cli(data_dir: &Path, master_key: Option<&str>, args: &[&str]) -> Output {
    cli_command(data_dir, master_key, None, args)
        .output()
        .expect("run deedbolt CLI")
}

/// The CLI on `data_dir` (and on PostgreSQL at `database_url`, passed in the environment
/// as an operator would, never on the command line), with `master_key` if given.
fn cli_command(
    data_dir: &Path,
    master_key: Option<&str>,
    database_url: Option<&str>,
    args: &[&str],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("--data-dir").arg(data_dir).args(args);
    cmd.env_remove("DEEDBOLT_MASTER_KEY");
    cmd.env_remove("DEEDBOLT_DATABASE_URL");
    cmd.env("DEEDBOLT_LOG", "warn");
    if let Some(k) = master_key {
        cmd.env("DEEDBOLT_MASTER_KEY", k);
    }
    if let Some(url) = database_url {
        cmd.env("DEEDBOLT_DATABASE_URL", url);
    }
    cmd
}

/// A registered client's credentials.
#[derive(Clone, Debug)]
pub struct Creds {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    /// Runs the CLI against this server's data directory (and database).
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_command(
            self.data_dir.path(),
            self.master_key.as_deref(),
            self.database_url.as_deref(),
            args,
        )
        .output()
        .expect("run deedbolt CLI")
    }

    /// Runs the CLI, asserts success, and parses its stdout as JSON.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "deedbolt {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("CLI prints JSON")
    }

    /// Registers a client-credentials client with `scope` through the CLI.
    pub fn create_client(&self, scope: &str) -> Creds {
        let v = self.cli_json(&[
            "client",
            "create",
            "--name",
            "test-client",
            "--grant",
            "client_credentials",
            "--scope",
            scope,
            "--json",
        ]);
        Creds {
            id: v["client_id"].as_str().expect("client_id").to_owned(),
            secret: v["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_owned(),
        }
    }

    /// `POST /token` with a raw form body and optional Basic credentials.
    pub async fn post_token(&self, basic: Option<&Creds>, form: &str) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned());
        if let Some(c) = basic {
            req = req.basic_auth(&c.id, Some(&c.secret));
        }
        req.send().await.expect("token request")
    }

    /// A client-credentials access token for `creds`, with an optional scope.
    pub async fn access_token(&self, creds: &Creds, scope: Option<&str>) -> String {
        let form = match scope {
            Some(s) => format!(
                "grant_type=client_credentials&scope={}",
                s.replace(' ', "+")
            ),
            None => "grant_type=client_credentials".to_owned(),
        };
        let res = self.post_token(Some(creds), &form).await;
        assert_eq!(res.status(), 200, "token request failed");
        let v: Value = res.json().await.expect("token JSON");
        v["access_token"].as_str().expect("access_token").to_owned()
    }

    /// GET `path` with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("GET")
    }

    /// The Prometheus text at `/metrics` (with [`TEST_METRICS_TOKEN`]).
    pub async fn metrics_text(&self) -> String {
        let res = self.get("/metrics", Some(TEST_METRICS_TOKEN)).await;
        assert_eq!(res.status(), 200, "GET /metrics");
        res.text().await.expect("metrics text")
    }

    /// The JWKS document.
    pub async fn jwks(&self) -> Value {
        self.get("/jwks.json", None)
            .await
            .json()
            .await
            .expect("JWKS JSON")
    }

    /// A handle on a server running as a subprocess (see [`ServeProcess`]) at `base`, to
    /// use the request helpers on it; [`TestApp::stop`] does not stop it.
    pub fn external(base: String, data_dir: Arc<TempDir>, master_key: Option<String>) -> TestApp {
        TestApp {
            base,
            data_dir,
            database_url: None,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            mtls_base: None,
            master_key,
            shutdown: None,
            handle: None,
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("server stops within 10s")
                .expect("server task")
                .expect("server ran cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Decodes a JWT part (header or claims) without verifying, for assertions.
pub fn jwt_part(token: &str, index: usize) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(index).expect("JWT part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// Polls `cond` every 20 ms for up to 5 s.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

// ---------------------------------------------------------------------------------------
// Helpers for driving the real binary as a subprocess, forging tokens with stored keys,
// and inspecting the data directory. Added for keys/restart/master_key/cli/config/logs.
// ---------------------------------------------------------------------------------------

/// Runs `deedbolt` with `args` and `envs` (DEEDBOLT_* variables from the test's own
/// environment are removed first), and waits for it to exit on its own within `timeout`.
/// Panics (after killing it) if it is still running then: a bad setting must never lead to
/// a server that starts.
pub fn run_bin_with_timeout(
    args: &[&std::ffi::OsStr],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> Output {
    use std::io::Read as _;
    let mut cmd = std::process::Command::new(bin());
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    clear_deedbolt_env(&mut cmd);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn deedbolt");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let Some(status) = wait_child(&mut child, timeout) else {
        let _ = child.kill();
        let _ = child.wait();
        let err = err_thread.join().unwrap_or_default();
        panic!(
            "deedbolt {args:?} was still running after {timeout:?} (it should have refused \
             to start); stderr:\n{}",
            String::from_utf8_lossy(&err)
        );
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// Removes every `DEEDBOLT_*` variable the test process may have inherited.
fn clear_deedbolt_env(cmd: &mut std::process::Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("DEEDBOLT_") {
            cmd.env_remove(k);
        }
    }
}

/// Polls `child` until it exits or `timeout` passes.
pub fn wait_child(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `deedbolt serve` running as a subprocess with JSON logs on a captured stderr.
pub struct ServeProcess {
    child: std::process::Child,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
    stdout: Arc<std::sync::Mutex<Vec<String>>>,
    stdout_reader: Option<std::thread::JoinHandle<()>>,
    rx: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServeProcess {
    /// Starts `deedbolt --log-format json <args>` with `envs` (inherited DEEDBOLT_*
    /// variables removed). `args` should include `serve` and `--data-dir`.
    pub fn start(args: &[&std::ffi::OsStr], envs: &[(&str, &str)]) -> ServeProcess {
        use std::io::BufRead as _;
        let mut cmd = std::process::Command::new(bin());
        cmd.arg("--log-format")
            .arg("json")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        clear_deedbolt_env(&mut cmd);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn deedbolt serve");
        let out = child.stdout.take().expect("stdout");
        let stdout = Arc::new(std::sync::Mutex::new(Vec::new()));
        let out_sink = stdout.clone();
        let stdout_reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                out_sink.lock().unwrap().push(line);
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        ServeProcess {
            child,
            lines,
            stdout,
            stdout_reader: Some(stdout_reader),
            rx,
            reader: Some(reader),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (up to 20 s) for the JSON log line "deedbolt is ready" and returns its
    /// `http://ADDR` base URL.
    pub fn wait_ready(&mut self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if v["message"] == "deedbolt is ready" {
                        let addr = v["addr"].as_str().expect("ready line has an addr field");
                        return format!("http://{addr}");
                    }
                }
                Err(e) => panic!(
                    "deedbolt serve did not become ready ({e}); logs:\n{}",
                    self.lines.lock().unwrap().join("\n")
                ),
            }
        }
    }

    /// Sends SIGTERM with the `kill` command.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends SIGKILL with the `kill` command: a crash, no shutdown code runs.
    pub fn kill_hard(&self) {
        self.signal("KILL");
    }

    /// Sends the signal `name` (`TERM`, `KILL`) with the `kill` command.
    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let status = wait_child(&mut self.child, timeout);
        if status.is_some() {
            if let Some(r) = self.reader.take() {
                let _ = r.join();
            }
            if let Some(r) = self.stdout_reader.take() {
                let _ = r.join();
            }
        }
        status
    }

    /// Every stdout line so far (all of them once the process has exited).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Every stderr line so far (all of them once the process has exited).
    pub fn logs(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The bytes of every file in `dir` (the database, its -wal and -shm files), by name.
pub fn data_dir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read data dir") {
        let entry = entry.expect("dir entry");
        if entry.file_type().expect("file type").is_file() {
            out.push((
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).expect("read file"),
            ));
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The current access-token signing key (ES256, the default `--signing-alg`) of the data
/// directory, loaded the way the server loads it.
pub async fn current_signing_key(
    data_dir: &Path,
    master_key: Option<&str>,
) -> Arc<deedbolt_core::jose::SigningKey> {
    use deedbolt_core::clock::Clock as _;
    let store = deedbolt_store_sqlite::SqliteStore::open(&data_dir.join("deedbolt.db"))
        .await
        .expect("open store");
    let master = master_key.map(|k| Arc::new(MasterKey::parse(k).expect("master key")));
    let vault = deedbolt_core::keyring::KeyVault::new(Arc::new(store.clone()), master);
    let loaded = vault
        .load(deedbolt_core::clock::SystemClock.now())
        .await
        .expect("load keys");
    store.close().await;
    loaded
        .signers
        .get(deedbolt_core::jose::SigningAlg::ES256)
        .clone()
}

/// The current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// The `WWW-Authenticate` header of a response, or "".
pub fn www_authenticate(res: &reqwest::Response) -> String {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Helpers for the authorization-code flow: the CLI with input on stdin (passwords), and
// PKCE pairs. Added for browser.rs.
// ---------------------------------------------------------------------------------------

/// Runs `cmd` with `stdin` written to its standard input.
fn cli_with_input(mut cmd: std::process::Command, stdin: &str) -> Output {
    use std::io::Write as _;
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn deedbolt CLI");
    let mut pipe = child.stdin.take().expect("stdin");
    // Written from a thread so a CLI that never reads stdin cannot deadlock us; a broken
    // pipe (it exited without reading) is the CLI's business and shows in its output.
    let input = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("run deedbolt CLI");
    let _ = writer.join();
    out
}

impl TestApp {
    /// Runs the CLI against this server's data directory with `stdin` as its input.
    pub fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        cli_with_input(
            cli_command(
                self.data_dir.path(),
                self.master_key.as_deref(),
                self.database_url.as_deref(),
                args,
            ),
            stdin,
        )
    }
}

/// `n` random bytes, base64url without padding.
pub fn random_b64url(n: usize) -> String {
    use aws_lc_rs::rand::SecureRandom as _;
    use base64::Engine as _;
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("random bytes");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 PKCE challenge of `verifier` (RFC 7636 §4.2): base64url(SHA-256(verifier)).
pub fn pkce_s256(verifier: &str) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// A fresh PKCE pair `(code_verifier, code_challenge)`: 32 random bytes as the verifier
/// (43 base64url characters) and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let verifier = random_b64url(32);
    let challenge = pkce_s256(&verifier);
    (verifier, challenge)
}

// ---------------------------------------------------------------------------------------
// Helpers for the authorization-code flow over plain HTTP (no browser): users and code
// clients through the CLI, a hand-kept cookie jar (so every Set-Cookie can be asserted),
// form posts, and reading redirects and hidden form fields. Added for code_flow.rs.
// ---------------------------------------------------------------------------------------

/// A client registered for the authorization-code grant; `secret` is `None` for a public
/// client.
#[derive(Clone, Debug)]
pub struct CodeClient {
    pub id: String,
    pub secret: Option<String>,
}

impl CodeClient {
    /// The credentials for HTTP Basic (confidential clients only).
    pub fn creds(&self) -> Creds {
        Creds {
            id: self.id.clone(),
            secret: self
                .secret
                .clone()
                .expect("a confidential client has a secret"),
        }
    }
}

/// Cookies kept by hand, the way a browser would for one site: `store` applies a
/// response's `Set-Cookie` headers (an empty value or `Max-Age=0` deletes the cookie).
#[derive(Clone, Debug, Default)]
pub struct Jar(pub Vec<(String, String)>);

impl Jar {
    /// Applies every `Set-Cookie` of `res`.
    pub fn store(&mut self, res: &reqwest::Response) {
        for line in set_cookie_lines(res) {
            let first = line.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            let deleted = value.is_empty()
                || line
                    .split(';')
                    .any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            self.0.retain(|(n, _)| *n != name);
            if !deleted {
                self.0.push((name, value));
            }
        }
    }

    /// The value of cookie `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or replaces) a cookie by hand.
    pub fn set(&mut self, name: &str, value: &str) {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_owned(), value.to_owned()));
    }

    /// A copy without cookie `name`.
    pub fn without(&self, name: &str) -> Jar {
        Jar(self.0.iter().filter(|(n, _)| n != name).cloned().collect())
    }

    /// The `Cookie` request header, if there are cookies.
    pub fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// Every `Set-Cookie` header of a response, as text.
pub fn set_cookie_lines(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ASCII Set-Cookie").to_owned())
        .collect()
}

/// The `Set-Cookie` header that sets cookie `name`, if any.
pub fn set_cookie_line(res: &reqwest::Response, name: &str) -> Option<String> {
    set_cookie_lines(res)
        .into_iter()
        .find(|l| l.starts_with(&format!("{name}=")))
}

/// The `Location` header, if any.
pub fn location(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("location")
        .map(|v| v.to_str().expect("ASCII Location").to_owned())
}

/// The query parameters of a URL (absolute, or a path relative to the server), asserting
/// that none is repeated.
pub fn query_params(url: &str) -> std::collections::HashMap<String, String> {
    let parsed = url::Url::parse(url)
        .or_else(|_| url::Url::parse("http://relative.invalid").and_then(|b| b.join(url)))
        .unwrap_or_else(|e| panic!("bad URL {url}: {e}"));
    let mut out = std::collections::HashMap::new();
    for (k, v) in parsed.query_pairs() {
        let k = k.into_owned();
        assert!(
            out.insert(k.clone(), v.into_owned()).is_none(),
            "parameter {k} repeated in {url}"
        );
    }
    out
}

/// Undoes the HTML escaping of the server's pages (`&amp; &lt; &gt; &quot; &#39;`).
pub fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The value of the hidden form field `name` in `html`, if there is one.
pub fn hidden_input(html: &str, name: &str) -> Option<String> {
    html.split("<input").skip(1).find_map(|tag| {
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        if !tag.contains("type=\"hidden\"") || !tag.contains(&format!("name=\"{name}\"")) {
            return None;
        }
        let start = tag.find("value=\"")? + "value=\"".len();
        let end = start + tag[start..].find('"')?;
        Some(html_unescape(&tag[start..end]))
    })
}

impl TestApp {
    /// Registers a user through `deedbolt user create --password-stdin --json` and returns
    /// the user's id.
    pub fn create_user(&self, email: &str, role: &str, password: &str) -> String {
        self.create_user_named(email, role, password, None)
    }

    /// [`TestApp::create_user`] with an optional display name (`--name`).
    pub fn create_user_named(
        &self,
        email: &str,
        role: &str,
        password: &str,
        name: Option<&str>,
    ) -> String {
        let mut args = vec![
            "user",
            "create",
            "--email",
            email,
            "--role",
            role,
            "--password-stdin",
            "--json",
        ];
        if let Some(n) = name {
            args.extend(["--name", n]);
        }
        let out = self.cli_with_stdin(&args, &format!("{password}\n"));
        assert!(
            out.status.success(),
            "deedbolt user create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("user create prints JSON");
        v["user_id"].as_str().expect("user_id").to_owned()
    }

    /// Registers an authorization-code client through the CLI (`--public` if `public`),
    /// with any number of `--redirect-uri`s and extra `--grant`s.
    pub fn create_code_client(
        &self,
        scope: &str,
        redirect_uris: &[&str],
        public: bool,
        extra_grants: &[&str],
    ) -> CodeClient {
        let mut args = vec![
            "client",
            "create",
            "--name",
            "code-client",
            "--grant",
            "authorization_code",
            "--scope",
            scope,
            "--json",
        ];
        for g in extra_grants {
            args.extend(["--grant", *g]);
        }
        for r in redirect_uris {
            args.extend(["--redirect-uri", *r]);
        }
        if public {
            args.push("--public");
        }
        let v = self.cli_json(&args);
        let secret = v
            .get("client_secret")
            .and_then(Value::as_str)
            .map(str::to_owned);
        assert_eq!(
            secret.is_none(),
            public,
            "only confidential clients get a secret: {v}"
        );
        CodeClient {
            id: v["client_id"].as_str().expect("client_id").to_owned(),
            secret,
        }
    }

    /// `path` (starting with `/`) on this server, or an absolute URL as is.
    pub fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.base)
        } else {
            path_or_url.to_owned()
        }
    }

    /// A browser-like GET (no redirects followed) with the jar's cookies.
    pub async fn browser_get(&self, path_or_url: &str, jar: &Jar) -> reqwest::Response {
        self.browser_get_with(path_or_url, jar, &[]).await
    }

    /// [`TestApp::browser_get`] with extra request headers (e.g. `X-Forwarded-For`).
    pub async fn browser_get_with(
        &self,
        path_or_url: &str,
        jar: &Jar,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.http.get(self.url(path_or_url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(c) = jar.header() {
            req = req.header("cookie", c);
        }
        req.send().await.expect("GET")
    }

    /// A browser-like form POST (no redirects followed) with the jar's cookies.
    pub async fn browser_post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        jar: &Jar,
    ) -> reqwest::Response {
        self.browser_post_with(path, form, jar, &[]).await
    }

    /// [`TestApp::browser_post`] with extra request headers (e.g. `X-Forwarded-For`).
    pub async fn browser_post_with(
        &self,
        path: &str,
        form: &[(&str, &str)],
        jar: &Jar,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(c) = jar.header() {
            req = req.header("cookie", c);
        }
        req.send().await.expect("POST")
    }
}

impl TestApp {
    /// Drives the authorization server's pages like a browser: from the authorization
    /// request URL `authorize` through the login page (as `email`) and the consent page
    /// (answered with `decision`; skipped when the consent is remembered). Returns the
    /// redirect back to the client; `jar` keeps the cookies.
    pub async fn sign_in_through_pages(
        &self,
        authorize: &str,
        email: &str,
        password: &str,
        decision: &str,
        jar: &mut Jar,
    ) -> String {
        let res = self.browser_get(authorize, jar).await;
        let login = location(&res).expect("authorize redirects to the login page");
        let res = self.browser_get(&login, jar).await;
        jar.store(&res);
        let html = res.text().await.expect("login page");
        let csrf = hidden_input(&html, "csrf").expect("login csrf");
        let req = hidden_input(&html, "req").expect("login req");
        let res = self
            .browser_post(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("req", &req),
                    ("email", email),
                    ("password", password),
                ],
                jar,
            )
            .await;
        assert_eq!(res.status(), 303, "login as {email} succeeds");
        jar.store(&res);
        let consent = location(&res).expect("login redirects to consent");
        let res = self.browser_get(&consent, jar).await;
        if let Some(back) = location(&res) {
            return back; // consent remembered
        }
        let html = res.text().await.expect("consent page");
        let csrf = hidden_input(&html, "csrf")
            .unwrap_or_else(|| panic!("no consent form at {consent}: {html}"));
        let res = self
            .browser_post(
                "/consent",
                &[("csrf", &csrf), ("req", &req), ("decision", decision)],
                jar,
            )
            .await;
        location(&res).expect("consent redirects to the client")
    }
}

// ---------------------------------------------------------------------------------------
// Helpers for the admin console and the alert webhook: a user's access token through the
// whole code flow, and alerts raised on purpose. Added for admin.rs and webhook.rs.
// ---------------------------------------------------------------------------------------

impl TestApp {
    /// Runs the authorization-code flow over HTTP for the confidential `client` (registered
    /// for `scope` at `redirect_uri`) as the user `email`: authorize, log in, approve,
    /// redeem. Returns the access token.
    pub async fn user_access_token(
        &self,
        client: &CodeClient,
        redirect_uri: &str,
        scope: &str,
        email: &str,
        password: &str,
    ) -> String {
        let v = self
            .user_tokens(client, redirect_uri, scope, email, password)
            .await;
        v["access_token"].as_str().expect("access_token").to_owned()
    }

    /// [`TestApp::user_access_token`], returning the whole token response (with the
    /// refresh token, when the client may have one).
    pub async fn user_tokens(
        &self,
        client: &CodeClient,
        redirect_uri: &str,
        scope: &str,
        email: &str,
        password: &str,
    ) -> Value {
        let (verifier, challenge) = pkce_pair();
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", &random_b64url(16))
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let callback = self
            .sign_in_through_pages(
                &format!("/authorize?{query}"),
                email,
                password,
                "approve",
                &mut Jar::default(),
            )
            .await;
        let code = query_params(&callback)
            .remove("code")
            .unwrap_or_else(|| panic!("no code in {callback}"));
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", &verifier)
            .finish();
        let res = self.post_token(Some(&client.creds()), &form).await;
        assert_eq!(res.status(), 200, "code redemption");
        res.json().await.expect("token JSON")
    }

    /// Raises `multiple_auth_failures` for 127.0.0.1: five token requests with a wrong
    /// secret for `creds`' client (the default threshold is 5 in 5 minutes). The alert is
    /// stored before the fifth answer is sent.
    pub async fn raise_auth_failure_alert(&self, creds: &Creds) {
        let wrong = Creds {
            id: creds.id.clone(),
            secret: "wrong-secret".into(),
        };
        for _ in 0..5 {
            let res = self
                .post_token(Some(&wrong), "grant_type=client_credentials")
                .await;
            assert_eq!(res.status(), 401, "a wrong secret is refused");
        }
    }
}

/// Polls `cond` every 20 ms for up to `limit`; [`eventually`] with a longer bound, for
/// waits that include retry backoffs.
pub async fn eventually_within<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

// ---- CRM helpers (crm.rs, openapi.rs) ----

/// Every CRM scope (what the portfolio-wide machine client in the CRM tests holds).
pub const CRM_SCOPES: &str = "property:read property:write tenant:read tenant:write \
     financial:read financial:write maintenance:request maintenance:manage";

impl TestApp {
    /// A CRM API request: `method` on `path` with an optional bearer token and an optional
    /// JSON body (sent as `application/json`).
    pub async fn crm_send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        req.send().await.expect("CRM request")
    }

    /// [`TestApp::crm_send`], returning the status and the body as JSON (`Value::Null`
    /// when the body is empty or not JSON).
    pub async fn crm_call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let res = self.crm_send(method, path, token, body).await;
        let status = res.status().as_u16();
        let text = res.text().await.expect("CRM response body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// The `field` names of a 422 `validation_failed` body, in order.
pub fn crm_error_fields(body: &Value) -> Vec<String> {
    assert_eq!(
        body["error"], "validation_failed",
        "not a validation error: {body}"
    );
    body["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields array: {body}"))
        .iter()
        .map(|f| f["field"].as_str().expect("field name").to_owned())
        .collect()
}

/// A test that needs an external service which is missing: a warning and a skip locally,
/// a failure under CI (`CI` set), where every service must be there.
pub fn skip_or_fail(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what}, and CI is set: this test must run under CI");
    }
    eprintln!("SKIPPED: {what}");
}

/// The shared Redis for tests (`REDIS_URL`, see scripts/ci-services), or `None` after
/// [`skip_or_fail`].
pub fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip_or_fail("REDIS_URL not set");
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// Node.js relying parties (tests/openid-client/*.mjs)
// ---------------------------------------------------------------------------------------

/// The folder of the Node.js relying-party scripts (openid-client, pinned in package.json).
/// The crate folder is read when the test runs (cargo sets it then too): a test binary
/// reused from a build cache made in another checkout would otherwise look in that one.
pub fn openid_client_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("tests/openid-client")
}

/// Installs openid-client once (`scripts/test` installs it before the suite; this covers a
/// bare `cargo test`); `false` (after a warning) when Node.js or npm is missing, so the
/// test is skipped, except under CI, where it fails. Tests running in parallel wait for
/// one install instead of racing npm against itself in one folder.
pub fn openid_client_installed() -> bool {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = openid_client_dir();
    if dir.join("node_modules/openid-client/package.json").exists() {
        return true;
    }
    let npm = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output();
    match npm {
        Ok(out) if out.status.success() => true,
        other => {
            let why = match &other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            if std::env::var_os("CI").is_some() {
                panic!("npm ci of openid-client failed, but CI is set: this test must run\n{why}")
            }
            eprintln!("SKIPPED: cannot npm ci openid-client: {why}");
            false
        }
    }
}

// ---- Security profiles (par.rs, fapi2.rs) ----

/// Options for a server under `--profile fapi2` (the FAPI 2.0 Security Profile); set
/// more fields on the result as usual.
pub fn fapi2_options() -> Options {
    let mut opts = Options::default();
    opts.global.profile = Some(deedbolt_core::profile::Profile::Fapi2);
    opts
}
