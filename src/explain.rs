//! `--explain`: one message through the same pipeline as the hook, with the
//! helpers' probes on → [`Explain`]: the facts (and which contract and why), each
//! rule in order with its findings, details, helper calls (the words matched and
//! where, the tickets found and their similarity) and time, the decide path, and
//! the reply rendered by the outbox's own code. `intake check --explain` prints it
//! and the corpus runner prints it under a failed step.

use std::fmt::Write as _;

use jiff::Timestamp;
use serde::Serialize;

use crate::decision::Finding;
use crate::facts::{Envelope, Facts};
use crate::pipeline::{Pipeline, Prepared};
use crate::policy::probe::{self, Probe};
use crate::reply::outbox::{Outbox, OutboxConfig};
use crate::store::MessageRecord;

/// Why a run could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("cannot read the store")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot file or render the message: {0}")]
    Commit(String),
}

/// The facts a policy writer looks at first.
#[derive(Debug, Clone, Serialize)]
pub struct FactsView {
    pub from: String,
    pub subject: String,
    pub subject_core: String,
    pub lang: String,
    pub ticket_ref: Option<u64>,
    pub client_ids: Vec<String>,
    /// `MI-10234 (name), level, status — why it is the contract`.
    pub contract: Option<String>,
    pub sender_contract: Option<String>,
    pub attachments: Vec<String>,
    pub text_new: String,
    pub text_new_bytes: usize,
    /// Length of the whole body text the rules see (`msg.text`), quotes included.
    pub text_bytes: usize,
    /// `msg.from_source`: `from`, or the fallback taken for a broken From.
    pub from_source: String,
    /// `msg.charset_guessed`: the encoding detected for undeclared 8-bit bytes.
    pub charset_guessed: Option<String>,
    /// `msg.forwarded`: the text is that of an embedded message.
    pub forwarded: bool,
}

/// One helper call, with its text named (`msg.subject`) where it is a fact.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub call: String,
    pub result: String,
}

/// One rule as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct RuleStep {
    pub rule: String,
    pub path: String,
    pub micros: u64,
    pub findings: Vec<Finding>,
    pub calls: Vec<Call>,
    pub error: Option<String>,
    pub limit_hit: bool,
}

/// The reply, as the outbox would send it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplyView {
    None,
    Suppressed {
        why: String,
    },
    Rendered {
        to: String,
        lang: String,
        template: String,
        subject: String,
        body: String,
    },
    Failed {
        template: String,
        error: String,
    },
}

/// Everything `--explain` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Explain {
    pub revision: String,
    pub facts: FactsView,
    pub rules: Vec<RuleStep>,
    /// The finding tests of `decide.rhai`, in order, then its result.
    pub decide: Vec<Call>,
    pub decision: String,
    pub reply: ReplyView,
}

fn why_contract(f: &Facts) -> Option<String> {
    let c = f.contract.as_ref()?;
    Some(format!(
        "{} ({}), {}, {}{} — identifier {} in the message",
        c.client_id,
        c.name,
        c.level,
        c.status,
        if c.is_active_at(f.received_at) {
            ""
        } else {
            ", not active at the message's date"
        },
        c.client_id
    ))
}

fn why_sender(f: &Facts) -> Option<String> {
    let c = f.sender_contract.as_ref()?;
    let why = if c.addresses.iter().any(|a| a.eq_ignore_ascii_case(&f.from)) {
        format!("address {} is listed", f.from)
    } else {
        let domain = f.from.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        format!("domain {domain} is covered by {:?}", c.domains)
    };
    Some(format!(
        "{} ({}), {} — {why}",
        c.client_id, c.name, c.status
    ))
}

fn facts_view(f: &Facts) -> FactsView {
    let excerpt: String = f.text_new.chars().take(600).collect();
    FactsView {
        from: f.from.clone(),
        subject: f.subject.clone(),
        subject_core: f.subject_core.clone(),
        lang: f.lang.clone(),
        ticket_ref: f.ticket_ref,
        client_ids: f.client_ids.clone(),
        contract: why_contract(f),
        sender_contract: why_sender(f),
        attachments: f
            .attachments
            .iter()
            .map(|a| format!("{} ({}, {} bytes)", a.name, a.mime, a.size))
            .collect(),
        text_new: excerpt,
        text_new_bytes: f.text_new.len(),
        text_bytes: f.text.len(),
        from_source: f.from_source.clone(),
        charset_guessed: f.charset_guessed.clone(),
        forwarded: f.forwarded,
    }
}

