//! `spawn_app` and friends: what every integration test uses.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use deedbolt::config::{CommonSettings, FileConfig, ServeOverrides, ServeSettings};
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
    /// An HTTP client.
    pub http: reqwest::Client,
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
    /// Flag-level overrides.
    pub overrides: ServeOverrides,
}

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
    let settings = ServeSettings::resolve(
        CommonSettings {
            data_dir: data_dir.path().to_path_buf(),
        },
        overrides,
        &FileConfig::default(),
    )?;
    let master = opts
        .master_key
        .as_deref()
        .map(MasterKey::parse)
        .transpose()?;
    let app = Application::build(settings, master).await?;
    let base = format!("http://{}", app.addr());
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    Ok(TestApp {
        base,
        data_dir,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
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
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("--data-dir").arg(data_dir).args(args);
    cmd.env_remove("DEEDBOLT_MASTER_KEY");
    cmd.env("DEEDBOLT_LOG", "warn");
    if let Some(k) = master_key {
        cmd.env("DEEDBOLT_MASTER_KEY", k);
    }
    cmd.output().expect("run deedbolt CLI")
}

/// A registered client's credentials.
#[derive(Clone, Debug)]
pub struct Creds {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    /// Runs the CLI against this server's data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        run_cli(self.data_dir.path(), self.master_key.as_deref(), args)
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

    /// The JWKS document.
    pub async fn jwks(&self) -> Value {
        self.get("/jwks.json", None)
            .await
            .json()
            .await
            .expect("JWKS JSON")
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
