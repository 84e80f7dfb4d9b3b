//! The client portal over HTTP: sign-in by emailed one-time link, session
//! cookies, CSRF, isolation between clients, escaping, rate limits, replies that
//! are filed like email.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::hook::request_ru;

/// A cookie-keeping HTTP client that does not follow redirects.
pub struct Client {
    agent: ureq::Agent,
    pub cookies: HashMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Client {
    pub fn new() -> Client {
        Client {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn finish(&mut self, mut resp: ureq::http::Response<ureq::Body>) -> Page {
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.remove(k.trim());
                } else {
                    self.cookies
                        .insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
        }
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        Page {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            set_cookies,
            headers,
            body: resp.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    pub fn get(&mut self, url: &str) -> Page {
        let resp = self
            .agent
            .get(url)
            .header("Cookie", &self.cookie_header())
            .call()
            .expect("server answers");
        self.finish(resp)
    }

    pub fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let resp = self
            .agent
            .post(url)
            .header("Cookie", &self.cookie_header())
            .send_form(form.iter().copied())
            .expect("server answers");
        self.finish(resp)
    }
}

/// The value of the first hidden `csrf` field of a page.
pub fn csrf_of(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field in {body}"));
    let rest = &body[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The path of the sign-in link in the latest mail to `to`.
pub fn link_path(smtp: &SmtpServer, to: &str) -> String {
    // Maildir file names do not keep the order of arrival: take the one sent last.
    let m = smtp
        .received_parsed()
        .into_iter()
        .filter(|m| m.to == to && m.body.contains("/portal/auth/"))
        .max_by_key(|m| {
            m.header("date")
                .and_then(|d| jiff::fmt::rfc2822::parse(d).ok())
                .map(|z| z.timestamp())
        })
        .unwrap_or_else(|| panic!("no sign-in mail to {to}"));
    let at = m.body.find("/portal/auth/").expect("link in the mail");
    m.body[at..at + "/portal/auth/".len() + 64].to_owned()
}

/// Signs `email` in through the emailed link; returns the client with its session.
pub async fn sign_in(app: &TestApp, smtp: &SmtpServer, email: &str) -> Client {
    let mut c = Client::new();
    let p = c.get(&app.url("/portal"));
    assert_eq!(p.status, 200);
    let csrf = csrf_of(&p.body);
    let p = c.post(
        &app.url("/portal/login"),
        &[("email", email), ("csrf", &csrf)],
    );
    assert_eq!(p.status, 200, "{}", p.body);
    app.drain_outbox().await;
    let link = link_path(smtp, email);
    let p = c.get(&app.url(&link));
    assert_eq!(p.status, 200, "{}", p.body);
    let token = link.rsplit('/').next().unwrap().to_owned();
    let csrf = csrf_of(&p.body);
    let p = c.post(
        &app.url("/portal/auth"),
        &[("token", &token), ("csrf", &csrf)],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(c.cookies.contains_key("intake_session"));
    c
}

fn northwind_request(message_id: &str) -> Vec<u8> {
    format!(
        "From: noc.northwind@gmail.com\r\nTo: support@vendor.example\r\nSubject: Multicast loss on encoder rack B\r\n\
Date: Tue, 24 Nov 2026 10:15:00 +0000\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
Hello, since this morning encoder rack B loses multicast groups every ten minutes.\r\n\
Steps: 1. start the encoders 2. join 239.1.1.1 3. wait ten minutes.\r\nLog: ERROR igmp.c:88 group timeout\r\n\
\r\nTomasz, Northwind Cable, MI-20417\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_by_emailed_link_with_safe_cookies() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let mut c = Client::new();
    // Without a session the list sends you to sign in.
    let p = c.get(&app.url("/portal/tickets"));
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some("/portal"));
    let p = c.get(&app.url("/portal"));
    assert_eq!(p.status, 200);
    assert!(p.headers["content-security-policy"].contains("default-src 'none'"));
    assert_eq!(p.headers["referrer-policy"], "no-referrer");
    let csrf = csrf_of(&p.body);
    // The form needs its CSRF token.
    let p = c.post(
        &app.url("/portal/login"),
        &[("email", "i.petrov@telecom-sever.ru"), ("csrf", "forged")],
    );
    assert_eq!(p.status, 403);
    let p = c.post(
        &app.url("/portal/login"),
        &[("email", "i.petrov@telecom-sever.ru"), ("csrf", &csrf)],
    );
    assert_eq!(p.status, 200);
    app.drain_outbox().await;
    let link = link_path(&smtp, "i.petrov@telecom-sever.ru");
    let token = link.rsplit('/').next().unwrap().to_owned();
    // Opening the link (as a mail scanner would) does not use it up.
    for _ in 0..2 {
        let p = c.get(&app.url(&link));
        assert_eq!(p.status, 200, "{}", p.body);
        assert!(p.body.contains(&token));
    }
    let csrf = csrf_of(&c.get(&app.url(&link)).body);
    let p = c.post(
        &app.url("/portal/auth"),
        &[("token", &token), ("csrf", &csrf)],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/portal/tickets"));
    let session = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("intake_session="))
        .expect("session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
    assert!(session.contains("Path=/portal"), "{session}");
    assert!(!session.contains("Secure"), "plain HTTP here: {session}");
    // The link worked once.
    let mut other = Client::new();
    let csrf2 = csrf_of(&other.get(&app.url("/portal")).body);
    let p = other.post(
        &app.url("/portal/auth"),
        &[("token", &token), ("csrf", &csrf2)],
    );
    assert_eq!(p.status, 404);
    assert!(!other.cookies.contains_key("intake_session"));
    assert_eq!(c.get(&app.url("/portal/tickets")).status, 200);
    // Sign out ends the session for good, even with the old cookie.
    let old = c.cookies["intake_session"].clone();
    let csrf = csrf_of(&c.get(&app.url("/portal/tickets")).body);
    let p = c.post(&app.url("/portal/logout"), &[("csrf", &csrf)]);
    assert_eq!(p.status, 303);
    c.cookies.insert("intake_session".into(), old);
    assert_eq!(c.get(&app.url("/portal/tickets")).status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_sees_only_its_own_clients_tickets() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let (_, a) = app.post(&request_ru("p-iso-1@telecom-sever.ru", "STB-1"));
    let (_, b) = app.post(&northwind_request("p-iso-2@gmail.com"));
    assert_eq!(
        (a["ticket"].as_u64(), b["ticket"].as_u64()),
        (Some(100001), Some(100002))
    );
    let mut c = sign_in(&app, &smtp, "i.petrov@telecom-sever.ru").await;
    let p = c.get(&app.url("/portal/tickets"));
    assert_eq!(p.status, 200);
    assert!(p.body.contains("/portal/tickets/100001"), "{}", p.body);
    assert!(!p.body.contains("100002"), "{}", p.body);
    assert!(!p.body.contains("Multicast"), "{}", p.body);
    assert!(p.body.contains("i.petrov@telecom-sever.ru"));
    // Guessing URLs: another client's ticket looks exactly like no ticket.
    let theirs = c.get(&app.url("/portal/tickets/100002"));
    let none = c.get(&app.url("/portal/tickets/100099"));
    assert_eq!(theirs.status, 404);
    assert_eq!(none.status, 404);
    assert_eq!(theirs.body, none.body);
    assert!(!theirs.body.contains("Multicast"));
    for path in [
        "/portal/tickets/abc",
        "/portal/tickets/-1",
        "/portal/tickets/100002%00",
        "/portal/tickets/0100002",
    ] {
        let p = c.get(&app.url(path));
        assert_eq!(p.status, 404, "{path}");
        assert!(!p.body.contains("Multicast"), "{path}");
    }
    // Nor can a reply be filed into it.
    let csrf = csrf_of(&c.get(&app.url("/portal/tickets/100001")).body);
    let p = c.post(
        &app.url("/portal/tickets/100002/reply"),
        &[("csrf", &csrf), ("text", "hello")],
    );
    assert_eq!(p.status, 404);
    let (_, t) = app.get("/v1/tickets/100002", Some(STAFF));
    assert_eq!(t["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_reply_is_filed_like_an_email() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    app.post(&request_ru("p-r-1@telecom-sever.ru", "STB-2"));
    crate::lifecycle::set_status(&app, 100001, "needs_info", "which firmware?");
    let mut c = sign_in(&app, &smtp, "a.smirnova@telecom-sever.ru").await;
    let page = c.get(&app.url("/portal/tickets/100001"));
    assert_eq!(page.status, 200);
    let csrf = csrf_of(&page.body);
    let p = c.post(
        &app.url("/portal/tickets/100001/reply"),
        &[("csrf", "wrong"), ("text", "x")],
    );
    assert_eq!(p.status, 403);
    let p = c.post(
        &app.url("/portal/tickets/100001/reply"),
        &[
            ("csrf", &csrf),
            ("text", "Прошивка 3.2.1, лог приложу позже."),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        p.location.as_deref(),
        Some("/portal/tickets/100001?filed=append")
    );
    let (_, t) = app.get("/v1/tickets/100001", Some(STAFF));
    // Same policy as email: a follow-up on needs_info resumes the ticket.
    assert_eq!(t["status"], "new", "{t}");
    let msgs = t["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["from"], "a.smirnova@telecom-sever.ru");
    assert_eq!(msgs[1]["decision"]["outcome"], "append");
    assert_eq!(msgs[1]["decision"]["findings"][0]["code"], "followup");
    let page = c.get(&app.url("/portal/tickets/100001?filed=append"));
    assert!(page.body.contains("Прошивка 3.2.1"), "{}", page.body);
    assert!(page.body.contains("id=\"filed\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_content_is_escaped_in_pages() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let raw = "From: i.petrov@telecom-sever.ru\r\nTo: support@vendor.example\r\n\
Subject: STB-4K <script>alert(1)</script> boot loop\r\nDate: Tue, 24 Nov 2026 10:15:00 +0300\r\n\
Message-ID: <p-x-1@telecom-sever.ru>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
Приставка STB-4K перезагружается по кругу <img src=x onerror=alert(2)> после обновления.\r\n\
Шаги: 1. обновить 2. перезагрузить 3. цикл.\r\nИван, MI-10234\r\n";
    let (_, d) = app.post(raw.as_bytes());
    assert_eq!(d["outcome"], "create", "{d}");
    let mut c = sign_in(&app, &smtp, "i.petrov@telecom-sever.ru").await;
    for path in ["/portal/tickets", "/portal/tickets/100001"] {
        let p = c.get(&app.url(path));
        assert_eq!(p.status, 200);
        assert!(!p.body.contains("<script>alert"), "{path}: {}", p.body);
        assert!(!p.body.contains("<img src=x"), "{path}");
        assert!(
            p.body
                .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{path}: {}",
            p.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_requests_are_limited_and_reveal_nothing() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let mut c = Client::new();
    let csrf = csrf_of(&c.get(&app.url("/portal")).body);
    // An address no contract lists gets the same answer and no mail.
    let unknown = c.post(
        &app.url("/portal/login"),
        &[("email", "someone@elsewhere.example"), ("csrf", &csrf)],
    );
    let known = c.post(
        &app.url("/portal/login"),
        &[("email", "i.petrov@telecom-sever.ru"), ("csrf", &csrf)],
    );
    assert_eq!((unknown.status, known.status), (200, 200));
    assert_eq!(unknown.body, known.body);
    app.drain_outbox().await;
    let got = smtp.received_parsed();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, "i.petrov@telecom-sever.ru");
    assert!(got[0].header("auto-submitted").is_some());
    for _ in 0..2 {
        let p = c.post(
            &app.url("/portal/login"),
            &[("email", "i.petrov@telecom-sever.ru"), ("csrf", &csrf)],
        );
        assert_eq!(p.status, 200);
    }
    let p = c.post(
        &app.url("/portal/login"),
        &[("email", "I.Petrov@telecom-sever.ru"), ("csrf", &csrf)],
    );
    assert_eq!(p.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_revokes_an_addresses_sessions() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let mut c = sign_in(&app, &smtp, "i.petrov@telecom-sever.ru").await;
    assert_eq!(c.get(&app.url("/portal/tickets")).status, 200);
    let (status, body) = crate::lifecycle::post_json(
        &app,
        "/v1/admin/portal/revoke",
        STAFF,
        &json!({"email": "i.petrov@telecom-sever.ru"}),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = crate::lifecycle::post_json(
        &app,
        "/v1/admin/portal/revoke",
        ADMIN,
        &json!({"email": "i.petrov@telecom-sever.ru"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], 1);
    assert_eq!(c.get(&app.url("/portal/tickets")).status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_when_served_over_tls() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    // As behind a TLS-terminating proxy.
    let resp = agent
        .get(&app.url("/portal"))
        .header("X-Forwarded-Proto", "https")
        .call()
        .unwrap();
    let csrf = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("intake_csrf="))
        .expect("csrf cookie")
        .to_owned();
    assert!(csrf.contains("Secure"), "{csrf}");
    assert!(
        csrf.contains("HttpOnly") && csrf.contains("SameSite=Strict"),
        "{csrf}"
    );
}
