//! Re-delivery under load: every message posted twice, concurrently, is filed
//! once — one ticket, one queued reply — and both answers carry the same decision.
//!
//! `INTAKE_REDELIVERY_N` sets the number of distinct messages (default 10,000:
//! 20,000 posts from 16 threads, about 50 s in a debug build on two cores).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::helpers::*;

/// A distinct message per `i`, each from its own sender (no flood, no rate limit).
pub fn numbered(i: usize, tag: &str) -> Vec<u8> {
    format!(
        "From: client{i}@{tag}.example\r\nTo: support@vendor.example\r\nSubject: Receiver {i} loses channel list after update\r\n\
Date: Tue, 24 Nov 2026 10:15:00 +0300\r\nMessage-ID: <{tag}-{i}@{tag}.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n\
Hello, receiver unit {i} loses its channel list after the nightly update.\r\nSteps: 1. update 2. reboot 3. list is empty.\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_posted_twice_concurrently_is_filed_once() {
    let n: usize = std::env::var("INTAKE_REDELIVERY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let smtp = SmtpServer::start();
    let app = Arc::new(TestApp::spawn(smtp.port).await);
    // Work list: both copies of a message next to each other, so two threads
    // post them at the same moment.
    let next = Arc::new(AtomicUsize::new(0));
    let answers: Arc<Mutex<HashMap<usize, Vec<serde_json::Value>>>> = Arc::default();
    let started = std::time::Instant::now();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (app, next, answers) = (app.clone(), next.clone(), answers.clone());
            std::thread::spawn(move || loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= 2 * n {
                    return;
                }
                let i = k / 2;
                let (s, b) = app.post(&numbered(i, "redeliver"));
                assert_eq!(s, 200, "message {i}: {b}");
                answers.lock().unwrap().entry(i).or_default().push(b);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let took = started.elapsed();
    println!(
        "{} posts of {n} messages in {took:?} ({:.0}/s)",
        2 * n,
        (2 * n) as f64 / took.as_secs_f64()
    );
    let answers = answers.lock().unwrap();
    assert_eq!(answers.len(), n);
    let mut tickets = std::collections::HashSet::new();
    let mut first_filings = 0;
    for (i, pair) in answers.iter() {
        assert_eq!(pair.len(), 2, "message {i}");
        assert_eq!(
            pair[0]["ticket"], pair[1]["ticket"],
            "message {i}: {pair:?}"
        );
        assert_eq!(pair[0]["outcome"], pair[1]["outcome"]);
        first_filings += pair.iter().filter(|b| b["redelivery"] != true).count();
        assert!(
            pair.iter().any(|b| b["redelivery"] == true),
            "message {i}: {pair:?}"
        );
        assert!(tickets.insert(pair[0]["ticket"].as_u64().expect("a ticket")));
    }
    assert_eq!(first_filings, n, "exactly one filing per message");
    let store = &app.pipeline.store;
    assert!(store.ticket(100_000 + n as u64).unwrap().is_some());
    assert!(
        store.ticket(100_001 + n as u64).unwrap().is_none(),
        "no extra ticket"
    );
    assert!(store.message(n as u64).unwrap().is_some());
    assert!(
        store.message(n as u64 + 1).unwrap().is_none(),
        "no extra message"
    );
    assert_eq!(store.outbox_len(), n, "one reply per message");
}
