//! sled engine, group commit: [`Filing`]s from many requests → one transaction
//! each, applied in turn by the applier thread → made durable by one flush per round
//! on the flusher thread → every request of the round answered.
//!
//! The two threads overlap: while the flusher waits for the disk, the applier applies
//! the filings that arrived meanwhile, and they share the next flush. The applier
//! takes everything waiting as one batch: it appends the batch's raw messages to
//! the raw-message log and fdatasyncs it *before* applying the transactions, so a
//! record never reaches sled (whose own background flush may persist it at any
//! time) pointing at bytes that are not on disk. Nothing is
//! answered before the flush that covers it has returned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SledStore;
use crate::store::committer::{Job, Reply};
use crate::store::{Committed, Filing, PackedRaw, StoreError};

/// A filing's outcome, the generation of the database it was written to, and
/// who waits for it.
type Applied = (Result<Committed, StoreError>, u64, Reply);

/// Most filings answered by one flush.
const MAX_ROUND: usize = 1024;

/// Starts the applier and flusher threads on `jobs`.
pub(super) fn start(
    store: SledStore,
    jobs: mpsc::Receiver<Job>,
    in_flight: Arc<AtomicUsize>,
    window: Duration,
) -> std::io::Result<()> {
    let (done_tx, done_rx) = mpsc::channel::<Vec<Applied>>();
    let applier_store = store.clone();
    std::thread::Builder::new()
        .name("intake-apply".into())
        .spawn(move || apply_loop(applier_store, jobs, done_tx))?;
    std::thread::Builder::new()
        .name("intake-flush".into())
        .spawn(move || flush_loop(store, done_rx, in_flight, window))?;
    Ok(())
}

/// Applies filings as they come; hands each batch (all that was waiting) to the flusher.
fn apply_loop(store: SledStore, rx: mpsc::Receiver<Job>, done: mpsc::Sender<Vec<Applied>>) {
    while let Ok(first) = rx.recv() {
        let mut items = Vec::with_capacity(64);
        items.push(first);
        while items.len() < MAX_ROUND {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        let t0 = Instant::now();
        let refs: Vec<(&Filing, &PackedRaw)> = items.iter().map(|(f, raw, _)| (f, raw)).collect();
        let (generation, results) = store.apply_batch(&refs);
        let store_us = t0.elapsed().as_micros() as u64;
        let batch: Vec<Applied> = items
            .into_iter()
            .zip(results)
            .map(|((_, _, reply), res)| {
                let res = res.map(|mut c| {
                    c.record.timings.store_us = store_us;
                    c
                });
                (res, generation, reply)
            })
            .collect();
        if done.send(batch).is_err() {
            // The flusher is gone: the dropped replies answer `CommitterGone`.
            return;
        }
    }
}

/// Flushes once for every batch applied so far (waiting up to `window` for requests
/// still evaluating), then answers them all.
fn flush_loop(
    store: SledStore,
    rx: mpsc::Receiver<Vec<Applied>>,
    in_flight: Arc<AtomicUsize>,
    window: Duration,
) {
    let mut round: Vec<Applied> = Vec::with_capacity(256);
    while let Ok(first) = rx.recv() {
        let started = Instant::now();
        round.extend(first);
        loop {
            match rx.try_recv() {
                Ok(batch) => {
                    round.extend(batch);
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            // Others are still evaluating: wait a little for them to join this flush.
            let left = window.saturating_sub(started.elapsed());
            if in_flight.load(Ordering::SeqCst) == 0 || left.is_zero() || round.len() >= MAX_ROUND {
                break;
            }
            match rx.recv_timeout(left.min(Duration::from_micros(200))) {
                Ok(batch) => round.extend(batch),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        answer(&store, &mut round);
    }
}

fn answer(store: &SledStore, round: &mut Vec<Applied>) {
    let mut fault = round.iter().any(|(r, ..)| {
        matches!(
            r,
            Err(StoreError::Sled { .. } | StoreError::RawLog { .. } | StoreError::Reopening)
        )
    });
    // A round of re-deliveries only needs no flush: what they read was flushed
    // by an earlier round (rounds are answered in order) or is in this one.
    let flushed = if round
        .iter()
        .any(|(r, ..)| r.as_ref().is_ok_and(|c| !c.redelivery))
    {
        store.flush_generation().map_err(Arc::new)
    } else {
        store.t().map(|t| t.generation).map_err(Arc::new)
    };
    fault |= flushed.is_err();
    for (res, generation, reply) in round.drain(..) {
        let out = match (&flushed, res) {
            (Err(e), Ok(_)) => {
                tracing::error!(error = %e, "flush failed; the write may be lost");
                Err(e.clone())
            }
            // Written to a database that failed and was reopened since: lost with
            // it, so the sender must retry.
            (Ok(now), Ok(_)) if *now != generation => Err(Arc::new(StoreError::Reopening)),
            (_, res) => res.map_err(Arc::new),
        };
        let _ = reply.send(out);
    }
    if fault {
        // sled refuses everything after an I/O error: reopen it, so that the
        // service recovers by itself once the disk has room or is writable.
        if let Err(e) = store.heal() {
            tracing::warn!(error = %e, "store still unavailable");
        }
    }
}
