//! sled engine, writes: a [`Filing`] → one multi-tree transaction (message,
//! ticket, indexes, queued reply), and staff changes to one ticket. No flush here:
//! the committer makes them durable.

use jiff::Timestamp;
use sled::transaction::{TransactionError, TransactionalTree};
use sled::Transactional;

use super::rawlog::RawRef;
use super::{
    abort, about_key, be, dec, enc, kv, prefixed, read_u64, ts_key, value, SledStore, TxResult,
    NEXT_SEQ, NEXT_TICKET,
};
use crate::decision::{Outcome, Status};
use crate::store::{
    normalise_id, queue_key, Committed, Filing, MessageRecord, OutboxItem, PackedRaw, StoreError,
    Ticket, TicketChange, TicketEvent, Writes,
};

impl SledStore {
    /// Changes one ticket in a transaction and durably (see
    /// [`Engine::change_ticket_dyn`](crate::store::Engine::change_ticket_dyn)).
    pub(super) fn change_ticket_dyn(
        &self,
        number: u64,
        change: &mut TicketChange<'_>,
    ) -> Result<(), StoreError> {
        let trees = self.t()?;
        // sled may run the transaction again on a conflict; `change` is FnMut.
        let change = std::cell::RefCell::new(change);
        let res = (&trees.tickets, &trees.outbox, &trees.thread, &trees.kv).transaction(
            |(tickets, outbox, thread, kv_tree)| {
                let Some(bytes) = tickets.get(be(number))? else {
                    return abort(StoreError::NoSuchTicket(number));
                };
                let mut ticket: Ticket = dec("tickets", &bytes).or_else(abort)?;
                let mut writes = Writes::new();
                let items = (change.borrow_mut())(&mut ticket, &mut writes).or_else(abort)?;
                for item in &items {
                    outbox.insert(item.queue_key.as_slice(), enc(item))?;
                    thread.insert(normalise_id(&item.message_id).as_bytes(), &be(number))?;
                }
                kv::apply(kv_tree, &writes)?;
                tickets.insert(&be(number), enc(&ticket))?;
                Ok(())
            },
        );
        match res {
            Ok(()) => {}
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(source)) => {
                return Err(StoreError::Sled {
                    op: "change ticket",
                    source,
                })
            }
        }
        self.flush()
    }

    /// Applies one filing (no flush), compressing its raw bytes here.
    #[cfg(test)]
    pub(super) fn apply(&self, f: &Filing) -> Result<Committed, StoreError> {
        let packed = PackedRaw::pack(&f.raw);
        let (_, mut res) = self.apply_batch(&[(f, &packed)]);
        res.pop().unwrap_or(Err(StoreError::CommitterGone))
    }

    /// Applies a batch of filings whose raw bytes are already packed (no sled
    /// flush): first appends the raw bytes of every filing not filed yet to the
    /// raw-message log and makes them durable, then applies each filing in its own
    /// transaction, its record pointing into the log. Used by the committer.
    ///
    /// Returns the generation of the database written to, with one outcome per
    /// filing, in order.
    pub(super) fn apply_batch(
        &self,
        batch: &[(&Filing, &PackedRaw)],
    ) -> (u64, Vec<Result<Committed, StoreError>>) {
        let t = match self.t() {
            Ok(t) => t,
            Err(_) => {
                return (
                    0,
                    batch.iter().map(|_| Err(StoreError::Reopening)).collect(),
                )
            }
        };
        // Re-deliveries need no raw bytes: leave them out of the log, whether
        // filed by an earlier batch or earlier in this one (an entry logged for
        // nothing would only be garbage, but concurrent re-deliveries are common).
        let mut seen = std::collections::HashSet::with_capacity(batch.len());
        let needed: Vec<bool> = batch
            .iter()
            .map(|(f, _)| {
                seen.insert(f.dedup_key.as_slice())
                    && !matches!(t.dedup.get(&f.dedup_key), Ok(Some(_)))
            })
            .collect();
        let to_log: Vec<&PackedRaw> = batch
            .iter()
            .zip(&needed)
            .filter(|(_, &n)| n)
            .map(|((_, raw), _)| *raw)
            .collect();
        let mut refs = match t.rawlog.append(&to_log) {
            Ok(refs) => refs.into_iter(),
            Err(e) => {
                let out = batch.iter().map(|_| Err(same_error(&e))).collect();
                return (t.generation, out);
            }
        };
        let out = batch
            .iter()
            .zip(needed)
            .map(|((f, raw), n)| {
                let at = if n { refs.next() } else { None };
                match apply_one(&t, f, at, self.first_number) {
                    // Its twin earlier in the batch was not filed after all (its
                    // transaction failed): log this one's bytes on their own.
                    Err(StoreError::NotLogged) => t
                        .rawlog
                        .append(&[raw])
                        .and_then(|at| apply_one(&t, f, at.first().copied(), self.first_number)),
                    res => res,
                }
            })
            .collect();
        (t.generation, out)
    }
}

