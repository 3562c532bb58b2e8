//! The data directory and the database files in it are the server user's alone: they hold
//! secret and token hashes, users' password hashes, tenants' records and (without a master
//! key) private signing keys.

#![cfg(unix)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::helpers::*;

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Every file in `dir`, by name, with its permission bits.
fn file_modes(dir: &Path) -> Vec<(String, u32)> {
    let mut files: Vec<(String, u32)> = std::fs::read_dir(dir)
        .expect("read data dir")
        .map(|e| e.expect("entry"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                mode(&e.path()),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_server_creates_its_data_directory_and_database_files_owner_only() {
    let parent = tempfile::tempdir().expect("tempdir");
    let data_dir = parent.path().join("deedbolt-data");
    let mut server = ServeProcess::start(
        &[
            OsStr::new("serve"),
            OsStr::new("--data-dir"),
            data_dir.as_os_str(),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
        ],
        &[],
    );
    server.wait_ready();
    // Running, with its write-ahead log open.
    assert_eq!(mode(&data_dir), 0o700, "the data directory");
    let files = file_modes(&data_dir);
    for name in ["deedbolt.db", "deedbolt.db-wal", "deedbolt.db-shm"] {
        assert!(files.iter().any(|(n, _)| n == name), "{name} in {files:?}");
    }
    for (name, bits) in &files {
        assert_eq!(*bits, 0o600, "{name} is {bits:o}");
    }
}

#[tokio::test]
async fn database_files_left_readable_by_others_are_restricted_at_start() {
    let app = spawn_app().await;
    let data_dir = app.data_dir.clone();
    app.stop().await;
    let dir = data_dir.path();
    for (name, _) in file_modes(dir) {
        std::fs::set_permissions(dir.join(&name), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    let app = spawn_app_with(Options {
        data_dir: Some(data_dir.clone()),
        ..Default::default()
    })
    .await;
    app.create_client("property:read");
    for (name, bits) in file_modes(dir) {
        assert_eq!(bits, 0o600, "{name} is {bits:o}");
    }
}
