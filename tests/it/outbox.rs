//! The reply outbox against a real SMTP server: content, RFC 3834 headers,
//! retries while the relay is down, exactly-once across a restart, rate limit.

use intake::reply::outbox::Delivery;

use crate::helpers::*;
use crate::hook::{clean_ru, request_ru};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_reaches_the_client_with_tag_and_rfc3834_headers() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let (_, b) = app.post(&clean_ru("reply-1@telecom-sever.ru"));
    assert_eq!(b["reply"], "created");
    let steps = app.drain_outbox().await;
    assert!(
        matches!(steps.as_slice(), [Delivery::Sent { .. }]),
        "{steps:?}"
    );
    let got = smtp.received_parsed();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(r.subject.contains("[Ticket#100001]"), "{}", r.subject);
    assert_eq!(r.to, "i.petrov@telecom-sever.ru");
    assert_eq!(r.header("auto-submitted"), Some("auto-replied"));
    assert_eq!(r.header("in-reply-to"), Some("<reply-1@telecom-sever.ru>"));
    assert!(r
        .header("references")
        .unwrap()
        .contains("<reply-1@telecom-sever.ru>"));
    // aiosmtpd records the envelope sender: auto-replies use the null sender.
    assert_eq!(r.header("x-mailfrom"), Some("<>"), "{:?}", r.headers);
    assert!(
        r.body.contains("Здравствуйте"),
        "a Russian message gets a Russian reply: {}",
        r.body
    );
    assert!(r.body.contains("[Ticket#100001]"));
    assert!(app.drain_outbox().await.is_empty(), "nothing is sent twice");
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn english_needs_info_reply_lists_every_problem() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let raw = b"From: Jane Doe <jane@northwind-cable.co.uk>\r\nTo: support@vendor.example\r\nSubject: Help\r\nDate: Tue, 24 Nov 2026 10:15:00 +0000\r\nMessage-ID: <ni-1@northwind-cable.co.uk>\r\n\r\nHello,\r\n\r\nOur set-top boxes lose the channel list after the nightly update and we would like to know how to restore it on the affected units.\r\n\r\nThanks,\r\nJane\r\n";
    let (_, b) = app.post(raw);
    assert_eq!(b["status"], "needs_info", "{b}");
    app.drain_outbox().await;
    let got = smtp.received_parsed();
    assert_eq!(got.len(), 1);
    assert!(got[0].body.contains("Hello"), "{}", got[0].body);
    assert!(
        got[0].body.contains("subject"),
        "generic subject explained: {}",
        got[0].body
    );
    assert!(
        got[0].body.contains("MI-"),
        "missing id explained: {}",
        got[0].body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_down_then_up_delivers_once() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = TestApp::spawn(port).await;
    app.post(&clean_ru("down-1@telecom-sever.ru"));
    let first = app.outbox.deliver_one().await;
    assert!(matches!(first, Delivery::Retry { .. }), "{first:?}");
    assert_eq!(app.pipeline.store.outbox_len(), 1, "still queued");
    let smtp = SmtpServer::start_on(port);
    // Back-off is capped at 1 s in tests.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match app.outbox.deliver_one().await {
            Delivery::Sent { .. } => break,
            Delivery::Idle | Delivery::Retry { .. } => {
                assert!(std::time::Instant::now() < deadline, "never delivered");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(app.pipeline.store.outbox_len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_queued_before_a_restart_is_sent_after_it_once() {
    let smtp = SmtpServer::start();
    let data = tempfile::tempdir().unwrap();
    let opts = || Options {
        rules: repo().join("rules"),
        smtp_port: smtp.port,
        max_body: None,
        data: Some(data.path().join("data")),
    };
    let app = TestApp::spawn_with(opts()).await;
    let (_, b) = app.post(&clean_ru("restart-1@telecom-sever.ru"));
    assert_eq!(b["ticket"], 100001);
    app.stop().await;
    let app = TestApp::spawn_with(opts()).await;
    let steps = app.drain_outbox().await;
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(smtp.received().len(), 1);
    // The next ticket continues the sequence.
    let (_, b) = app.post(&request_ru("restart-2@telecom-sever.ru", "TX-8"));
    assert_eq!(b["ticket"], 100002);
    app.drain_outbox().await;
    assert_eq!(smtp.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_five_replies_per_address_per_day() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    for i in 0..7 {
        let products = [
            "STB-1",
            "TX-8",
            "Encoder-5",
            "CAS-Q",
            "Player-77",
            "Mux-3",
            "Origin-9",
        ];
        let (_, b) = app.post(&request_ru(
            &format!("rate-{i}@telecom-sever.ru"),
            products[i],
        ));
        let expected = if i < 5 {
            serde_json::json!("created")
        } else {
            serde_json::Value::Null
        };
        assert_eq!(b["reply"], expected, "message {i}: {b}");
    }
    app.drain_outbox().await;
    assert_eq!(smtp.received().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_mail_is_never_answered() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let raw = b"From: i.petrov@telecom-sever.ru\r\nTo: support@vendor.example\r\nSubject: Out of Office: EPG\r\nAuto-Submitted: auto-replied\r\nDate: Tue, 24 Nov 2026 10:15:00 +0300\r\nMessage-ID: <ooo@telecom-sever.ru>\r\n\r\nI am out of the office until Monday. MI-10234\r\n";
    let (_, b) = app.post(raw);
    assert_eq!(b["outcome"], "ignore", "{b}");
    assert_eq!(b["reply"], serde_json::Value::Null);
    assert!(app.drain_outbox().await.is_empty());
    assert!(smtp.received().is_empty());
}
