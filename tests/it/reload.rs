//! Hot reload and metrics on the real server: a broken reload under concurrent
//! load, a reload that changes a decision, the watcher, SIGHUP on the binary,
//! and `/metrics` after a few messages.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

/// A clean English bug report from a client's own domain, unique by `i`.
fn numbered(i: usize) -> Vec<u8> {
    format!(
        "From: User {i} <user{i}@telecom-sever.ru>\r\n\
To: support@vendor.example\r\n\
Subject: EPG stops updating on channel {i} after firmware 3.2.{i}\r\n\
Date: Tue, 24 Nov 2026 10:15:00 +0300\r\n\
Message-ID: <reload-{i}@telecom-sever.ru>\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello,\r\n\
\r\n\
the program guide of channel {i} stays empty since this morning.\r\n\
Steps to reproduce:\r\n\
1. Boot an STB-4K with firmware 3.2.{i}.\r\n\
2. Open the guide on channel {i}.\r\n\
3. The guide is empty.\r\n\
\r\n\
--\r\n\
User {i}, Telecom Sever, contract MI-10234\r\n"
    )
    .into_bytes()
}

/// The value of one sample line of the metrics text (`name{labels} value`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn metrics(app: &TestApp) -> String {
    let (s, body) = app.get("/metrics", None);
    assert_eq!(s, 200);
    body.as_str().expect("metrics are text").to_owned()
}

