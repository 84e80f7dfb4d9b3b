//! Stage 6, outbox: queued [`OutboxItem`]s → SMTP through lettre.
//!
//! Replies were queued in the same transaction as their message. One background
//! worker renders each with the templates of the running rule set, sends it with a
//! timeout on the whole SMTP exchange, and moves it to the sent log in one
//! durable transaction, so a reply queued before a crash goes out after the
//! restart. While the relay is down the worker retries with exponential back-off.
//!
//! Delivery is at least once, and a repeat needs a crash at one precise moment.
//! Before a reply goes on the wire its attempt is recorded durably; right after
//! the relay's `250` the sent mark is made durable (fsync), before anything else
//! is sent. Only a crash between that `250` and the fsync repeats a reply: the
//! relay has it, the store does not know. No SMTP client can close that window
//! (RFC 5321 §6.1 accepts duplicates rather than loss; it is the two-generals
//! problem), so at most [`MAX_IN_FLIGHT`] replies can repeat per crash. On the
//! next start the worker sees the unfinished attempt, logs the reply as possibly
//! sent already and sends it again with the same deterministic Message-ID, which
//! lets the receiving side discard the copy.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::contracts::Contracts;
use crate::policy::RuleSet;
use crate::reply::render::{FindingView, ReplyContext};
use crate::store::{OutboxItem, Store};

/// Settings of the worker.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub relay: String,
    pub from: String,
    pub timeout: Duration,
    pub max_backoff: Duration,
    pub max_attempts: u32,
    pub portal_url: String,
    pub tag_prefix: String,
}

impl OutboxConfig {
    /// The worker's settings from the configuration (`smtp.*`, `portal.base_url`,
    /// `tickets.tag_prefix`).
    pub fn from_config(config: &crate::config::Config) -> OutboxConfig {
        OutboxConfig {
            relay: config.smtp_relay.clone(),
            from: config.smtp_from.clone(),
            timeout: config.smtp_timeout,
            max_backoff: config.smtp_max_backoff,
            max_attempts: config.smtp_max_attempts,
            portal_url: config.portal_url.clone(),
            tag_prefix: config.tag_prefix.clone(),
        }
    }
}

/// Replies on the wire at once: the worker sends one at a time, and sends
/// nothing while a sent mark is still unrecorded. Hence also the most replies a
/// single crash can make the relay receive twice.
pub const MAX_IN_FLIGHT: usize = 1;

/// What one delivery step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Nothing is due.
    Idle,
    /// A reply was accepted by the relay and recorded as sent.
    Sent { message_id: String },
    /// The attempt failed; the reply stays queued until `retry_at`.
    Retry {
        message_id: String,
        error: String,
        retry_at: Timestamp,
    },
    /// The reply cannot be sent (bad address, broken template, attempts exhausted).
    Failed { message_id: String, error: String },
}

/// `Auto-Submitted: auto-replied` (RFC 3834).
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-replied".to_owned())
    }
}

/// `X-Auto-Response-Suppress: All`, so Exchange does not answer our answer.
#[derive(Clone)]
struct SuppressAutoResponse;

impl Header for SuppressAutoResponse {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Auto-Response-Suppress")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(SuppressAutoResponse)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "All".to_owned())
    }
}

/// The reply worker.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
    rules: Arc<crate::policy::RulesHandle>,
    contracts: Contracts,
    cfg: OutboxConfig,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    pub wake: Arc<tokio::sync::Notify>,
    /// [`MAX_IN_FLIGHT`] deliveries at a time, whoever calls (worker or a test's drain).
    busy: Arc<tokio::sync::Semaphore>,
    /// Replies the relay accepted but the store could not mark as sent (disk
    /// full): recorded before anything else is sent, and never sent again.
    unrecorded: Arc<std::sync::Mutex<Vec<OutboxItem>>>,
}

enum Fault {
    /// Worth retrying (relay down, timeout, 4xx).
    Transient(String),
    /// Retrying cannot help (5xx, bad address, template error).
    Permanent(String),
}

