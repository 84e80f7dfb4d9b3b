//! Hot reload of `rules/`: `POST /v1/admin/reload`, `SIGHUP`, and a watcher of
//! the directory all go through [`reload`], which compiles the new set beside the
//! running one and swaps it whole ([`RulesHandle::reload`]); a broken set is
//! refused, logged, kept as the last reload error and counted in metrics.
//!
//! The watcher polls: every second it hashes what the revision covers (the
//! top-level `*.rhai`, `lists/` and `templates/`, a few dozen small files, well
//! under a millisecond) and reloads once a change has held still for one more
//! poll, so an editor's save of several files, or a `git pull`, is loaded once
//! and whole. Polling needs no platform notification API, so it also sees
//! changes on network and bind mounts and editors' rename-on-save, and costs
//! no dependency; the price is one to two seconds of latency, which a policy
//! change can afford.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::policy::{RuleError, RulesHandle};

/// How often the watcher looks at `rules/`.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What asked for a reload (a metrics label and a log field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Api,
    Sighup,
    Watch,
}

impl Trigger {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Sighup => "sighup",
            Trigger::Watch => "watch",
        }
    }
}

/// Reloads the rules and counts the result.
///
/// # Errors
/// The diagnostics of a refused set; the running set stays.
pub fn reload(handle: &RulesHandle, trigger: Trigger) -> Result<String, RuleError> {
    tracing::info!(trigger = trigger.as_str(), "reloading rules");
    let res = handle.reload();
    crate::metrics::record_reload(trigger.as_str(), res.is_ok());
    res
}

/// A hash of the files a rules revision covers (names, sizes and contents).
pub fn fingerprint(root: &Path) -> blake3::Hash {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "rhai") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    let mut stack = vec![root.join("lists"), root.join("templates")];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for p in rd.filter_map(Result::ok).map(|e| e.path()) {
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    let mut h = blake3::Hasher::new();
    for f in files {
        h.update(f.as_os_str().as_encoded_bytes());
        h.update(&[0]);
        match std::fs::read(&f) {
            Ok(bytes) => {
                h.update(&(bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(_) => {
                h.update(b"unreadable");
            }
        }
    }
    h.finalize()
}

async fn fingerprint_async(root: PathBuf) -> Option<blake3::Hash> {
    tokio::task::spawn_blocking(move || fingerprint(&root))
        .await
        .ok()
}

/// Watches the rules directory until `shutdown` turns true. The directory's
/// state is taken now, when the watcher is made, so no edit between this call
/// and the first poll is missed.
pub fn watch(
    handle: Arc<RulesHandle>,
    interval: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> {
    let root = handle.current().root.clone();
    let seen = fingerprint(&root);
    watch_from(handle, root, seen, interval, shutdown)
}

async fn watch_from(
    handle: Arc<RulesHandle>,
    root: PathBuf,
    mut seen: blake3::Hash,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut pending = None;
    // Without a sender (the app was turned into a bare server) nobody can ask to
    // stop: watch until the runtime ends.
    let mut stoppable = true;
    tracing::info!(path = %root.display(), every_ms = interval.as_millis() as u64, "watching rules");
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            changed = shutdown.changed(), if stoppable => {
                match changed {
                    Ok(()) if *shutdown.borrow() => return,
                    Ok(()) => {}
                    Err(_) => stoppable = false,
                }
                continue;
            }
        }
        let Some(now) = fingerprint_async(root.clone()).await else {
            return;
        };
        if now == seen {
            pending = None;
            continue;
        }
        // Changed: wait until it holds still for one more poll.
        if pending != Some(now) {
            pending = Some(now);
            continue;
        }
        seen = now;
        pending = None;
        let h = handle.clone();
        // Failures are logged, recorded and counted by `reload`.
        let _ = tokio::task::spawn_blocking(move || reload(&h, Trigger::Watch)).await;
    }
}

/// Reloads on every `SIGHUP` until `shutdown` changes or its sender is gone.
/// The handler is installed now, by this call (inside the runtime), so a
/// signal that arrives before the returned future first runs is not fatal.
#[cfg(unix)]
pub fn on_sighup(
    handle: Arc<RulesHandle>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let hup = signal(SignalKind::hangup());
    async move {
        let mut hup = match hup {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload through the API");
                return;
            }
        };
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() { return; }
                    let h = handle.clone();
                    let _ = tokio::task::spawn_blocking(move || reload(&h, Trigger::Sighup)).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_sees_rules_lists_and_templates_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("lists")).unwrap();
        std::fs::write(p.join("decide.rhai"), "1").unwrap();
        let a = fingerprint(p);
        std::fs::write(p.join("README.md"), "docs").unwrap();
        assert_eq!(a, fingerprint(p), "docs are not policy");
        std::fs::write(p.join("lists/x.txt"), "word").unwrap();
        let b = fingerprint(p);
        assert_ne!(a, b);
        std::fs::write(p.join("decide.rhai"), "2").unwrap();
        assert_ne!(b, fingerprint(p));
    }
}