fn stored_message_ids(app: &TestApp) -> Vec<String> {
    (0..500)
        .filter_map(|seq| app.pipeline.store.message(seq).unwrap())
        .filter_map(|r| r.message_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_reload_under_load_fails_no_request_and_loses_no_message() {
    let smtp = SmtpServer::start();
    let rules = RulesDir::copy();
    let app = rules.spawn(smtp.port).await;
    let revision = app.pipeline.rules.current().revision.clone();
    let (threads, per_thread) = (4, 10);
    let results: Vec<(usize, u16, Value)> = std::thread::scope(|s| {
        let posters: Vec<_> = (0..threads)
            .map(|t| {
                let app = &app;
                s.spawn(move || {
                    (0..per_thread)
                        .map(|k| {
                            let i = t * per_thread + k;
                            let (status, body) = app.post(&numbered(i));
                            (i, status, body)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // Meanwhile: break the rules and ask for reloads, again and again.
        rules.write("15-broken.rhai", "let x = ;\n");
        for _ in 0..5 {
            let (s, b) = app.post_admin("/v1/admin/reload");
            assert_eq!(s, 422, "{b}");
            assert_eq!(b["error"]["code"], "rules_invalid");
            std::thread::sleep(Duration::from_millis(5));
        }
        posters
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(results.len(), threads * per_thread);
    for (i, status, body) in &results {
        assert_eq!(*status, 200, "message {i}: {body}");
        assert_eq!(
            body["rules_revision"],
            revision.as_str(),
            "message {i}: {body}"
        );
        assert_ne!(body["outcome"], Value::Null, "message {i}: {body}");
    }
    let stored = stored_message_ids(&app);
    for i in 0..threads * per_thread {
        let id = format!("reload-{i}@telecom-sever.ru");
        assert!(stored.contains(&id), "message {id} is not stored");
    }
    assert_eq!(app.pipeline.rules.current().revision, revision);
    let (_, info) = app.get("/v1/admin/rules", Some(ADMIN));
    assert_eq!(info["revision"], revision.as_str());
    assert!(
        info["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("15-broken.rhai:1:"),
        "{info}"
    );
    let text = metrics(&app);
    assert!(
        sample(
            &text,
            "intake_rules_reloads_total{trigger=\"api\",result=\"failed\"}"
        )
        .unwrap()
            >= 5.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "intake_rules_reload_failing"),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_a_decision_applies_to_the_next_message() {
    let smtp = SmtpServer::start();
    let rules = RulesDir::copy();
    let app = rules.spawn(smtp.port).await;
    let (_, before) = app.post(&numbered(1));
    assert_eq!(before["outcome"], "create", "{before}");
    rules.write(
        "65-firmware_sales.rhai",
        "// firmware upgrades are sold, not supported\nif msg.subject_core.contains(\"firmware\") { flag(\"out_of_scope\", \"firmware upgrade request\"); }\n",
    );
    let (s, reloaded) = app.post_admin("/v1/admin/reload");
    assert_eq!(s, 200, "{reloaded}");
    let new_rev = reloaded["revision"].as_str().unwrap().to_owned();
    assert_ne!(before["rules_revision"], new_rev.as_str());
    let (_, after) = app.post(&numbered(2));
    assert_eq!(after["outcome"], "reject", "{after}");
    assert_eq!(after["rules_revision"], new_rev.as_str());
    // The stored record carries the revision: a re-delivery answers from it.
    let (_, again) = app.post(&numbered(2));
    assert_eq!(again["redelivery"], true, "{again}");
    assert_eq!(again["rules_revision"], new_rev.as_str());
    // The first message keeps the revision it was decided with.
    let (_, first) = app.post(&numbered(1));
    assert_eq!(first["rules_revision"], before["rules_revision"]);
}

async fn wait_for_revision_change(app: &TestApp, from: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, info) = app.get("/v1/admin/rules", Some(ADMIN));
        if info["revision"] != from || Instant::now() > deadline {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_reloads_an_edited_rules_directory_and_refuses_a_broken_one() {
    let smtp = SmtpServer::start();
    let rules = RulesDir::copy();
    let app = rules.spawn(smtp.port).await;
    let rev0 = app.pipeline.rules.current().revision.clone();
    rules.write(
        "65-firmware_sales.rhai",
        "if msg.subject_core.contains(\"firmware\") { flag(\"out_of_scope\", \"firmware\"); }\n",
    );
    let info = wait_for_revision_change(&app, &rev0).await;
    let rev1 = info["revision"].as_str().unwrap().to_owned();
    assert_ne!(rev1, rev0, "the watcher did not reload: {info}");
    let (_, b) = app.post(&numbered(3));
    assert_eq!(b["outcome"], "reject", "{b}");
    assert_eq!(b["rules_revision"], rev1.as_str());

    // A broken edit is refused; the last good set keeps deciding.
    rules.write("66-broken.rhai", "if { \n");
    let deadline = Instant::now() + Duration::from_secs(15);
    let info = loop {
        let (_, info) = app.get("/v1/admin/rules", Some(ADMIN));
        if info["last_reload_error"].is_string() || Instant::now() > deadline {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        info["last_reload_error"]
            .as_str()
            .unwrap_or("")
            .contains("66-broken.rhai"),
        "{info}"
    );
    assert_eq!(info["revision"], rev1.as_str());
    let (_, b) = app.post(&numbered(4));
    assert_eq!(b["rules_revision"], rev1.as_str());
    let text = metrics(&app);
    assert!(
        sample(
            &text,
            "intake_rules_reloads_total{trigger=\"watch\",result=\"ok\"}"
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "intake_rules_reloads_total{trigger=\"watch\",result=\"failed\"}"
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
}

#[test]
fn sighup_reloads_the_rules_of_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let rules = RulesDir::copy();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_intake"))
        .arg("serve")
        .env("INTAKE__HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("INTAKE__STORE__PATH", dir.path().join("data"))
        .env("INTAKE__RULES__PATH", rules.path())
        .env("INTAKE__RULES__WATCH", "false")
        .env(
            "INTAKE__CONTRACTS__FILE",
            repo().join("fixtures/contracts.toml"),
        )
        .env("INTAKE__SMTP__RELAY", "127.0.0.1:9")
        .env("INTAKE__AUTH__ADMIN_TOKEN", ADMIN)
        .env("INTAKE__AUTH__GATEWAY_TOKEN", GATEWAY)
        .env("INTAKE__AUTH__STAFF_TOKEN", STAFF)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let info = |agent: &ureq::Agent| -> Option<Value> {
        let mut r = agent
            .get(&format!("http://127.0.0.1:{port}/v1/admin/rules"))
            .header("Authorization", &format!("Bearer {ADMIN}"))
            .call()
            .ok()?;
        serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Some(v) = info(&agent) {
            break v;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    rules.write(
        "65-x.rhai",
        "if msg.subject == \"x\" { flag(\"out_of_scope\", \"x\"); }\n",
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        info(&agent).unwrap()["revision"],
        first["revision"],
        "watching is off: no reload without a signal"
    );
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let v = info(&agent).expect("the server survives SIGHUP");
        if v["revision"] != first["revision"] || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_ne!(after["revision"], first["revision"], "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_messages_findings_rules_replies_and_requests() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    for i in 10..13 {
        let (s, b) = app.post(&numbered(i));
        assert_eq!(s, 200, "{b}");
    }
    let (_, b) = app
        .post(b"From: a@b.example\r\nSubject: \r\nMessage-ID: <m-empty@b.example>\r\n\r\nhelp\r\n");
    assert!(
        b["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "empty_subject"),
        "{b}"
    );
    let (s, _) = app.post(&numbered(10));
    assert_eq!(s, 200);
    let sent = app.drain_outbox().await;
    assert!(!sent.is_empty());
    let text = metrics(&app);
    let at_least = |series: &str, n: f64| {
        let v = sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert!(v >= n, "{series} = {v} < {n}\n{text}");
    };
    at_least(
        "intake_messages_total{outcome=\"create\",status=\"new\"}",
        3.0,
    );
    at_least(
        "intake_messages_total{outcome=\"create\",status=\"needs_info\"}",
        1.0,
    );
    at_least("intake_findings_total{code=\"empty_subject\"}", 1.0);
    at_least("intake_redeliveries_total", 1.0);
    at_least(
        "intake_rule_duration_seconds_count{rule=\"abusive_language\"}",
        4.0,
    );
    at_least("intake_rule_duration_seconds_count{rule=\"decide\"}", 4.0);
    at_least("intake_outbox_sent_total", 4.0);
    at_least(
        "intake_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/messages\",status=\"200\"}",
        5.0,
    );
    assert!(text.contains("intake_outbox_depth "), "{text}");
    // Every configured level is exported; nothing is overdue right after filing.
    for level in ["premium", "standard", "basic"] {
        let series = format!("intake_tickets_overdue{{level=\"{level}\",timer=\"reaction\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series}\n{text}");
    }
    assert!(
        text.contains("# TYPE intake_rule_duration_seconds histogram"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_rule_errors_and_limit_hits() {
    let smtp = SmtpServer::start();
    let rules = RulesDir::copy();
    rules.write("98-runaway.rhai", "let n = 0;\nloop { n += 1; }\n");
    rules.write(
        "99-crash.rhai",
        "let parts = msg.subject.split(\" \");\nlet x = parts[1000];\n",
    );
    let app = rules.spawn(smtp.port).await;
    let (s, b) = app.post(&numbered(20));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "needs_review", "{b}");
    let text = metrics(&app);
    assert!(
        sample(&text, "intake_rule_limit_hits_total{rule=\"runaway\"}").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "intake_rule_errors_total{rule=\"runaway\"}").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "intake_rule_errors_total{rule=\"crash\"}").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "intake_rule_limit_hits_total{rule=\"crash\"}"),
        None,
        "{text}"
    );
    assert!(
        sample(&text, "intake_findings_total{code=\"policy_error\"}").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
}
