//! The audit writer: records go through a bounded channel to one task that commits them
//! in batches (group commit), so writing audit records never serializes the hot path.
//!
//! Nothing is dropped: when the buffer is full, [`AuditLog::record`] waits for room (back
//! pressure on the request that produced the record) and counts the wait in
//! `deedbolt_audit_backpressure_total`. On shutdown the writer drains the channel before
//! it exits; a failed batch is retried until it is written.

use std::sync::Arc;
use std::time::Duration;

use deedbolt_core::audit::AuditRecord;
use deedbolt_core::ports::AuditStore;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// The most records waiting for the writer.
pub const AUDIT_BUFFER: usize = 8192;
/// The most records committed in one write.
const BATCH: usize = 512;
/// How long the writer gathers records before committing.
const GATHER: Duration = Duration::from_millis(5);

/// A handle for emitting audit records.
#[derive(Clone, Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<AuditRecord>,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    /// A log and the receiving end for [`run_writer`].
    pub fn new(metrics: Arc<Metrics>) -> (Self, mpsc::Receiver<AuditRecord>) {
        let (tx, rx) = mpsc::channel(AUDIT_BUFFER);
        (AuditLog { tx, metrics }, rx)
    }

    /// Queues a record, waiting for room if the buffer is full.
    pub async fn record(&self, record: AuditRecord) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(record)) => {
                self.metrics.audit_backpressure();
                if self.tx.send(record).await.is_err() {
                    tracing::error!("audit writer is gone; record not written");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("audit writer is gone; record not written");
            }
        }
    }
}

/// Writes records until every sender is gone and the channel is drained.
pub async fn run_writer(
    mut rx: mpsc::Receiver<AuditRecord>,
    store: Arc<dyn AuditStore>,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        // Group commit: let what arrives within a few milliseconds gather in the channel,
        // then take it all, so that under load a commit carries hundreds of records and
        // the writer wakes once per batch (a wake-up per record, often on the other core,
        // cost more CPU than writing the record).
        if batch.len() < BATCH {
            tokio::time::sleep(GATHER).await;
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
        }
        let mut delay = Duration::from_millis(50);
        loop {
            match store.insert_audit(&batch).await {
                Ok(n) => {
                    metrics.audit_written(n);
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, records = batch.len(), "cannot write audit records; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}
