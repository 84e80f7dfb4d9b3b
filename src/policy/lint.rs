//! `intake lint`: a rules directory → diagnostics, before anything goes live.
//!
//! Loading ([`RuleSet::load`]) already compiles every script with strict
//! variables, rejects calls to unknown functions, loads every word list and
//! compiles every template. Lint adds what needs the whole set:
//!
//! - the reply templates `decide.rhai` can select — the `reply:` literals of its
//!   maps, and what it returns for no finding, each finding code alone and every
//!   pair of codes — exist in `ru` and `en` and render (strict undefined) with the
//!   variables the outbox gives them, with and without a ticket and a contract;
//! - every finding code that can reach a reply has an explanation snippet in both
//!   languages, and the snippet renders;
//! - `has_finding("x")`-style look-ups name codes some rule raises, and
//!   `list_match("x", …)`-style calls name lists that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use rhai::{Dynamic, Position, Scope, AST};

use super::calls::{self, at, closest};
use super::rules::{Diagnostic, RuleSet};
use crate::decision::{self, Finding};
use crate::facts::{Envelope, Facts};
use crate::reply::render::{FindingView, ReplyContext, LANGS};

/// Lint could not run at all (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error("{path}: not a rules directory: {reason}")]
    NotADirectory { path: PathBuf, reason: String },
}

/// The result of a lint run.
#[derive(Debug, Default)]
pub struct LintReport {
    /// Problems, each `path:line:col: message` (with a hint line where one helps).
    pub diagnostics: Vec<Diagnostic>,
    /// What was checked, for the summary line.
    pub rules: usize,
    pub revision: Option<String>,
    pub templates: BTreeSet<String>,
    pub codes: BTreeSet<String>,
}

/// Finding code the engine raises itself when a script fails.
const POLICY_ERROR: &str = "policy_error";
/// Reply of the engine's own `policy_error` decision.
const POLICY_ERROR_REPLY: &str = "created";

