//! The portal's pages and forms. Every value reaches HTML through minijinja's
//! auto-escaping (`.html` templates); every form carries an anti-CSRF token; every
//! answer carries a strict Content-Security-Policy (no script at all), `no-store`
//! and `no-referrer` (sign-in links never leak through `Referer`).
//!
//! This file holds what every page shares (templates, texts, language, cookies,
//! sessions); `signin` the sign-in and sign-out forms, `tickets` the ticket
//! list, the ticket page and the reply form.

use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use jiff::Timestamp;
use minijinja::{context, Environment, Value};
use serde::Deserialize;

use super::auth::{same_token, Session};
use super::{signin, tickets};
use super::{Portal, PortalError, CSRF_COOKIE, LANG_COOKIE, SESSION_COOKIE};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("sent.html", include_str!("templates/sent.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
    ("list.html", include_str!("templates/list.html")),
    ("ticket.html", include_str!("templates/ticket.html")),
    ("error.html", include_str!("templates/error.html")),
];

/// The page templates, compiled; `.html` names are auto-escaped.
pub(super) fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    for (name, src) in TEMPLATES {
        env.add_template(name, src)?;
    }
    Ok(env)
}

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::FormConfig::default()
            .limit(256 * 1024)
            .error_handler(|e, _| PortalError::BadRequest(format!("bad form: {e}")).into()),
    )
    .route("/portal", web::get().to(signin::index))
    .route("/portal/", web::get().to(signin::index))
    .route("/portal/login", web::post().to(signin::login))
    .route("/portal/auth/{token}", web::get().to(signin::confirm))
    .route("/portal/auth", web::post().to(signin::redeem))
    .route("/portal/tickets", web::get().to(tickets::list))
    .route(
        "/portal/tickets/{number}",
        web::get().to(tickets::ticket_page),
    )
    .route(
        "/portal/tickets/{number}/reply",
        web::post().to(tickets::reply),
    )
    .route("/portal/logout", web::post().to(signin::logout))
    .route("/v1/admin/portal/revoke", web::post().to(signin::revoke));
}

/// Headers every portal answer carries.
pub(super) fn secure_headers(b: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    b.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
}

/// A bare error page (no session, no template state needed).
pub(super) fn error_page(status: u16, message: &str) -> String {
    environment()
        .ok()
        .and_then(|env| {
            env.get_template("error.html").ok().and_then(|t| {
                t.render(context! { status, message, t => texts("en"), lang => "en" })
                    .ok()
            })
        })
        .unwrap_or_else(|| format!("{status}"))
}

const TEXTS: &[(&str, &str, &str)] = &[
    ("title", "Support portal", "Портал поддержки"),
    ("signin", "Sign in", "Вход"),
    ("signin_intro", "Enter the email address your support contract lists. We will send you a one-time sign-in link.", "Укажите адрес электронной почты, указанный в вашем договоре поддержки. Мы пришлём одноразовую ссылку для входа."),
    ("email", "Email address", "Адрес электронной почты"),
    ("send_link", "Send me a link", "Прислать ссылку"),
    ("sent_title", "Check your mailbox", "Проверьте почту"),
    ("sent_text", "If this address is listed in a support contract, a sign-in link is on its way. It works once and expires in 20 minutes.", "Если этот адрес указан в договоре поддержки, ссылка для входа уже отправлена. Она действует один раз и в течение 20 минут."),
    ("confirm_title", "Sign in to the support portal", "Вход на портал поддержки"),
    ("confirm_text", "Press the button to sign in with this link.", "Нажмите кнопку, чтобы войти по этой ссылке."),
    ("link_invalid", "This sign-in link is not valid any more. Ask for a new one.", "Ссылка для входа больше не действует. Запросите новую."),
    ("tickets", "Your requests", "Ваши запросы"),
    ("no_tickets", "You have no requests yet.", "Запросов пока нет."),
    ("number", "No.", "№"),
    ("subject", "Subject", "Тема"),
    ("status", "Status", "Статус"),
    ("created", "Created", "Создан"),
    ("reaction_due", "Reaction due", "Реакция до"),
    ("in_work_due", "In work due", "В работу до"),
    ("overdue", "overdue", "просрочено"),
    ("paused", "paused: waiting for you", "приостановлено: ждём вас"),
    ("done", "done", "выполнено"),
    ("history", "History", "История"),
    ("you", "You", "Вы"),
    ("support", "Support", "Поддержка"),
    ("status_changed", "Status changed", "Статус изменён"),
    ("reply", "Reply", "Ответить"),
    ("reply_text", "Your answer", "Ваш ответ"),
    ("send", "Send", "Отправить"),
    ("back", "All requests", "Все запросы"),
    ("signed_in_as", "Signed in as", "Вы вошли как"),
    ("signout", "Sign out", "Выйти"),
    ("filed_append", "Your answer was added to the request.", "Ваш ответ добавлен в запрос."),
    ("filed_create", "Your answer was registered as a new request.", "Ваш ответ зарегистрирован как новый запрос."),
    ("filed_other", "Your message was received but not added to the request:", "Сообщение получено, но не добавлено в запрос:"),
    ("linked", "Continues request", "Продолжение запроса"),
    ("closed_note", "This request is closed. Writing here opens a new request that refers to it.", "Запрос закрыт. Сообщение отсюда откроет новый запрос со ссылкой на этот."),
    ("error", "Error", "Ошибка"),
    ("st_new", "new", "новый"),
    ("st_needs_info", "waiting for your answer", "ждём вашего ответа"),
    ("st_needs_review", "under review", "на проверке"),
    ("st_open", "in work", "в работе"),
    ("st_escalated", "with development", "у разработчиков"),
    ("st_resolved", "resolved", "решён"),
    ("st_closed", "closed", "закрыт"),
];

