//! What the management commands share: the key vault they open on the store, and how they
//! print times and tables.

use std::sync::Arc;

use deedbolt_core::clock::UnixTime;
use deedbolt_core::keyring::KeyVault;

use crate::config;
use crate::startup;
use crate::storage::Store;

/// The key vault on `store`, sealed under `DEEDBOLT_MASTER_KEY` when it is set (development
/// mode, said so, otherwise).
pub(crate) fn vault(store: &Store, data_dir: &std::path::Path) -> anyhow::Result<KeyVault> {
    let master = config::master_key_from_env()?;
    if master.is_none() {
        startup::warn_development_mode(data_dir);
    }
    Ok(KeyVault::new(store.clone(), master.map(Arc::new)))
}

/// A time as `YYYY-MM-DD HH:MM:SS UTC` (the seconds when out of range).
pub(crate) fn utc(at: UnixTime) -> String {
    match time::OffsetDateTime::from_unix_timestamp(at.0) {
        Ok(t) => format!(
            "{}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => at.0.to_string(),
    }
}

/// Prints `rows` under `headers`, each column as wide as its widest cell (the last one
/// unpadded).
pub(crate) fn print_table<const N: usize>(headers: [&str; N], rows: &[[String; N]]) {
    let mut widths = headers.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
}
