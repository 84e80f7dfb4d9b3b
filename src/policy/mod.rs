//! Stage 3, policy: [`Facts`] → findings → [`Decision`] by the scripts of a
//! [`RuleSet`]. Every rule runs on every message in file-name order; then the
//! decide script turns the findings into a decision.
//!
//! Evaluation is pure with respect to the outside world: scripts read the facts
//! and the read-only [`Lookups`]; they never write or send. A script error or a
//! limit hit becomes a `policy_error` finding and a `create`/`needs_review`
//! decision (SPEC §1): the message is never lost.

pub mod api;
pub mod calls;
pub mod contract;
pub mod engine;
pub mod lint;
pub mod probe;
pub mod rules;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use rhai::{Dynamic, Engine, EvalAltResult, Map, Scope, AST};
use serde::Serialize;

use crate::contracts::Contracts;
use crate::decision::{self, Decision, Finding, RawDecision};
use crate::facts::Facts;
pub use api::{Lookups, NoLookups};
pub use rules::{Diagnostic, Rule, RuleError, RuleSet};

/// What one rule did, for `--explain` and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct RuleTrace {
    pub rule: String,
    pub path: String,
    pub findings: Vec<String>,
    pub micros: u64,
    pub error: Option<String>,
    pub limit_hit: bool,
    /// Index range of this rule's findings in the evaluation's list.
    #[serde(skip)]
    new_findings: (usize, usize),
}

/// The result of running a rule set over one message.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub decision: Decision,
    pub trace: Vec<RuleTrace>,
    /// Errors as `path:line:col: message`.
    pub errors: Vec<String>,
    pub revision: String,
}

thread_local! {
    static RUNTIME: RefCell<Runtime> = RefCell::new(Runtime {
        scope: Scope::new(),
        caches: rhai::Caches::new(),
    });
}

fn position_text(rule: &Rule, e: &EvalAltResult) -> String {
    let pos = e.position();
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}: {e}", rule.path.display()),
        (Some(l), None) => format!("{}:{l}: {e}", rule.path.display()),
        _ => format!("{}: {e}", rule.path.display()),
    }
}

/// Most function-resolution entries a worker thread keeps before starting afresh.
const MAX_CACHED_RESOLUTIONS: usize = 4096;

/// What a worker thread keeps between messages to evaluate scripts quickly: one
/// scope, rewound after every script, and Rhai's function-resolution cache.
///
/// The cache maps a call site's function name and argument types to the function
/// that answers it. The engine is built once per process and never changes, so a
/// resolution of a native helper (`msg.header`, `list_match`, `==`) stays true for
/// every later script and message: without the shared cache Rhai resolves every
/// call of every script afresh (it caches a resolution only on its second use within
/// one evaluation). A script that defines functions of its own gets a fresh cache,
/// so its functions never answer a call in another script.
struct Runtime {
    scope: Scope<'static>,
    caches: rhai::Caches,
}

impl Runtime {
    /// Evaluates one script as `Engine::eval_ast_with_scope` would, with its own
    /// operation budget.
    fn eval(&mut self, engine: &Engine, ast: &AST) -> Result<Dynamic, Box<EvalAltResult>> {
        let mut global = engine.new_global_runtime_state();
        global.source = ast.source().map(rhai::ImmutableString::from);
        if ast.has_functions() {
            global.lib.push(ast.shared_lib().clone());
            let mut own = rhai::Caches::new();
            // `eval_statements_raw` is the `internals` entry point that takes the
            // caller's runtime state and caches; like `eval_ast_with_scope` it maps a
            // top-level `return` to the script's value.
            #[allow(deprecated)]
            return engine.eval_statements_raw(
                &mut global,
                &mut own,
                &mut self.scope,
                ast.statements(),
            );
        }
        if self.caches.fn_resolution_cache_mut().dict.len() > MAX_CACHED_RESOLUTIONS {
            self.caches = rhai::Caches::new();
        }
        #[allow(deprecated)]
        engine.eval_statements_raw(
            &mut global,
            &mut self.caches,
            &mut self.scope,
            ast.statements(),
        )
    }
}

/// The rule's path as text: the AST's source, set to it at load, which spares
/// formatting the path again for every message.
fn source_of(rule: &Rule) -> String {
    rule.ast.source().unwrap_or_default().to_owned()
}