pub(super) fn texts(lang: &str) -> Value {
    let ru = lang == "ru";
    Value::from_iter(
        TEXTS
            .iter()
            .map(|(k, en, r)| (*k, if ru { *r } else { *en })),
    )
}

/// The page language: `?lang=`, then the cookie, then `Accept-Language`.
pub(super) fn lang(req: &HttpRequest) -> (&'static str, bool) {
    let q = web::Query::<LangQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.lang.clone());
    let pick = |s: &str| match s {
        "ru" => Some("ru"),
        "en" => Some("en"),
        _ => None,
    };
    if let Some(l) = q.as_deref().and_then(pick) {
        return (l, true);
    }
    if let Some(l) = req.cookie(LANG_COOKIE).and_then(|c| pick(c.value())) {
        return (l, false);
    }
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let first = accept
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (if first.starts_with("ru") { "ru" } else { "en" }, false)
}

#[derive(Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

pub(super) fn cookie<'c>(
    portal: &Portal,
    req: &HttpRequest,
    name: &'c str,
    value: String,
    age: Option<CookieAge>,
) -> Cookie<'c> {
    let mut c = Cookie::build(name, value)
        .path("/portal")
        .http_only(true)
        // Secure when the portal is served over TLS (configured URL or this request).
        .secure(portal.tls() || req.connection_info().scheme() == "https")
        .same_site(if name == SESSION_COOKIE {
            // Lax: the portal link in an email (a cross-site top-level GET) still
            // finds the session; every state change is a POST with a CSRF token.
            SameSite::Lax
        } else {
            SameSite::Strict
        })
        .finish();
    if let Some(a) = age {
        c.set_max_age(a);
    }
    c
}

/// Renders a page with the common context and the headers.
pub(super) struct Page<'a> {
    portal: &'a Portal,
    req: &'a HttpRequest,
    pub(super) cookies: Vec<Cookie<'static>>,
}

impl<'a> Page<'a> {
    pub(super) fn new(portal: &'a Portal, req: &'a HttpRequest) -> Page<'a> {
        Page {
            portal,
            req,
            cookies: Vec::new(),
        }
    }

    pub(super) fn lang(&mut self) -> &'static str {
        let (l, from_query) = lang(self.req);
        if from_query {
            self.cookies.push(cookie(
                self.portal,
                self.req,
                LANG_COOKIE,
                l.to_owned(),
                Some(CookieAge::days(365)),
            ));
        }
        l
    }

    pub(super) fn render(
        self,
        status: actix_web::http::StatusCode,
        name: &str,
        ctx: Value,
    ) -> Result<HttpResponse, PortalError> {
        let tpl = self
            .portal
            .env
            .get_template(name)
            .map_err(|e| PortalError::Template(e.to_string()))?;
        let body = tpl
            .render(ctx)
            .map_err(|e| PortalError::Template(format!("{e:#}")))?;
        let mut b = HttpResponse::build(status);
        secure_headers(&mut b);
        for c in self.cookies {
            b.cookie(c);
        }
        Ok(b.body(body))
    }
}

pub(super) fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

pub(super) fn now(portal: &Portal) -> Timestamp {
    (portal.clock)()
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, PortalError> {
    web::block(f)
        .await
        .map_err(|e| PortalError::Internal(e.to_string()))?
        .map_err(PortalError::from)
}

/// The session of the request's cookie, if live.
pub(super) async fn session(
    portal: &web::Data<Portal>,
    req: &HttpRequest,
) -> Result<Option<(String, Session)>, PortalError> {
    let Some(token) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(None);
    };
    if token.len() != 64 {
        return Ok(None);
    }
    let auth = portal.auth.clone();
    let at = now(portal);
    let t = token.clone();
    Ok(blocking(move || auth.session(&t, at))
        .await?
        .map(|s| (token, s)))
}

/// The pre-session CSRF token (double submit): the cookie's, or a new one to set.
pub(super) fn pre_csrf(portal: &Portal, req: &HttpRequest, page: &mut Page<'_>) -> String {
    match req.cookie(CSRF_COOKIE) {
        Some(c) if c.value().len() == 64 => c.value().to_owned(),
        _ => {
            let t = super::auth::random_token();
            page.cookies
                .push(cookie(portal, req, CSRF_COOKIE, t.clone(), None));
            t
        }
    }
}

pub(super) fn check_pre_csrf(req: &HttpRequest, sent: &str) -> Result<(), PortalError> {
    match req.cookie(CSRF_COOKIE) {
        Some(c) if !sent.is_empty() && same_token(c.value(), sent) => Ok(()),
        _ => Err(PortalError::Csrf),
    }
}
