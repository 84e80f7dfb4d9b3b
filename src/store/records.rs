//! Store internals, the records: what the store keeps about tickets, messages and
//! replies, and what the pipeline hands it ([`Filing`]).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{queue_key, OnFiled, Writes};
use crate::decision::{Decision, Status};
use crate::facts::Envelope;
use crate::sla::SlaDue;

/// A support ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub number: u64,
    pub status: Status,
    /// Client identifier of the contract, when one was identified.
    pub client_id: Option<String>,
    /// The address that opened the ticket.
    pub owner: String,
    pub subject: String,
    pub subject_core: String,
    pub lang: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub sla: Option<SlaDue>,
    /// Message sequence numbers, oldest first.
    pub messages: Vec<u64>,
    /// Normalised new text of the opening message (for duplicate detection), capped.
    pub text_norm: String,
    pub events: Vec<TicketEvent>,
    /// SLA timer state: reaction and in-work stops, pauses while waiting for the client.
    #[serde(default)]
    pub timers: crate::lifecycle::Timers,
    /// The earlier ticket this one continues (a follow-up after the reopen period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<u64>,
}

/// Something that happened to a ticket: who, when, what, from which status to
/// which, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TicketEvent {
    pub at: Timestamp,
    pub kind: String,
    pub detail: String,
    /// Who did it: `client:<address>`, `staff:<name>`, `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Status>,
    /// Why (a status change's note) or what was said (a staff reply's text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Message-ID of the message this event sent or filed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Whether the client sees it in the portal (internal notes do not show).
    #[serde(default)]
    pub public: bool,
}

/// What the pipeline asks the store to record for one message.
#[derive(Debug, Clone)]
pub struct Filing {
    pub raw: Vec<u8>,
    pub dedup_key: Vec<u8>,
    pub message_id: Option<String>,
    pub from: String,
    pub subject: String,
    pub subject_core: String,
    /// `normalize(subject_core)`: the key of the duplicate index.
    pub subject_norm: String,
    pub client_id: Option<String>,
    pub lang: String,
    pub text_norm: String,
    pub received_at: Timestamp,
    pub envelope: Envelope,
    pub decision: Decision,
    pub rules_revision: String,
    pub timings: Timings,
    pub sla: Option<SlaDue>,
    /// The reply to queue, if the policy asked for one and the sender may get it.
    pub reply: Option<ReplyIntent>,
    /// Why a reply the policy asked for is not sent, decided before the write.
    pub reply_suppressed: Option<String>,
    /// Daily reply limit per address (0: no limit).
    pub replies_per_day: u32,
    /// Domain for generated Message-IDs of replies.
    pub reply_domain: String,
    /// Collection writes made in the filing's transaction (not for a re-delivery).
    pub writes: Writes,
    /// Collection writes that need the filed record, made in the same transaction.
    pub on_filed: Option<OnFiled>,
}

impl Filing {
    /// Every collection write of this filing once its record is known.
    pub fn writes_for(&self, record: &MessageRecord) -> Writes {
        let mut w = self.writes.clone();
        if let Some(hook) = &self.on_filed {
            w.extend(hook.writes(record));
        }
        w
    }
}

/// A reply to send: rendered by the outbox at send time from these values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyIntent {
    pub template: String,
    pub lang: String,
    pub to: String,
    pub original_subject: String,
    pub original_message_id: Option<String>,
    pub references: Vec<String>,
    /// Values for templates beyond the ticket's own: a staff reply's text, a
    /// status change, a sign-in link.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vars: std::collections::BTreeMap<String, String>,
    /// Written by a person (a staff reply): not marked `Auto-Submitted`.
    #[serde(default)]
    pub human: bool,
}

/// Per-stage timings in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub parse_us: u64,
    pub facts_us: u64,
    pub policy_us: u64,
    pub store_us: u64,
}

/// The stored record of one message and its decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub seq: u64,
    pub message_id: Option<String>,
    pub from: String,
    pub subject: String,
    pub received_at: Timestamp,
    pub size: u64,
    pub envelope: Envelope,
    pub decision: Decision,
    pub rules_revision: String,
    pub timings: Timings,
    pub reply_message_id: Option<String>,
    pub reply_suppressed: Option<String>,
}

/// A queued reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Identity of the reply: message sequence number and template (sent log key).
    pub key: Vec<u8>,
    /// Position in the queue: due time, then `key`; the outbox tree is ordered by it.
    pub queue_key: Vec<u8>,
    pub seq: u64,
    pub ticket: Option<u64>,
    pub intent: ReplyIntent,
    pub message_id: String,
    pub attempts: u32,
    pub next_at: Timestamp,
    pub last_error: Option<String>,
    pub queued_at: Timestamp,
}

impl OutboxItem {
    /// A reply that is not the answer to a stored message (a staff reply, a
    /// status notification, a sign-in link): `key` must be unique per reply and
    /// is its identity in the sent log.
    pub fn standalone(
        key: Vec<u8>,
        ticket: Option<u64>,
        intent: ReplyIntent,
        message_id: String,
        at: Timestamp,
    ) -> OutboxItem {
        let next_at = at.min(Timestamp::now());
        OutboxItem {
            queue_key: queue_key(next_at, &key),
            key,
            seq: 0,
            ticket,
            intent,
            message_id,
            attempts: 0,
            next_at,
            last_error: None,
            queued_at: at,
        }
    }
}

/// A reply that left through the relay, or gave up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentRecord {
    pub item: OutboxItem,
    pub at: Timestamp,
    pub ok: bool,
}

/// What a commit produced.
#[derive(Debug, Clone)]
pub struct Committed {
    pub record: MessageRecord,
    /// True when the message had been filed before (idempotent re-delivery).
    pub redelivery: bool,
}
