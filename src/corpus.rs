//! The fixture corpus runner (SPEC §10): `cases/NAME.eml` + `NAME.toml` run on a
//! fresh store holding only the contracts; `cases/NAME/` folders are sequences
//! whose steps share one store. The same pipeline as the server decides, so a
//! passing corpus is the server's behaviour.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use jiff::Timestamp;
use serde::Deserialize;

use crate::config::Config;
use crate::contracts::Contracts;
use crate::facts::{Envelope, FactsConfig};
use crate::pipeline::{Pipeline, Prepared};
use crate::policy::{RuleSet, RulesHandle};
use crate::store::{Committer, MessageRecord, Store};

/// What a step must produce.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub outcome: String,
    #[serde(default)]
    pub status: Option<String>,
    pub findings: Vec<String>,
    pub reply: String,
    #[serde(default)]
    pub now: Option<Timestamp>,
}

/// One message of a case.
#[derive(Debug, Clone)]
pub struct Step {
    pub eml: PathBuf,
    pub expect: Expectation,
}

/// A single case or a sequence.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub steps: Vec<Step>,
}

/// The actual decision of a step, in the expectation's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Actual {
    pub outcome: String,
    pub status: Option<String>,
    pub findings: Vec<String>,
    pub reply: String,
    pub ticket: Option<u64>,
    pub details: Vec<String>,
    /// Language of the decision's reply (`ru`/`en`).
    pub lang: String,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    /// Per step: (file, expected, actual, passed).
    pub steps: Vec<(PathBuf, Expectation, Option<Actual>, bool)>,
    pub error: Option<String>,
    /// For a failed case, the explain trace of each step that ran (from a
    /// second run of the case with the helpers' probes on).
    pub explains: Vec<Option<String>>,
}

impl CaseResult {
    /// Whether every step matched.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.steps.iter().all(|s| s.3)
    }
}

fn read_expect(path: &Path) -> anyhow::Result<Expectation> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let e: Expectation = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let outcomes = ["create", "append", "duplicate", "reject", "ignore"];
    if !outcomes.contains(&e.outcome.as_str()) {
        bail!(
            "{}: outcome {:?} is not one of {outcomes:?}",
            path.display(),
            e.outcome
        );
    }
    Ok(e)
}

