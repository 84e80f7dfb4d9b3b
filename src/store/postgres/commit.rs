//! PostgreSQL engine, group commit: filings from many requests → one
//! transaction per batch (everything waiting when the previous one committed, up
//! to [`MAX_BATCH`]), so concurrent filings share the round trips and the WAL
//! flush. Two committer threads overlap: while one waits for its commit, the
//! other gathers and writes the next batch (they take turns on the counter row,
//! so numbers stay in order of commit). Nothing is answered before its commit
//! returned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::PgStore;
use crate::store::committer::Job;
use crate::store::{Filing, PackedRaw};

/// Most filings in one transaction.
const MAX_BATCH: usize = 256;
/// Committer threads per node.
const THREADS: usize = 2;

pub(super) fn start(
    store: PgStore,
    jobs: mpsc::Receiver<Job>,
    in_flight: Arc<AtomicUsize>,
    window: Duration,
) -> std::io::Result<()> {
    let jobs = Arc::new(Mutex::new(jobs));
    for i in 0..THREADS {
        let (store, jobs, in_flight) = (store.clone(), jobs.clone(), in_flight.clone());
        std::thread::Builder::new()
            .name(format!("intake-pg-commit-{i}"))
            .spawn(move || run(store, jobs, in_flight, window))?;
    }
    Ok(())
}

fn run(
    store: PgStore,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    in_flight: Arc<AtomicUsize>,
    window: Duration,
) {
    loop {
        let batch = {
            let rx = jobs.lock().unwrap_or_else(|p| p.into_inner());
            let Ok(first) = rx.recv() else { return };
            let started = Instant::now();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(mpsc::TryRecvError::Disconnected) => break,
                    Err(mpsc::TryRecvError::Empty) => {
                        // Others are still evaluating: wait a little for them.
                        let left = window.saturating_sub(started.elapsed());
                        if in_flight.load(Ordering::SeqCst) == 0 || left.is_zero() {
                            break;
                        }
                        match rx.recv_timeout(left.min(Duration::from_micros(200))) {
                            Ok(job) => batch.push(job),
                            Err(mpsc::RecvTimeoutError::Timeout) => {}
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        }
                    }
                }
            }
            batch
        };
        let t0 = Instant::now();
        let refs: Vec<(&Filing, &PackedRaw)> = batch.iter().map(|(f, raw, _)| (f, raw)).collect();
        let results = store.block(store.file_batch(&refs));
        let store_us = t0.elapsed().as_micros() as u64;
        for ((_, _, reply), res) in batch.into_iter().zip(results) {
            let res = res.map(|mut c| {
                c.record.timings.store_us = store_us;
                c
            });
            let _ = reply.send(res.map_err(Arc::new));
        }
    }
}
