//! The master key: keys and the pepper sealed at rest, and a sealed data directory that is
//! useless without its key (to the server and to the CLI).

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use deedbolt::config::ServeOverrides;
use deedbolt_core::seal::MasterKey;
use serde_json::Value;

use crate::helpers::{
    contains_bytes, data_dir_files, jwt_part, run_bin_with_timeout, run_cli, spawn_app,
    spawn_app_with, try_spawn_app, Options,
};

/// The DER AlgorithmIdentifier `{ id-ecPublicKey, prime256v1 }` that starts every plain
/// PKCS#8 ES256 private key.
const P256_PKCS8_ALG_ID: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

/// The PKCS#8 AlgorithmIdentifier of an RSA key (rsaEncryption, NULL parameters).
const RSA_PKCS8_ALG_ID: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// The PKCS#8 AlgorithmIdentifier of an Ed25519 key (RFC 8410).
const ED25519_PKCS8_ALG_ID: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// The signing key of every algorithm, as its plain PKCS#8 would show in a file.
const PLAIN_KEY_MARKERS: [(&str, &[u8]); 3] = [
    ("ES256", P256_PKCS8_ALG_ID),
    ("RS256", RSA_PKCS8_ALG_ID),
    ("EdDSA", ED25519_PKCS8_ALG_ID),
];

/// Which files of the data directory hold a plain private key of any algorithm, with the
/// algorithm.
fn plain_keys_in(dir: &Path) -> Vec<String> {
    PLAIN_KEY_MARKERS
        .iter()
        .flat_map(|(alg, marker)| {
            store_contains(dir, marker)
                .into_iter()
                .map(move |file| format!("{alg} in {file}"))
        })
        .collect()
}

const ISSUER: &str = "http://127.0.0.1:1";