/// Finds every case under `dir` (the corpus root or its `cases/`).
///
/// # Errors
/// Unreadable folders, an `.eml` without its `.toml`, invalid expectation files.
pub fn discover(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let cases_dir = if dir.join("cases").is_dir() {
        dir.join("cases")
    } else {
        dir.to_owned()
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&cases_dir)
        .with_context(|| format!("cannot read {}", cases_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    let mut cases = Vec::new();
    for p in entries {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        if p.is_dir() {
            let mut emls: Vec<PathBuf> = std::fs::read_dir(&p)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|x| x.extension().is_some_and(|e| e == "eml"))
                .collect();
            emls.sort_by_key(|e| step_order(e));
            let mut steps = Vec::new();
            for eml in emls {
                let expect = read_expect(&eml.with_extension("toml"))?;
                steps.push(Step { eml, expect });
            }
            if !steps.is_empty() {
                cases.push(Case { name, steps });
            }
        } else if p.extension().is_some_and(|e| e == "eml") {
            let expect = read_expect(&p.with_extension("toml"))?;
            cases.push(Case {
                name: name.trim_end_matches(".eml").to_owned(),
                steps: vec![Step { eml: p, expect }],
            });
        }
    }
    Ok(cases)
}

/// Sorts `2-x` before `10-y`: by leading number, then by name.
fn step_order(p: &Path) -> (u64, String) {
    let name = p
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_owned();
    let num = name
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>();
    (num.parse().unwrap_or(u64::MAX), name)
}

/// Shared, loaded inputs of a corpus run.
pub struct Runner {
    pub rules: Arc<RuleSet>,
    pub rules_path: PathBuf,
    pub contracts: Contracts,
    pub config: Config,
    /// Run a failed case again with probes on, for its explain trace (on by default).
    pub explain_failures: bool,
}

impl Runner {
    /// Loads the rules and contracts once.
    ///
    /// # Errors
    /// The rules or the contracts do not load.
    pub fn new(rules_path: &Path, contracts_file: &Path, config: Config) -> anyhow::Result<Runner> {
        Ok(Runner {
            rules: Arc::new(RuleSet::load(rules_path)?),
            rules_path: rules_path.to_owned(),
            contracts: Contracts::load(contracts_file)?,
            config,
            explain_failures: true,
        })
    }

    /// A pipeline over a fresh store in `dir`, sharing the loaded rules and contracts.
    ///
    /// # Errors
    /// The store cannot be opened.
    pub fn pipeline_in(&self, dir: &Path) -> anyhow::Result<Pipeline> {
        let store = Store::open(dir, self.config.first_number, 8 * 1024 * 1024)?;
        Ok(Pipeline {
            committer: Committer::start(store.clone(), std::time::Duration::ZERO),
            store,
            rules: Arc::new(RulesHandle::from_arc(self.rules.clone())),
            contracts: self.contracts.clone(),
            facts_cfg: Arc::new(
                FactsConfig::new(&self.config.tag_prefix)
                    .with_authserv_id(self.config.spam.authserv_id.clone()),
            ),
            sla: Arc::new(self.config.sla.clone()),
            replies_per_day: self.config.replies_per_day,
            reply_from: self.config.smtp_from.to_lowercase(),
            spam: Arc::new(self.config.spam.clone()),
        })
    }

    /// Runs one case on a fresh temporary store.
    pub fn run_case(&self, case: &Case) -> CaseResult {
        let mut result = CaseResult {
            name: case.name.clone(),
            steps: Vec::new(),
            error: None,
            explains: Vec::new(),
        };
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                result.error = Some(format!("cannot create a temporary store: {e}"));
                return result;
            }
        };
        let pipeline = match self.pipeline_in(dir.path()) {
            Ok(p) => p,
            Err(e) => {
                result.error = Some(format!("{e:#}"));
                return result;
            }
        };
        for step in &case.steps {
            match run_step(&pipeline, step) {
                Ok(actual) => {
                    let ok = matches(&step.expect, &actual);
                    result
                        .steps
                        .push((step.eml.clone(), step.expect.clone(), Some(actual), ok));
                }
                Err(e) => {
                    result
                        .steps
                        .push((step.eml.clone(), step.expect.clone(), None, false));
                    result.error = Some(format!("{}: {e:#}", step.eml.display()));
                    break;
                }
            }
        }
        if !result.passed() && self.explain_failures {
            result.explains = self.explain_case(case);
        }
        result
    }

    /// Runs a case again on a fresh store with the helpers' probes on: the
    /// explain trace of each step (`None` where a step did not run or was a
    /// re-delivery answered from the store).
    pub fn explain_case(&self, case: &Case) -> Vec<Option<String>> {
        let Ok(dir) = tempfile::tempdir() else {
            return Vec::new();
        };
        let Ok(pipeline) = self.pipeline_in(dir.path()) else {
            return Vec::new();
        };
        let outbox = crate::reply::outbox::OutboxConfig::from_config(&self.config);
        let mut out = Vec::new();
        for step in &case.steps {
            let Ok(raw) = std::fs::read(&step.eml) else {
                break;
            };
            let Ok(now) = step_clock(step, &raw) else {
                break;
            };
            match crate::explain::run(&pipeline, &outbox, raw, Envelope::default(), now) {
                Ok((_, trace)) => out.push(trace.map(|t| t.render(""))),
                Err(_) => break,
            }
        }
        out
    }
}

/// The clock of a step: its `now`, else the message's Date header.
fn step_clock(step: &Step, raw: &[u8]) -> anyhow::Result<Timestamp> {
    match step.expect.now {
        Some(t) => Ok(t),
        None => crate::parse::parse(raw)
            .date
            .and_then(|s| Timestamp::from_second(s).ok())
            .with_context(|| format!("{}: no `now` and no valid Date header", step.eml.display())),
    }
}

fn run_step(pipeline: &Pipeline, step: &Step) -> anyhow::Result<Actual> {
    let raw =
        std::fs::read(&step.eml).with_context(|| format!("cannot read {}", step.eml.display()))?;
    let now = step_clock(step, &raw)?;
    let record = match pipeline.prepare(raw, Envelope::default(), now)? {
        Prepared::Filed(r) => *r,
        Prepared::New { filing, .. } => {
            pipeline
                .committer
                .commit_blocking(*filing)
                .map_err(|e| anyhow::anyhow!(e))?
                .record
        }
    };
    Ok(actual_of(&record))
}

/// The decision of a stored record in expectation terms.
pub fn actual_of(record: &MessageRecord) -> Actual {
    let d = &record.decision;
    Actual {
        outcome: d.outcome.as_str().to_owned(),
        status: d.status.map(|s| s.as_str().to_owned()),
        findings: d.findings.iter().map(|f| f.code.clone()).collect(),
        reply: d.reply.clone().unwrap_or_else(|| "none".into()),
        ticket: d.ticket,
        details: d
            .findings
            .iter()
            .map(|f| format!("{} ({}): {}", f.code, f.rule, f.detail))
            .collect(),
        lang: d.lang.clone(),
    }
}