/// Lints a rules directory.
///
/// # Errors
/// The directory does not exist or is not a directory.
pub fn lint(dir: &Path) -> Result<LintReport, LintError> {
    let meta = std::fs::metadata(dir).map_err(|e| LintError::NotADirectory {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(LintError::NotADirectory {
            path: dir.to_owned(),
            reason: "it is a file".into(),
        });
    }
    let mut report = LintReport::default();
    let set = match RuleSet::load_checked(dir, false) {
        Ok(set) => set,
        Err(e) => {
            report.diagnostics = e.diagnostics;
            return Ok(report);
        }
    };
    report.rules = set.rules.len();
    report.revision = Some(set.revision.clone());
    let scripts: Vec<(&Path, &AST)> = set
        .rules
        .iter()
        .chain(std::iter::once(&set.decide))
        .map(|r| (r.path.as_path(), &r.ast))
        .collect();

    for (path, ast) in &scripts {
        report
            .diagnostics
            .extend(calls::check_calls(ast, path, calls::KnownFns::shared()));
    }

    // Finding codes raised by `flag("code", …)`.
    let mut raised: BTreeSet<String> = BTreeSet::new();
    for (_, ast) in &scripts {
        for (_, code, _) in calls::literal_args(ast, &["flag"]) {
            raised.insert(code);
        }
    }
    let mut known_codes = raised.clone();
    known_codes.insert(POLICY_ERROR.to_owned());
    let d = &mut report.diagnostics;
    for (path, ast) in &scripts {
        for (f, code, pos) in calls::literal_args(ast, &["has_finding", "finding_ticket"]) {
            if !known_codes.contains(&code) {
                d.push(unknown(
                    path,
                    pos,
                    format!("{f}(\"{code}\"): no rule raises finding '{code}'"),
                    closest(&code, known_codes.iter().map(String::as_str)),
                ));
            }
        }
        let lists = set.lists.names();
        for (f, name, pos) in
            calls::literal_args(ast, &["list_has", "list_match", "list_unmatched"])
        {
            if set.lists.get(&name).is_none() {
                d.push(unknown(
                    path,
                    pos,
                    format!("{f}(\"{name}\", …): no word list {name}.txt in rules/lists/"),
                    closest(&name, lists.iter().map(String::as_str)),
                ));
            }
        }
    }

    // Replies decide can select: literals, and what it returns on finding combinations.
    let mut replies: BTreeMap<String, Option<(PathBuf, Position)>> = BTreeMap::new();
    replies.insert(POLICY_ERROR_REPLY.to_owned(), None);
    for (name, pos) in calls::map_literals(&set.decide.ast, "reply") {
        if name != "none" && !name.is_empty() {
            let slot = replies.entry(name).or_insert(None);
            if slot.is_none() {
                *slot = Some((set.decide.path.clone(), pos));
            }
        }
    }
    let mut reaches_reply: BTreeSet<String> = BTreeSet::new();
    reaches_reply.insert(POLICY_ERROR.to_owned());
    let codes: Vec<&String> = raised.iter().collect();
    let mut combos: Vec<Vec<&str>> = vec![vec![]];
    for (i, a) in codes.iter().enumerate() {
        combos.push(vec![a.as_str()]);
        for b in &codes[i + 1..] {
            combos.push(vec![a.as_str(), b.as_str()]);
        }
    }
    for combo in combos {
        match run_decide(&set, &combo) {
            Ok(Some(reply)) => {
                reaches_reply.extend(combo.iter().map(|c| c.to_string()));
                replies.entry(reply).or_insert(None);
            }
            Ok(None) => {}
            Err(e) => d.push(Diagnostic::file(
                set.decide.path.clone(),
                format!("with findings [{}]: {e}", combo.join(", ")),
            )),
        }
    }

    // Templates exist in both languages and render with what the outbox gives them.
    let tpl_dir = set.root.join("templates");
    for (name, origin) in &replies {
        for lang in LANGS {
            let file = tpl_dir.join(lang).join(format!("{name}.txt"));
            if !set.templates.has(lang, name) {
                let (path, pos) = origin
                    .clone()
                    .unwrap_or((set.decide.path.clone(), Position::NONE));
                d.push(at(
                    &path,
                    pos,
                    format!(
                        "decide can select reply '{name}', but {} does not exist",
                        file.display()
                    ),
                ));
                continue;
            }
            for (what, ctx) in contexts(lang, &reaches_reply) {
                if let Err(e) = set.templates.render(lang, name, &ctx) {
                    d.push(Diagnostic::file(
                        file.clone(),
                        format!("does not render {what}: {e}"),
                    ));
                    break;
                }
            }
        }
    }
    for code in &reaches_reply {
        for lang in LANGS {
            let file = tpl_dir
                .join(lang)
                .join("findings")
                .join(format!("{code}.txt"));
            if !set.templates.has_snippet(lang, code) {
                d.push(Diagnostic::file(
                    file,
                    format!(
                        "finding '{code}' can appear in a reply but has no explanation snippet"
                    ),
                ));
                continue;
            }
            for (what, ctx) in contexts(lang, &BTreeSet::new()) {
                if let Err(e) = set
                    .templates
                    .snippet(lang, code, &ctx, "what the rule found")
                {
                    d.push(Diagnostic::file(
                        file.clone(),
                        format!("does not render {what}: {e}"),
                    ));
                    break;
                }
            }
        }
    }
    report.templates = replies.into_keys().collect();
    report.codes = raised;
    Ok(report)
}

fn unknown(path: &Path, pos: Position, mut message: String, hint: Option<&str>) -> Diagnostic {
    if let Some(h) = hint {
        message.push_str(&format!("\n  hint: did you mean '{h}'?"));
    }
    at(path, pos, message)
}

/// Representative reply contexts: a new ticket of a known client with an SLA,
/// and a message without ticket, contract or SLA (a rejection).
fn contexts(lang: &str, codes: &BTreeSet<String>) -> Vec<(&'static str, ReplyContext)> {
    let findings: Vec<FindingView> = codes
        .iter()
        .map(|c| FindingView {
            code: c.clone(),
            detail: "what the rule found".into(),
            text: format!("Explanation of {c}."),
        })
        .collect();
    let full = ReplyContext {
        ticket: Some(100_001),
        tag: "[Ticket#100001]".into(),
        subject: "Re: EPG does not update on STB-4K".into(),
        subject_core: "EPG does not update on STB-4K".into(),
        findings: findings.clone(),
        portal_url: "http://127.0.0.1:8088/portal".into(),
        client_name: Some("Telecom Sever".into()),
        client_id: Some("MI-10234".into()),
        sla_level: Some("standard".into()),
        sla_reaction_minutes: Some(240),
        sla_reaction_hours: Some(4),
        sla_business_hours: true,
        sla_reaction_due: Some("2026-11-24T14:00:00Z".into()),
        duplicate_of: Some(100_001),
        lang: lang.to_owned(),
        vars: Default::default(),
        link: Some(100_000),
    };
    let bare = ReplyContext {
        subject: String::new(),
        findings,
        portal_url: "http://127.0.0.1:8088/portal".into(),
        lang: lang.to_owned(),
        ..ReplyContext::default()
    };
    vec![
        ("with a ticket, a contract and an SLA", full),
        ("without a ticket, a contract or an SLA", bare),
    ]
}

fn sample_facts() -> Facts {
    Facts {
        from: "client@example.com".into(),
        from_name: "Client".into(),
        reply_to: String::new(),
        to: vec!["support@vendor.example".into()],
        cc: Vec::new(),
        subject: "EPG does not update".into(),
        subject_core: "EPG does not update".into(),
        ticket_ref: None,
        message_id: "lint@intake".into(),
        in_reply_to: Vec::new(),
        references: Vec::new(),
        headers: Vec::new(),
        text: "EPG does not update.".into(),
        text_new: "EPG does not update.".into(),
        attachments: Vec::new(),
        lang: "en".into(),
        size: 100,
        received_at: Timestamp::UNIX_EPOCH,
        client_ids: Vec::new(),
        contract: None,
        sender_contract: None,
        envelope: Envelope::default(),
        parsed: true,
        spam: None,
        spam_check: Default::default(),
        auth: None,
        from_source: "from".into(),
        charset_guessed: None,
        forwarded: false,
    }
}

/// Runs `decide.rhai` alone on a preset list of findings; the reply it selects.
fn run_decide(set: &RuleSet, codes: &[&str]) -> Result<Option<String>, String> {
    let findings: Vec<Finding> = codes
        .iter()
        .map(|c| Finding {
            code: c.to_string(),
            rule: "lint".into(),
            detail: String::new(),
            ticket: Some(100_001),
        })
        .collect();
    let facts = Arc::new(sample_facts());
    let previous = super::api::install(Some(super::api::EvalCtx {
        rule: "decide".into(),
        findings: findings.clone(),
        lookups: Arc::new(super::NoLookups),
        lists: set.lists.clone(),
        contracts: crate::contracts::Contracts::default(),
        now: facts.received_at,
    }));
    let mut scope = Scope::new();
    scope.push_constant("msg", super::api::Msg::new(facts));
    let res = super::engine::shared().eval_ast_with_scope::<Dynamic>(&mut scope, &set.decide.ast);
    super::api::install(previous);
    let value = res.map_err(|e| e.to_string())?;
    let raw = super::read_decision(value)?;
    let d = decision::validate(raw, findings, "en").map_err(|e| e.to_string())?;
    Ok(d.reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_rules() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules")
    }

    #[test]
    fn shipped_rules_are_clean() {
        let r = lint(&repo_rules()).unwrap();
        let text: Vec<String> = r.diagnostics.iter().map(ToString::to_string).collect();
        assert!(text.is_empty(), "{text:#?}");
        for t in ["created", "needs_info", "duplicate", "rejected"] {
            assert!(r.templates.contains(t), "{:?}", r.templates);
        }
        assert!(r.codes.contains("abusive_language"));
    }

    #[test]
    fn a_missing_directory_cannot_run() {
        assert!(lint(Path::new("/nonexistent/rules")).is_err());
    }
}
