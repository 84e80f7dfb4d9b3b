//! PostgreSQL engine, writes: a batch of [`Filing`]s → one transaction (the
//! group commit's unit), and staff changes to one ticket.
//!
//! A batch reads what it needs in a few queries (the counter row, locked; the
//! dedup keys; the tickets appended to, locked; recent replies per address),
//! decides every filing in memory, in order, as the sled engine does, then
//! writes them with one multi-row statement per table, pipelined on the
//! connection, and commits. A filing that fails (no such ticket, an invalid
//! collection) uses no number and writes nothing; the others go on.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use tokio_postgres::types::ToSql;

use super::{i64_of, text, u64_of, Pg, PgStore};
use crate::decision::{Outcome, Status};
use crate::store::codec::{dec, enc};
use crate::store::{
    normalise_id, queue_key, Committed, Filing, MessageRecord, OutboxItem, PackedRaw, StoreError,
    Ticket, TicketChange, TicketEvent, Writes,
};

/// What a batch writes, gathered while its filings are decided.
#[derive(Default)]
struct Rows {
    // messages
    seq: Vec<i64>,
    dedup: Vec<Vec<u8>>,
    message_id: Vec<Option<String>>,
    sender: Vec<String>,
    received_s: Vec<i64>,
    ticket: Vec<Option<i64>>,
    outcome: Vec<String>,
    findings: Vec<String>,
    revision: Vec<String>,
    record: Vec<Vec<u8>>,
    raw: Vec<Vec<u8>>,
    raw_len: Vec<i64>,
    raw_hash: Vec<Vec<u8>>,
    /// Tickets created or changed, final state.
    tickets: BTreeMap<u64, Ticket>,
    /// (owner key, created, number, subject_norm).
    owners: Vec<(String, i64, i64, String)>,
    thread: BTreeMap<String, i64>,
    replies: Vec<(String, i64)>,
    outbox: Vec<OutboxItem>,
    writes: Writes,
}

/// One decided filing, not yet merged into the batch.
struct Decided {
    record: MessageRecord,
    ticket: Option<Ticket>,
    created: bool,
    reply_at: Option<(String, i64)>,
    item: Option<OutboxItem>,
    writes: Writes,
}

/// The raw bytes' checksum kept beside them (`intake store check`).
pub(crate) fn raw_hash(raw: &[u8]) -> Vec<u8> {
    blake3::hash(raw).as_bytes().to_vec()
}

