//! The whole path of one message, shared by the HTTP hook, `intake check` and the
//! corpus runner: raw bytes → parse → dedup check → facts → policy → [`Filing`]
//! (the synchronous part, [`Pipeline::prepare`]), then the committer makes it
//! durable. One code path, so a tool's verdict is the server's verdict.

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;

use crate::contracts::Contracts;
use crate::decision::Outcome;
use crate::facts::{extract_facts, is_plausible_address, Envelope, Facts, FactsConfig};
use crate::policy::{self, Evaluation, Lookups, RulesHandle};
use crate::sla::SlaConfig;
use crate::spam::{SpamCheck, SpamInput};
use crate::store::{
    Committer, Filing, MessageRecord, ReplyIntent, Store, StoreError, Ticket, Timings,
};
use crate::text;

/// Stored normalised text per ticket is capped at this many bytes.
const TEXT_NORM_CAP: usize = 8 * 1024;

/// Everything the pipeline needs; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub store: Store,
    pub committer: Committer,
    pub rules: Arc<RulesHandle>,
    pub contracts: Contracts,
    pub facts_cfg: Arc<FactsConfig>,
    pub sla: Arc<SlaConfig>,
    pub replies_per_day: u32,
    /// Our own sender address: never replied to.
    pub reply_from: String,
    /// The spam stage and the backscatter guards (`spam.*`, `replies.*`).
    pub spam: Arc<crate::spam::SpamConfig>,
}

/// The result of the synchronous part.
pub enum Prepared {
    /// This message was filed before: its first decision stands.
    Filed(Box<MessageRecord>),
    /// A new message, evaluated and ready to be committed.
    New {
        filing: Box<Filing>,
        evaluation: Box<Evaluation>,
        facts: Arc<Facts>,
    },
}

/// Store look-ups for scripts, backed by the store.
struct StoreLookups(Store);

impl Lookups for StoreLookups {
    fn ticket(&self, number: u64) -> Option<Ticket> {
        self.0.ticket(number).unwrap_or_else(|e| {
            tracing::error!(error = %e, "ticket look-up failed");
            None
        })
    }
    fn ticket_for_message_id(&self, id: &str) -> Option<u64> {
        self.0.ticket_for_message_id(id).unwrap_or_else(|e| {
            tracing::error!(error = %e, "thread look-up failed");
            None
        })
    }
    fn open_tickets(&self, owner_key: &str, since: Timestamp) -> Vec<Ticket> {
        self.0.open_tickets(owner_key, since).unwrap_or_else(|e| {
            tracing::error!(error = %e, "open tickets look-up failed");
            Vec::new()
        })
    }
    fn open_tickets_about(
        &self,
        owner_key: &str,
        subject_norm: &str,
        since: Timestamp,
    ) -> Vec<Ticket> {
        self.0
            .open_tickets_about(owner_key, subject_norm, since)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "open tickets look-up failed");
                Vec::new()
            })
    }
    fn count_from_sender(
        &self,
        sender: &str,
        since: Timestamp,
        until: Timestamp,
        limit: u64,
    ) -> u64 {
        self.0
            .count_from_sender(sender, since, until, limit)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "sender count failed");
                0
            })
    }
}

/// Key under which a message is recognised when delivered again: the Message-ID
/// with a hash of the content, or the content hash alone. Trace headers that
/// change between deliveries (Received, Delivered-To, Return-Path) are not hashed.
pub fn dedup_key(
    raw: &[u8],
    message_id: Option<&str>,
    from: &str,
    subject: &str,
    date: Option<i64>,
) -> Vec<u8> {
    let body_start = find_body(raw);
    let mut h = blake3::Hasher::new();
    h.update(&raw[body_start..]);
    h.update(&[0]);
    h.update(from.as_bytes());
    h.update(&[0]);
    h.update(subject.as_bytes());
    h.update(&[0]);
    h.update(&date.unwrap_or(0).to_be_bytes());
    let content = h.finalize();
    match message_id {
        Some(id) => {
            let mut k = b"m:".to_vec();
            let mut h = blake3::Hasher::new();
            h.update(crate::store::normalise_id(id).as_bytes());
            h.update(&[0]);
            h.update(content.as_bytes());
            k.extend_from_slice(h.finalize().as_bytes());
            k
        }
        None => {
            let mut k = b"h:".to_vec();
            k.extend_from_slice(content.as_bytes());
            k
        }
    }
}

