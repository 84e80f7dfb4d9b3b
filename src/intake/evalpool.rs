//! The evaluation pool of the hook: parse, facts and policy of every posted
//! message run on threads of their own (`rules.eval_threads`), never on the HTTP
//! workers, which only await the result. A policy that takes its whole budget on
//! every message can then slow the messages behind it, but `/healthz`, the API
//! and the portal keep answering. The queue in front of the threads is bounded
//! (`rules.eval_queue`): when it is full the hook answers 503 `overloaded` and the
//! gateway retries later, instead of the process piling up work without end.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// Why a job did not run.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("every evaluation thread is busy and the queue is full")]
    Overloaded,
    #[error("the evaluation task failed")]
    Failed,
}

/// Threads that evaluate messages, behind a bounded queue.
#[derive(Clone)]
pub struct EvalPool {
    tx: SyncSender<Job>,
}

impl std::fmt::Debug for EvalPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EvalPool")
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job.
        let job = match rx.lock() {
            Ok(r) => r.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            // A panicking job drops its answer channel: the caller sees `Failed`.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            // Every sender is gone: the service stopped.
            Err(_) => return,
        }
    }
}

impl EvalPool {
    /// Starts `threads` threads behind a queue of `queue` waiting jobs.
    ///
    /// # Errors
    /// A thread could not be started.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<EvalPool> {
        let (tx, rx) = sync_channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("intake-eval-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(EvalPool { tx })
    }

    /// Runs `f` on a pool thread (inside the caller's tracing span) and awaits it.
    ///
    /// # Errors
    /// [`PoolError::Overloaded`] when the queue is full; [`PoolError::Failed`]
    /// when `f` panicked.
    pub async fn run<T, F>(&self, f: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (otx, orx) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move || {
            let _entered = span.enter();
            let _ = otx.send(f());
        });
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(PoolError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(PoolError::Failed),
        }
        orx.await.map_err(|_| PoolError::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn full_queue_is_overloaded_and_work_still_runs() {
        let pool = EvalPool::start(1, 1).unwrap();
        let slow = pool.clone();
        let a = tokio::spawn(async move {
            slow.run(|| std::thread::sleep(Duration::from_millis(300)))
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = pool.clone();
        let b = tokio::spawn(async move { queued.run(|| 2).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(pool.run(|| 3).await, Err(PoolError::Overloaded)));
        a.await.unwrap().unwrap();
        assert_eq!(b.await.unwrap().unwrap(), 2);
        assert_eq!(pool.run(|| 4).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let pool = EvalPool::start(1, 4).unwrap();
        assert!(matches!(
            pool.run(|| -> u8 { panic!("boom") }).await,
            Err(PoolError::Failed)
        ));
        assert_eq!(pool.run(|| 5).await.unwrap(), 5);
    }
}
