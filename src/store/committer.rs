//! Store interface, group commit's front: a request's [`Filing`] → the engine's
//! committer (a bounded channel) → the request waits for its [`Committed`] answer,
//! which comes only once the filing is durable.
//!
//! The engine behind decides how filings share the cost of durability (sled: one
//! flush per round; PostgreSQL: one transaction per batch). [`InFlight`] tells it
//! how many requests are still evaluating and may soon join a round.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::{Committed, Filing, PackedRaw, Store, StoreError};

/// Where a filing's outcome goes.
pub type Reply = tokio::sync::oneshot::Sender<Result<Committed, Arc<StoreError>>>;

/// A filing on its way to the engine: the filing, its raw bytes packed on the
/// request's thread, and who waits for the answer.
pub type Job = (Filing, PackedRaw, Reply);

/// Filings waiting for the engine at most; a full channel blocks a pool thread.
const QUEUE: usize = 4096;

/// Group-commit front of the store; clone freely.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::SyncSender<Job>,
    in_flight: Arc<AtomicUsize>,
}

/// Marks a request that is still evaluating and may soon submit a filing (so the
/// committer waits a little for it); drop it when the filing is submitted.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Committer {
    /// Starts the store engine's committer. `window` is the longest a round waits
    /// for requests still being evaluated to join it.
    pub fn start(store: Store, window: Duration) -> Committer {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let in_flight = Arc::new(AtomicUsize::new(0));
        if let Err(e) = store.start_committer(rx, in_flight.clone(), window) {
            // The channel is closed with the threads that were not started:
            // every commit then fails with `CommitterGone` (503), nothing is lost.
            tracing::error!(error = %e, "cannot start the commit threads");
        }
        Committer { tx, in_flight }
    }

    /// Call when a request starts evaluating; drop the guard before submitting.
    pub fn begin(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.in_flight.clone())
    }

    /// Files a message durably; resolves once it is durable.
    ///
    /// # Errors
    /// The transaction or the flush failed; the committer is gone.
    pub async fn commit(&self, filing: Filing) -> Result<Committed, Arc<StoreError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Compressed here, in parallel, not on the committer's serial path.
        let packed = PackedRaw::pack(&filing.raw);
        // Usually there is room: no thread hop. The channel is bounded: when it is
        // full, block a pool thread, not the async worker.
        match self.tx.try_send((filing, packed, tx)) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Disconnected(_)) => {
                return Err(Arc::new(StoreError::CommitterGone))
            }
            Err(mpsc::TrySendError::Full(item)) => {
                let sender = self.tx.clone();
                let sent = tokio::task::spawn_blocking(move || sender.send(item).is_ok())
                    .await
                    .unwrap_or(false);
                if !sent {
                    return Err(Arc::new(StoreError::CommitterGone));
                }
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(Arc::new(StoreError::CommitterGone)))
    }

    /// Blocking variant for non-async callers (CLI, corpus runner).
    ///
    /// # Errors
    /// As [`Committer::commit`].
    pub fn commit_blocking(&self, filing: Filing) -> Result<Committed, Arc<StoreError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let packed = PackedRaw::pack(&filing.raw);
        self.tx
            .send((filing, packed, tx))
            .map_err(|_| Arc::new(StoreError::CommitterGone))?;
        rx.blocking_recv()
            .unwrap_or_else(|_| Err(Arc::new(StoreError::CommitterGone)))
    }
}