fn generate_master_key() -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(dir.path(), None, &["keys", "generate-master-key"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Runs a `... list --json` command, asserts success, returns the array.
fn cli_list(dir: &Path, key: Option<&str>, args: &[&str]) -> Vec<Value> {
    let out = run_cli(dir, key, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice::<Value>(&out.stdout).unwrap() {
        Value::Array(items) => items,
        other => panic!("expected a JSON array, got {other}"),
    }
}

fn keys_list(dir: &Path, key: Option<&str>) -> Vec<Value> {
    cli_list(dir, key, &["keys", "list", "--json"])
}

fn client_count(dir: &Path, key: Option<&str>) -> usize {
    cli_list(dir, key, &["client", "list", "--json"]).len()
}

fn store_contains(dir: &Path, needle: &[u8]) -> Vec<String> {
    data_dir_files(dir)
        .into_iter()
        .filter(|(_, bytes)| contains_bytes(bytes, needle))
        .map(|(name, _)| name)
        .collect()
}

fn with_issuer(data_dir: Option<std::sync::Arc<tempfile::TempDir>>, key: Option<&str>) -> Options {
    Options {
        data_dir,
        master_key: key.map(str::to_owned),
        database_url: None,
        global: Default::default(),
        overrides: ServeOverrides {
            issuer: Some(ISSUER.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn generate_master_key_prints_a_fresh_valid_key_without_touching_storage() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("never-created");
    let a = run_cli(&dir, None, &["keys", "generate-master-key"]);
    let b = run_cli(&dir, None, &["keys", "generate-master-key"]);
    assert!(a.status.success() && b.status.success());
    let (a, b) = (
        String::from_utf8(a.stdout).unwrap(),
        String::from_utf8(b.stdout).unwrap(),
    );
    let (a, b) = (a.trim(), b.trim());
    assert_eq!(a.len(), 44, "32 bytes in base64: {a}");
    assert_ne!(a, b, "every call makes a new key");
    assert!(MasterKey::parse(a).is_ok());
    assert!(!dir.exists(), "generating a key opens no data directory");
}

#[tokio::test]
async fn development_mode_stores_keys_in_plain_form() {
    // The control for the sealed test below: without a master key the PKCS#8 key is
    // visible in the data directory, so the search really finds plain keys.
    let app = spawn_app().await;
    let listed = keys_list(app.data_dir.path(), None);
    assert_eq!(listed.len(), 3, "a key per algorithm: {listed:?}");
    assert!(listed.iter().all(|k| k["sealed"] == false), "{listed:?}");
    for (alg, marker) in PLAIN_KEY_MARKERS {
        assert!(
            !store_contains(app.data_dir.path(), marker).is_empty(),
            "plain PKCS#8 {alg} key not found in development mode"
        );
    }
}

#[tokio::test]
async fn a_sealed_data_directory_is_useless_without_its_master_key() {
    let key = generate_master_key();
    let other_key = generate_master_key();
    let app = spawn_app_with(with_issuer(None, Some(&key))).await;
    let creds = app.create_client("property:read");
    let token = app.access_token(&creds, None).await;
    assert_eq!(app.get("/api/properties", Some(&token)).await.status(), 200);
    let kid = jwt_part(&token, 0)["kid"].as_str().unwrap().to_owned();

    let listed = keys_list(app.data_dir.path(), Some(&key));
    assert_eq!(listed.len(), 3, "a key per algorithm: {listed:?}");
    assert!(listed.iter().all(|k| k["sealed"] == true), "{listed:?}");
    let dir = app.data_dir.clone();
    let found = plain_keys_in(dir.path());
    assert!(found.is_empty(), "plain PKCS#8 key found in {found:?}");
    app.stop().await;
    let found = plain_keys_in(dir.path());
    assert!(
        found.is_empty(),
        "plain PKCS#8 key found in {found:?} after stop"
    );

    // The server refuses to start without the key, or with another key.
    let err = try_spawn_app(with_issuer(Some(dir.clone()), None))
        .await
        .err()
        .expect("started without the master key");
    let msg = format!("{err:#}");
    assert!(msg.contains("DEEDBOLT_MASTER_KEY"), "{msg}");
    let err = try_spawn_app(with_issuer(Some(dir.clone()), Some(&other_key)))
        .await
        .err()
        .expect("started with a different master key");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("wrong master key") && msg.contains("DEEDBOLT_MASTER_KEY"),
        "{msg}"
    );

    // The real binary says the same.
    let out = run_bin_with_timeout(
        &[
            OsStr::new("--data-dir"),
            dir.path().as_os_str(),
            OsStr::new("serve"),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
        ],
        &[],
        Duration::from_secs(15),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DEEDBOLT_MASTER_KEY is not set"),
        "{stderr}"
    );

    // The CLI cannot register clients or rotate secrets without it (the pepper is sealed).
    for k in [None, Some(other_key.as_str())] {
        let out = run_cli(
            dir.path(),
            k,
            &[
                "client",
                "create",
                "--name",
                "x",
                "--grant",
                "client_credentials",
                "--scope",
                "property:read",
                "--json",
            ],
        );
        assert!(!out.status.success(), "client create with key {k:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("DEEDBOLT_MASTER_KEY"), "{stderr}");
        assert!(out.stdout.is_empty(), "no secret printed");
        let out = run_cli(dir.path(), k, &["client", "rotate-secret", &creds.id]);
        assert!(!out.status.success(), "rotate-secret with key {k:?}");
    }
    assert_eq!(
        client_count(dir.path(), Some(&key)),
        1,
        "nothing was created"
    );

    // With the right key everything works as before.
    let app = spawn_app_with(with_issuer(Some(dir.clone()), Some(&key))).await;
    assert_eq!(app.get("/api/properties", Some(&token)).await.status(), 200);
    let fresh = app.access_token(&creds, None).await;
    assert_eq!(jwt_part(&fresh, 0)["kid"], kid.as_str());
    app.stop().await;
}

#[tokio::test]
async fn malformed_master_keys_are_refused_at_start() {
    let zeros = "0".repeat(64);
    for bad in ["short", zeros.as_str(), "", "   "] {
        let res = try_spawn_app(Options {
            master_key: Some(bad.to_owned()),
            ..Default::default()
        })
        .await;
        assert!(res.is_err(), "master key {bad:?} accepted");
    }
    let dir = tempfile::tempdir().unwrap();
    for (bad, expect) in [
        ("short", "32 random bytes"),
        (zeros.as_str(), "placeholder"),
        ("", "empty"),
    ] {
        let out = run_bin_with_timeout(
            &[
                OsStr::new("--data-dir"),
                dir.path().as_os_str(),
                OsStr::new("serve"),
                OsStr::new("--listen"),
                OsStr::new("127.0.0.1:0"),
            ],
            &[("DEEDBOLT_MASTER_KEY", bad)],
            Duration::from_secs(15),
        );
        assert!(!out.status.success(), "serve with master key {bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("DEEDBOLT_MASTER_KEY") && stderr.contains(expect),
            "{bad:?}: {stderr}"
        );
        // The CLI refuses it too, rather than falling back to development mode.
        let out = run_cli(
            dir.path(),
            Some(bad),
            &[
                "client",
                "create",
                "--name",
                "x",
                "--grant",
                "client_credentials",
                "--scope",
                "property:read",
            ],
        );
        assert!(
            !out.status.success(),
            "client create with master key {bad:?}"
        );
    }
}

#[tokio::test]
async fn rotating_keys_without_the_right_master_key_is_refused() {
    let key = generate_master_key();
    let other_key = generate_master_key();
    for given in [None, Some(other_key.as_str())] {
        let app = spawn_app_with(with_issuer(None, Some(&key))).await;
        let dir = app.data_dir.clone();
        app.stop().await;
        let before = keys_list(dir.path(), Some(&key));

        let out = run_cli(dir.path(), given, &["keys", "rotate", "--json"]);
        let after = keys_list(dir.path(), Some(&key));
        let what = if given.is_some() {
            "with a wrong master key"
        } else {
            "without the master key"
        };
        assert!(
            !out.status.success(),
            "keys rotate {what} succeeded on a sealed data directory; keys now: {after:?}"
        );
        assert_eq!(after, before, "the keys did not change");
        assert!(
            plain_keys_in(dir.path()).is_empty(),
            "a plain private key was written"
        );
        let app = try_spawn_app(with_issuer(Some(dir.clone()), Some(&key))).await;
        assert!(app.is_ok(), "the right key still starts the server");
    }
}

#[tokio::test]
async fn a_failed_start_with_the_wrong_master_key_leaves_the_data_directory_unchanged() {
    let key = generate_master_key();
    let other_key = generate_master_key();
    let app = spawn_app_with(with_issuer(None, Some(&key))).await;
    let creds = app.create_client("property:read");
    let token = app.access_token(&creds, None).await;
    let dir = app.data_dir.clone();
    app.stop().await;
    let before = keys_list(dir.path(), Some(&key));

    // The operator starts with the wrong key while also switching algorithm.
    let res = try_spawn_app(Options {
        data_dir: Some(dir.clone()),
        master_key: Some(other_key.clone()),
        database_url: None,
        global: Default::default(),
        overrides: ServeOverrides {
            issuer: Some(ISSUER.into()),
            signing_alg: Some("EdDSA".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    assert!(res.is_err(), "started with the wrong master key");
    drop(res);
    let after = keys_list(dir.path(), Some(&key));

    // The right key must still start the server, and nothing may have changed.
    let restarted = try_spawn_app(with_issuer(Some(dir.clone()), Some(&key))).await;
    let restarted = restarted.map_err(|e| format!("{e:#}"));
    assert!(
        restarted.is_ok(),
        "after a refused start with the wrong master key, the RIGHT key no longer starts the \
         server: {:?}; keys now: {after:?}",
        restarted.as_ref().err()
    );
    assert_eq!(
        after, before,
        "a refused start must not rotate keys (the new key is sealed under the wrong master key)"
    );
    let app = restarted.unwrap();
    assert_eq!(app.get("/api/properties", Some(&token)).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_start_without_the_master_key_leaves_the_data_directory_unchanged() {
    let key = generate_master_key();
    let app = spawn_app_with(with_issuer(None, Some(&key))).await;
    let dir = app.data_dir.clone();
    app.stop().await;
    let before = keys_list(dir.path(), Some(&key));

    let res = try_spawn_app(Options {
        data_dir: Some(dir.clone()),
        master_key: None,
        database_url: None,
        global: Default::default(),
        overrides: ServeOverrides {
            issuer: Some(ISSUER.into()),
            signing_alg: Some("EdDSA".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let err = res.err().expect("started without the master key");
    assert!(format!("{err:#}").contains("DEEDBOLT_MASTER_KEY"));
    let after = keys_list(dir.path(), Some(&key));
    assert_eq!(
        after, before,
        "a refused start must not change the keys (here: an unsealed key became current)"
    );
}

#[test]
fn the_wrong_master_key_error_is_stated_once() {
    let key = generate_master_key();
    let other = generate_master_key();
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(
        dir.path(),
        Some(&key),
        &[
            "client",
            "create",
            "--name",
            "x",
            "--grant",
            "client_credentials",
            "--scope",
            "property:read",
        ],
    );
    assert!(out.status.success());
    let out = run_cli(
        dir.path(),
        Some(&other),
        &[
            "client",
            "create",
            "--name",
            "y",
            "--grant",
            "client_credentials",
            "--scope",
            "property:read",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("wrong master key").count(),
        1,
        "stderr: {stderr}"
    );
}
