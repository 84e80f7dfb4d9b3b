//! Spam verdicts on the real server: a real Rspamd on loopback with a private
//! configuration (scripts/rspamd-private.sh: no network lookups, no Redis, a temp
//! dir), the gateway's spam headers and when they count, and a scanner that is down
//! or never answers.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// GTUBE, the standard anti-UBE test string every Rspamd install recognises.
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// A real Rspamd process on a free loopback port.
pub struct RspamdServer {
    pub port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl RspamdServer {
    /// Starts Rspamd and waits until its normal worker answers `/ping`.
    pub fn start() -> RspamdServer {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("bash")
            .arg(repo().join("scripts/rspamd-private.sh"))
            .arg(dir.path())
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect(
                "scripts/rspamd-private.sh runs (is rspamd installed? scripts/test.sh installs it)",
            );
        let mut server = RspamdServer {
            port,
            child: Some(child),
            _dir: dir,
        };
        // Compiling its regular expressions takes Rspamd tens of seconds on a busy
        // machine the first time.
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("rspamd exited during start-up: {status}");
            }
            if server.ping() {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "rspamd did not answer /ping on {port}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn ping(&self) -> bool {
        if TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            return false;
        }
        TestApp::agent()
            .get(&format!("http://127.0.0.1:{}/ping", self.port))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .is_some_and(|b| b.contains("pong"))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops Rspamd (SIGTERM to its main process, which ends its workers) and waits
    /// until the port is closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RspamdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn gtube(message_id: &str) -> Vec<u8> {
    format!(
        "From: Best Offers <offers@cheap-pills.example>\r\nTo: support@vendor.example\r\n\
Subject: Limited time offer\r\nDate: Tue, 24 Nov 2026 10:15:00 +0300\r\nMessage-ID: <{message_id}>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
Buy now!\r\n{GTUBE}\r\n"
    )
    .into_bytes()
}

fn options(smtp_port: u16) -> Options {
    Options {
        rules: repo().join("rules"),
        smtp_port,
        max_body: None,
        data: None,
    }
}

fn codes(body: &serde_json::Value) -> Vec<String> {
    body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

fn spam_detail(body: &serde_json::Value) -> String {
    body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "spam")
        .and_then(|f| f["detail"].as_str())
        .unwrap_or("")
        .to_owned()
}

fn metric(app: &TestApp, line_start: &str) -> f64 {
    let mut resp = TestApp::agent().get(&app.url("/metrics")).call().unwrap();
    let text = resp.body_mut().read_to_string().unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rspamd_verdicts_and_rspamd_stopped_mid_run() {
    let smtp = SmtpServer::start();
    let mut rspamd = RspamdServer::start();
    let url = rspamd.url();
    let app = TestApp::spawn_with_env(
        options(smtp.port),
        &[
            ("INTAKE__SPAM__RSPAMD_URL", url.as_str()),
            ("INTAKE__SPAM__TIMEOUT_MS", "5000"),
        ],
    )
    .await;

    // GTUBE: spam, kept with its decision, no ticket, no reply.
    let (status, body) = app.post_with(
        &gtube("gtube-1@cheap-pills.example"),
        "/v1/messages",
        Some(GATEWAY),
        &[
            ("X-Envelope-From", "offers@cheap-pills.example"),
            ("X-Envelope-To", "support@vendor.example"),
            ("X-Client-IP", "192.0.2.10"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "ignore", "{body}");
    assert!(codes(&body).contains(&"spam".to_owned()), "{body}");
    assert!(
        body["ticket"].is_null() && body["reply"].is_null(),
        "{body}"
    );
    let detail = spam_detail(&body);
    assert!(
        detail.contains("rspamd says spam") && detail.contains("GTUBE"),
        "{detail}"
    );

    // A clean support request from a contracted client passes untouched.
    let (status, clean) = app.post(&crate::hook::request_ru(
        "clean-rspamd-1@telecom-sever.ru",
        "STB-4K",
    ));
    assert_eq!(status, 200, "{clean}");
    assert_eq!(clean["outcome"], "create", "{clean}");
    assert_eq!(clean["status"], "new");
    assert_eq!(clean["reply"], "created");
    assert!(codes(&clean).is_empty(), "{clean}");
    assert!(metric(&app, "intake_spam_checks_total{result=\"ok\"}") >= 2.0);
    let delivered = app.drain_outbox().await;
    assert_eq!(
        delivered.len(),
        1,
        "only the clean request is answered: {delivered:?}"
    );
    let got = smtp.received_parsed();
    assert_eq!(got.len(), 1);
    assert!(got
        .iter()
        .all(|m| m.header("To").unwrap_or("").contains("telecom-sever.ru")));

    // Rspamd stops: nothing changes but the verdict. The clean request gets the
    // same decision, the hook still answers 200, and GTUBE is judged without one.
    rspamd.stop();
    let (status, again) = app.post(&crate::hook::request_ru(
        "clean-rspamd-2@telecom-sever.ru",
        "TV-Box",
    ));
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["outcome"], &again["status"], &again["reply"]),
        (&clean["outcome"], &clean["status"], &clean["reply"]),
        "{again}"
    );
    assert!(codes(&again).is_empty(), "{again}");
    let (status, unchecked) = app.post(&gtube("gtube-2@cheap-pills.example"));
    assert_eq!(status, 200, "{unchecked}");
    assert!(
        !codes(&unchecked).contains(&"spam".to_owned()),
        "{unchecked}"
    );
    assert!(metric(&app, "intake_spam_checks_total{result=\"unavailable\"}") >= 2.0);
    // Recorded with the message: which ones were judged without a verdict.
    let unchecked = app
        .pipeline
        .store
        .collection(intake::pipeline::SPAM_UNCHECKED)
        .unwrap()
        .scan_all(b"", None)
        .unwrap();
    assert_eq!(unchecked.len(), 2, "{unchecked:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanner_that_never_answers_costs_the_timeout_and_loses_nothing() {
    let smtp = SmtpServer::start();
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let app = TestApp::spawn_with_env(
        options(smtp.port),
        &[
            ("INTAKE__SPAM__RSPAMD_URL", url.as_str()),
            ("INTAKE__SPAM__TIMEOUT_MS", "300"),
        ],
    )
    .await;
    let t = Instant::now();
    let (status, body) = app.post(&crate::hook::clean_ru("slow-scanner@telecom-sever.ru"));
    assert_eq!(status, 200, "{body}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(
        (body["outcome"].as_str(), body["status"].as_str()),
        (Some("create"), Some("new"))
    );
    let (status, t) = app.get(&format!("/v1/tickets/{}", body["ticket"]), Some(STAFF));
    assert_eq!(status, 200, "filed and durable: {t}");
    drop(silent);
    app.stop().await;
}

fn gateway_marked(message_id: &str, flag: &str) -> Vec<u8> {
    let score = if flag == "YES" { "9.1" } else { "1.2" };
    format!(
        "X-Spam-Flag: {flag}\r\nX-Spam-Status: {flag}, score={score} required=5.0 tests=HTML_MESSAGE,URIBL_BLACK\r\n\
From: Ann <ann@unknown-sender.example>\r\nTo: support@vendor.example\r\n\
Subject: STB-4K reboots when EPG loads\r\nDate: Tue, 24 Nov 2026 10:15:00 +0300\r\nMessage-ID: <{message_id}>\r\n\r\n\
Our STB-4K reboots every time the EPG loads. Client MI-10234.\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_spam_headers_count_only_when_trusted() {
    let smtp = SmtpServer::start();
    // Not trusted (the default): a sender's own X-Spam-Flag means nothing.
    let app = TestApp::spawn(smtp.port).await;
    let (_, body) = app.post(&gateway_marked("gw-1@unknown-sender.example", "YES"));
    assert!(!codes(&body).contains(&"spam".to_owned()), "{body}");
    app.stop().await;

    let app = TestApp::spawn_with_env(
        options(smtp.port),
        &[("INTAKE__SPAM__TRUST_GATEWAY_HEADERS", "true")],
    )
    .await;
    let (status, body) = app.post(&gateway_marked("gw-2@unknown-sender.example", "YES"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "ignore", "{body}");
    assert!(codes(&body).contains(&"spam".to_owned()), "{body}");
    assert!(spam_detail(&body).contains("gateway says spam"), "{body}");
    let (_, body) = app.post(&gateway_marked("gw-3@unknown-sender.example", "NO"));
    assert!(!codes(&body).contains(&"spam".to_owned()), "{body}");
    // Without the gateway's token the hook takes nothing at all.
    let (status, _) = app.post_with(
        &gateway_marked("gw-4@unknown-sender.example", "YES"),
        "/v1/messages",
        Some(STAFF),
        &[],
    );
    assert_eq!(status, 403);
    // Messages that do not come through the hook (portal, tools) are never judged
    // by these headers, even when trusted.
    let prepared = app
        .pipeline
        .prepare(
            gateway_marked("gw-5@unknown-sender.example", "YES"),
            Default::default(),
            jiff::Timestamp::now(),
        )
        .unwrap();
    match prepared {
        intake::pipeline::Prepared::New { evaluation, .. } => assert!(
            !evaluation
                .decision
                .findings
                .iter()
                .any(|f| f.code == "spam"),
            "{:?}",
            evaluation.decision
        ),
        intake::pipeline::Prepared::Filed(_) => panic!("a new message"),
    }
    app.stop().await;
}

fn claimed_by_contract(message_id: &str, auth: &str) -> Vec<u8> {
    format!(
        "Authentication-Results: {auth}\r\n\
From: Ivan <i.petrov@telecom-sever.ru>\r\nTo: support@vendor.example\r\n\
Subject: STB-4K reboots when EPG loads\r\nDate: Tue, 24 Nov 2026 10:15:00 +0300\r\nMessage-ID: <{message_id}>\r\n\r\n\
Our STB-4K reboots every time the EPG loads. Steps: 1. boot 2. open EPG. Client MI-10234.\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_results_of_our_mta_only_mark_a_forged_contract_sender() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn_with_env(
        options(smtp.port),
        &[("INTAKE__SPAM__AUTHSERV_ID", "mx.vendor.example")],
    )
    .await;
    let unverified =
        |body: &serde_json::Value| codes(body).contains(&"sender_unverified".to_owned());
    let (_, body) = app.post(&claimed_by_contract(
        "auth-1@x",
        "mx.vendor.example; spf=fail smtp.mailfrom=telecom-sever.ru; dmarc=fail header.from=telecom-sever.ru",
    ));
    assert!(unverified(&body), "{body}");
    // The same claim made by another host is no result of ours.
    let (_, body) = app.post(&claimed_by_contract(
        "auth-2@x",
        "evil.example; spf=fail smtp.mailfrom=telecom-sever.ru; dmarc=fail header.from=telecom-sever.ru",
    ));
    assert!(!unverified(&body), "{body}");
    // SPF fails but an aligned DKIM signature passes: the sender is who it says.
    let (_, body) = app.post(&claimed_by_contract(
        "auth-3@x",
        "mx.vendor.example; spf=fail smtp.mailfrom=telecom-sever.ru; dkim=pass header.d=telecom-sever.ru",
    ));
    assert!(!unverified(&body), "{body}");
    app.stop().await;
}

fn from_unknown(from: &str, message_id: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: support@vendor.example\r\n\
Subject: Question about HLS streaming {message_id}\r\nDate: Tue, 24 Nov 2026 10:15:00 +0300\r\nMessage-ID: <{message_id}>\r\n\r\n\
How do I configure HLS output with 4 second segments on the encoder {message_id}?\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backscatter_one_reply_per_unknown_sender_and_none_to_unanswerable_addresses() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let (_, first) = app.post(&from_unknown(
        "stranger@unknown.example",
        "u-1@unknown.example",
    ));
    assert!(
        first["reply"].is_string(),
        "the first message is answered: {first}"
    );
    let (_, second) = app.post(&from_unknown(
        "stranger@unknown.example",
        "u-2@unknown.example",
    ));
    assert!(second["ticket"].is_number(), "still filed: {second}");
    // A contracted client is not limited this way.
    let (_, c1) = app.post(&crate::hook::request_ru("c-1@telecom-sever.ru", "STB-4K"));
    let (_, c2) = app.post(&crate::hook::request_ru("c-2@telecom-sever.ru", "TV-Box"));
    assert!(
        c1["reply"].is_string() && c2["reply"].is_string(),
        "{c1} {c2}"
    );
    let (_, two_at) = app.post(&from_unknown(
        "\"a@b\"@c@unknown.example",
        "u-3@unknown.example",
    ));
    let (_, no_domain) = app.post(&from_unknown("someone@localhost", "u-4@unknown.example"));
    let (_, eight_bit) = app.post(&from_unknown(
        "пользователь@unknown.example",
        "u-5@unknown.example",
    ));
    assert!(
        two_at["ticket"].is_number()
            && no_domain["ticket"].is_number()
            && eight_bit["ticket"].is_number()
    );
    app.drain_outbox().await;
    let to: Vec<String> = smtp
        .received_parsed()
        .iter()
        .map(|m| m.header("To").unwrap_or("").to_lowercase())
        .collect();
    assert_eq!(
        to.iter()
            .filter(|t| t.contains("stranger@unknown.example"))
            .count(),
        1,
        "{to:?}"
    );
    assert_eq!(
        to.iter().filter(|t| t.contains("telecom-sever.ru")).count(),
        2,
        "{to:?}"
    );
    assert_eq!(to.len(), 3, "nothing to the unanswerable addresses: {to:?}");
    app.stop().await;
}
