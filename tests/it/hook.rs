//! The HTTP hook: filing, idempotency, threading, errors.

use crate::helpers::*;

/// A clean request in Russian about `product`, distinct from requests about others.
pub fn request_ru(message_id: &str, product: &str) -> Vec<u8> {
    format!(
        "From: i.petrov@telecom-sever.ru\r\nTo: support@vendor.example\r\nSubject: Сбой воспроизведения на {product}\r\n\
Date: Tue, 24 Nov 2026 10:15:00 +0300\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
Добрый день! Устройство {product} перестало воспроизводить каналы {product}-HD после перезагрузки {product}.\r\n\
Шаги:\r\n1. Перезагрузить {product}.\r\n2. Включить канал {product}-HD.\r\n3. Чёрный экран на {product}.\r\n\r\n\
Иван Петров, MI-10234\r\n"
    )
    .into_bytes()
}

/// A clean request in Russian from a contracted client.
pub fn clean_ru(message_id: &str) -> Vec<u8> {
    format!(
        "From: =?utf-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <i.petrov@telecom-sever.ru>\r\n\
To: support@vendor.example\r\n\
Subject: =?utf-8?B?0J3QtSDQvtCx0L3QvtCy0LvRj9C10YLRgdGPIEVQRyDQvdCwIFNUQi00Sw==?=\r\n\
Date: Tue, 24 Nov 2026 10:15:00 +0300\r\n\
Message-ID: <{message_id}>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Здравствуйте!\r\n\
\r\n\
С утра на приставках STB-4K не обновляется программа передач (EPG).\r\n\
Шаги воспроизведения:\r\n\
1. Включить приставку STB-4K с прошивкой 3.2.1.\r\n\
2. Открыть телегид на канале «Первый».\r\n\
3. Телегид пустой, хотя вчера данные были.\r\n\
\r\n\
--\r\n\
Иван Петров, ООО «Телесеть Север», договор MI-10234\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_a_clean_message_and_answers_the_decision() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let (status, body) = app.post(&clean_ru("clean-1@telecom-sever.ru"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "create");
    assert_eq!(body["status"], "new");
    assert_eq!(body["ticket"], 100001);
    assert_eq!(body["reply"], "created");
    assert_eq!(body["findings"].as_array().unwrap().len(), 0, "{body}");
    assert_eq!(body["message_id"], "clean-1@telecom-sever.ru");
    assert!(body["rules_revision"].as_str().unwrap().len() >= 8);

    let (status, t) = app.get("/v1/tickets/100001", Some(STAFF));
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["status"], "new");
    assert_eq!(t["client_id"], "MI-10234");
    assert_eq!(t["contract"]["level"], "premium");
    assert!(t["sla"]["reaction_due"].is_string(), "{t}");
    assert_eq!(t["messages"].as_array().unwrap().len(), 1);
    assert_eq!(t["messages"][0]["decision"]["outcome"], "create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_returns_the_first_decision_and_files_nothing() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let raw = clean_ru("again@telecom-sever.ru");
    let (_, first) = app.post(&raw);
    // Re-delivered through another relay: a new Received header, same message.
    let mut redelivered =
        b"Received: from mx2.vendor.example by intake; Tue, 24 Nov 2026 10:20:00 +0300\r\n"
            .to_vec();
    redelivered.extend_from_slice(&raw);
    let (status, second) = app.post(&redelivered);
    assert_eq!(status, 200);
    assert_eq!(second["ticket"], first["ticket"]);
    assert_eq!(second["outcome"], first["outcome"]);
    assert_eq!(second["redelivery"], true);
    assert!(app.pipeline.store.ticket(100002).unwrap().is_none());
    assert_eq!(
        app.pipeline.store.outbox_len(),
        1,
        "one reply queued, not two"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_of_one_message_create_one_ticket() {
    let smtp = SmtpServer::start();
    let app = std::sync::Arc::new(TestApp::spawn(smtp.port).await);
    let raw = clean_ru("concurrent@telecom-sever.ru");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            let raw = raw.clone();
            std::thread::spawn(move || app.post(&raw))
        })
        .collect();
    let tickets: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .map(|(s, b)| {
            assert_eq!(s, 200, "{b}");
            b["ticket"].clone()
        })
        .collect();
    assert!(tickets.iter().all(|t| *t == tickets[0]), "{tickets:?}");
    assert!(app.pipeline.store.ticket(100001).unwrap().is_some());
    assert!(app.pipeline.store.ticket(100002).unwrap().is_none());
    assert_eq!(app.pipeline.store.outbox_len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_and_in_reply_to_thread_into_the_ticket() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let (_, first) = app.post(&clean_ru("thread-1@telecom-sever.ru"));
    assert_eq!(first["ticket"], 100001);
    let by_tag = "From: i.petrov@telecom-sever.ru\r\nTo: support@vendor.example\r\nSubject: Re: [Ticket#100001] EPG\r\nDate: Tue, 24 Nov 2026 11:00:00 +0300\r\nMessage-ID: <thread-2@telecom-sever.ru>\r\n\r\nПрикладываю ещё данные. MI-10234\r\n";
    let (_, b) = app.post(by_tag.as_bytes());
    assert_eq!(b["outcome"], "append", "{b}");
    assert_eq!(b["ticket"], 100001);
    assert_eq!(b["reply"], serde_json::Value::Null);
    // A reply to our own auto-reply threads by In-Reply-To alone.
    let reply_id = app
        .pipeline
        .store
        .message(1)
        .unwrap()
        .unwrap()
        .reply_message_id
        .unwrap();
    let by_header = format!("From: i.petrov@telecom-sever.ru\r\nTo: support@vendor.example\r\nSubject: Re: EPG\r\nDate: Tue, 24 Nov 2026 12:00:00 +0300\r\nMessage-ID: <thread-3@telecom-sever.ru>\r\nIn-Reply-To: <{reply_id}>\r\n\r\nЕщё одно наблюдение.\r\n");
    let (_, c) = app.post(by_header.as_bytes());
    assert_eq!(c["outcome"], "append", "{c}");
    assert_eq!(c["ticket"], 100001);
    let (_, t) = app.get("/v1/tickets/100001", Some(STAFF));
    assert_eq!(t["messages"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_and_checked() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let raw = clean_ru("auth@telecom-sever.ru");
    let (s, b) = app.post_with(&raw, "/v1/messages", None, &[]);
    assert_eq!(s, 401);
    assert_eq!(b["error"]["code"], "unauthorized");
    let (s, b) = app.post_with(&raw, "/v1/messages", Some("wrong"), &[]);
    assert_eq!(s, 403);
    assert_eq!(b["error"]["code"], "forbidden");
    let (s, _) = app.post_with(&raw, "/v1/messages", Some(STAFF), &[]);
    assert_eq!(s, 403, "the staff token cannot file mail");
    let (s, _) = app.get("/v1/tickets/100001", Some(GATEWAY));
    assert_eq!(s, 403, "the gateway token cannot read tickets");
    assert!(app.pipeline.store.ticket(100001).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_body_is_refused_with_413() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn_with(Options {
        rules: repo().join("rules"),
        smtp_port: smtp.port,
        max_body: Some("64KiB"),
        data: None,
    })
    .await;
    let mut raw = clean_ru("big@telecom-sever.ru");
    raw.extend(std::iter::repeat_n(b'x', 70 * 1024));
    let (s, b) = app.post(&raw);
    assert_eq!(s, 413, "{b}");
    assert_eq!(b["error"]["code"], "payload_too_large");
    let (s, _) = app.post(&clean_ru("small@telecom-sever.ru"));
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_filed_as_unreadable_not_an_error() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (s, b) = app.post(&garbage);
    assert_eq!(s, 200, "{b}");
    let codes: Vec<&str> = b["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"unreadable"), "{b}");
    let seq = 1;
    let raw = app.pipeline.store.raw_message(seq).unwrap().unwrap();
    assert_eq!(raw, garbage, "the bytes are kept as received");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let raw = clean_ru("dry@telecom-sever.ru");
    let (s, b) = app.post_with(&raw, "/v1/messages?dry_run=true", Some(GATEWAY), &[]);
    assert_eq!(s, 200);
    assert_eq!(b["outcome"], "create");
    assert_eq!(b["dry_run"], true);
    assert_eq!(b["ticket"], serde_json::Value::Null);
    assert_eq!(app.pipeline.store.outbox_len(), 0);
    let (_, real) = app.post(&raw);
    assert_eq!(real["ticket"], 100001, "the dry run used no number");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_headers_are_stored() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let (s, _) = app.post_with(
        &clean_ru("env@telecom-sever.ru"),
        "/v1/messages",
        Some(GATEWAY),
        &[
            ("X-Envelope-From", "bounce@telecom-sever.ru"),
            ("X-Envelope-To", "support@vendor.example"),
            ("X-Client-IP", "192.0.2.7"),
        ],
    );
    assert_eq!(s, 200);
    let (_, t) = app.get("/v1/tickets/100001", Some(STAFF));
    let env = &t["messages"][0]["envelope"];
    assert_eq!(env["mail_from"], "bounce@telecom-sever.ru");
    assert_eq!(env["rcpt_to"][0], "support@vendor.example");
    assert_eq!(env["client_ip"], "192.0.2.7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    assert_eq!(app.get("/healthz", None).0, 200);
    let (s, b) = app.get("/readyz", None);
    assert_eq!(s, 200);
    assert_eq!(b["status"], "ready");
    let (s, b) = app.get("/v1/tickets/999", Some(STAFF));
    assert_eq!(s, 404);
    assert_eq!(b["error"]["code"], "not_found");
}