fn named(p: &Probe, f: &Facts) -> Call {
    let text = p.text.as_ref().map(|t| {
        let fields = [
            ("msg.subject", &f.subject),
            ("msg.subject_core", &f.subject_core),
            ("msg.text_new", &f.text_new),
            ("msg.text", &f.text),
            ("msg.from", &f.from),
        ];
        fields
            .iter()
            .find(|(_, v)| probe::text_hash(v) == t.hash)
            .map(|(n, _)| (*n).to_owned())
            .unwrap_or_else(|| format!("{:?}", t.excerpt))
    });
    Call {
        call: match text {
            Some(t) => p.call.replace("{text}", &t),
            None => p.call.clone(),
        },
        result: p.result.clone(),
    }
}

/// Runs one message through `pipeline` (filing it in its store) with probes on.
/// A message the store has filed before answers with its record and no explain.
///
/// # Errors
/// Store failures.
pub fn run(
    pipeline: &Pipeline,
    outbox: &OutboxConfig,
    raw: Vec<u8>,
    envelope: Envelope,
    now: Timestamp,
) -> Result<(MessageRecord, Option<Explain>), ExplainError> {
    let (prepared, probes) = probe::capture(|| pipeline.prepare(raw, envelope, now));
    let (filing, evaluation, facts) = match prepared? {
        Prepared::Filed(r) => return Ok((*r, None)),
        Prepared::New {
            filing,
            evaluation,
            facts,
        } => (filing, evaluation, facts),
    };
    let record = pipeline
        .committer
        .commit_blocking(*filing)
        .map_err(|e| ExplainError::Commit(e.to_string()))?
        .record;
    let mut rules = Vec::new();
    for t in evaluation.trace.iter().filter(|t| t.rule != "decide") {
        rules.push(RuleStep {
            rule: t.rule.clone(),
            path: t.path.clone(),
            micros: t.micros,
            findings: record
                .decision
                .findings
                .iter()
                .filter(|f| f.rule == t.rule)
                .cloned()
                .collect(),
            calls: probes
                .iter()
                .filter(|p| p.rule == t.rule)
                .map(|p| named(p, &facts))
                .collect(),
            error: t.error.clone(),
            limit_hit: t.limit_hit,
        });
    }
    let decide = probes
        .iter()
        .filter(|p| p.rule == "decide")
        .map(|p| named(p, &facts))
        .collect();
    let d = &record.decision;
    let decision = match evaluation.trace.iter().find(|t| t.rule == "decide") {
        Some(t) if t.error.is_some() => {
            format!("decide failed: {}", t.error.as_deref().unwrap_or_default())
        }
        None => "decide did not run: a rule failed (policy_error)".to_owned(),
        Some(t) => format!(
            "outcome {}, status {}, reply {}, ticket {} ({} µs)",
            d.outcome.as_str(),
            d.status.map(|s| s.as_str()).unwrap_or("-"),
            d.reply.as_deref().unwrap_or("none"),
            d.ticket.map_or("-".into(), |t| t.to_string()),
            t.micros
        ),
    };
    let reply = reply_view(pipeline, outbox, &record)?;
    Ok((
        record,
        Some(Explain {
            revision: evaluation.revision.clone(),
            facts: facts_view(&facts),
            rules,
            decide,
            decision,
            reply,
        }),
    ))
}

fn reply_view(
    pipeline: &Pipeline,
    cfg: &OutboxConfig,
    record: &MessageRecord,
) -> Result<ReplyView, ExplainError> {
    if let Some(why) = &record.reply_suppressed {
        return Ok(ReplyView::Suppressed { why: why.clone() });
    }
    if record.reply_message_id.is_none() {
        return Ok(ReplyView::None);
    }
    let Some(item) = pipeline
        .store
        .outbox_items()?
        .into_iter()
        .find(|i| i.seq == record.seq)
    else {
        return Ok(ReplyView::None);
    };
    // The outbox's own rendering: same context, same templates. Its SMTP pool
    // needs a runtime to exist in (it connects nothing here).
    let rt = match tokio::runtime::Handle::try_current() {
        Ok(_) => None,
        Err(_) => Some(
            tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| ExplainError::Commit(format!("cannot start a runtime: {e}")))?,
        ),
    };
    let _entered = rt.as_ref().map(|r| r.enter());
    let outbox = Outbox::new(
        pipeline.store.clone(),
        pipeline.rules.clone(),
        pipeline.contracts.clone(),
        cfg.clone(),
    );
    Ok(match outbox.preview(&item) {
        Ok(r) => ReplyView::Rendered {
            to: item.intent.to.clone(),
            lang: item.intent.lang.clone(),
            template: item.intent.template.clone(),
            subject: r.subject,
            body: r.body,
        },
        Err(error) => ReplyView::Failed {
            template: item.intent.template.clone(),
            error,
        },
    })
}

