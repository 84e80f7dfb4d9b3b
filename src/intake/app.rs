//! Building and running the service: store, committer, rules, contracts, the
//! outbox worker and the actix-web server on its port.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use actix_web::{web, App as ActixApp, HttpServer};
use anyhow::Context;
use jiff::Timestamp;

use crate::config::{Config, Secret, StoreEngine};
use crate::contracts::Contracts;
use crate::facts::FactsConfig;
use crate::pipeline::Pipeline;
use crate::policy::{RuleSet, RulesHandle};
use crate::reply::outbox::{Outbox, OutboxConfig};
use crate::store::{Committer, Store};

/// Where the time of receipt comes from (injectable for tests).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The bearer tokens in force.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub gateway: Secret,
    pub staff: Secret,
    pub admin: Secret,
}

/// Shared state of the handlers.
pub struct AppState {
    pub pipeline: Pipeline,
    pub outbox: Outbox,
    pub tokens: Tokens,
    pub max_body: usize,
    pub clock: Clock,
    pub tag_prefix: String,
    /// Longest wait for a request body (slow or stalled clients get 408).
    pub body_timeout: std::time::Duration,
    /// Rspamd, asked before the policy when `spam.rspamd_url` is set.
    pub rspamd: Option<crate::spam::rspamd::Rspamd>,
}

/// A built, bound service, not yet running.
pub struct App {
    server: actix_web::dev::Server,
    port: u16,
    state: web::Data<AppState>,
    shutdown: tokio::sync::watch::Sender<bool>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

fn token_for(data_dir: &Path, name: &str, configured: &Option<Secret>) -> anyhow::Result<Secret> {
    if let Some(t) = configured {
        return Ok(t.clone());
    }
    let path = data_dir.join(format!("{name}.token"));
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let t = existing.trim();
        if !t.is_empty() {
            tracing::info!(path = %path.display(), "using {name} token from file");
            return Ok(Secret::new(t));
        }
    }
    let value: String = {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..40)
            .map(|_| {
                let i = rng.random_range(0..62u8);
                (match i {
                    0..=9 => b'0' + i,
                    10..=35 => b'a' + i - 10,
                    _ => b'A' + i - 36,
                }) as char
            })
            .collect()
    };
    {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let mut f = opts
            .open(&path)
            .with_context(|| format!("cannot write token file {}", path.display()))?;
        f.write_all(value.as_bytes())?;
    }
    tracing::info!(path = %path.display(), "generated {name} token");
    Ok(Secret::new(value))
}

/// Opens the configured store: the sled directory (closed while it cannot be
/// written, see [`Store::open_or_closed`]) or the PostgreSQL database.
///
/// # Errors
/// The store cannot be opened; the password file cannot be read.
pub fn open_store(config: &Config) -> anyhow::Result<Store> {
    match &config.store_engine {
        StoreEngine::Sled => {
            Store::open_or_closed(&config.store_path, config.first_number, config.cache_bytes)
                .with_context(|| format!("cannot open store {}", config.store_path.display()))
        }
        StoreEngine::Postgres { url, password_file } => {
            let password = password_file
                .as_ref()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read store.password_file {}", p.display()))
                })
                .transpose()?;
            Store::open_postgres(url, password.as_deref(), config.first_number)
                .with_context(|| format!("cannot open the PostgreSQL store {}", redact(url)))
        }
    }
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Builds the pipeline (store, committer, rules, contracts) from configuration.
///
/// # Errors
/// The store cannot be opened, the rules do not load, the contracts do not load.
pub fn build_pipeline(config: &Config) -> anyhow::Result<Pipeline> {
    if let Err(e) = std::fs::create_dir_all(&config.store_path) {
        // A read-only or full disk may clear: the store starts closed (below).
        if !matches!(
            e.kind(),
            std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::StorageFull
        ) {
            return Err(e).with_context(|| {
                format!(
                    "cannot create data directory {}",
                    config.store_path.display()
                )
            });
        }
    }
    let store = open_store(config)?;
    let rules = RuleSet::load(&config.rules_path)?;
    tracing::info!(path = %config.rules_path.display(), revision = %rules.revision, rules = rules.rules.len(), "rules loaded");
    let contracts = Contracts::load(&config.contracts_file)?;
    tracing::info!(path = %config.contracts_file.display(), count = contracts.all().len(), "contracts loaded");
    Ok(Pipeline {
        committer: Committer::start(store.clone(), config.commit_window),
        store,
        rules: Arc::new(RulesHandle::new(rules)),
        contracts,
        facts_cfg: Arc::new(
            FactsConfig::new(&config.tag_prefix).with_authserv_id(config.spam.authserv_id.clone()),
        ),
        sla: Arc::new(config.sla.clone()),
        replies_per_day: config.replies_per_day,
        reply_from: config.smtp_from.to_lowercase(),
        spam: Arc::new(config.spam.clone()),
    })
}

