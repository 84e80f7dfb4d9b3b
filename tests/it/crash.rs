//! Crash safety: the real binary, killed with SIGKILL at random moments under 16
//! concurrent writers and restarted each time on the same data directory. Every
//! message answered 200 must be stored with its decision, ticket numbers must be
//! unique and gap-free, and every due reply must reach the SMTP server.
//!
//! Replies: at least once, and a repeat only where a kill cut an attempt short.
//! A crash between the relay's `250` and the fsync of the "sent" mark repeats
//! that reply, and no SMTP client can prevent it (RFC 5321 §6.1; the two-generals
//! problem). So the test asserts the strongest true property: every due reply
//! arrived, nothing else arrived, each repeated reply is one whose attempt was
//! interrupted (its sent record counts a second attempt, while the relay was
//! never down), and repeats ≤ kills × `outbox::MAX_IN_FLIGHT`, the replies the
//! worker can have on the wire at once. Replies carry deterministic
//! Message-IDs, so the receiving side can discard a repeat.
//!
//! `INTAKE_CRASH_KILLS` sets the number of kills (default 4).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use intake::store::Store;
use rand::Rng;
use serde_json::Value;

use crate::helpers::*;
use crate::process::{free_port, ServerProcess};
use crate::redelivery::numbered;

const WRITERS: usize = 16;

