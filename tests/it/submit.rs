//! `intake submit`, the MTA pipe client, against the real server: its sysexits
//! contract (0 filed, 75 retry, 65 bad message, 77 token refused, 64 usage,
//! 78 broken configuration) and one line on stderr per failure.

use std::time::Duration;

use crate::helpers::*;
use crate::hook::clean_ru;
use crate::process::{free_port, submit};

fn token_file(dir: &std::path::Path, value: &str) -> String {
    let p = dir.join("gateway.token");
    std::fs::write(&p, value).unwrap();
    p.display().to_string()
}

fn one_line(stderr: &str) {
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr:?}");
    assert!(stderr.starts_with("intake submit: "), "{stderr:?}");
}

async fn run(args: Vec<String>, stdin: Vec<u8>) -> (i32, String, Duration) {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        submit(&a, &stdin)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filed_message_exits_0_and_keeps_the_envelope() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path(), GATEWAY);
    let args = |id: &str| {
        let _ = id;
        vec![
            "--url".to_owned(),
            app.url("/v1/messages"),
            "--token-file".to_owned(),
            tf.clone(),
            "-f".to_owned(),
            "bounce@telecom-sever.ru".to_owned(),
            "--".to_owned(),
            "support@vendor.example".to_owned(),
            "l2@vendor.example".to_owned(),
        ]
    };
    let (code, err, _) = run(args("a"), clean_ru("submit-1@telecom-sever.ru")).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "nothing on stderr when filed: {err:?}");
    let (_, t) = app.get("/v1/tickets/100001", Some(STAFF));
    let env = &t["messages"][0]["envelope"];
    assert_eq!(env["mail_from"], "bounce@telecom-sever.ru", "{t}");
    assert_eq!(env["rcpt_to"][0], "support@vendor.example");
    assert_eq!(env["rcpt_to"][1], "l2@vendor.example");
    // Re-delivery by the MTA is filed already: still 0, no second ticket.
    let (code, _, _) = run(args("b"), clean_ru("submit-1@telecom-sever.ru")).await;
    assert_eq!(code, 0);
    assert!(app.pipeline.store.ticket(100002).unwrap().is_none());
    // A rejected message is filed too: 0 whatever the outcome.
    let abusive = b"From: x@nowhere.example\r\nSubject: \xd0\xb1\xd0\xbb\xd1\x8f\xd0\xb4\xd1\x8c\r\nMessage-ID: <submit-2@nowhere.example>\r\n\r\nMI-99999 fuck you\r\n".to_vec();
    let (code, err, _) = run(args("c"), abusive).await;
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_token_exits_77() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path(), "not-the-token");
    let (code, err, _) = run(
        vec![
            "--url".into(),
            app.url("/v1/messages"),
            "--token-file".into(),
            tf,
        ],
        clean_ru("submit-77@telecom-sever.ru"),
    )
    .await;
    assert_eq!(code, 77, "{err}");
    one_line(&err);
    assert!(err.contains("403"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_refused_as_malformed_exits_65() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn_with(Options {
        rules: repo().join("rules"),
        smtp_port: smtp.port,
        max_body: Some("1KiB"),
        data: None,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path(), GATEWAY);
    let base = vec![
        "--url".into(),
        app.url("/v1/messages"),
        "--token-file".into(),
        tf,
    ];
    let mut big = clean_ru("big@telecom-sever.ru");
    big.extend_from_slice("Лог:\r\n".repeat(500).as_bytes());
    let (code, err, _) = run(base.clone(), big).await;
    assert_eq!(code, 65, "a 413 is permanent: {err}");
    one_line(&err);
    assert!(err.contains("payload_too_large"), "{err}");
    let (code, err, _) = run(base, Vec::new()).await;
    assert_eq!(code, 65, "{err}");
    one_line(&err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_exits_75() {
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path(), GATEWAY);
    let url = format!("http://127.0.0.1:{}/v1/messages", free_port());
    let (code, err, _) = run(
        vec!["--url".into(), url, "--token-file".into(), tf],
        clean_ru("refused@telecom-sever.ru"),
    )
    .await;
    assert_eq!(code, 75, "{err}");
    one_line(&err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out_with_75() {
    // A real socket that accepts and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let conns: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(5));
        drop(conns);
    });
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path(), GATEWAY);
    let (code, err, took) = run(
        vec![
            "--url".into(),
            format!("http://127.0.0.1:{port}/v1/messages"),
            "--token-file".into(),
            tf,
            "--connect-timeout".into(),
            "0.5".into(),
            "--timeout".into(),
            "1".into(),
        ],
        clean_ru("silent@telecom-sever.ru"),
    )
    .await;
    assert_eq!(code, 75, "{err}");
    one_line(&err);
    assert!(
        took < Duration::from_secs(4),
        "the total timeout holds: {took:?}"
    );
    held.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_64() {
    for args in [
        vec!["--no-such-flag".to_owned()],
        vec!["--timeout".to_owned(), "0".to_owned()],
        vec!["--connect-timeout".to_owned(), "soon".to_owned()],
    ] {
        let (code, err, _) = run(args.clone(), b"x".to_vec()).await;
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(!err.is_empty());
    }
}

/// A broken configuration is the service's fault, not the message's: EX_CONFIG
/// (78), with the enhanced status code 4.3.5 first on the line, which Postfix's
/// pipe(8) takes over the exit code, so the mail stays queued instead of bouncing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_error_exits_78_and_asks_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("intake.toml");
    std::fs::write(&cfg, "[http]\nno_such_key = 1\n").unwrap();
    let tf = token_file(dir.path(), GATEWAY);
    let args = vec![
        "--config".to_owned(),
        cfg.display().to_string(),
        "--token-file".to_owned(),
        tf,
    ];
    let (code, err, _) = run(args, clean_ru("submit-cfg@telecom-sever.ru")).await;
    assert_eq!(code, 78, "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("4.3.5 intake submit: configuration error"),
        "{err:?}"
    );
    assert!(err.contains("no_such_key"), "names the bad key: {err:?}");
}
