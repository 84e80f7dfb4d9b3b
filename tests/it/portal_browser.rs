//! The portal in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by scripts/test.sh), driven over WebDriver with
//! fantoccini: sign in through the emailed link read from the SMTP server, see the
//! list, open a ticket, reply, be refused another client's ticket. Screenshots of
//! the main pages go to tests/artifacts/portal/.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::*;
use crate::hook::request_ru;
use crate::portal::link_path;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port, stopped on drop.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: apt-get install -y chromium chromium-driver (scripts/test.sh does)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            port,
            profile: tempfile::tempdir().unwrap(),
        }
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1200,900",
                    "--lang=en-US",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("WebDriver session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artifacts() -> PathBuf {
    let dir = repo().join("tests/artifacts/portal");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(artifacts().join(name), png).unwrap();
}

async fn text_of(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap()
}

fn other_client_request() -> Vec<u8> {
    b"From: noc.northwind@gmail.com\r\nTo: support@vendor.example\r\nSubject: Multicast loss on encoder rack B\r\n\
Date: Tue, 24 Nov 2026 10:15:00 +0000\r\nMessage-ID: <br-other@gmail.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
Encoder rack B loses multicast groups every ten minutes.\r\nSteps: 1. start 2. join 239.1.1.1 3. wait.\r\n\
Log: ERROR igmp.c:88 group timeout\r\nTomasz, MI-20417\r\n"
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_signs_in_follows_and_answers_tickets_in_chromium() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    app.post(&request_ru("br-1@telecom-sever.ru", "STB-4K"));
    app.post(&other_client_request());
    crate::lifecycle::post_json(
        &app,
        "/v1/tickets/100001/replies",
        STAFF,
        &json!({"text": "Please tell us the firmware version of the STB-4K."}),
    );
    crate::lifecycle::set_status(&app, 100001, "needs_info", "asked for the firmware");
    app.drain_outbox().await;

    let driver = Driver::start();
    let c = driver.browser().await;
    let res = flow(&app, &smtp, &c).await;
    let _ = c.close().await;
    res.unwrap();
}

async fn flow(app: &TestApp, smtp: &SmtpServer, c: &Client) -> Result<(), String> {
    // Sign-in page, in English by choice.
    c.goto(&app.url("/portal?lang=en"))
        .await
        .map_err(|e| e.to_string())?;
    let email = c
        .find(Locator::Css("#email"))
        .await
        .map_err(|e| e.to_string())?;
    email
        .send_keys("i.petrov@telecom-sever.ru")
        .await
        .map_err(|e| e.to_string())?;
    shot(c, "01-sign-in.png").await;
    c.find(Locator::Css("#send-link"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    let sent = text_of(c, "#sent").await;
    assert!(sent.contains("sign-in link"), "{sent}");

    // The link arrives by mail; open it and confirm.
    app.drain_outbox().await;
    let link = link_path(smtp, "i.petrov@telecom-sever.ru");
    c.goto(&app.url(&link)).await.map_err(|e| e.to_string())?;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#confirm"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;

    // The list: own ticket with status and SLA due times, not the other client's.
    let table = text_of(c, "#tickets").await;
    assert!(table.contains("100001"), "{table}");
    assert!(table.contains("waiting for your answer"), "{table}");
    assert!(!table.contains("100002"), "{table}");
    assert!(!table.contains("Multicast"), "{table}");
    let who = text_of(c, "#who").await;
    assert_eq!(who, "i.petrov@telecom-sever.ru");
    shot(c, "02-ticket-list.png").await;

    // The ticket page with its public history.
    c.find(Locator::Css("a[href=\"/portal/tickets/100001\"]"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    let history = text_of(c, "#history").await;
    assert!(history.contains("STB-4K"), "{history}");
    assert!(
        history.contains("Please tell us the firmware version"),
        "{history}"
    );
    assert!(
        !history.contains("asked for the firmware"),
        "internal note shown: {history}"
    );
    shot(c, "03-ticket.png").await;

    // Reply: filed as a follow-up by the same policy as email.
    c.find(Locator::Css("#reply-text"))
        .await
        .map_err(|e| e.to_string())?
        .send_keys("Firmware 3.2.1 <b>build 77</b>")
        .await
        .map_err(|e| e.to_string())?;
    c.find(Locator::Css("#send-reply"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    let filed = text_of(c, "#filed").await;
    assert!(filed.contains("added to the request"), "{filed}");
    let history = text_of(c, "#history").await;
    assert!(
        history.contains("Firmware 3.2.1 <b>build 77</b>"),
        "{history}"
    );
    let status = text_of(c, "#status").await;
    assert_eq!(status, "new", "the answer resumed the ticket");
    shot(c, "04-replied.png").await;

    // Another client's ticket by URL: refused like a missing one.
    c.goto(&app.url("/portal/tickets/100002"))
        .await
        .map_err(|e| e.to_string())?;
    let err = text_of(c, "#error").await;
    assert!(err.contains("not found"), "{err}");
    let source = c.source().await.map_err(|e| e.to_string())?;
    assert!(!source.contains("Multicast"));
    shot(c, "05-other-client-refused.png").await;

    // Russian.
    c.goto(&app.url("/portal/tickets?lang=ru"))
        .await
        .map_err(|e| e.to_string())?;
    let title = text_of(c, "main h2").await;
    assert_eq!(title, "Ваши запросы");
    shot(c, "06-ticket-list-ru.png").await;

    let (_, t) = app.get("/v1/tickets/100001", Some(STAFF));
    let msgs = t["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{t}");
    assert_eq!(msgs[1]["decision"]["outcome"], "append");
    Ok(())
}