fn is_limit(e: &EvalAltResult) -> bool {
    matches!(
        e,
        EvalAltResult::ErrorTooManyOperations(..)
            | EvalAltResult::ErrorStackOverflow(..)
            | EvalAltResult::ErrorDataTooLarge(..)
            | EvalAltResult::ErrorTooManyVariables(..)
    )
}

/// Runs every rule and the decide script over `facts`.
pub fn evaluate(
    set: &RuleSet,
    facts: Arc<Facts>,
    lookups: Arc<dyn Lookups>,
    contracts: &Contracts,
) -> Evaluation {
    let engine = engine::shared();
    let msg = api::Msg::new(facts.clone());
    let previous = api::install(Some(api::EvalCtx {
        rule: String::new(),
        findings: Vec::new(),
        lookups,
        lists: set.lists.clone(),
        contracts: contracts.clone(),
        now: facts.received_at,
    }));
    let mut trace = Vec::with_capacity(set.rules.len());
    let mut errors = Vec::new();
    let mut policy_failed = false;
    let raw = RUNTIME.with(|cell| {
        let runtime = &mut *cell.borrow_mut();
        runtime.scope.rewind(0);
        runtime.scope.push_constant("msg", msg);
        let base = runtime.scope.len();
        for rule in &set.rules {
            api::set_rule(&rule.id);
            let before = api::finding_count();
            let t0 = Instant::now();
            let res = runtime.eval(engine, &rule.ast);
            runtime.scope.rewind(base);
            let micros = t0.elapsed().as_micros() as u64;
            let after = api::finding_count();
            let (error, limit_hit) = match res {
                Ok(_) => (None, false),
                Err(e) => {
                    let text = position_text(rule, &e);
                    let limit = is_limit(&e);
                    tracing::warn!(rule = %rule.id, error = %text, limit_hit = limit, "rule failed");
                    errors.push(text.clone());
                    policy_failed = true;
                    (Some(text), limit)
                }
            };
            trace.push(RuleTrace {
                rule: rule.id.clone(),
                path: source_of(rule),
                findings: Vec::new(),
                new_findings: (before, after),
                micros,
                error,
                limit_hit,
            });
        }
        let out = if policy_failed {
            None
        } else {
            api::set_rule("decide");
            let t0 = Instant::now();
            let res = runtime.eval(engine, &set.decide.ast);
            let micros = t0.elapsed().as_micros() as u64;
            let (out, error) = match res {
                Ok(v) => match read_decision(v) {
                    Ok(raw) => (Some(raw), None),
                    Err(m) => (None, Some(format!("{}: {m}", set.decide.path.display()))),
                },
                Err(e) => (None, Some(position_text(&set.decide, &e))),
            };
            if let Some(text) = &error {
                tracing::warn!(rule = "decide", error = %text, "decide failed");
                errors.push(text.clone());
            }
            trace.push(RuleTrace {
                rule: "decide".into(),
                path: source_of(&set.decide),
                findings: Vec::new(),
                micros,
                limit_hit: false,
                error,
                new_findings: (0, 0),
            });
            out
        };
        runtime.scope.rewind(0);
        out
    });
    let ctx = api::install(previous);
    let findings = ctx.map(|c| c.findings).unwrap_or_default();
    for t in &mut trace {
        let (a, b) = t.new_findings;
        t.findings = findings
            .get(a..b)
            .unwrap_or_default()
            .iter()
            .map(|f| f.code.clone())
            .collect();
    }
    let lang = facts.lang.clone();
    let mut decision = match raw.map(|r| decision::validate(r, findings.clone(), &lang)) {
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            let text = format!("{}: {e}", set.decide.path.display());
            tracing::warn!(rule = "decide", error = %text, "decide returned an invalid decision");
            errors.push(text);
            failed(findings, &errors, &lang)
        }
        None => failed(findings, &errors, &lang),
    };
    decision.charset_guessed = facts.charset_guessed.clone();
    Evaluation {
        decision,
        trace,
        errors,
        revision: set.revision.clone(),
    }
}

fn failed(mut findings: Vec<Finding>, errors: &[String], lang: &str) -> Decision {
    findings.push(Finding {
        code: "policy_error".into(),
        rule: "engine".into(),
        detail: errors.join("; "),
        ticket: None,
    });
    Decision::policy_error(findings, lang)
}