/// Whether an actual decision meets an expectation (findings as a set; status
/// only checked when expected).
pub fn matches(e: &Expectation, a: &Actual) -> bool {
    let ef: BTreeSet<&str> = e.findings.iter().map(String::as_str).collect();
    let af: BTreeSet<&str> = a.findings.iter().map(String::as_str).collect();
    e.outcome == a.outcome
        && ef == af
        && e.reply == a.reply
        && match &e.status {
            Some(s) => a.status.as_deref() == Some(s.as_str()),
            None => a.status.is_none(),
        }
}

/// Runs cases on `threads` threads, keeping the input order in the results.
pub fn run_all(
    runner: &Runner,
    cases: &[Case],
    threads: usize,
    on_done: &(dyn Fn(&CaseResult) + Sync),
) -> Vec<CaseResult> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<CaseResult>>> =
        std::sync::Mutex::new(vec![None; cases.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                let r = runner.run_case(case);
                on_done(&r);
                if let Ok(mut g) = results.lock() {
                    g[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

fn set_text(v: &[String]) -> String {
    if v.is_empty() {
        "-".to_owned()
    } else {
        let mut v = v.to_vec();
        v.sort();
        v.join(", ")
    }
}

/// A readable report of a failed case: per step, expected and actual side by
/// side with the differing fields marked, the findings' details, and the
/// explain trace of the step.
pub fn failure_report(r: &CaseResult) -> String {
    let mut out = String::new();
    if let Some(e) = &r.error {
        out.push_str(&format!("    error: {e}\n"));
    }
    for (i, (eml, exp, act, ok)) in r.steps.iter().enumerate() {
        if *ok {
            continue;
        }
        out.push_str(&format!("    step {}\n", eml.display()));
        let Some(a) = act else {
            out.push_str("      (not run)\n");
            continue;
        };
        let ef: BTreeSet<&String> = exp.findings.iter().collect();
        let af: BTreeSet<&String> = a.findings.iter().collect();
        let missing: Vec<&str> = ef.difference(&af).map(|s| s.as_str()).collect();
        let extra: Vec<&str> = af.difference(&ef).map(|s| s.as_str()).collect();
        let mut findings_note = String::new();
        if !missing.is_empty() {
            findings_note.push_str(&format!(" missing: {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            findings_note.push_str(&format!(" unexpected: {}", extra.join(", ")));
        }
        let exp_status = exp.status.as_deref().unwrap_or("-");
        let act_status = a.status.as_deref().unwrap_or("-");
        let status_differs = match &exp.status {
            Some(s) => a.status.as_deref() != Some(s.as_str()),
            None => a.status.is_some(),
        };
        let rows = [
            (
                "outcome",
                exp.outcome.clone(),
                a.outcome.clone(),
                exp.outcome != a.outcome,
                String::new(),
            ),
            (
                "status",
                exp_status.to_owned(),
                act_status.to_owned(),
                status_differs,
                String::new(),
            ),
            (
                "findings",
                set_text(&exp.findings),
                set_text(&a.findings),
                ef != af,
                findings_note,
            ),
            (
                "reply",
                exp.reply.clone(),
                a.reply.clone(),
                exp.reply != a.reply,
                String::new(),
            ),
        ];
        let w = rows
            .iter()
            .map(|r| r.1.chars().count())
            .max()
            .unwrap_or(0)
            .max("expected".len());
        out.push_str(&format!(
            "      {:<9} {:<w$}  {}\n",
            "", "expected", "actual"
        ));
        for (name, e, act_v, differs, note) in rows {
            out.push_str(&format!(
                "      {name:<9} {e:<w$}  {act_v}{}{note}\n",
                if differs { "   ≠" } else { "" }
            ));
        }
        if let Some(t) = a.ticket {
            out.push_str(&format!("      {:<9} {:<w$}  {t}\n", "ticket", ""));
        }
        for d in &a.details {
            out.push_str(&format!("        - {d}\n"));
        }
        if let Some(Some(trace)) = r.explains.get(i) {
            out.push_str("      explain:\n");
            for l in trace.lines() {
                out.push_str(&format!("        {l}\n"));
            }
        }
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML of a run.
pub fn junit(results: &[CaseResult]) -> String {
    let failures = results.iter().filter(|r| !r.passed()).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"intake-corpus\" tests=\"{}\" failures=\"{}\">\n",
        results.len(),
        failures
    );
    for r in results {
        out.push_str(&format!(
            "  <testcase classname=\"corpus\" name=\"{}\"",
            xml_escape(&r.name)
        ));
        if r.passed() {
            out.push_str("/>\n");
        } else {
            out.push_str(&format!(
                ">\n    <failure message=\"decision mismatch\">{}</failure>\n  </testcase>\n",
                xml_escape(&failure_report(r))
            ));
        }
    }
    out.push_str("</testsuite>\n");
    out
}