impl PgStore {
    /// Files a batch in one transaction; one outcome per filing, in order. An
    /// error of the transaction itself (the database, the connection) answers
    /// every filing of the batch.
    pub(super) async fn file_batch(
        &self,
        batch: &[(&Filing, &PackedRaw)],
    ) -> Vec<Result<Committed, StoreError>> {
        match self.try_file_batch(batch).await {
            Ok(out) => out,
            Err(e) => {
                let text = e.to_string();
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), filings = batch.len(), "filing transaction failed");
                let mut first = Some(e);
                batch
                    .iter()
                    .map(|_| {
                        Err(first
                            .take()
                            .unwrap_or_else(|| StoreError::Pool(text.clone())))
                    })
                    .collect()
            }
        }
    }

    async fn try_file_batch(
        &self,
        batch: &[(&Filing, &PackedRaw)],
    ) -> Result<Vec<Result<Committed, StoreError>>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.pg("begin filing")?;
        let counters = tx
            .query_one(
                "SELECT next_ticket, next_seq FROM intake_counters WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await
            .pg("lock counters")?;
        let mut next_ticket = u64_of(counters.get(0)).max(self.first_number());
        let mut next_seq = u64_of(counters.get(1)).max(1);
        let keys: Vec<&[u8]> = batch.iter().map(|(f, _)| f.dedup_key.as_slice()).collect();
        let mut filed: HashMap<Vec<u8>, MessageRecord> = HashMap::new();
        for row in tx
            .query(
                "SELECT dedup_key, record FROM messages WHERE dedup_key = ANY($1)",
                &[&keys],
            )
            .await
            .pg("read dedup")?
        {
            let key: Vec<u8> = row.get(0);
            let rec: MessageRecord = dec("messages", row.get::<_, &[u8]>(1))?;
            filed.insert(key, rec);
        }
        let wanted: Vec<i64> = batch
            .iter()
            .filter(|(f, _)| {
                matches!(f.decision.outcome, Outcome::Append | Outcome::Duplicate)
                    && !filed.contains_key(&f.dedup_key)
            })
            .filter_map(|(f, _)| f.decision.ticket.map(i64_of))
            .collect();
        let mut tickets: HashMap<u64, Ticket> = HashMap::new();
        if !wanted.is_empty() {
            for row in tx
                .query(
                    "SELECT number, record FROM tickets WHERE number = ANY($1) ORDER BY number FOR UPDATE",
                    &[&wanted],
                )
                .await
                .pg("lock tickets")?
            {
                let n: i64 = row.get(0);
                tickets.insert(u64_of(n), dec("tickets", row.get::<_, &[u8]>(1))?);
            }
        }
        let addresses: Vec<String> = batch
            .iter()
            .filter_map(|(f, _)| f.reply.as_ref().map(|r| text(&r.to).into_owned()))
            .collect();
        let mut recent: HashMap<String, Vec<i64>> = HashMap::new();
        if !addresses.is_empty() {
            let oldest = batch
                .iter()
                .map(|(f, _)| f.received_at.as_second())
                .min()
                .unwrap_or(0)
                - 86_400;
            for row in tx
                .query(
                    "SELECT address, at_s FROM reply_log WHERE address = ANY($1) AND at_s > $2",
                    &[&addresses, &oldest],
                )
                .await
                .pg("read reply log")?
            {
                recent.entry(row.get(0)).or_default().push(row.get(1));
            }
        }

        let mut rows = Rows::default();
        let mut out = Vec::with_capacity(batch.len());
        for (f, packed) in batch {
            if let Some(rec) = filed.get(&f.dedup_key) {
                out.push(Ok(Committed {
                    record: rec.clone(),
                    redelivery: true,
                }));
                continue;
            }
            let d = match decide(f, next_seq, next_ticket, &tickets, &recent) {
                Ok(d) => d,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            next_seq += 1;
            if d.created {
                next_ticket += 1;
            }
            if let Some((addr, at)) = &d.reply_at {
                recent.entry(addr.clone()).or_default().push(*at);
                rows.replies.push((addr.clone(), *at));
            }
            let record = d.record;
            let ticket_number = record.decision.ticket;
            if let Some(t) = d.ticket {
                if d.created {
                    let mut owner_keys = Vec::with_capacity(2);
                    if let Some(c) = &f.client_id {
                        owner_keys.push(format!("client:{c}"));
                    }
                    if !f.from.is_empty() {
                        owner_keys.push(format!("sender:{}", f.from));
                    }
                    for k in owner_keys {
                        rows.owners.push((
                            text(&k).into_owned(),
                            f.received_at.as_second(),
                            i64_of(t.number),
                            text(&f.subject_norm).into_owned(),
                        ));
                    }
                }
                tickets.insert(t.number, t.clone());
                rows.tickets.insert(t.number, t);
            }
            if let (Some(id), Some(n)) = (&f.message_id, ticket_number) {
                rows.thread
                    .insert(text(&normalise_id(id)).into_owned(), i64_of(n));
            }
            if let Some(item) = d.item {
                if let Some(n) = ticket_number {
                    rows.thread
                        .insert(text(&item.message_id).into_owned(), i64_of(n));
                }
                rows.outbox.push(item);
            }
            rows.writes.extend(d.writes);
            rows.seq.push(i64_of(record.seq));
            rows.dedup.push(f.dedup_key.clone());
            rows.message_id
                .push(f.message_id.as_deref().map(|s| text(s).into_owned()));
            rows.sender.push(text(&f.from).into_owned());
            rows.received_s.push(f.received_at.as_second());
            rows.ticket.push(ticket_number.map(i64_of));
            rows.outcome
                .push(record.decision.outcome.as_str().to_owned());
            rows.findings.push(
                record
                    .decision
                    .findings
                    .iter()
                    .map(|x| text(&x.code).replace([',', '{', '}', '"', '\\'], "_"))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            rows.revision.push(text(&f.rules_revision).into_owned());
            rows.record.push(enc(&record));
            rows.raw.push(packed.bytes().to_vec());
            rows.raw_len.push(i64_of(f.raw.len() as u64));
            rows.raw_hash.push(raw_hash(&f.raw));
            filed.insert(f.dedup_key.clone(), record.clone());
            out.push(Ok(Committed {
                record,
                redelivery: false,
            }));
        }
        if rows.seq.is_empty() {
            // Only re-deliveries and refusals: nothing to write.
            tx.rollback().await.pg("end filing")?;
            return Ok(out);
        }
        write_rows(&tx, &rows, next_ticket, next_seq).await?;
        tx.commit().await.pg("commit filing")?;
        Ok(out)
    }

    /// Changes one ticket in a transaction (see
    /// [`Engine::change_ticket_dyn`](crate::store::Engine::change_ticket_dyn)).
    pub(super) async fn change_ticket_async(
        &self,
        number: u64,
        change: &mut TicketChange<'_>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.pg("begin ticket change")?;
        let Some(row) = tx
            .query_opt(
                "SELECT record FROM tickets WHERE number = $1 FOR UPDATE",
                &[&i64_of(number)],
            )
            .await
            .pg("lock ticket")?
        else {
            return Err(StoreError::NoSuchTicket(number));
        };
        let mut ticket: Ticket = dec("tickets", row.get::<_, &[u8]>(0))?;
        let mut writes = Writes::new();
        // An error here drops the transaction: rolled back, nothing written.
        let items = change(&mut ticket, &mut writes)?;
        writes.validate()?;
        let mut rows = Rows::default();
        for item in &items {
            rows.thread.insert(
                text(&normalise_id(&item.message_id)).into_owned(),
                i64_of(number),
            );
        }
        rows.outbox = items;
        rows.tickets.insert(number, ticket);
        rows.writes = writes;
        write_changes(&tx, &rows).await?;
        tx.commit().await.pg("commit ticket change")
    }
}

/// Decides one filing against the batch's state so far (nothing is changed).
fn decide(
    f: &Filing,
    seq: u64,
    next_ticket: u64,
    tickets: &HashMap<u64, Ticket>,
    recent: &HashMap<String, Vec<i64>>,
) -> Result<Decided, StoreError> {
    let mut decision = f.decision.clone();
    let mut created = false;
    let ticket = match decision.outcome {
        Outcome::Create => {
            let status = decision.status.unwrap_or(Status::New);
            let mut ticket = Ticket {
                number: next_ticket,
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
            decision.status = Some(status);
            created = true;
            Some(ticket)
        }
        Outcome::Append | Outcome::Duplicate => {
            let number = decision.ticket.unwrap_or(0);
            let Some(mut ticket) = tickets.get(&number).cloned() else {
                return Err(StoreError::NoSuchTicket(number));
            };
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
                crate::lifecycle::client_answer(&mut ticket, to, &f.from, f.received_at);
            }
            decision.status = Some(ticket.status);
            Some(ticket)
        }
        Outcome::Reject | Outcome::Ignore => None,
    };
    let ticket_number = ticket.as_ref().map(|t| t.number);
    decision.ticket = ticket_number;
    let mut reply_message_id = None;
    let mut reply_suppressed = f.reply_suppressed.clone();
    let mut reply_at = None;
    let mut item = None;
    if let Some(intent) = &f.reply {
        let day_ago = (f.received_at - jiff::SignedDuration::from_hours(24)).as_second();
        let addr = text(&intent.to).into_owned();
        let sent = recent
            .get(&addr)
            .map_or(0, |v| v.iter().filter(|&&s| s > day_ago).count());
        if f.replies_per_day > 0 && sent >= f.replies_per_day as usize {
            reply_suppressed = Some("rate_limit".into());
        } else {
            reply_at = Some((addr, f.received_at.as_second()));
            let id = format!("intake.{seq}.{}@{}", intent.template, f.reply_domain);
            let mut key = seq.to_be_bytes().to_vec();
            key.extend_from_slice(intent.template.as_bytes());
            let next_at = f.received_at.min(Timestamp::now());
            item = Some(OutboxItem {
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
            });
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
    let writes = f.writes_for(&record);
    writes.validate()?;
    Ok(Decided {
        record,
        ticket,
        created,
        reply_at,
        item,
        writes,
    })
}

/// Writes a batch's rows, pipelined: the statements are sent together and run
/// in order on the connection.
async fn write_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &Rows,
    next_ticket: u64,
    next_seq: u64,
) -> Result<(), StoreError> {
    let nt = i64_of(next_ticket);
    let ns = i64_of(next_seq);
    let counters = async {
        tx.execute(
            "UPDATE intake_counters SET next_ticket = $1, next_seq = $2 WHERE id = 1",
            &[&nt, &ns],
        )
        .await
        .pg("update counters")
    };
    let messages = async {
        let st = tx
            .prepare_cached(
                "INSERT INTO messages (seq, dedup_key, message_id, sender, received_s, ticket, outcome,
                                       findings, rules_revision, record, raw, raw_len, raw_hash)
                 SELECT s, d, m, se, r, t, o, string_to_array(fi, ','), rv, rc, rw, rl, rh
                 FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::text[], $5::bigint[],
                             $6::bigint[], $7::text[], $8::text[], $9::text[], $10::bytea[],
                             $11::bytea[], $12::bigint[], $13::bytea[])
                      AS u(s, d, m, se, r, t, o, fi, rv, rc, rw, rl, rh)",
            )
            .await
            .pg("prepare messages")?;
        let params: [&(dyn ToSql + Sync); 13] = [
            &rows.seq,
            &rows.dedup,
            &rows.message_id,
            &rows.sender,
            &rows.received_s,
            &rows.ticket,
            &rows.outcome,
            &rows.findings,
            &rows.revision,
            &rows.record,
            &rows.raw,
            &rows.raw_len,
            &rows.raw_hash,
        ];
        tx.execute(&st, &params).await.pg("insert messages")
    };
    let (a, b) = futures_util::future::join(counters, messages).await;
    a?;
    b?;
    // Tickets before their owner rows (a foreign key).
    write_changes(tx, rows).await?;
    if !rows.owners.is_empty() {
        let k: Vec<&str> = rows.owners.iter().map(|o| o.0.as_str()).collect();
        let c: Vec<i64> = rows.owners.iter().map(|o| o.1).collect();
        let n: Vec<i64> = rows.owners.iter().map(|o| o.2).collect();
        let s: Vec<&str> = rows.owners.iter().map(|o| o.3.as_str()).collect();
        let st = tx
            .prepare_cached(
                "INSERT INTO ticket_owners (owner_key, created_s, number, subject_norm)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[])
                 ON CONFLICT DO NOTHING",
            )
            .await
            .pg("prepare owners")?;
        tx.execute(&st, &[&k, &c, &n, &s])
            .await
            .pg("insert owners")?;
    }
    if !rows.replies.is_empty() {
        let a: Vec<&str> = rows.replies.iter().map(|r| r.0.as_str()).collect();
        let t: Vec<i64> = rows.replies.iter().map(|r| r.1).collect();
        let oldest = t.iter().min().copied().unwrap_or(0) - 2 * 86_400;
        let ins = tx
            .prepare_cached(
                "INSERT INTO reply_log (address, at_s) SELECT * FROM unnest($1::text[], $2::bigint[])",
            )
            .await
            .pg("prepare reply log")?;
        let del = tx
            .prepare_cached("DELETE FROM reply_log WHERE address = ANY($1) AND at_s < $2")
            .await
            .pg("prepare reply log")?;
        let (x, y) = futures_util::future::join(
            tx.execute(&ins, &[&a, &t]),
            tx.execute(&del, &[&a, &oldest]),
        )
        .await;
        x.pg("insert reply log")?;
        y.pg("prune reply log")?;
    }
    Ok(())
}