fn find_body(raw: &[u8]) -> usize {
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => raw.len(),
    }
}

/// Collection: reply addresses blocked after a permanent bounce (value: the status).
pub const BOUNCE_BLOCKS: &str = "bounce_blocks";
/// Collection: unknown senders answered recently (value: the time, Unix seconds).
pub const UNKNOWN_REPLIED: &str = "unknown_sender_replies";
/// Collection: messages judged without a spam verdict because Rspamd gave none
/// (key: the message's sequence number; value: why).
pub const SPAM_UNCHECKED: &str = "spam_unchecked";

/// A sender neither covered by a contract nor giving a known client identifier.
pub fn is_unknown_sender(facts: &Facts) -> bool {
    facts.contract.is_none() && facts.sender_contract.is_none()
}

/// Why a reply asked for by the policy must not go out (RFC 3834 §2 and loop guards).
pub fn reply_suppression(facts: &Facts, reply_from: &str) -> Option<&'static str> {
    let h = |n: &str| facts.header(n).map(|v| v.trim().to_ascii_lowercase());
    // RFC 3834 §5: any value but exactly `no` (`notification` is automatic too).
    if h("auto-submitted").is_some_and(|v| !v.is_empty() && v != "no") {
        return Some("auto_submitted");
    }
    if h("precedence").is_some_and(|v| ["bulk", "junk", "list"].contains(&v.as_str())) {
        return Some("precedence");
    }
    if facts.header("list-id").is_some() {
        return Some("mailing_list");
    }
    if h("return-path").is_some_and(|v| v == "<>" || v.is_empty()) {
        return Some("null_return_path");
    }
    if facts
        .envelope
        .mail_from
        .as_deref()
        .is_some_and(|v| v.trim().is_empty() || v.trim() == "<>")
    {
        return Some("null_return_path");
    }
    let to = facts.reply_address();
    if !is_plausible_address(to) {
        return Some("no_valid_address");
    }
    let local = to.split('@').next().unwrap_or("");
    if ["mailer-daemon", "postmaster", "do-not-reply", "donotreply"].contains(&local)
        || ["noreply", "no-reply", "no_reply", "bounce"]
            .iter()
            .any(|p| local.starts_with(p))
    {
        return Some("automatic_sender");
    }
    if to.eq_ignore_ascii_case(reply_from) {
        return Some("own_address");
    }
    None
}

impl Pipeline {
    /// Parses, checks for re-delivery, builds facts and runs the policy.
    ///
    /// # Errors
    /// Only store read failures; bad mail and bad scripts are decisions, not errors.
    pub fn prepare(
        &self,
        raw: Vec<u8>,
        envelope: Envelope,
        received_at: Timestamp,
    ) -> Result<Prepared, StoreError> {
        self.prepare_with(raw, envelope, received_at, SpamInput::default(), false)
    }

