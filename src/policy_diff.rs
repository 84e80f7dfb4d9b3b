//! `intake diff --from A --to B CORPUS`: the corpus run with two versions of
//! `rules/` → the steps whose decision (outcome, status, finding codes, reply,
//! ticket) differs, with before, after and what the expectation file says, so
//! a policy change can be reviewed before it ships.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::corpus::{self, Actual, Case, Expectation, Runner};

/// One step whose decision changes.
#[derive(Debug, Clone)]
pub struct Change {
    pub case: String,
    pub step: PathBuf,
    pub expected: Expectation,
    pub before: Option<Actual>,
    pub after: Option<Actual>,
}

impl Change {
    /// How the change relates to the expectation: `fixes`, `breaks`, or `changes`.
    pub fn verdict(&self) -> &'static str {
        let ok = |a: &Option<Actual>| {
            a.as_ref()
                .is_some_and(|a| corpus::matches(&self.expected, a))
        };
        match (ok(&self.before), ok(&self.after)) {
            (false, true) => "fixes",
            (true, false) => "breaks",
            _ => "changes",
        }
    }
}

fn key(
    a: &Actual,
) -> (
    String,
    Option<String>,
    BTreeSet<String>,
    String,
    Option<u64>,
) {
    (
        a.outcome.clone(),
        a.status.clone(),
        a.findings.iter().cloned().collect(),
        a.reply.clone(),
        a.ticket,
    )
}

/// Runs `cases` with both rule sets and returns the steps that decide differently
/// (the runners' `explain_failures` is best off: failures are not reported here).
pub fn diff(before: &Runner, after: &Runner, cases: &[Case], threads: usize) -> Vec<Change> {
    let a = corpus::run_all(before, cases, threads, &|_| {});
    let b = corpus::run_all(after, cases, threads, &|_| {});
    let mut changes = Vec::new();
    for (ra, rb) in a.iter().zip(&b) {
        let n = ra.steps.len().max(rb.steps.len());
        for i in 0..n {
            let sa = ra.steps.get(i);
            let sb = rb.steps.get(i);
            let Some((step, expected, _, _)) = sa.or(sb) else {
                continue;
            };
            let before = sa.and_then(|s| s.2.clone());
            let after = sb.and_then(|s| s.2.clone());
            if before.as_ref().map(key) != after.as_ref().map(key) {
                changes.push(Change {
                    case: ra.name.clone(),
                    step: step.clone(),
                    expected: expected.clone(),
                    before,
                    after,
                });
            }
        }
    }
    changes
}

fn show(a: &Option<Actual>) -> String {
    match a {
        None => "(did not run)".to_owned(),
        Some(a) => {
            let mut f = a.findings.clone();
            f.sort();
            format!(
                "{}{} [{}] reply {}{}",
                a.outcome,
                a.status
                    .as_ref()
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default(),
                f.join(", "),
                a.reply,
                a.ticket.map(|t| format!(" ticket {t}")).unwrap_or_default()
            )
        }
    }
}

/// The changes as text, one block per step.
pub fn render(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        let mut f = c.expected.findings.clone();
        f.sort();
        out.push_str(&format!(
            "{} {} ({})\n  before:   {}\n  after:    {}\n  expected: {}{} [{}] reply {}\n",
            c.verdict(),
            c.case,
            c.step
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            show(&c.before),
            show(&c.after),
            c.expected.outcome,
            c.expected
                .status
                .as_ref()
                .map(|s| format!("/{s}"))
                .unwrap_or_default(),
            f.join(", "),
            c.expected.reply
        ));
    }
    out
}