fn kills() -> usize {
    std::env::var("INTAKE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

fn post(agent: &ureq::Agent, port: u16, raw: &[u8]) -> Option<(u16, Value)> {
    let mut resp = agent
        .post(&format!("http://127.0.0.1:{port}/v1/messages"))
        .header("Authorization", &format!("Bearer {GATEWAY}"))
        .header("Content-Type", "message/rfc822")
        .send(raw)
        .ok()?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().ok()?;
    Some((status, serde_json::from_str(&text).ok()?))
}

#[test]
fn sigkill_under_load_loses_nothing_and_files_nothing_twice() {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = Some(ServerProcess::start(&data, port, smtp.port, &[]));
    let stop = Arc::new(AtomicBool::new(false));
    // message number → the 200 answer
    let acked: Arc<Mutex<BTreeMap<usize, Value>>> = Arc::default();
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let n = t * 100_000 + i;
                    // Like an MTA: retry the same message until it is acknowledged.
                    match post(&agent, port, &numbered(n, "crash")) {
                        Some((200, body)) => {
                            acked.lock().unwrap().insert(n, body);
                            i += 1;
                            // Paced, so that the replies the test then waits for
                            // stay a few hundred on a debug build.
                            std::thread::sleep(Duration::from_millis(40));
                        }
                        Some((status, body)) => {
                            assert!(status >= 500, "message {n}: {status} {body}");
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        None => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        })
        .collect();
    let kills = kills();
    let mut rng = rand::rng();
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
        let before = acked.lock().unwrap().len();
        server.take().unwrap().kill();
        println!("kill {k}: {before} messages acknowledged so far");
        server = Some(ServerProcess::start(&data, port, smtp.port, &[]));
    }
    // The load runs on after the last restart until it has filed enough to
    // mean something (on a busy machine the kills can come before it has).
    let enough = Instant::now() + Duration::from_secs(60);
    std::thread::sleep(Duration::from_millis(800));
    while acked.lock().unwrap().len() < WRITERS * 4 && Instant::now() < enough {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    println!("{} messages acknowledged across {kills} kills", acked.len());
    assert!(acked.len() >= WRITERS * 4, "the load ran: {}", acked.len());

    // Let the last instance send what is still queued.
    let srv = server.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (s, b) = srv.get("/readyz");
        if s == 200 && b["outbox"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "outbox never drained: {b}");
        std::thread::sleep(Duration::from_millis(200));
    }
    srv.stop();

    let store = Store::open(&data, 100_001, 0).unwrap();
    // Messages: sequence numbers 1..=N without a hole.
    let mut by_id: HashMap<String, intake::store::MessageRecord> = HashMap::new();
    let mut seq = 1;
    while let Some(m) = store.message(seq).unwrap() {
        by_id.insert(m.message_id.clone().unwrap_or_default(), m);
        seq += 1;
    }
    for later in seq..seq + 20 {
        assert!(
            store.message(later).unwrap().is_none(),
            "hole before {later}"
        );
    }
    let mut acked_tickets = std::collections::HashSet::new();
    for (n, body) in &acked {
        let id = format!("crash-{n}@crash.example");
        let m = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("acknowledged message {id} was lost"));
        assert_eq!(m.decision.outcome.as_str(), body["outcome"], "{id}");
        assert_eq!(
            m.decision.ticket.map(Value::from).unwrap_or(Value::Null),
            body["ticket"],
            "{id}"
        );
        if let Some(t) = m.decision.ticket {
            assert!(acked_tickets.insert(t), "ticket {t} given twice");
        }
    }
    // Tickets: 100001..=max, each present, each opened by exactly one stored message.
    let created: Vec<u64> = by_id
        .values()
        .filter(|m| m.decision.outcome.as_str() == "create")
        .filter_map(|m| m.decision.ticket)
        .collect();
    let max = created.iter().copied().max().unwrap();
    assert_eq!(
        created.len() as u64,
        max - 100_000,
        "ticket numbers have gaps"
    );
    for t in 100_001..=max {
        assert!(store.ticket(t).unwrap().is_some(), "ticket {t} missing");
    }
    assert!(store.ticket(max + 1).unwrap().is_none());

    // Replies: every queued reply reached the relay; repeats only where a kill
    // interrupted an attempt, and no more than the worker can have in flight.
    let expected: Vec<String> = by_id
        .values()
        .filter_map(|m| m.reply_message_id.clone())
        .collect();
    let mut got: HashMap<String, usize> = HashMap::new();
    for r in smtp.received_parsed() {
        let id = r.header("message-id").unwrap_or("").trim().to_owned();
        *got.entry(intake::store::normalise_id(&id)).or_default() += 1;
    }
    for id in &expected {
        assert!(got.contains_key(id), "reply {id} never sent");
    }
    assert_eq!(got.len(), expected.len(), "no reply that was not due");
    assert_eq!(store.outbox_len(), 0);
    let sent = store.sent_items().unwrap();
    assert_eq!(sent.len(), expected.len());
    let attempts: HashMap<String, u32> = sent
        .iter()
        .map(|r| {
            assert!(
                r.ok,
                "reply {} given up: {:?}",
                r.item.message_id, r.item.last_error
            );
            (r.item.message_id.clone(), r.item.attempts)
        })
        .collect();
    // The relay never failed, so a second attempt means a kill ended the first.
    let interrupted = attempts.values().filter(|a| **a > 1).count();
    let repeated: Vec<(&String, &usize)> = got.iter().filter(|(_, c)| **c > 1).collect();
    let repeats: usize = repeated.iter().map(|(_, c)| **c - 1).sum();
    let bound = kills * intake::reply::outbox::MAX_IN_FLIGHT;
    println!(
        "{} replies due, {} received, {repeats} repeated, {interrupted} attempts cut short by {kills} kills (bound {bound})",
        expected.len(),
        got.values().sum::<usize>()
    );
    for (id, count) in &repeated {
        assert!(
            attempts.get(*id).is_some_and(|a| *a as usize >= **count),
            "reply {id} arrived {count} times, but no kill interrupted its sending (attempts {:?})",
            attempts.get(*id)
        );
    }
    assert!(
        repeats <= bound,
        "at most {bound} repeated replies ({kills} kills × {} in flight), got {repeats}",
        intake::reply::outbox::MAX_IN_FLIGHT
    );
    assert!(
        interrupted <= bound,
        "at most {bound} interrupted attempts, got {interrupted}"
    );
}
