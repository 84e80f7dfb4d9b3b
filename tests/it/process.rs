//! The real `intake` binary as a child process (for `submit`, crash and restart
//! tests): started with its settings in the environment, on a given data directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{repo, ADMIN, GATEWAY, STAFF};

/// The `intake` executable Cargo built for these tests.
pub fn intake_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_intake"))
}

/// A port nobody listens on (yet).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `intake serve` as a child process.
pub struct ServerProcess {
    pub port: u16,
    child: Child,
}

impl ServerProcess {
    /// Starts `intake serve` on `port` over `data` and waits until `/readyz` answers.
    pub fn start(data: &Path, port: u16, smtp_port: u16, extra: &[(&str, &str)]) -> ServerProcess {
        let mut cmd = Command::new(intake_bin());
        cmd.arg("serve")
            .env("INTAKE__HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("INTAKE__HTTP__WORKERS", "2")
            .env("INTAKE__STORE__PATH", data)
            .env("INTAKE__RULES__PATH", repo().join("rules"))
            .env("INTAKE__RULES__WATCH", "false")
            .env(
                "INTAKE__CONTRACTS__FILE",
                repo().join("fixtures/contracts.toml"),
            )
            .env("INTAKE__SMTP__RELAY", format!("127.0.0.1:{smtp_port}"))
            .env("INTAKE__SMTP__TIMEOUT_SECS", "5")
            .env("INTAKE__SMTP__MAX_BACKOFF_SECS", "1")
            .env("INTAKE__AUTH__GATEWAY_TOKEN", GATEWAY)
            .env("INTAKE__AUTH__STAFF_TOKEN", STAFF)
            .env("INTAKE__AUTH__ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var("TEST_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("intake binary starts");
        let mut server = ServerProcess { port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("intake serve exited early: {status}");
            }
            if server.get("/healthz").0 == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "intake serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// GET without a token except for ticket routes; (0, Null) when nobody answers.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        match agent
            .get(&self.url(path))
            .header("Authorization", &format!("Bearer {STAFF}"))
            .call()
        {
            Ok(mut r) => {
                let s = r.status().as_u16();
                let t = r.body_mut().read_to_string().unwrap_or_default();
                (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// SIGKILL: no shutdown, no final flush.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `intake submit ARGS` with `stdin`; returns its exit code, stderr and run time.
pub fn submit(args: &[&str], stdin: &[u8]) -> (i32, String, Duration) {
    use std::io::Write;
    let started = Instant::now();
    let mut child = Command::new(intake_bin())
        .arg("submit")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("intake submit starts");
    {
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin);
    }
    let Output { status, stderr, .. } = child.wait_with_output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stderr).into_owned(),
        started.elapsed(),
    )
}