/// Writes changed tickets, queued replies, thread entries and collection writes.
async fn write_changes(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &Rows,
) -> Result<(), StoreError> {
    let tickets = async {
        if rows.tickets.is_empty() {
            return Ok(());
        }
        let mut number = Vec::new();
        let mut status = Vec::new();
        let mut client = Vec::new();
        let mut owner = Vec::new();
        let mut subject = Vec::new();
        let mut created = Vec::new();
        let mut updated = Vec::new();
        let mut level = Vec::new();
        let mut reaction = Vec::new();
        let mut in_work = Vec::new();
        let mut record = Vec::new();
        for t in rows.tickets.values() {
            number.push(i64_of(t.number));
            status.push(t.status.as_str());
            client.push(t.client_id.as_deref().map(|s| text(s).into_owned()));
            owner.push(text(&t.owner).into_owned());
            subject.push(text(&t.subject).into_owned());
            created.push(t.created_at.as_second());
            updated.push(t.updated_at.as_second());
            level.push(t.sla.as_ref().map(|s| text(&s.level).into_owned()));
            reaction.push(t.sla.as_ref().map(|s| s.reaction_due.as_second()));
            in_work.push(t.sla.as_ref().map(|s| s.in_work_due.as_second()));
            record.push(enc(t));
        }
        let st = tx
            .prepare_cached(
                "INSERT INTO tickets (number, status, client_id, owner, subject, created_s, updated_s,
                                      sla_level, reaction_due_s, in_work_due_s, record)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                                      $6::bigint[], $7::bigint[], $8::text[], $9::bigint[],
                                      $10::bigint[], $11::bytea[])
                 ON CONFLICT (number) DO UPDATE SET
                     status = excluded.status, client_id = excluded.client_id,
                     owner = excluded.owner, subject = excluded.subject,
                     updated_s = excluded.updated_s, sla_level = excluded.sla_level,
                     reaction_due_s = excluded.reaction_due_s,
                     in_work_due_s = excluded.in_work_due_s, record = excluded.record",
            )
            .await
            .pg("prepare tickets")?;
        let params: [&(dyn ToSql + Sync); 11] = [
            &number, &status, &client, &owner, &subject, &created, &updated, &level, &reaction,
            &in_work, &record,
        ];
        tx.execute(&st, &params).await.pg("write tickets")?;
        Ok::<(), StoreError>(())
    };
    let thread = async {
        if rows.thread.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = rows.thread.keys().map(String::as_str).collect();
        let nums: Vec<i64> = rows.thread.values().copied().collect();
        let st = tx
            .prepare_cached(
                "INSERT INTO thread (message_id, ticket) SELECT * FROM unnest($1::text[], $2::bigint[])
                 ON CONFLICT (message_id) DO UPDATE SET ticket = excluded.ticket",
            )
            .await
            .pg("prepare thread")?;
        tx.execute(&st, &[&ids, &nums]).await.pg("write thread")?;
        Ok::<(), StoreError>(())
    };
    let outbox = async {
        if rows.outbox.is_empty() {
            return Ok(());
        }
        let keys: Vec<&[u8]> = rows.outbox.iter().map(|i| i.key.as_slice()).collect();
        let due: Vec<i64> = rows
            .outbox
            .iter()
            .map(|i| i.next_at.as_millisecond())
            .collect();
        let items: Vec<Vec<u8>> = rows.outbox.iter().map(enc).collect();
        let st = tx
            .prepare_cached(
                "INSERT INTO outbox (key, next_ms, item) SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[])
                 ON CONFLICT (key) DO UPDATE SET next_ms = excluded.next_ms, item = excluded.item,
                     lease_ms = NULL, claimed_by = NULL",
            )
            .await
            .pg("prepare outbox")?;
        tx.execute(&st, &[&keys, &due, &items])
            .await
            .pg("queue replies")?;
        tx.execute("SELECT pg_notify('intake_outbox', '')", &[])
            .await
            .pg("notify outbox")?;
        Ok::<(), StoreError>(())
    };
    let (a, b, c) = futures_util::future::join3(tickets, thread, outbox).await;
    a?;
    b?;
    c?;
    super::kv::apply(tx, &rows.writes).await
}