    /// [`Pipeline::prepare`] with the spam stage's result: `spam` is what Rspamd
    /// said (asked by the caller, who may wait on the network); `from_gateway` is
    /// true only when the message came from the hook with the gateway's token, the
    /// one case where the gateway's spam headers may be trusted
    /// (`spam.trust_gateway_headers`).
    ///
    /// # Errors
    /// As [`Pipeline::prepare`].
    pub fn prepare_with(
        &self,
        raw: Vec<u8>,
        envelope: Envelope,
        received_at: Timestamp,
        spam: SpamInput,
        from_gateway: bool,
    ) -> Result<Prepared, StoreError> {
        let t0 = Instant::now();
        let parsed = crate::parse::parse(&raw);
        let t_parse = t0.elapsed();
        let from = parsed
            .from
            .as_ref()
            .map(|m| m.address.as_str())
            .unwrap_or("");
        let key = dedup_key(
            &raw,
            parsed.message_id.as_deref(),
            from,
            &parsed.subject,
            parsed.date,
        );
        let filed = match self.store.find_filed(&key) {
            // The store is closed (a fault it could not reopen from, or a
            // read-only disk at start): the gateway's retries are what tries again.
            Err(StoreError::Reopening) => {
                self.store.heal()?;
                self.store.find_filed(&key)?
            }
            found => found?,
        };
        if let Some(record) = filed {
            return Ok(Prepared::Filed(Box::new(record)));
        }
        let t1 = Instant::now();
        let mut facts = extract_facts(
            &parsed,
            &envelope,
            raw.len() as u64,
            received_at,
            &self.contracts,
            &self.facts_cfg,
        );
        self.apply_spam(&mut facts, spam, from_gateway);
        let facts = Arc::new(facts);
        let t_facts = t1.elapsed();
        let t2 = Instant::now();
        let rules = self.rules.current();
        let evaluation = policy::evaluate(
            &rules,
            facts.clone(),
            Arc::new(StoreLookups(self.store.clone())),
            &self.contracts,
        );
        let t_policy = t2.elapsed();
        let filing = self.filing(
            raw,
            key,
            &facts,
            &evaluation,
            &rules.templates,
            Timings {
                parse_us: t_parse.as_micros() as u64,
                facts_us: t_facts.as_micros() as u64,
                policy_us: t_policy.as_micros() as u64,
                store_us: 0,
            },
        );
        Ok(Prepared::New {
            filing: Box::new(filing),
            evaluation: Box::new(evaluation),
            facts,
        })
    }

    /// Puts the verdict into the facts: Rspamd's when it answered, else the
    /// gateway's headers when they may be trusted.
    fn apply_spam(&self, facts: &mut Facts, spam: SpamInput, from_gateway: bool) {
        facts.spam_check = spam.check;
        facts.spam = spam.verdict;
        if facts.spam.is_none() && from_gateway && self.spam.trust_gateway_headers {
            if let Some(v) = crate::spam::gateway::verdict(&facts.headers) {
                facts.spam = Some(v);
                if facts.spam_check == SpamCheck::Off {
                    facts.spam_check = SpamCheck::Ok;
                }
            }
        }
    }

    /// Whether a reply the policy asked for must not go out because of what the
    /// store remembers: a permanent bounce of the address (`replies.bounce_block_days`)
    /// or an earlier reply to the same unknown sender (`replies.unknown_sender_days`).
    fn reply_blocked(&self, facts: &Facts, why: &mut Option<String>) -> bool {
        let to = facts.reply_address().as_bytes();
        let now = facts.received_at;
        let live = |name: &str| match self
            .store
            .collection(name)
            .and_then(|c| c.get_live(to, now))
        {
            Ok(found) => found.is_some(),
            Err(e) => {
                tracing::error!(collection = name, error = %e, "reply guard look-up failed; not applied");
                false
            }
        };
        if live(BOUNCE_BLOCKS) {
            *why = Some("address_bounced".into());
            return true;
        }
        if self.spam.unknown_sender_days > 0 && is_unknown_sender(facts) && live(UNKNOWN_REPLIED) {
            *why = Some("unknown_sender_answered_recently".into());
            return true;
        }
        false
    }

