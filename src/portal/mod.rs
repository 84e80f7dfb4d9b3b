//! The client portal: server-rendered HTML under `/portal`, in Russian and English,
//! usable without JavaScript. A client signs in with a one-time link emailed (through
//! the outbox) to an address its contract lists; a session sees only its own
//! client's tickets: the list with status and SLA due times, a ticket page with its
//! public history, and a reply form that files a follow-up exactly as an email would
//! (a raw RFC 5322 message through [`crate::pipeline::Pipeline::prepare`] and the
//! committer: same policy, same store).
//!
//! Input: HTTP requests with a session cookie; output: HTML pages.
//!
//! The page templates are compiled into the binary (`src/portal/templates/*.html`),
//! not read from `rules/`: they are product UI whose structure is part of the
//! security (escaping, CSRF fields, no script), not submission policy. minijinja
//! escapes every value in `.html` templates. What the client is *told by email*
//! stays policy in `rules/templates/` (`portal_link`, `staff_reply`, `status_changed`).

pub mod auth;
pub(crate) mod pages;
mod signin;
mod tickets;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};

pub use auth::{AuthStore, LinkGrant, RateLimiter, Session};

use crate::intake::Clock;
use crate::pipeline::Pipeline;
use crate::policy::RuleSet;
use crate::store::StoreError;

/// How long a sign-in link works.
pub const LINK_TTL: Duration = Duration::from_secs(20 * 60);
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Sign-in requests per address per window.
pub const SIGNIN_PER_ADDRESS: usize = 3;
/// Sign-in requests per client IP per window.
pub const SIGNIN_PER_IP: usize = 20;
/// The rate-limit window.
pub const SIGNIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The session cookie.
pub const SESSION_COOKIE: &str = "intake_session";
/// The pre-session anti-CSRF cookie (double submit).
pub const CSRF_COOKIE: &str = "intake_csrf";
/// The language cookie.
pub const LANG_COOKIE: &str = "intake_lang";

/// Why a portal request failed; answered as an HTML page.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("not found")]
    NotFound,
    #[error("the form has expired; reload the page and try again")]
    Csrf,
    #[error("too many sign-in requests; try again later")]
    TooManyRequests,
    #[error("{0}")]
    BadRequest(String),
    #[error("store failed")]
    Store(#[from] StoreError),
    #[error("page failed: {0}")]
    Template(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ResponseError for PortalError {
    fn status_code(&self) -> StatusCode {
        match self {
            PortalError::NotFound => StatusCode::NOT_FOUND,
            PortalError::Csrf => StatusCode::FORBIDDEN,
            PortalError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            PortalError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PortalError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            PortalError::Template(_) | PortalError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, source = ?std::error::Error::source(self).map(ToString::to_string), "portal request failed");
        }
        let message = if status.is_server_error() {
            "Something went wrong. Please try again later.".to_owned()
        } else {
            self.to_string()
        };
        let body = pages::error_page(status.as_u16(), &message);
        pages::secure_headers(&mut HttpResponse::build(status)).body(body)
    }
}

/// Shared state of the portal's handlers.
pub struct Portal {
    pub pipeline: Pipeline,
    pub auth: AuthStore,
    pub wake: Arc<tokio::sync::Notify>,
    pub clock: Clock,
    /// `portal.base_url`, without a trailing slash.
    pub base_url: String,
    /// Our sender address (the portal files replies as mail to it).
    pub reply_from: String,
    pub tag_prefix: String,
    pub per_address: RateLimiter,
    pub per_ip: RateLimiter,
    env: minijinja::Environment<'static>,
}

impl Portal {
    /// Builds the portal state over the service's pipeline.
    ///
    /// # Errors
    /// A page template does not compile.
    pub fn new(
        pipeline: &Pipeline,
        wake: Arc<tokio::sync::Notify>,
        clock: Clock,
        config: &crate::config::Config,
    ) -> anyhow::Result<Portal> {
        Ok(Portal {
            auth: AuthStore::open(&pipeline.store),
            pipeline: pipeline.clone(),
            wake,
            clock,
            base_url: config.portal_url.trim_end_matches('/').to_owned(),
            reply_from: config.smtp_from.to_lowercase(),
            tag_prefix: config.tag_prefix.clone(),
            per_address: RateLimiter::new(SIGNIN_PER_ADDRESS, SIGNIN_WINDOW),
            per_ip: RateLimiter::new(SIGNIN_PER_IP, SIGNIN_WINDOW),
            env: pages::environment().map_err(|e| anyhow::anyhow!("portal templates: {e}"))?,
        })
    }

    /// Whether cookies must be `Secure` (the portal is served over TLS).
    pub fn tls(&self) -> bool {
        self.base_url.starts_with("https://")
    }
}

/// Routes of the portal and its admin endpoint.
pub fn configure(cfg: &mut web::ServiceConfig) {
    pages::routes(cfg);
}

/// Problems of `rules/` that concern the lifecycle and the portal: the
/// notification policy loads, and every template it and the portal use exists.
pub fn lint_rules(dir: &Path, set: &RuleSet) -> Vec<String> {
    let mut problems = Vec::new();
    let mut needed: Vec<String> = vec!["staff_reply".into(), "portal_link".into()];
    match crate::lifecycle::NotifyPolicy::load(dir) {
        Ok(p) => needed.extend(p.on_status.values().cloned()),
        Err(e) => problems.push(e.to_string()),
    }
    needed.sort();
    needed.dedup();
    for lang in crate::reply::render::LANGS {
        for name in &needed {
            if !set.templates.has(lang, name) {
                problems.push(format!(
                    "{}: missing reply template {lang}/{name}",
                    dir.join("templates").display()
                ));
            }
        }
    }
    problems
}