impl Outbox {
    /// Builds the worker; nothing is sent until [`Outbox::run`] or [`Outbox::deliver_one`].
    pub fn new(
        store: Store,
        rules: Arc<crate::policy::RulesHandle>,
        contracts: Contracts,
        cfg: OutboxConfig,
    ) -> Outbox {
        let (host, port) = cfg
            .relay
            .rsplit_once(':')
            .map(|(h, p)| (h.to_owned(), p.parse().unwrap_or(25)))
            .unwrap_or((cfg.relay.clone(), 25));
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(cfg.timeout))
            .build();
        let wake = store
            .outbox_wake()
            .unwrap_or_else(|| Arc::new(tokio::sync::Notify::new()));
        Outbox {
            store,
            rules,
            contracts,
            cfg,
            transport,
            // Nodes sharing a database wake each other (LISTEN/NOTIFY).
            wake,
            busy: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            unrecorded: Arc::default(),
        }
    }

    /// Sends replies until `shutdown` resolves.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut pause = Duration::ZERO;
        loop {
            if *shutdown.borrow() {
                return;
            }
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => return,
                }
            }
            let step = self.deliver_one().await;
            pause = match &step {
                Delivery::Idle => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => return,
                    }
                    Duration::ZERO
                }
                Delivery::Sent { .. } | Delivery::Failed { .. } => Duration::ZERO,
                // The relay is likely down: do not hammer it with the rest of the queue.
                Delivery::Retry { retry_at, .. } => {
                    let wait = retry_at.as_millisecond() - Timestamp::now().as_millisecond();
                    Duration::from_millis(wait.clamp(50, 5_000) as u64)
                }
            };
        }
    }

    /// Sends the oldest due reply, if any, and records the result durably.
    pub async fn deliver_one(&self) -> Delivery {
        let step = self.deliver_step().await;
        crate::metrics::record_delivery(&step);
        step
    }

    async fn deliver_step(&self) -> Delivery {
        // The semaphore is never closed, so acquiring only waits.
        let Ok(_in_flight) = self.busy.acquire().await else {
            return Delivery::Idle;
        };
        if let Some(waiting) = self.record_unrecorded() {
            return waiting;
        }
        let now = Timestamp::now();
        let mut item = match self.store.next_due(now) {
            Ok(Some(item)) => item,
            Ok(None) => return Delivery::Idle,
            Err(crate::store::StoreError::Reopening) => {
                // Closed after a fault or by a read-only disk at start: keep trying
                // to reopen it, also while no mail comes in.
                let _ = self.store.heal();
                return Delivery::Idle;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                return Delivery::Idle;
            }
        };
        let id = item.message_id.clone();
        let result = match self.build(&item) {
            Ok(msg) => {
                if let Err(waiting) = self.begin_attempt(&mut item) {
                    return waiting;
                }
                self.send(msg, &item.intent.to, item.intent.human).await
            }
            Err(e) => {
                item.attempts += 1;
                Err(Fault::Permanent(e))
            }
        };
        match result {
            Ok(()) => {
                if let Err(e) = self.store.mark_done(&item, true, Timestamp::now()) {
                    tracing::error!(message_id = %id, error = %e, "reply sent but not recorded yet; holding the outbox until it is");
                    self.unrecorded
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(item.clone());
                    let _ = self.store.heal();
                }
                tracing::info!(message_id = %id, to = %item.intent.to, template = %item.intent.template, "reply sent");
                Delivery::Sent { message_id: id }
            }
            Err(Fault::Permanent(error)) => self.give_up(item, error),
            Err(Fault::Transient(error)) if item.attempts >= self.cfg.max_attempts => {
                self.give_up(item, error)
            }
            Err(Fault::Transient(error)) => {
                let exp = 2u64.saturating_pow(item.attempts.min(30));
                let backoff = Duration::from_secs(exp).min(self.cfg.max_backoff);
                let retry_at =
                    Timestamp::now() + jiff::SignedDuration::try_from(backoff).unwrap_or_default();
                item.next_at = retry_at;
                item.last_error = Some(error.clone());
                if let Err(e) = self.store.reschedule(&mut item) {
                    tracing::error!(message_id = %id, error = %e, "cannot reschedule reply");
                }
                tracing::warn!(message_id = %id, attempts = item.attempts, error = %error, "reply deferred");
                Delivery::Retry {
                    message_id: id,
                    error,
                    retry_at,
                }
            }
        }
    }

    /// Records durably that an attempt starts, before the relay sees anything:
    /// the attempt counts against `max_attempts` even if a crash ends it, and the
    /// next start knows the outcome of this one is unknown (an attempt with no
    /// error recorded). When that write fails nothing is sent.
    fn begin_attempt(&self, item: &mut OutboxItem) -> Result<(), Delivery> {
        if item.attempts > 0 && item.last_error.is_none() {
            tracing::warn!(message_id = %item.message_id, attempts = item.attempts, "the last attempt ended without a recorded outcome (a crash); the relay may have this reply already, sending it again");
        }
        item.attempts += 1;
        item.last_error = None;
        if let Err(e) = self.store.reschedule(item) {
            tracing::error!(message_id = %item.message_id, error = %e, "cannot record the attempt; not sending");
            let _ = self.store.heal();
            return Err(Delivery::Retry {
                message_id: item.message_id.clone(),
                error: format!("cannot record the attempt: {e}"),
                retry_at: Timestamp::now() + jiff::SignedDuration::from_secs(1),
            });
        }
        Ok(())
    }

    /// Marks replies sent earlier whose mark failed; while that still fails, the
    /// outbox waits (sending more would only grow the set a crash could repeat).
    fn record_unrecorded(&self) -> Option<Delivery> {
        let mut pending = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(item) = pending.last() {
            match self.store.mark_done(item, true, Timestamp::now()) {
                Ok(()) => {
                    tracing::info!(message_id = %item.message_id, "sent reply recorded");
                    pending.pop();
                }
                Err(e) => {
                    let _ = self.store.heal();
                    return Some(Delivery::Retry {
                        message_id: item.message_id.clone(),
                        error: format!("sent, but not yet recorded: {e}"),
                        retry_at: Timestamp::now() + jiff::SignedDuration::from_secs(1),
                    });
                }
            }
        }
        None
    }

    fn give_up(&self, mut item: OutboxItem, error: String) -> Delivery {
        let id = item.message_id.clone();
        item.last_error = Some(error.clone());
        if let Err(e) = self.store.mark_done(&item, false, Timestamp::now()) {
            tracing::error!(message_id = %id, error = %e, "cannot record failed reply");
        }
        tracing::error!(message_id = %id, to = %item.intent.to, error = %error, "reply abandoned");
        Delivery::Failed {
            message_id: id,
            error,
        }
    }

    async fn send(&self, msg: Message, to: &str, human: bool) -> Result<(), Fault> {
        // RFC 3834 §3.3: an automatic response goes out with a null return path,
        // so that no bounce of it is ever answered automatically. A person's reply
        // (staff) keeps our address, so bounces reach the desk.
        let rcpt: lettre::Address = to
            .parse()
            .map_err(|e| Fault::Permanent(format!("recipient {to:?}: {e}")))?;
        let sender = if human {
            self.cfg.from.parse::<Mailbox>().ok().map(|m| m.email)
        } else {
            None
        };
        let envelope = lettre::address::Envelope::new(sender, vec![rcpt])
            .map_err(|e| Fault::Permanent(format!("envelope: {e}")))?;
        let bytes = msg.formatted();
        // lettre's timeout covers single socket operations; bound the whole exchange.
        let total = self.cfg.timeout.saturating_mul(2);
        match tokio::time::timeout(total, self.transport.send_raw(&envelope, &bytes)).await {
            Err(_) => Err(Fault::Transient(format!(
                "SMTP exchange timed out after {total:?}"
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => Err(Fault::Permanent(format!("relay refused: {e}"))),
            Ok(Err(e)) => Err(Fault::Transient(format!("relay {}: {e}", self.cfg.relay))),
        }
    }

    /// Renders and assembles the reply message.
    fn build(&self, item: &OutboxItem) -> Result<Message, String> {
        let rendered = self.preview(item)?;
        let from: Mailbox = self
            .cfg
            .from
            .parse()
            .map_err(|e| format!("smtp.from: {e}"))?;
        let to: Mailbox = item
            .intent
            .to
            .parse()
            .map_err(|e| format!("recipient {:?}: {e}", item.intent.to))?;
        let mut b = Message::builder()
            .from(from)
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(format!("<{}>", item.message_id)))
            .header(ContentType::TEXT_PLAIN);
        if !item.intent.human {
            b = b.header(AutoSubmitted).header(SuppressAutoResponse);
        }
        if let Some(orig) = &item.intent.original_message_id {
            let orig = format!("<{}>", crate::store::normalise_id(orig));
            let mut refs: Vec<String> = item
                .intent
                .references
                .iter()
                .map(|r| format!("<{}>", crate::store::normalise_id(r)))
                .collect();
            refs.retain(|r| *r != orig);
            refs.push(orig.clone());
            b = b.in_reply_to(orig).references(refs.join(" "));
        }
        b.body(rendered.body).map_err(|e| e.to_string())
    }

    /// Renders a queued reply exactly as [`Outbox::deliver_one`] would send it
    /// (`intake check --explain` shows it).
    ///
    /// # Errors
    /// The reply's message is missing, or its template does not render.
    pub fn preview(&self, item: &OutboxItem) -> Result<crate::reply::render::Rendered, String> {
        let rules = self.rules.current();
        let ctx = self.context(item, &rules)?;
        rules
            .templates
            .render(&item.intent.lang, &item.intent.template, &ctx)
            .map_err(|e| e.to_string())
    }

    fn context(&self, item: &OutboxItem, rules: &RuleSet) -> Result<ReplyContext, String> {
        let lang = item.intent.lang.as_str();
        // Sequence 0: a reply of its own (staff reply, notification, sign-in link),
        // not the answer to a stored message.
        let record = if item.seq == 0 {
            None
        } else {
            Some(
                self.store
                    .message(item.seq)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("message {} of the reply is missing", item.seq))?,
            )
        };
        let ticket = match item.ticket {
            Some(n) => self.store.ticket(n).map_err(|e| e.to_string())?,
            None => None,
        };
        let contract = ticket
            .as_ref()
            .and_then(|t| t.client_id.as_deref())
            .and_then(|id| self.contracts.by_client_id(id));
        let sla = ticket.as_ref().and_then(|t| t.sla.clone());
        let mut ctx = ReplyContext {
            ticket: item.ticket,
            tag: item
                .ticket
                .map(|n| format!("[{}{n}]", self.cfg.tag_prefix))
                .unwrap_or_default(),
            subject: item.intent.original_subject.clone(),
            subject_core: ticket
                .as_ref()
                .map(|t| t.subject_core.clone())
                .unwrap_or_default(),
            findings: Vec::new(),
            portal_url: self.cfg.portal_url.clone(),
            client_name: contract.map(|c| c.name.clone()),
            client_id: contract.map(|c| c.client_id.clone()),
            sla_level: sla.as_ref().map(|s| s.level.clone()),
            sla_reaction_minutes: sla.as_ref().map(|s| s.reaction_minutes),
            sla_reaction_hours: sla.as_ref().map(|s| s.reaction_minutes.div_ceil(60)),
            sla_business_hours: sla.as_ref().is_some_and(|s| s.business_hours),
            sla_reaction_due: sla.as_ref().map(|s| s.reaction_due.to_string()),
            duplicate_of: record.as_ref().and_then(|record| {
                record
                    .decision
                    .findings
                    .iter()
                    .find(|f| f.code == "duplicate")
                    .and_then(|f| f.ticket)
                    .or(
                        if record.decision.outcome == crate::decision::Outcome::Duplicate {
                            item.ticket
                        } else {
                            None
                        },
                    )
            }),
            lang: lang.to_owned(),
            vars: item.intent.vars.clone(),
            link: ticket.as_ref().and_then(|t| t.link),
        };
        let findings = record.map(|r| r.decision.findings).unwrap_or_default();
        for f in &findings {
            let text = rules
                .templates
                .snippet(lang, &f.code, &ctx, &f.detail)
                .map_err(|e| e.to_string())?;
            ctx.findings.push(FindingView {
                code: f.code.clone(),
                detail: f.detail.clone(),
                text,
            });
        }
        Ok(ctx)
    }
}