impl App {
    /// Opens everything and binds the listener (`http.listen`; port 0 picks a free one).
    ///
    /// # Errors
    /// As [`build_pipeline`], token files, and binding the port.
    pub fn build(config: &Config, clock: Clock) -> anyhow::Result<App> {
        let pipeline = build_pipeline(config)?;
        let tokens = Tokens {
            gateway: token_for(&config.store_path, "gateway", &config.gateway_token)?,
            staff: token_for(&config.store_path, "staff", &config.staff_token)?,
            admin: token_for(&config.store_path, "admin", &config.admin_token)?,
        };
        let outbox = Outbox::new(
            pipeline.store.clone(),
            pipeline.rules.clone(),
            pipeline.contracts.clone(),
            OutboxConfig::from_config(config),
        );
        let state = web::Data::new(AppState {
            pipeline,
            outbox,
            tokens,
            max_body: config.max_body,
            clock,
            tag_prefix: config.tag_prefix.clone(),
            body_timeout: config.request_timeout,
            rspamd: config
                .spam
                .rspamd_url
                .as_deref()
                .map(|url| crate::spam::rspamd::Rspamd::new(url, config.spam.timeout)),
        });
        let portal = web::Data::new(crate::portal::Portal::new(
            &state.pipeline,
            state.outbox.wake.clone(),
            state.clock.clone(),
            config,
        )?);
        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let port = listener.local_addr()?.port();
        let data = state.clone();
        let mut server = HttpServer::new(move || {
            ActixApp::new()
                .app_data(data.clone())
                .app_data(portal.clone())
                .wrap(actix_web::middleware::from_fn(
                    crate::metrics::http_middleware,
                ))
                .configure(super::handlers::configure)
                .configure(super::tickets::configure)
                .configure(crate::portal::configure)
                .configure(crate::metrics::configure)
        })
        .client_request_timeout(config.request_timeout)
        .client_disconnect_timeout(std::time::Duration::from_secs(2))
        .shutdown_timeout(10);
        if let Some(w) = config.http_workers {
            server = server.workers(w.max(1));
        }
        let server = server.listen(listener)?.run();
        let (shutdown, _) = tokio::sync::watch::channel(false);
        if config.rules_watch {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(super::reload::watch(
                        state.pipeline.rules.clone(),
                        super::reload::WATCH_INTERVAL,
                        shutdown.subscribe(),
                    ));
                }
                Err(_) => tracing::warn!("no async runtime: rules/ is not watched"),
            }
        }
        tracing::info!(listen = %config.listen, port, "intake listening");
        Ok(App {
            server,
            port,
            state,
            shutdown,
            worker: None,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The outbox worker (tests drive it with `deliver_one`).
    pub fn outbox(&self) -> Outbox {
        self.state.outbox.clone()
    }

    /// The pipeline (store and rules) behind the server.
    pub fn pipeline(&self) -> Pipeline {
        self.state.pipeline.clone()
    }

    /// The bearer tokens in force.
    pub fn tokens(&self) -> Tokens {
        self.state.tokens.clone()
    }

    /// Starts the outbox worker in the background.
    pub fn start_outbox(&mut self) {
        let rx = self.shutdown.subscribe();
        self.worker = Some(tokio::spawn(self.state.outbox.clone().run(rx)));
    }

    /// Serves until the server stops (SIGINT/SIGTERM are handled by actix).
    ///
    /// # Errors
    /// The server failed.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        if self.worker.is_none() {
            self.start_outbox();
        }
        #[cfg(unix)]
        tokio::spawn(super::reload::on_sighup(
            self.state.pipeline.rules.clone(),
            self.shutdown.subscribe(),
        ));
        let res = self.server.await;
        let _ = self.shutdown.send(true);
        if let Some(w) = self.worker.take() {
            let _ = w.await;
        }
        if let Err(e) = self.state.pipeline.store.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
        res
    }

    /// The server future without the outbox worker (tests start the worker themselves or drain).
    pub fn into_server(self) -> actix_web::dev::Server {
        self.server
    }
}
