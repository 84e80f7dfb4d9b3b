//! Test harness: the real server on a free port with a temporary sled directory,
//! and a real SMTP server (aiosmtpd, Maildir handler) on loopback whose received
//! mail the tests parse back.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use intake::config::Config;
use intake::intake::App;
use intake::reply::outbox::{Delivery, Outbox};
use serde_json::Value;

pub const GATEWAY: &str = "test-gateway-token";
pub const STAFF: &str = "test-staff-token";
pub const ADMIN: &str = "test-admin-token";

static LOG: Once = Once::new();

/// Logs to the test output when TEST_LOG=1.
pub fn init_logs() {
    LOG.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            intake::telemetry::init("debug", std::io::stdout);
        }
    });
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real SMTP server (aiosmtpd) writing what it receives into a Maildir.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        SmtpServer::start_on(free_port())
    }

    pub fn start_on(port: u16) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("maildir");
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-c",
                "aiosmtpd.handlers.Mailbox",
                "-l",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 must be installed (scripts/test.sh installs aiosmtpd)");
        let mut server = SmtpServer {
            port,
            maildir,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = server.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("aiosmtpd exited ({status}): {err}\nInstall it with: pip install aiosmtpd (scripts/test.sh does)");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Every message received so far, raw.
    pub fn received(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.maildir.join(sub)) {
                let mut files: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
                files.sort();
                for f in files {
                    out.push(std::fs::read(f).unwrap());
                }
            }
        }
        out
    }

    /// Received messages, parsed.
    pub fn received_parsed(&self) -> Vec<Received> {
        self.received().iter().map(|r| Received::parse(r)).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A delivered reply, parsed back.
#[derive(Debug)]
pub struct Received {
    pub subject: String,
    pub to: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Received {
    fn parse(raw: &[u8]) -> Received {
        let msg = mail_parser::MessageParser::default()
            .parse(raw)
            .expect("reply parses");
        Received {
            subject: msg.subject().unwrap_or("").to_owned(),
            to: msg
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or("")
                .to_owned(),
            body: msg.body_text(0).map(|b| b.into_owned()).unwrap_or_default(),
            headers: msg
                .headers_raw()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
                .collect(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The storage engine the integration tests run on: `INTAKE_IT_ENGINE=postgres`
/// runs them on PostgreSQL (a database per data directory on the server named by
/// `INTAKE_TEST_PG_URL`; scripts/test.sh runs the store-touching groups a second
/// time so); anything else, or unset, on sled.
pub fn it_engine() -> &'static str {
    match std::env::var("INTAKE_IT_ENGINE").as_deref() {
        Ok("postgres") => "postgres",
        _ => "sled",
    }
}

/// On PostgreSQL: the URL of the database that belongs to the data directory
/// `data` (made on first use, remembered in the directory, so that a test that
/// restarts on the same directory finds the same store).
///
/// # Panics
/// `INTAKE_TEST_PG_URL` is unset (the PostgreSQL run needs a server), or the
/// server refuses.
pub fn pg_database_for(data: &Path) -> String {
    std::fs::create_dir_all(data).unwrap();
    let marker = data.join("test-pg-url");
    if let Ok(url) = std::fs::read_to_string(&marker) {
        return url;
    }
    let admin = std::env::var("INTAKE_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "INTAKE_IT_ENGINE=postgres needs INTAKE_TEST_PG_URL (scripts/test.sh starts a server)"
        )
    });
    let name = format!("intake_it_{:016x}", rand::random::<u64>());
    let out = std::process::Command::new("psql")
        .args([
            admin.as_str(),
            "-qAt",
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "CREATE DATABASE {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
    let url = format!("{base}/{name}");
    std::fs::write(&marker, &url).unwrap();
    url
}

/// Settings of a test app.
pub struct Options {
    pub rules: PathBuf,
    pub smtp_port: u16,
    pub max_body: Option<&'static str>,
    pub data: Option<PathBuf>,
}

/// The real server on a free port with its own data directory.
pub struct TestApp {
    pub port: u16,
    pub outbox: Outbox,
    pub pipeline: intake::pipeline::Pipeline,
    handle: actix_web::dev::ServerHandle,
    _tmp: Option<Arc<tempfile::TempDir>>,
}

pub fn config(opts: &Options, data: &Path) -> Config {
    config_with(opts, data, &[])
}

/// Like [`config`] with extra `INTAKE__…` settings.
pub fn config_with(opts: &Options, data: &Path, extra: &[(&str, &str)]) -> Config {
    let mut env = vec![
        ("INTAKE__HTTP__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("INTAKE__HTTP__WORKERS".to_owned(), "2".to_owned()),
        ("INTAKE__STORE__PATH".to_owned(), data.display().to_string()),
        (
            "INTAKE__RULES__PATH".to_owned(),
            opts.rules.display().to_string(),
        ),
        (
            "INTAKE__CONTRACTS__FILE".to_owned(),
            repo().join("fixtures/contracts.toml").display().to_string(),
        ),
        (
            "INTAKE__SMTP__RELAY".to_owned(),
            format!("127.0.0.1:{}", opts.smtp_port),
        ),
        ("INTAKE__SMTP__TIMEOUT_SECS".to_owned(), "5".to_owned()),
        ("INTAKE__SMTP__MAX_BACKOFF_SECS".to_owned(), "1".to_owned()),
        ("INTAKE__AUTH__GATEWAY_TOKEN".to_owned(), GATEWAY.to_owned()),
        ("INTAKE__AUTH__STAFF_TOKEN".to_owned(), STAFF.to_owned()),
        ("INTAKE__AUTH__ADMIN_TOKEN".to_owned(), ADMIN.to_owned()),
    ];
    if let Some(m) = opts.max_body {
        env.push(("INTAKE__HTTP__MAX_BODY".to_owned(), m.to_owned()));
    }
    if it_engine() == "postgres" {
        env.push(("INTAKE__STORE__ENGINE".to_owned(), "postgres".to_owned()));
        env.push(("INTAKE__STORE__URL".to_owned(), pg_database_for(data)));
    }
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Config::load_from(None, &env).unwrap()
}

impl TestApp {
    /// Default rules, talking to the given SMTP port.
    pub async fn spawn(smtp_port: u16) -> TestApp {
        TestApp::spawn_with(Options {
            rules: repo().join("rules"),
            smtp_port,
            max_body: None,
            data: None,
        })
        .await
    }

    pub async fn spawn_with(opts: Options) -> TestApp {
        TestApp::spawn_full(opts, &[], Arc::new(jiff::Timestamp::now)).await
    }

    /// Like [`TestApp::spawn_with`] with extra `INTAKE__…` settings.
    pub async fn spawn_with_env(opts: Options, extra: &[(&str, &str)]) -> TestApp {
        TestApp::spawn_full(opts, extra, Arc::new(jiff::Timestamp::now)).await
    }

    /// As [`TestApp::spawn_with`], with an injected clock (time of receipt, SLA, expiry).
    pub async fn spawn_with_clock(opts: Options, clock: intake::intake::Clock) -> TestApp {
        TestApp::spawn_full(opts, &[], clock).await
    }

    /// Extra settings and an injected clock.
    pub async fn spawn_full(
        opts: Options,
        extra: &[(&str, &str)],
        clock: intake::intake::Clock,
    ) -> TestApp {
        init_logs();
        let (tmp, data) = match &opts.data {
            Some(d) => (None, d.clone()),
            None => {
                let t = Arc::new(tempfile::tempdir().unwrap());
                let d = t.path().join("data");
                (Some(t), d)
            }
        };
        let cfg = config_with(&opts, &data, extra);
        // A previous instance on the same directory may still be letting go of sled's lock.
        let deadline = Instant::now() + Duration::from_secs(10);
        let app = loop {
            match App::build(&cfg, clock.clone()) {
                Ok(app) => break app,
                Err(e) if Instant::now() < deadline && format!("{e:#}").contains("lock") => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("app does not build: {e:#}"),
            }
        };
        let port = app.port();
        let outbox = app.outbox();
        let pipeline = app.pipeline();
        let server = app.into_server();
        let handle = server.handle();
        tokio::spawn(server);
        TestApp {
            port,
            outbox,
            pipeline,
            handle,
            _tmp: tmp,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The HTTP client of the tests: statuses are answers, not errors.
    pub fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into()
    }

    /// POSTs a raw message with the gateway token; returns (status, JSON).
    pub fn post(&self, raw: &[u8]) -> (u16, Value) {
        self.post_with(raw, "/v1/messages", Some(GATEWAY), &[])
    }

    pub fn post_with(
        &self,
        raw: &[u8],
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = Self::agent()
            .post(&self.url(path))
            .header("Content-Type", "message/rfc822");
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req.send(raw).expect("server answers");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = Self::agent().get(&self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = req.call().expect("server answers");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn post_admin(&self, path: &str) -> (u16, Value) {
        let mut resp = Self::agent()
            .post(&self.url(path))
            .header("Authorization", &format!("Bearer {ADMIN}"))
            .send_empty()
            .expect("server answers");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Delivers queued replies until none is due; returns every step's result.
    pub async fn drain_outbox(&self) -> Vec<Delivery> {
        let mut steps = Vec::new();
        loop {
            let d = self.outbox.deliver_one().await;
            if d == Delivery::Idle {
                return steps;
            }
            let retry = matches!(d, Delivery::Retry { .. });
            steps.push(d);
            if retry {
                return steps;
            }
        }
    }

    /// Stops the server and lets go of the store.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// Copies the shipped `rules/` (scripts, lists, templates) into `to`.
pub fn copy_rules(to: &Path) {
    let from = repo().join("rules");
    let mut stack = vec![from.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(&from).unwrap();
            if p.is_dir() {
                std::fs::create_dir_all(to.join(rel)).unwrap();
                stack.push(p);
            } else {
                std::fs::create_dir_all(to.join(rel).parent().unwrap()).unwrap();
                std::fs::copy(&p, to.join(rel)).unwrap();
            }
        }
    }
}

/// A private copy of the shipped `rules/` in a temporary directory, for tests
/// that add, edit or break a script: `RulesDir::copy().with("99-x.rhai", src)`,
/// then [`RulesDir::spawn`] a server on it. Keep it alive as long as the server.
pub struct RulesDir {
    path: PathBuf,
    tmp: tempfile::TempDir,
}

impl RulesDir {
    /// A copy of the shipped rules.
    pub fn copy() -> RulesDir {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("rules");
        copy_rules(&path);
        RulesDir { path, tmp }
    }

    /// The copy with one more (or one replaced) file.
    pub fn with(self, name: &str, source: &str) -> RulesDir {
        self.write(name, source);
        self
    }

    /// Writes a file into the directory (also while a server runs on it).
    pub fn write(&self, name: &str, source: &str) {
        std::fs::write(self.path.join(name), source).unwrap();
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding `rules/` (a working directory for `intake lint rules`).
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Test app settings on these rules.
    pub fn options(&self, smtp_port: u16) -> Options {
        Options {
            rules: self.path.clone(),
            smtp_port,
            max_body: None,
            data: None,
        }
    }

    /// The real server on these rules, with a fresh data directory.
    pub async fn spawn(&self, smtp_port: u16) -> TestApp {
        TestApp::spawn_with(self.options(smtp_port)).await
    }
}
