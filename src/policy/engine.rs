//! The single Rhai engine setup shared by the server and every tool: raw engine
//! plus the standard packages, strict variables, sandbox limits, no `eval`, no
//! modules (the `no_module` feature), no capturing closures (`no_closure`: every
//! call is cheaper without shared values), `print`/`debug` routed to `tracing`, and the
//! script API of [`super::api`].

use std::sync::LazyLock;

use rhai::packages::{Package, StandardPackage};
use rhai::Engine;

/// Sandbox limits; a script that exceeds one fails with a `policy_error`.
pub mod limits {
    /// Operations per script run (a runaway loop stops here, in a few ms).
    pub const MAX_OPERATIONS: u64 = 2_000_000;
    /// Function call nesting.
    pub const MAX_CALL_LEVELS: usize = 32;
    /// Expression nesting at the top level and inside functions.
    pub const MAX_EXPR_DEPTH: usize = 64;
    /// Longest string a script may build, in bytes.
    pub const MAX_STRING: usize = 2 * 1024 * 1024;
    /// Largest array and object map.
    pub const MAX_ARRAY: usize = 50_000;
    pub const MAX_MAP: usize = 10_000;
    /// Variables alive at once.
    pub const MAX_VARIABLES: usize = 1_000;
}

static ENGINE: LazyLock<Engine> = LazyLock::new(build);

/// The process-wide engine.
pub fn shared() -> &'static Engine {
    &ENGINE
}

/// Builds the engine (once per process; see [`shared`]).
pub fn build() -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(StandardPackage::new().as_shared_module());
    engine
        .set_max_operations(limits::MAX_OPERATIONS)
        .set_max_call_levels(limits::MAX_CALL_LEVELS)
        .set_max_expr_depths(limits::MAX_EXPR_DEPTH, limits::MAX_EXPR_DEPTH)
        .set_max_string_size(limits::MAX_STRING)
        .set_max_array_size(limits::MAX_ARRAY)
        .set_max_map_size(limits::MAX_MAP)
        .set_max_variables(limits::MAX_VARIABLES)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true);
    engine.disable_symbol("eval");
    // Deadline, charged operations and memory of the evaluation (budget.rs).
    engine.on_progress(super::budget::progress);
    // Scripts are compiled once and run millions of times: fold constants fully.
    engine.set_optimization_level(rhai::OptimizationLevel::Full);
    engine.on_print(|s| {
        let rule = super::api::current_rule();
        tracing::info!(rule = %rule, "{s}");
    });
    engine.on_debug(|s, src, pos| {
        let rule = super::api::current_rule();
        tracing::debug!(rule = %rule, source = src.unwrap_or(""), position = %pos, "{s}");
    });
    super::api::register(&mut engine);
    engine
}