    fn filing(
        &self,
        raw: Vec<u8>,
        dedup_key: Vec<u8>,
        facts: &Facts,
        ev: &Evaluation,
        templates: &crate::reply::render::Templates,
        timings: Timings,
    ) -> Filing {
        let d = &ev.decision;
        let mut reply_suppressed = None;
        let reply = match &d.reply {
            Some(template) => match reply_suppression(facts, &self.reply_from) {
                Some(why) => {
                    reply_suppressed = Some(why.to_owned());
                    None
                }
                None if !templates.has(&d.lang, template) && !templates.has("en", template) => {
                    tracing::error!(template = %template, "decision names a reply template that does not exist");
                    reply_suppressed = Some(format!("missing_template:{template}"));
                    None
                }
                None if self.reply_blocked(facts, &mut reply_suppressed) => None,
                None => Some(ReplyIntent {
                    template: template.clone(),
                    lang: d.lang.clone(),
                    to: facts.reply_address().to_owned(),
                    original_subject: facts.subject.clone(),
                    original_message_id: Some(facts.message_id.clone()).filter(|s| !s.is_empty()),
                    references: facts.references.clone(),
                    vars: Default::default(),
                    human: false,
                }),
            },
            None => None,
        };
        let contract = facts.contract.as_ref().or(facts.sender_contract.as_ref());
        let sla = match d.outcome {
            Outcome::Create => contract.and_then(|c| self.sla.due(&c.level, facts.received_at)),
            _ => None,
        };
        let mut text_norm = text::normalize(&facts.text_new);
        if text_norm.len() > TEXT_NORM_CAP {
            let mut cut = TEXT_NORM_CAP;
            while !text_norm.is_char_boundary(cut) {
                cut -= 1;
            }
            text_norm.truncate(cut);
        }
        let mut writes = crate::store::Writes::new();
        if reply.is_some() && self.spam.unknown_sender_days > 0 && is_unknown_sender(facts) {
            let until = facts.received_at
                + jiff::SignedDuration::from_hours(24 * i64::from(self.spam.unknown_sender_days));
            writes.put_until(
                UNKNOWN_REPLIED,
                facts.reply_address().as_bytes(),
                facts.received_at.as_second().to_be_bytes().to_vec(),
                Some(until),
            );
        }
        let on_filed = match &facts.spam_check {
            crate::spam::SpamCheck::Unavailable(why) => {
                let why = why.clone();
                Some(crate::store::OnFiled::new(move |rec, w| {
                    w.put(
                        SPAM_UNCHECKED,
                        rec.seq.to_be_bytes(),
                        why.clone().into_bytes(),
                    );
                }))
            }
            _ => None,
        };
        Filing {
            raw,
            dedup_key,
            message_id: Some(facts.message_id.clone()).filter(|s| !s.is_empty()),
            from: facts.from.clone(),
            subject: facts.subject.clone(),
            subject_core: facts.subject_core.clone(),
            subject_norm: text::normalize(&facts.subject_core),
            client_id: contract.map(|c| c.client_id.clone()),
            lang: d.lang.clone(),
            text_norm,
            received_at: facts.received_at,
            envelope: facts.envelope.clone(),
            decision: d.clone(),
            rules_revision: ev.revision.clone(),
            timings,
            sla,
            reply,
            reply_suppressed,
            replies_per_day: self.replies_per_day,
            reply_domain: self
                .reply_from
                .rsplit_once('@')
                .map(|(_, d)| d.to_owned())
                .unwrap_or_else(|| "intake.invalid".into()),
            writes,
            on_filed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_key_ignores_trace_headers() {
        let a = b"Received: from a\r\nSubject: x\r\n\r\nbody";
        let b = b"Received: from b\r\nReceived: from c\r\nSubject: x\r\n\r\nbody";
        assert_eq!(
            dedup_key(a, Some("<i@x>"), "f", "x", None),
            dedup_key(b, Some("i@x"), "f", "x", None)
        );
        assert_ne!(
            dedup_key(a, Some("i@x"), "f", "x", None),
            dedup_key(a, Some("j@x"), "f", "x", None)
        );
        assert_ne!(
            dedup_key(a, None, "f", "x", None),
            dedup_key(b"S: x\r\n\r\nother", None, "f", "x", None)
        );
    }
}
