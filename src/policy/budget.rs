//! The sandbox's budget for one message's evaluation (stage 3): a wall-clock
//! deadline (`rules.max_eval_ms`), operations charged by native helpers in
//! proportion to the bytes they process, and a memory ceiling that counts every
//! byte a script holds, nested values included (strings inside maps and arrays).
//!
//! Rhai counts its own operations and checks sizes only where it assigns values;
//! it neither sees the time a native call takes nor the strings put into a map by
//! index. So the engine's progress callback ([`progress`], called on every
//! operation) also checks the deadline, the operations the helpers charged
//! ([`charge`]) and the bytes the evaluating thread allocated since the
//! evaluation began (counted by the process allocator, [`Metered`]). A limit hit
//! stops the script with an error that scripts cannot catch, and the rule's
//! failure becomes a `policy_error` finding (SPEC §1).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::time::{Duration, Instant};

use rhai::{Dynamic, EvalAltResult, Position};

/// Bytes of input a native helper may process per operation it is charged.
pub const BYTES_PER_OPERATION: usize = 16;

/// Most bytes a script may hold at once beyond what it started with.
pub const MAX_MEMORY: i64 = 64 * 1024 * 1024;

/// Limits of one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock budget of one message's rules (SPEC §11 `rules.max_eval_ms`).
    pub max_eval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_eval: Duration::from_millis(200),
        }
    }
}

#[derive(Clone, Copy)]
struct State {
    deadline: Instant,
    /// Operations charged by helpers in the current script.
    charged: u64,
    max_ops: u64,
}

thread_local! {
    static STATE: Cell<Option<State>> = const { Cell::new(None) };
    /// Bytes allocated minus bytes freed by this thread while metering is on.
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static METERING: Cell<bool> = const { Cell::new(false) };
}

/// Starts a budget on this thread: the deadline is `now + max_eval`.
pub fn begin(limits: &Limits, max_ops: u64) {
    STATE.with(|s| {
        s.set(Some(State {
            deadline: Instant::now() + limits.max_eval,
            charged: 0,
            max_ops,
        }))
    });
    LIVE.with(|l| l.set(0));
    METERING.with(|m| m.set(true));
}

/// Gives the current evaluation a new deadline `extra` from now (the decide
/// script runs even when the rules used up the budget).
pub fn extend(extra: Duration) {
    STATE.with(|s| {
        if let Some(mut st) = s.get() {
            st.deadline = Instant::now() + extra;
            s.set(Some(st));
        }
    });
}

/// Ends the budget of this thread.
pub fn end() {
    METERING.with(|m| m.set(false));
    STATE.with(|s| s.set(None));
}

/// A new script starts: its operation count starts again (as Rhai's does).
/// The memory count starts again too: what earlier scripts held is gone.
pub fn next_script() {
    STATE.with(|s| {
        if let Some(mut st) = s.get() {
            st.charged = 0;
            s.set(Some(st));
        }
    });
    LIVE.with(|l| l.set(0));
}

/// Whether the deadline has passed.
pub fn expired() -> bool {
    STATE.with(|s| s.get().is_some_and(|st| Instant::now() >= st.deadline))
}

fn terminated(why: &str) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorTerminated(
        Dynamic::from(why.to_owned()),
        Position::NONE,
    ))
}

/// What limit, if any, the evaluation has passed after `ops` Rhai operations.
fn over(ops: u64) -> Option<&'static str> {
    let st = STATE.with(Cell::get)?;
    if ops.saturating_add(st.charged) > st.max_ops {
        return Some("operation limit exceeded (native helpers count the bytes they process)");
    }
    if LIVE.with(Cell::get) > MAX_MEMORY {
        return Some("memory limit exceeded (nested values count)");
    }
    if Instant::now() >= st.deadline {
        return Some("wall-clock budget (rules.max_eval_ms) exceeded");
    }
    None
}

/// The engine's progress callback: stops the script on any limit.
pub fn progress(ops: u64) -> Option<Dynamic> {
    over(ops).map(|why| Dynamic::from(why.to_owned()))
}

/// Charges a helper that is about to process `bytes` bytes; fails (and the
/// helper does no work) when that passes the operation limit, the memory
/// ceiling or the deadline. Outside an evaluation nothing is charged.
///
/// # Errors
/// The limit passed, as an error scripts cannot catch.
pub fn charge(bytes: usize) -> Result<(), Box<EvalAltResult>> {
    let Some(mut st) = STATE.with(Cell::get) else {
        return Ok(());
    };
    st.charged = st
        .charged
        .saturating_add(1 + (bytes / BYTES_PER_OPERATION) as u64);
    STATE.with(|s| s.set(Some(st)));
    match over(0) {
        Some(why) => Err(terminated(why)),
        None => Ok(()),
    }
}

/// The process allocator with a per-thread count of live bytes while an
/// evaluation runs on that thread; otherwise it only forwards.
pub struct Metered<A>(pub A);

fn note(delta: i64) {
    // `try_with`: the allocator may run while a thread's locals are torn down.
    if METERING.try_with(Cell::get).unwrap_or(false) {
        let _ = LIVE.try_with(|l| l.set(l.get().wrapping_add(delta)));
    }
}

// SAFETY: every call forwards to the wrapped allocator with the same arguments;
// the bookkeeping touches only const-initialised thread-locals (no allocation).
unsafe impl<A: GlobalAlloc> GlobalAlloc for Metered<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: forwarded as received.
        unsafe { self.0.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: forwarded as received.
        unsafe { self.0.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64));
        // SAFETY: forwarded as received.
        unsafe { self.0.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64);
        // SAFETY: forwarded as received.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charge_fails_past_the_operation_limit_and_not_outside_an_evaluation() {
        assert!(charge(10 << 20).is_ok(), "no budget installed");
        begin(
            &Limits {
                max_eval: Duration::from_secs(60),
            },
            1_000,
        );
        assert!(charge(100 * BYTES_PER_OPERATION).is_ok());
        let e = charge(1_000 * BYTES_PER_OPERATION).unwrap_err();
        assert!(
            e.to_string().contains("terminated")
                || matches!(*e, EvalAltResult::ErrorTerminated(..))
        );
        next_script();
        assert!(charge(100 * BYTES_PER_OPERATION).is_ok());
        end();
    }

    #[test]
    fn deadline_passes() {
        begin(
            &Limits {
                max_eval: Duration::from_millis(1),
            },
            u64::MAX,
        );
        std::thread::sleep(Duration::from_millis(3));
        assert!(expired());
        assert!(progress(1).is_some());
        extend(Duration::from_secs(60));
        assert!(progress(1).is_none());
        end();
    }
}