impl Explain {
    /// The explain trace as text, each line prefixed with `indent`.
    pub fn render(&self, indent: &str) -> String {
        let mut o = String::new();
        let f = &self.facts;
        let _ = writeln!(o, "facts:");
        let _ = writeln!(o, "  from:            {}", f.from);
        let _ = writeln!(
            o,
            "  subject:         {:?} (core {:?})",
            f.subject, f.subject_core
        );
        let _ = writeln!(
            o,
            "  lang: {}   ticket_ref: {}   client_ids: [{}]",
            f.lang,
            f.ticket_ref.map_or("-".into(), |t| t.to_string()),
            f.client_ids.join(", ")
        );
        let _ = writeln!(
            o,
            "  contract:        {}",
            f.contract.as_deref().unwrap_or("-")
        );
        let _ = writeln!(
            o,
            "  sender_contract: {}",
            f.sender_contract.as_deref().unwrap_or("-")
        );
        if f.from_source != "from" {
            let _ = writeln!(
                o,
                "  from_source:     {} (From unusable: unverified)",
                f.from_source
            );
        }
        if let Some(cs) = &f.charset_guessed {
            let _ = writeln!(
                o,
                "  charset_guessed: {cs} (undeclared 8-bit bytes, detected)"
            );
        }
        if f.forwarded {
            let _ = writeln!(o, "  forwarded:       text of the embedded message");
        }
        if !f.attachments.is_empty() {
            let _ = writeln!(o, "  attachments:     {}", f.attachments.join("; "));
        }
        let _ = writeln!(
            o,
            "  text_new ({} of {} bytes):",
            f.text_new.len(),
            f.text_new_bytes
        );
        for l in f.text_new.lines() {
            let _ = writeln!(o, "    | {l}");
        }
        let _ = writeln!(o, "rules (revision {}):", self.revision);
        for r in &self.rules {
            let codes: Vec<&str> = r.findings.iter().map(|f| f.code.as_str()).collect();
            let _ = writeln!(
                o,
                "  {:<24} {:>6} µs  {}",
                r.rule,
                r.micros,
                if codes.is_empty() {
                    "-".to_owned()
                } else {
                    codes.join(", ")
                }
            );
            for fd in &r.findings {
                let _ = writeln!(o, "      finding {}: {}", fd.code, fd.detail);
            }
            if let Some(e) = &r.error {
                let _ = writeln!(
                    o,
                    "      ERROR{} {e}",
                    if r.limit_hit { " (limit)" } else { "" }
                );
            }
            for c in &r.calls {
                let _ = writeln!(o, "      {} → {}", c.call, c.result);
            }
        }
        let _ = writeln!(o, "decide:");
        for c in &self.decide {
            let _ = writeln!(o, "  {} → {}", c.call, c.result);
        }
        let _ = writeln!(o, "  ⇒ {}", self.decision);
        match &self.reply {
            ReplyView::None => {
                let _ = writeln!(o, "reply: none");
            }
            ReplyView::Suppressed { why } => {
                let _ = writeln!(o, "reply: suppressed ({why})");
            }
            ReplyView::Failed { template, error } => {
                let _ = writeln!(o, "reply {template}: does not render: {error}");
            }
            ReplyView::Rendered {
                to,
                lang,
                template,
                subject,
                body,
            } => {
                let _ = writeln!(o, "reply {lang}/{template} to {to}:");
                let _ = writeln!(o, "  Subject: {subject}");
                for l in body.lines() {
                    let _ = writeln!(o, "  | {l}");
                }
            }
        }
        o.lines()
            .map(|l| format!("{indent}{l}\n"))
            .collect::<String>()
    }
}
