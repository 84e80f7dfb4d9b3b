//! The ticket lifecycle through the API: status changes with history and
//! notifications, staff replies that thread back, SLA timers and overdue lists,
//! resuming and reopening by the client's follow-up.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::hook::request_ru;

/// A clock the test moves forward: real time plus an offset.
#[derive(Clone, Default)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_secs() as i64, Ordering::SeqCst);
    }
    pub fn clock(&self) -> intake::intake::Clock {
        let off = self.0.clone();
        Arc::new(move || {
            jiff::Timestamp::now() + jiff::SignedDuration::from_secs(off.load(Ordering::SeqCst))
        })
    }
}

pub async fn spawn_clocked(smtp_port: u16) -> (TestApp, TestClock) {
    let clock = TestClock::default();
    let app = TestApp::spawn_with_clock(
        Options {
            rules: repo().join("rules"),
            smtp_port,
            max_body: None,
            data: None,
        },
        clock.clock(),
    )
    .await;
    (app, clock)
}

/// POSTs JSON with a bearer token; returns (status, JSON).
pub fn post_json(app: &TestApp, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let mut resp = TestApp::agent()
        .post(&app.url(path))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .expect("server answers");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn set_status(app: &TestApp, n: u64, status: &str, note: &str) -> (u16, Value) {
    post_json(
        app,
        &format!("/v1/tickets/{n}/status"),
        STAFF,
        &json!({ "status": status, "note": note }),
    )
}

/// A plain follow-up from the client of `request_ru`.
fn client_mail(message_id: &str, subject: &str, extra: &str, text: &str) -> Vec<u8> {
    format!(
        "From: i.petrov@telecom-sever.ru\r\nTo: support@vendor.example\r\nSubject: {subject}\r\n\
Date: Tue, 24 Nov 2026 12:15:00 +0300\r\nMessage-ID: <{message_id}>\r\n{extra}MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_move_a_ticket_through_its_lifecycle_with_history() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let (_, d) = app.post(&request_ru("lc-1@telecom-sever.ru", "STB-7"));
    assert_eq!(d["ticket"], 100001, "{d}");
    for (to, note) in [
        ("open", "taking it"),
        ("escalated", "passed to development"),
        ("open", "fix ready"),
        ("resolved", "fixed in 3.2.2"),
        ("closed", "confirmed by phone"),
    ] {
        let (status, body) = set_status(&app, 100001, to, note);
        assert_eq!(status, 200, "{to}: {body}");
        assert_eq!(body["status"], to);
    }
    let (_, t) = app.get("/v1/tickets/100001", Some(STAFF));
    let changes: Vec<&Value> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status")
        .collect();
    assert_eq!(changes.len(), 5, "{t}");
    assert_eq!(changes[1]["from"], "open");
    assert_eq!(changes[1]["to"], "escalated");
    // The shared staff token is recorded as `api`.
    assert_eq!(changes[1]["by"], "api");
    assert_eq!(changes[1]["note"], "passed to development");
    assert!(changes[1]["at"].as_str().is_some());

    // Closed is final; unknown statuses, missing notes and tokens are refused.
    let (status, body) = set_status(&app, 100001, "open", "again");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert_eq!(set_status(&app, 100001, "done", "x").0, 422);
    assert_eq!(set_status(&app, 100001, "open", " ").0, 422);
    assert_eq!(set_status(&app, 999999, "open", "x").0, 404);
    let (status, _) = post_json(
        &app,
        "/v1/tickets/100001/status",
        GATEWAY,
        &json!({"status": "open", "note": "x"}),
    );
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_notify_the_client_as_the_policy_says() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    app.post(&request_ru("lc-n1@telecom-sever.ru", "STB-8"));
    app.drain_outbox().await;
    let before = smtp.received().len();
    // `open` is not in rules/notify.toml: no mail.
    let (_, body) = set_status(&app, 100001, "open", "internal: checking logs");
    assert!(body["notification_message_id"].is_null(), "{body}");
    // `resolved` is: a mail, with the public note.
    let (status, body) = post_json(
        &app,
        "/v1/tickets/100001/status",
        STAFF,
        &json!({"status": "resolved", "note": "Update the firmware to 3.2.2.", "public_note": true}),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["notification_message_id"].as_str().unwrap().to_owned();
    let steps = app.drain_outbox().await;
    assert!(
        steps
            .iter()
            .all(|s| matches!(s, intake::reply::outbox::Delivery::Sent { .. })),
        "{steps:?}"
    );
    let got = smtp.received_parsed();
    assert_eq!(got.len(), before + 1);
    // Maildir file names do not keep the order of arrival: find by Message-ID.
    let m = got
        .iter()
        .find(|m| m.header("message-id") == Some(&format!("<{id}>")))
        .expect("notification delivered");
    assert_eq!(m.to, "i.petrov@telecom-sever.ru");
    assert!(m.subject.contains("[Ticket#100001]"), "{}", m.subject);
    assert!(m.subject.contains("решён"), "{}", m.subject);
    assert!(
        m.body.contains("Update the firmware to 3.2.2."),
        "{}",
        m.body
    );
    assert_eq!(m.header("in-reply-to").unwrap(), "<lc-n1@telecom-sever.ru>");
    // A private note stays internal.
    set_status(&app, 100001, "closed", "secret internal remark");
    app.drain_outbox().await;
    let got = smtp.received_parsed();
    assert_eq!(got.len(), before + 2);
    let closed = got
        .iter()
        .find(|m| m.subject.contains("закрыт"))
        .expect("closing notification");
    assert!(!closed.body.contains("secret internal remark"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_reply_is_mailed_and_the_clients_answer_threads_back() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    app.post(&request_ru("lc-r1@telecom-sever.ru", "STB-9"));
    app.drain_outbox().await;
    let (status, body) = post_json(
        &app,
        "/v1/tickets/100001/replies",
        STAFF,
        &json!({"text": "Please send the boot log.\n<b>not markup</b>"}),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["message_id"].as_str().unwrap().to_owned();
    assert!(body["sla"]["reacted_at"].is_string(), "{body}");
    app.drain_outbox().await;
    let m = smtp
        .received_parsed()
        .into_iter()
        .find(|m| m.header("message-id") == Some(&format!("<{id}>")))
        .expect("staff reply delivered");
    assert!(m.subject.contains("[Ticket#100001]"), "{}", m.subject);
    assert!(m.body.contains("Please send the boot log."), "{}", m.body);
    assert!(m.header("auto-submitted").is_none(), "a person's reply");
    assert_eq!(m.header("in-reply-to").unwrap(), "<lc-r1@telecom-sever.ru>");

    // The client answers that mail with no tag in the subject: threading alone.
    let answer = client_mail(
        "lc-r2@telecom-sever.ru",
        "Re: boot log",
        &format!("In-Reply-To: <{id}>\r\nReferences: <lc-r1@telecom-sever.ru> <{id}>\r\n"),
        "Лог во вложении не прикрепился, вот строки: ERROR boot.c:12 timeout",
    );
    let (_, d) = app.post(&answer);
    assert_eq!(d["outcome"], "append", "{d}");
    assert_eq!(d["ticket"], 100001);
    let (_, t) = app.get("/v1/tickets/100001", Some(STAFF));
    assert_eq!(t["messages"].as_array().unwrap().len(), 2);
    assert!(t["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "staff_reply" && e["by"] == "api"));

    assert_eq!(
        post_json(
            &app,
            "/v1/tickets/100001/replies",
            STAFF,
            &json!({"text": " "})
        )
        .0,
        422
    );
    assert_eq!(
        post_json(&app, "/v1/tickets/1/replies", STAFF, &json!({"text": "x"})).0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_tickets_are_listed_and_counted_per_level() {
    let smtp = SmtpServer::start();
    let (app, clock) = spawn_clocked(smtp.port).await;
    // Premium (telecom-sever.ru): reaction 1h, in work 8h, round the clock.
    app.post(&request_ru("lc-o1@telecom-sever.ru", "STB-1"));
    app.post(&request_ru("lc-o2@telecom-sever.ru", "DVB-2"));
    let (_, l) = app.get("/v1/tickets?overdue=true", Some(STAFF));
    assert_eq!(l["count"], 0, "{l}");
    clock.advance(Duration::from_secs(2 * 3600));
    let (_, l) = app.get("/v1/tickets?overdue=true", Some(STAFF));
    assert_eq!(l["count"], 2, "{l}");
    assert_eq!(l["tickets"][0]["sla"]["reaction_overdue"], true);
    let (_, c) = app.get("/v1/sla/overdue", Some(STAFF));
    assert_eq!(c["levels"]["premium"]["reaction"], 2, "{c}");
    assert_eq!(c["levels"]["standard"]["tickets"], 0, "{c}");
    // The first staff reply stops the reaction timer of 100001.
    post_json(
        &app,
        "/v1/tickets/100001/replies",
        STAFF,
        &json!({"text": "On it."}),
    );
    let (_, c) = app.get("/v1/sla/overdue", Some(STAFF));
    assert_eq!(c["levels"]["premium"]["reaction"], 1, "{c}");
    // Past the in-work time: both overdue in work until taken into work.
    clock.advance(Duration::from_secs(7 * 3600));
    let (_, c) = app.get("/v1/sla/overdue", Some(STAFF));
    assert_eq!(c["levels"]["premium"]["in_work"], 2, "{c}");
    set_status(&app, 100001, "open", "working");
    let (_, l) = app.get("/v1/tickets?overdue=true", Some(STAFF));
    let numbers: Vec<u64> = l["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![100002]);
    let (_, t) = app.get("/v1/tickets/100001", Some(STAFF));
    assert_eq!(t["sla_timers"]["in_work_overdue"], false, "{t}");
    assert_eq!(app.get("/v1/sla/overdue", None).0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_client_does_not_count_against_the_vendor() {
    let smtp = SmtpServer::start();
    let (app, clock) = spawn_clocked(smtp.port).await;
    app.post(&request_ru("lc-p1@telecom-sever.ru", "STB-3"));
    clock.advance(Duration::from_secs(30 * 60));
    set_status(&app, 100001, "needs_info", "which firmware?");
    // Five hours waiting: nothing overdue (premium reaction is 1h).
    clock.advance(Duration::from_secs(5 * 3600));
    let (_, t) = app.get("/v1/tickets/100001", Some(STAFF));
    assert_eq!(t["sla_timers"]["paused"], true, "{t}");
    assert_eq!(t["reaction_overdue"], false, "{t}");
    // The client answers: back to new, the timer runs again with 30 minutes left.
    let (_, d) = app.post(&client_mail(
        "lc-p2@telecom-sever.ru",
        "Re: [Ticket#100001] Сбой воспроизведения на STB-3",
        "",
        "Прошивка 3.2.1.",
    ));
    assert_eq!(d["outcome"], "append", "{d}");
    assert_eq!(d["status"], "new", "{d}");
    clock.advance(Duration::from_secs(20 * 60));
    let (_, t) = app.get("/v1/tickets/100001", Some(STAFF));
    assert_eq!(t["sla_timers"]["paused"], false, "{t}");
    assert_eq!(t["reaction_overdue"], false, "{t}");
    clock.advance(Duration::from_secs(15 * 60));
    let (_, t) = app.get("/v1/tickets/100001", Some(STAFF));
    assert_eq!(t["reaction_overdue"], true, "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_reopens_a_resolved_ticket_within_the_period_and_links_after_it() {
    let smtp = SmtpServer::start();
    let (app, clock) = spawn_clocked(smtp.port).await;
    app.post(&request_ru("lc-x1@telecom-sever.ru", "STB-5"));
    set_status(&app, 100001, "open", "working");
    set_status(&app, 100001, "resolved", "fixed");
    clock.advance(Duration::from_secs(3 * 86_400));
    let (_, d) = app.post(&client_mail(
        "lc-x2@telecom-sever.ru",
        "Re: [Ticket#100001] Сбой воспроизведения на STB-5",
        "",
        "Проблема вернулась после обновления.",
    ));
    assert_eq!(d["outcome"], "append", "{d}");
    assert_eq!(d["status"], "open", "reopened: {d}");
    let (_, t) = app.get("/v1/tickets/100001", Some(STAFF));
    let last = t["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["from"], "resolved");
    assert_eq!(last["to"], "open");
    assert_eq!(last["by"], "client:i.petrov@telecom-sever.ru");

    set_status(&app, 100001, "resolved", "fixed again");
    clock.advance(Duration::from_secs(15 * 86_400));
    let (_, d) = app.post(&client_mail(
        "lc-x3@telecom-sever.ru",
        "Re: [Ticket#100001] Сбой воспроизведения на STB-5",
        "",
        "Добрый день! Устройство STB-5 снова не воспроизводит каналы STB-5-HD после перезагрузки.\r\n\
Шаги:\r\n1. Перезагрузить STB-5.\r\n2. Включить канал.\r\n3. Чёрный экран.\r\n\r\nИван Петров, MI-10234",
    ));
    assert_eq!(d["outcome"], "create", "{d}");
    assert_eq!(d["ticket"], 100002, "{d}");
    let codes: Vec<&str> = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"followup_closed"), "{d}");
    let (_, t) = app.get("/v1/tickets/100002", Some(STAFF));
    assert_eq!(t["link"], 100001, "{t}");
    let (_, old) = app.get("/v1/tickets/100001", Some(STAFF));
    assert_eq!(old["status"], "resolved");
    // The reply explains the link.
    app.drain_outbox().await;
    let m = smtp
        .received_parsed()
        .into_iter()
        .find(|m| m.subject.contains("[Ticket#100002]"))
        .expect("reply to the new ticket");
    assert!(m.body.contains("100001"), "{}", m.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_tickets_leave_duplicate_detection() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let (_, d) = app.post(&request_ru("lc-d1@telecom-sever.ru", "STB-6"));
    assert_eq!(d["outcome"], "create");
    let (_, d) = app.post(&request_ru("lc-d2@telecom-sever.ru", "STB-6"));
    assert_eq!(d["outcome"], "duplicate", "open ticket: {d}");
    set_status(&app, 100001, "resolved", "fixed");
    let (_, d) = app.post(&request_ru("lc-d3@telecom-sever.ru", "STB-6"));
    assert_eq!(
        d["outcome"], "create",
        "resolved ticket is no duplicate target: {d}"
    );
    assert_eq!(d["ticket"], 100002);
}

#[test]
fn lifecycle_templates_render_in_both_languages() {
    use intake::reply::render::{ReplyContext, Templates};
    let t = Templates::load(&repo().join("rules/templates")).unwrap();
    for lang in ["ru", "en"] {
        for status in [
            "new",
            "needs_info",
            "open",
            "escalated",
            "resolved",
            "closed",
        ] {
            for note in ["", "Firmware 3.2.2 fixes it."] {
                let mut ctx = ReplyContext {
                    ticket: Some(100001),
                    tag: "[Ticket#100001]".into(),
                    subject: "EPG".into(),
                    lang: lang.into(),
                    ..ReplyContext::default()
                };
                ctx.vars.insert("status".into(), status.into());
                ctx.vars.insert("previous_status".into(), "open".into());
                ctx.vars.insert("note".into(), note.into());
                let r = t.render(lang, "status_changed", &ctx).unwrap();
                assert!(r.subject.starts_with("[Ticket#100001]"), "{}", r.subject);
                assert_eq!(r.body.contains("Firmware 3.2.2"), !note.is_empty());
            }
        }
        let mut ctx = ReplyContext {
            tag: "[Ticket#100001]".into(),
            lang: lang.into(),
            ..ReplyContext::default()
        };
        ctx.vars.insert("text".into(), "Hello".into());
        ctx.vars.insert("author".into(), "Anna".into());
        ctx.vars
            .insert("url".into(), "https://x/portal/auth/abc".into());
        ctx.vars.insert("minutes".into(), "20".into());
        assert!(t
            .render(lang, "staff_reply", &ctx)
            .unwrap()
            .body
            .contains("Hello"));
        assert!(t
            .render(lang, "portal_link", &ctx)
            .unwrap()
            .body
            .contains("https://x/portal/auth/abc"));
    }
}