pub(crate) fn read_decision(v: Dynamic) -> Result<RawDecision, String> {
    let map: Map = v
        .try_cast::<Map>()
        .ok_or("must end with an object map #{ outcome, status, reply, ticket }")?;
    let text = |k: &str| -> Result<Option<String>, String> {
        match map.get(k) {
            None => Ok(None),
            Some(d) if d.is_unit() => Ok(None),
            Some(d) => d
                .clone()
                .into_string()
                .map(Some)
                .map_err(|t| format!("`{k}` must be a string, not {t}")),
        }
    };
    let number = |k: &str| -> Result<Option<u64>, String> {
        match map.get(k) {
            None => Ok(None),
            Some(d) if d.is_unit() => Ok(None),
            Some(d) => d
                .as_int()
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| format!("`{k}` must be a ticket number")),
        }
    };
    let ticket = number("ticket")?;
    let link = number("link")?;
    for k in map.keys() {
        if !["outcome", "status", "reply", "ticket", "lang", "link"].contains(&k.as_str()) {
            return Err(format!(
                "unknown key `{k}` (outcome, status, reply, ticket, lang, link)"
            ));
        }
    }
    Ok(RawDecision {
        outcome: text("outcome")?.ok_or("`outcome` is missing")?,
        status: text("status")?,
        reply: text("reply")?,
        ticket,
        lang: text("lang")?,
        link,
    })
}

/// The running rule set, swapped whole on reload; messages in flight keep the
/// `Arc` they started with.
#[derive(Debug)]
pub struct RulesHandle {
    path: std::path::PathBuf,
    current: std::sync::RwLock<Arc<RuleSet>>,
    last_error: std::sync::Mutex<Option<String>>,
}

impl RulesHandle {
    /// Wraps a loaded rule set.
    pub fn new(set: RuleSet) -> RulesHandle {
        RulesHandle {
            path: set.root.clone(),
            current: std::sync::RwLock::new(Arc::new(set)),
            last_error: std::sync::Mutex::new(None),
        }
    }

    /// Wraps an already shared rule set (the corpus runner shares one across stores).
    pub fn from_arc(set: Arc<RuleSet>) -> RulesHandle {
        RulesHandle {
            path: set.root.clone(),
            current: std::sync::RwLock::new(set),
            last_error: std::sync::Mutex::new(None),
        }
    }

    /// The rule set in force now.
    pub fn current(&self) -> Arc<RuleSet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Compiles the directory again and swaps it in; a broken set is refused and
    /// the running one stays.
    ///
    /// # Errors
    /// The diagnostics of the refused set.
    pub fn reload(&self) -> Result<String, RuleError> {
        match RuleSet::load(&self.path) {
            Ok(set) => {
                let rev = set.revision.clone();
                match self.current.write() {
                    Ok(mut g) => *g = Arc::new(set),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
                }
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
                tracing::info!(revision = %rev, "rules reloaded");
                Ok(rev)
            }
            Err(err) => {
                tracing::error!(error = %err, "rules reload refused; the running rules stay");
                if let Ok(mut e) = self.last_error.lock() {
                    *e = Some(err.to_string());
                }
                Err(err)
            }
        }
    }

    /// The error of the last refused reload, if the last reload failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two scripts that define a function of the same name each call their own,
    /// message after message, while the thread keeps one resolution cache.
    #[test]
    fn same_named_script_functions_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, src: &str| std::fs::write(dir.path().join(name), src).unwrap();
        write("decide.rhai", "#{ outcome: \"create\" }");
        write(
            "10-a.rhai",
            "fn code() { \"from_a\" }\nflag(code(), \"a\");\n",
        );
        write(
            "20-b.rhai",
            "fn code() { \"from_b\" }\nflag(code(), \"b\");\n",
        );
        write(
            "30-c.rhai",
            "if \"x\" in [\"x\"] { flag(\"from_c\", \"c\"); }\n",
        );
        let set = RuleSet::load(dir.path()).unwrap();
        let raw = b"From: a@b.example\r\nSubject: x\r\n\r\nhello\r\n";
        let facts = Arc::new(crate::facts::extract_facts(
            &crate::parse::parse(raw),
            &crate::facts::Envelope::default(),
            raw.len() as u64,
            jiff::Timestamp::UNIX_EPOCH,
            &Contracts::default(),
            &crate::facts::FactsConfig::new("Ticket#"),
        ));
        for _ in 0..3 {
            let ev = evaluate(
                &set,
                facts.clone(),
                Arc::new(NoLookups),
                &Contracts::default(),
            );
            let codes: Vec<&str> = ev
                .decision
                .findings
                .iter()
                .map(|f| f.code.as_str())
                .collect();
            assert_eq!(codes, ["from_a", "from_b", "from_c"], "{:?}", ev.errors);
        }
    }
}
