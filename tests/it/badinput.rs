//! Bad input through the hook: a generated corpus of malformed messages, and
//! malformed HTTP (wrong content type, chunked garbage, slow clients). No panic,
//! no 5xx; each message gets a JSON error or is filed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::hook::clean_ru;

fn head(extra: &str) -> String {
    format!("From: a.user@telecom-sever.ru\r\nTo: support@vendor.example\r\nSubject: EPG on STB-4K\r\nDate: Tue, 24 Nov 2026 10:15:00 +0300\r\n{extra}")
}

/// Malformed messages, each named for what is wrong with it.
pub fn malformed_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let multipart = |boundary: &str| {
        head(&format!(
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
        ))
    };
    let mut m = multipart("b1");
    m.push_str("--b1\r\nContent-Type: text/plain\r\n\r\nhello MI-10234, the EPG is empty\r\n--b1\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoAAAANSUhEUgAA");
    out.push(("truncated mime", m.into_bytes()));
    let mut m = multipart("never-used");
    m.push_str("some text without any boundary line\r\n");
    out.push(("missing boundary", m.into_bytes()));
    out.push((
        "no boundary parameter",
        head("Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\ntext\r\n--x--\r\n").into_bytes(),
    ));
    let mut m = multipart("loop");
    for _ in 0..200 {
        m.push_str("--loop\r\nContent-Type: multipart/mixed; boundary=\"loop\"\r\n\r\n");
    }
    out.push(("looping boundaries", m.into_bytes()));
    out.push((
        "invalid charset",
        [
            head("Content-Type: text/plain; charset=\"\x01\x02bogus\"\r\n\r\n").into_bytes(),
            b"\xff\xfe\xfd text\r\n".to_vec(),
        ]
        .concat(),
    ));
    out.push((
        "unknown charset",
        [
            head("Content-Type: text/plain; charset=x-klingon-9\r\nContent-Transfer-Encoding: 8bit\r\n\r\n").into_bytes(),
            b"\xc0\xc1\xc2 qapla'\r\n".to_vec(),
        ]
        .concat(),
    ));
    let mut big = head("X-Long: ");
    big.push_str(&"a".repeat(1024 * 1024));
    big.push_str("\r\n\r\nbody\r\n");
    out.push(("1 MB header line", big.into_bytes()));
    let mut nul = head("").into_bytes();
    nul.extend_from_slice(b"\r\n\0\0\0hello\0world\0\r\n");
    out.push(("NUL bytes in body", nul));
    let mut nul_head = b"From: a\0b@telecom-sever.ru\r\nSub\0ject: x\0y\r\n\r\n\0".to_vec();
    nul_head.extend_from_slice(&[0u8; 4096]);
    out.push(("NUL bytes in headers", nul_head));
    let mut m = multipart("many");
    for i in 0..5000 {
        m.push_str(&format!(
            "--many\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    m.push_str("--many--\r\n");
    out.push(("thousands of parts", m.into_bytes()));
    let mut m = head("MIME-Version: 1.0\r\n");
    for i in 0..1000 {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"n{i}\"\r\n\r\n--n{i}\r\n"
        ));
    }
    m.push_str("Content-Type: text/plain\r\n\r\ndeep\r\n");
    out.push(("deeply nested multiparts", m.into_bytes()));
    let mut m = head("MIME-Version: 1.0\r\n");
    for i in 0..40 {
        m.push_str(&format!(
            "Content-Type: message/rfc822\r\n\r\nSubject: level {i}\r\n"
        ));
    }
    m.push_str("\r\ninnermost\r\n");
    out.push(("deeply nested message/rfc822", m.into_bytes()));
    out.push((
        "invalid RFC 2047",
        b"From: =?utf-8?Q?=FF=FE?= <=?x?B?@@@?=>\r\nSubject: =?utf-8?B?!!!notbase64?= =?koi8-r?Q?=ZZ?= =?unknown-cs?B?0J/RgNC40LI=?= =?utf-8?B?\r\nTo: =?\r\n\r\nMI-10234 text\r\n".to_vec(),
    ));
    out.push(("empty body", head("\r\n").into_bytes()));
    out.push(("headers only, no separator", head("").into_bytes()));
    out.push(("no headers at all", b"\r\n\r\n".to_vec()));
    out.push(("single byte", b"x".to_vec()));
    out.push((
        "bad base64 and quoted-printable",
        head("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!$$$***===\r\n")
            .into_bytes(),
    ));
    out.push((
        "binary garbage",
        (0..8192u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect(),
    ));
    out.push((
        "only a signature",
        head("Content-Type: text/plain; charset=utf-8\r\n\r\n--\r\nИван Петров\r\n").into_bytes(),
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_a_json_answer_never_a_5xx() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let corpus = malformed_corpus();
    let mut unreadable = 0;
    for (i, (name, raw)) in corpus.iter().enumerate() {
        // A distinct Message-ID keeps the cases from being re-deliveries of each other.
        let mut msg = format!("Message-ID: <bad-{i}@test.example>\r\n").into_bytes();
        msg.extend_from_slice(raw);
        let started = Instant::now();
        let (status, body) = app.post(&msg);
        let took = started.elapsed();
        assert!(status < 500, "{name}: {status} {body}");
        match status {
            200 => {
                assert!(body["outcome"].is_string(), "{name}: {body}");
                let codes: Vec<&str> = body["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|f| f["code"].as_str())
                    .collect();
                if codes.contains(&"unreadable") {
                    unreadable += 1;
                }
                println!("{name}: {} {:?} in {took:?}", body["outcome"], codes);
            }
            _ => {
                assert!(body["error"]["code"].is_string(), "{name}: {status} {body}");
                println!("{name}: {status} {}", body["error"]["code"]);
            }
        }
        assert!(
            took < Duration::from_secs(20),
            "{name} took {took:?} to answer"
        );
    }
    assert!(unreadable >= 3, "textless cases are filed as unreadable");
    // The service still works afterwards.
    let (s, b) = app.post(&clean_ru("after-bad@telecom-sever.ru"));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["outcome"], "create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_is_visible_to_scripts() {
    let smtp = SmtpServer::start();
    let rules = RulesDir::copy().with(
        "99-envelope.rhai",
        "flag(\"envelope_seen\", `${msg.envelope_from}|${msg.envelope_to.len()}|${msg.envelope_to[1]}|${msg.client_ip}`);\n",
    );
    let app = rules.spawn(smtp.port).await;
    let (s, b) = app.post_with(
        &clean_ru("env-script@telecom-sever.ru"),
        "/v1/messages",
        Some(GATEWAY),
        &[
            ("X-Envelope-From", "bounce@telecom-sever.ru"),
            ("X-Envelope-To", "support@vendor.example"),
            ("X-Envelope-To", "L2@Vendor.example"),
            ("X-Client-IP", "192.0.2.7"),
        ],
    );
    assert_eq!(s, 200, "{b}");
    let seen = b["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "envelope_seen")
        .unwrap_or_else(|| panic!("the script's finding: {b}"))
        .clone();
    assert_eq!(
        seen["detail"],
        "bounce@telecom-sever.ru|2|l2@vendor.example|192.0.2.7"
    );
}

fn raw_exchange(port: u16, request: &[u8], read_for: Duration) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(read_for)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type_and_chunked_garbage_get_a_4xx() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let port = app.port;
    let resp = tokio::task::spawn_blocking(move || {
        raw_exchange(
            port,
            format!(
                "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {GATEWAY}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            )
            .as_bytes(),
            Duration::from_secs(5),
        )
    })
    .await
    .unwrap();
    assert_eq!(status_of(&resp), 415, "{resp:?}");
    assert!(resp.contains("unsupported_media_type"), "{resp:?}");
    let port = app.port;
    let resp = tokio::task::spawn_blocking(move || {
        raw_exchange(
            port,
            format!(
                "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {GATEWAY}\r\nContent-Type: message/rfc822\r\nTransfer-Encoding: chunked\r\n\r\nZZZ not a chunk size\r\n\r\n"
            )
            .as_bytes(),
            Duration::from_secs(5),
        )
    })
    .await
    .unwrap();
    let status = status_of(&resp);
    assert!((400..500).contains(&status), "chunked garbage: {resp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_gets_408_and_holds_no_worker() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn_with_env(
        Options {
            rules: repo().join("rules"),
            smtp_port: smtp.port,
            max_body: None,
            data: None,
        },
        &[("INTAKE__HTTP__REQUEST_TIMEOUT_SECS", "2")],
    )
    .await;
    let port = app.port;
    // More stalled uploads than the server has workers.
    let stalled: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let resp = raw_exchange(
                    port,
                    format!(
                        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {GATEWAY}\r\nContent-Type: message/rfc822\r\nContent-Length: 5000\r\n\r\nFrom: slow@x\r\n"
                    )
                    .as_bytes(),
                    Duration::from_secs(15),
                );
                (resp, started.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let (s, b) = app.post(&clean_ru("while-slow@telecom-sever.ru"));
    assert_eq!(s, 200, "{b}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stalled clients hold no worker: {:?}",
        started.elapsed()
    );
    for h in stalled {
        let (resp, took) = h.join().unwrap();
        assert_eq!(status_of(&resp), 408, "{resp:?}");
        assert!(resp.contains("request_timeout"), "{resp:?}");
        assert!(took < Duration::from_secs(6), "{took:?}");
    }
}