/// A copy of a raw-log append error for each filing of the failed batch (the
/// kind decides whether the store heals; the text goes to the log).
fn same_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::RawLog { op, path, source } => StoreError::RawLog {
            op,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        other => StoreError::Corrupt {
            tree: "raw log",
            message: other.to_string(),
        },
    }
}

/// One filing in one transaction; `at` is where its raw bytes were logged
/// (`None` when it was found filed before the batch).
fn apply_one(
    t: &super::Trees,
    f: &Filing,
    at: Option<RawRef>,
    first_number: u64,
) -> Result<Committed, StoreError> {
    let trees = [
        &t.messages,
        &t.dedup,
        &t.tickets,
        &t.thread,
        &t.owners,
        &t.senders,
        &t.outbox,
        &t.replies,
        &t.meta,
        &t.kv,
    ];
    let res = trees
        .as_slice()
        .transaction(|t| apply_tx(t, f, at, first_number));
    match res {
        Ok(c) => Ok(c),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(source)) => Err(StoreError::Sled {
            op: "file message",
            source,
        }),
    }
}

fn apply_tx(
    t: &[TransactionalTree],
    f: &Filing,
    at: Option<RawRef>,
    first_number: u64,
) -> TxResult<Committed> {
    let [messages, dedup, tickets, thread, owners, senders, outbox, replies, meta, kv_tree] = t
    else {
        return abort(StoreError::Corrupt {
            tree: "transaction",
            message: "wrong tree count".into(),
        });
    };
    if let Some(seq) = read_u64(dedup.get(&f.dedup_key)?) {
        let Some(bytes) = messages.get(be(seq))? else {
            return abort(StoreError::Corrupt {
                tree: "dedup",
                message: format!("points at missing message {seq}"),
            });
        };
        let record: MessageRecord = dec("messages", &bytes).or_else(abort)?;
        return Ok(Committed {
            record,
            redelivery: true,
        });
    }
    let Some(at) = at else {
        return abort(StoreError::NotLogged);
    };
    let seq = read_u64(meta.get(NEXT_SEQ)?).unwrap_or(1);
    meta.insert(NEXT_SEQ, &be(seq + 1))?;
    let mut decision = f.decision.clone();
    let ticket_number = match decision.outcome {
        Outcome::Create => {
            let number = read_u64(meta.get(NEXT_TICKET)?)
                .unwrap_or(first_number)
                .max(first_number);
            meta.insert(NEXT_TICKET, &be(number + 1))?;
            let status = decision.status.unwrap_or(Status::New);
            let mut ticket = Ticket {
                number,
                status,
                client_id: f.client_id.clone(),
                owner: f.from.clone(),
                subject: f.subject.clone(),
                subject_core: f.subject_core.clone(),
                lang: f.lang.clone(),
                created_at: f.received_at,
                updated_at: f.received_at,
                sla: f.sla.clone(),
                messages: vec![seq],
                text_norm: f.text_norm.clone(),
                events: vec![TicketEvent {
                    at: f.received_at,
                    kind: "created".into(),
                    detail: status.as_str().into(),
                    by: Some(format!("client:{}", f.from)),
                    to: Some(status),
                    message_id: f.message_id.clone(),
                    public: true,
                    ..TicketEvent::default()
                }],
                timers: crate::lifecycle::Timers::default(),
                link: decision.link,
            };
            crate::lifecycle::on_created(&mut ticket);
            tickets.insert(&be(number), enc(&ticket))?;
            let mut owner_keys = Vec::with_capacity(2);
            if let Some(c) = &f.client_id {
                owner_keys.push(format!("client:{c}"));
            }
            if !f.from.is_empty() {
                owner_keys.push(format!("sender:{}", f.from));
            }
            for owner in owner_keys {
                let when = [&ts_key(f.received_at)[..], &be(number)[..]];
                owners.insert(prefixed(&about_key(&owner, &f.subject_norm), &when), &[])?;
                owners.insert(prefixed(&owner, &when), &[])?;
            }
            decision.status = Some(status);
            Some(number)
        }
        Outcome::Append | Outcome::Duplicate => {
            let number = decision.ticket.unwrap_or(0);
            let Some(bytes) = tickets.get(be(number))? else {
                return abort(StoreError::NoSuchTicket(number));
            };
            let mut ticket: Ticket = dec("tickets", &bytes).or_else(abort)?;
            ticket.messages.push(seq);
            ticket.updated_at = f.received_at;
            ticket.events.push(TicketEvent {
                at: f.received_at,
                kind: decision.outcome.as_str().into(),
                detail: format!("message {seq}"),
                by: Some(format!("client:{}", f.from)),
                message_id: f.message_id.clone(),
                public: true,
                ..TicketEvent::default()
            });
            if let (Outcome::Append, Some(to)) = (decision.outcome, decision.status) {
                // The policy asked to resume or reopen; the lifecycle decides
                // against the status the ticket has now.
                crate::lifecycle::client_answer(&mut ticket, to, &f.from, f.received_at);
            }
            tickets.insert(&be(number), enc(&ticket))?;
            decision.status = Some(ticket.status);
            Some(number)
        }
        Outcome::Reject | Outcome::Ignore => None,
    };
    decision.ticket = ticket_number;
    if let (Some(id), Some(n)) = (&f.message_id, ticket_number) {
        thread.insert(normalise_id(id).as_bytes(), &be(n))?;
    }
    if !f.from.is_empty() {
        senders.insert(prefixed(&f.from, &[&ts_key(f.received_at), &be(seq)]), &[])?;
    }
    let mut reply_message_id = None;
    let mut reply_suppressed = f.reply_suppressed.clone();
    if let Some(intent) = &f.reply {
        let day_ago = f.received_at - jiff::SignedDuration::from_hours(24);
        // TransactionalTree has no range scan: the reply log keeps the recent
        // reply times of an address under one key.
        let log_key = prefixed(&intent.to, &[]);
        let mut recent: Vec<i64> = replies
            .get(&log_key)?
            .map(|b| dec::<Vec<i64>>("replies", &b))
            .transpose()
            .or_else(abort)?
            .unwrap_or_default();
        recent.retain(|&s| s > day_ago.as_second());
        if f.replies_per_day > 0 && recent.len() >= f.replies_per_day as usize {
            reply_suppressed = Some("rate_limit".into());
        } else {
            recent.push(f.received_at.as_second());
            replies.insert(log_key, enc(&recent))?;
            let id = format!("intake.{seq}.{}@{}", intent.template, f.reply_domain);
            let mut key = be(seq).to_vec();
            key.extend_from_slice(intent.template.as_bytes());
            let next_at = f.received_at.min(Timestamp::now());
            let item = OutboxItem {
                queue_key: queue_key(next_at, &key),
                key,
                seq,
                ticket: ticket_number,
                intent: intent.clone(),
                message_id: id.clone(),
                attempts: 0,
                next_at,
                last_error: None,
                queued_at: f.received_at,
            };
            outbox.insert(item.queue_key.as_slice(), enc(&item))?;
            if let Some(n) = ticket_number {
                thread.insert(id.as_bytes(), &be(n))?;
            }
            reply_message_id = Some(id);
        }
    }
    if reply_suppressed.is_some() {
        decision.reply = None;
    }
    let record = MessageRecord {
        seq,
        message_id: f.message_id.clone(),
        from: f.from.clone(),
        subject: f.subject.clone(),
        received_at: f.received_at,
        size: f.raw.len() as u64,
        envelope: f.envelope.clone(),
        decision,
        rules_revision: f.rules_revision.clone(),
        timings: f.timings.clone(),
        reply_message_id,
        reply_suppressed,
    };
    kv::apply(kv_tree, &f.writes_for(&record))?;
    messages.insert(&be(seq), value::enc_message(&record, at))?;
    dedup.insert(f.dedup_key.as_slice(), &be(seq))?;
    Ok(Committed {
        record,
        redelivery: false,
    })
}
