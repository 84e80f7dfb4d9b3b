//! The portal's pages and forms. Every value reaches HTML through minijinja's
//! auto-escaping (`.html` templates); every form carries an anti-CSRF token; every
//! answer carries a strict Content-Security-Policy (no script at all), `no-store`
//! and `no-referrer` (sign-in links never leak through `Referer`).

use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use jiff::Timestamp;
use minijinja::{context, Environment, Value};
use serde::{Deserialize, Serialize};

use super::auth::{same_token, LinkGrant, Session};
use super::{Portal, PortalError, CSRF_COOKIE, LANG_COOKIE, LINK_TTL, SESSION_COOKIE, SESSION_TTL};
use crate::decision::{Outcome, Status};
use crate::facts::Envelope;
use crate::lifecycle;
use crate::pipeline::Prepared;
use crate::store::{OutboxItem, ReplyIntent, Ticket};

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
    .route("/portal", web::get().to(index))
    .route("/portal/", web::get().to(index))
    .route("/portal/login", web::post().to(login))
    .route("/portal/auth/{token}", web::get().to(confirm))
    .route("/portal/auth", web::post().to(redeem))
    .route("/portal/tickets", web::get().to(list))
    .route("/portal/tickets/{number}", web::get().to(ticket_page))
    .route("/portal/tickets/{number}/reply", web::post().to(reply))
    .route("/portal/logout", web::post().to(logout))
    .route("/v1/admin/portal/revoke", web::post().to(revoke));
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

fn texts(lang: &str) -> Value {
    let ru = lang == "ru";
    Value::from_iter(
        TEXTS
            .iter()
            .map(|(k, en, r)| (*k, if ru { *r } else { *en })),
    )
}

/// The page language: `?lang=`, then the cookie, then `Accept-Language`.
fn lang(req: &HttpRequest) -> (&'static str, bool) {
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

fn cookie<'c>(portal: &Portal, name: &'c str, value: String, age: Option<CookieAge>) -> Cookie<'c> {
    let mut c = Cookie::build(name, value)
        .path("/portal")
        .http_only(true)
        .secure(portal.tls())
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
struct Page<'a> {
    portal: &'a Portal,
    req: &'a HttpRequest,
    cookies: Vec<Cookie<'static>>,
}

impl<'a> Page<'a> {
    fn new(portal: &'a Portal, req: &'a HttpRequest) -> Page<'a> {
        Page {
            portal,
            req,
            cookies: Vec::new(),
        }
    }

    fn lang(&mut self) -> &'static str {
        let (l, from_query) = lang(self.req);
        if from_query {
            self.cookies.push(cookie(
                self.portal,
                LANG_COOKIE,
                l.to_owned(),
                Some(CookieAge::days(365)),
            ));
        }
        l
    }

    fn render(
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

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn now(portal: &Portal) -> Timestamp {
    (portal.clock)()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, PortalError> {
    web::block(f)
        .await
        .map_err(|e| PortalError::Internal(e.to_string()))?
        .map_err(PortalError::from)
}

/// The session of the request's cookie, if live.
async fn session(
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
fn pre_csrf(portal: &Portal, req: &HttpRequest, page: &mut Page<'_>) -> String {
    match req.cookie(CSRF_COOKIE) {
        Some(c) if c.value().len() == 64 => c.value().to_owned(),
        _ => {
            let t = super::auth::random_token();
            page.cookies
                .push(cookie(portal, CSRF_COOKIE, t.clone(), None));
            t
        }
    }
}

fn check_pre_csrf(req: &HttpRequest, sent: &str) -> Result<(), PortalError> {
    match req.cookie(CSRF_COOKIE) {
        Some(c) if !sent.is_empty() && same_token(c.value(), sent) => Ok(()),
        _ => Err(PortalError::Csrf),
    }
}

async fn index(req: HttpRequest, portal: web::Data<Portal>) -> Result<HttpResponse, PortalError> {
    if session(&portal, &req).await?.is_some() {
        return Ok(redirect("/portal/tickets"));
    }
    let mut page = Page::new(&portal, &req);
    let lang = page.lang();
    let csrf = pre_csrf(&portal, &req, &mut page);
    page.render(
        actix_web::http::StatusCode::OK,
        "login.html",
        context! { lang, t => texts(lang), csrf },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    csrf: String,
}

fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

async fn login(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    portal: web::Data<Portal>,
) -> Result<HttpResponse, PortalError> {
    check_pre_csrf(&req, &form.csrf)?;
    let mut page = Page::new(&portal, &req);
    let lang = page.lang();
    let email = form.email.trim().to_lowercase();
    if !crate::facts::is_plausible_address(&email) || email.len() > 254 {
        return Err(PortalError::BadRequest("not an email address".into()));
    }
    if !portal.per_ip.allow(&client_ip(&req)) || !portal.per_address.allow(&email) {
        tracing::warn!(ip = %client_ip(&req), "portal sign-in rate limit hit");
        return Err(PortalError::TooManyRequests);
    }
    // The same answer whether or not the address is known: no enumeration.
    if let Some(contract) = portal.pipeline.contracts.for_sender(&email).cloned() {
        let at = now(&portal);
        let grant = LinkGrant {
            email: email.clone(),
            client_id: contract.client_id.clone(),
            lang: lang.to_owned(),
            expires_at: at + jiff::SignedDuration::try_from(LINK_TTL).unwrap_or_default(),
        };
        let auth = portal.auth.clone();
        let store = portal.pipeline.store.clone();
        let base = portal.base_url.clone();
        let domain = portal
            .reply_from
            .rsplit_once('@')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_else(|| "intake.invalid".into());
        blocking(move || {
            let token = auth.issue_link(&grant)?;
            let mut vars = std::collections::BTreeMap::new();
            vars.insert("url".to_owned(), format!("{base}/auth/{token}"));
            vars.insert("minutes".to_owned(), (LINK_TTL.as_secs() / 60).to_string());
            let id = super::auth::random_token();
            let item = OutboxItem::standalone(
                format!("portal:{}", &id[..32]).into_bytes(),
                None,
                ReplyIntent {
                    template: "portal_link".into(),
                    lang: grant.lang.clone(),
                    to: grant.email.clone(),
                    original_subject: String::new(),
                    original_message_id: None,
                    references: Vec::new(),
                    vars,
                    human: false,
                },
                format!("intake.portal.{}@{domain}", &id[32..]),
                at,
            );
            store.enqueue(&item)
        })
        .await?;
        portal.wake.notify_one();
        tracing::info!(client_id = %contract.client_id, "portal sign-in link queued");
    } else {
        tracing::info!("portal sign-in asked for an address no contract lists");
    }
    page.render(
        actix_web::http::StatusCode::OK,
        "sent.html",
        context! { lang, t => texts(lang) },
    )
}

async fn confirm(
    req: HttpRequest,
    path: web::Path<String>,
    portal: web::Data<Portal>,
) -> Result<HttpResponse, PortalError> {
    // A GET never uses the link up (mail scanners open links); the button does.
    let mut page = Page::new(&portal, &req);
    let lang = page.lang();
    let csrf = pre_csrf(&portal, &req, &mut page);
    let token = path.into_inner();
    let auth = portal.auth.clone();
    let at = now(&portal);
    let t = token.clone();
    let valid = token.len() == 64 && blocking(move || auth.peek_link(&t, at)).await?;
    page.render(
        if valid {
            actix_web::http::StatusCode::OK
        } else {
            actix_web::http::StatusCode::NOT_FOUND
        },
        "confirm.html",
        context! { lang, t => texts(lang), csrf, token, valid },
    )
}

#[derive(Deserialize)]
struct RedeemForm {
    token: String,
    csrf: String,
}

async fn redeem(
    req: HttpRequest,
    form: web::Form<RedeemForm>,
    portal: web::Data<Portal>,
) -> Result<HttpResponse, PortalError> {
    check_pre_csrf(&req, &form.csrf)?;
    let auth = portal.auth.clone();
    let at = now(&portal);
    let token = form.token.clone();
    let grant = blocking(move || auth.redeem_link(&token, at)).await?;
    let Some(grant) = grant else {
        let mut page = Page::new(&portal, &req);
        let lang = page.lang();
        return page.render(
            actix_web::http::StatusCode::NOT_FOUND,
            "confirm.html",
            context! { lang, t => texts(lang), csrf => "", token => "", valid => false },
        );
    };
    let auth = portal.auth.clone();
    let (email, client) = (grant.email.clone(), grant.client_id.clone());
    let (token, _) = blocking(move || auth.start_session(&email, &client, at, SESSION_TTL)).await?;
    tracing::info!(client_id = %grant.client_id, "portal session started");
    let mut resp = redirect("/portal/tickets");
    let c = cookie(
        &portal,
        SESSION_COOKIE,
        token,
        Some(CookieAge::seconds(SESSION_TTL.as_secs() as i64)),
    );
    resp.add_cookie(&c)
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    let lang_cookie = cookie(&portal, LANG_COOKIE, grant.lang, Some(CookieAge::days(365)));
    resp.add_cookie(&lang_cookie)
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    Ok(resp)
}

fn fmt_time(portal: &Portal, t: Timestamp) -> String {
    t.to_zoned(portal.pipeline.sla.calendar.tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

#[derive(Serialize)]
struct Row {
    number: u64,
    tag: String,
    subject: String,
    status: &'static str,
    created: String,
    reaction_due: Option<String>,
    in_work_due: Option<String>,
    reaction_state: &'static str,
    in_work_state: &'static str,
    paused: bool,
    link: Option<u64>,
}

fn timer_state(stopped: bool, overdue: bool) -> &'static str {
    if stopped {
        "done"
    } else if overdue {
        "overdue"
    } else {
        "running"
    }
}

fn row(portal: &Portal, t: &Ticket, at: Timestamp) -> Row {
    let v = lifecycle::sla_view(t, &portal.pipeline.sla, at);
    Row {
        number: t.number,
        tag: format!("[{}{}]", portal.tag_prefix, t.number),
        subject: t.subject.clone(),
        status: t.status.as_str(),
        created: fmt_time(portal, t.created_at),
        reaction_due: v.as_ref().map(|v| fmt_time(portal, v.reaction_due)),
        in_work_due: v.as_ref().map(|v| fmt_time(portal, v.in_work_due)),
        reaction_state: v
            .as_ref()
            .map(|v| timer_state(v.reacted_at.is_some(), v.reaction_overdue))
            .unwrap_or(""),
        in_work_state: v
            .as_ref()
            .map(|v| timer_state(v.in_work_at.is_some(), v.in_work_overdue))
            .unwrap_or(""),
        paused: v.as_ref().is_some_and(|v| v.paused),
        link: t.link,
    }
}

async fn list(req: HttpRequest, portal: web::Data<Portal>) -> Result<HttpResponse, PortalError> {
    let Some((_, s)) = session(&portal, &req).await? else {
        return Ok(redirect("/portal"));
    };
    let store = portal.pipeline.store.clone();
    let client = s.client_id.clone();
    let tickets = blocking(move || store.client_tickets(&client)).await?;
    let at = now(&portal);
    let rows: Vec<Row> = tickets.iter().map(|t| row(&portal, t, at)).collect();
    let mut page = Page::new(&portal, &req);
    let lang = page.lang();
    page.render(
        actix_web::http::StatusCode::OK,
        "list.html",
        context! { lang, t => texts(lang), rows, session => context!{ email => s.email, csrf => s.csrf } },
    )
}

#[derive(Serialize)]
struct Entry {
    at: String,
    kind: &'static str,
    who: String,
    text: String,
    subject: String,
    from: Option<&'static str>,
    to: Option<&'static str>,
}

/// Longest message text shown on a page.
const SHOW_CAP: usize = 20_000;

fn message_entry(
    portal: &Portal,
    t: &Ticket,
    seq: u64,
    at: Timestamp,
) -> Result<Option<Entry>, crate::store::StoreError> {
    let store = &portal.pipeline.store;
    let Some(rec) = store.message(seq)? else {
        return Ok(None);
    };
    let raw = store.raw_message(seq)?.unwrap_or_default();
    let parsed = crate::parse::parse(&raw);
    let mut text = crate::text::quote::strip_quoted(&parsed.text);
    if text.trim().is_empty() {
        text = parsed.text;
    }
    if text.len() > SHOW_CAP {
        let mut cut = SHOW_CAP;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    let _ = t;
    Ok(Some(Entry {
        at: fmt_time(portal, at),
        kind: "message",
        who: rec.from,
        text: text.trim().to_owned(),
        subject: rec.subject,
        from: None,
        to: None,
    }))
}

/// The public history of a ticket: the client's messages, staff replies, status
/// changes (with their note only when it was made public).
fn history(portal: &Portal, t: &Ticket) -> Result<Vec<Entry>, crate::store::StoreError> {
    let mut out = Vec::new();
    for e in &t.events {
        match e.kind.as_str() {
            "created" => {
                if let Some(seq) = t.messages.first() {
                    out.extend(message_entry(portal, t, *seq, e.at)?);
                }
            }
            "append" | "duplicate" => {
                let seq = e
                    .detail
                    .strip_prefix("message ")
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some(seq) = seq {
                    out.extend(message_entry(portal, t, seq, e.at)?);
                }
            }
            "staff_reply" => out.push(Entry {
                at: fmt_time(portal, e.at),
                kind: "staff",
                who: e
                    .by
                    .as_deref()
                    .and_then(|b| b.strip_prefix("staff:"))
                    .unwrap_or("")
                    .to_owned(),
                text: e.note.clone().unwrap_or_default(),
                subject: String::new(),
                from: None,
                to: None,
            }),
            "status" => out.push(Entry {
                at: fmt_time(portal, e.at),
                kind: "status",
                who: String::new(),
                text: if e.public {
                    e.note.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                subject: String::new(),
                from: e.from.map(Status::as_str),
                to: e.to.map(Status::as_str),
            }),
            _ => {}
        }
    }
    Ok(out)
}

/// The ticket of this number if it belongs to the session's client; anything
/// else (no such ticket, another client's) is the same 404.
async fn own_ticket(
    portal: &web::Data<Portal>,
    s: &Session,
    number: &str,
) -> Result<Ticket, PortalError> {
    let number: u64 = number.parse().map_err(|_| PortalError::NotFound)?;
    let store = portal.pipeline.store.clone();
    let t = blocking(move || store.ticket(number)).await?;
    match t {
        Some(t) if t.client_id.as_deref() == Some(s.client_id.as_str()) => Ok(t),
        _ => Err(PortalError::NotFound),
    }
}

#[derive(Deserialize)]
struct TicketQuery {
    filed: Option<String>,
    detail: Option<String>,
}

async fn ticket_page(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<TicketQuery>,
    portal: web::Data<Portal>,
) -> Result<HttpResponse, PortalError> {
    let Some((_, s)) = session(&portal, &req).await? else {
        return Ok(redirect("/portal"));
    };
    let t = own_ticket(&portal, &s, &path).await?;
    let p = portal.clone();
    let t2 = t.clone();
    let entries = blocking(move || history(&p, &t2)).await?;
    let at = now(&portal);
    let mut page = Page::new(&portal, &req);
    let lang = page.lang();
    let filed = query.filed.as_deref().map(|f| match f {
        "append" => "append",
        "create" => "create",
        _ => "other",
    });
    page.render(
        actix_web::http::StatusCode::OK,
        "ticket.html",
        context! {
            lang,
            t => texts(lang),
            ticket => row(&portal, &t, at),
            closed => t.status == Status::Closed,
            entries,
            filed,
            filed_detail => query.detail.clone(),
            session => context!{ email => s.email, csrf => s.csrf },
        },
    )
}

#[derive(Deserialize)]
struct ReplyForm {
    csrf: String,
    text: String,
}

/// The raw RFC 5322 message a portal reply files: from the signed-in address to
/// the desk, with the ticket tag in the subject and threading headers.
fn reply_message(
    portal: &Portal,
    s: &Session,
    t: &Ticket,
    text: &str,
    at: Timestamp,
) -> Result<(Vec<u8>, String), PortalError> {
    use lettre::message::{header::ContentType, Mailbox};
    let from: Mailbox = s
        .email
        .parse()
        .map_err(|e| PortalError::Internal(format!("session address: {e}")))?;
    let to: Mailbox = portal
        .reply_from
        .parse()
        .map_err(|e| PortalError::Internal(format!("smtp.from: {e}")))?;
    let domain = portal
        .reply_from
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .unwrap_or_else(|| "intake.invalid".into());
    let id = format!("portal.{}@{domain}", &super::auth::random_token()[..40]);
    let core: String = t.subject_core.chars().filter(|c| !c.is_control()).collect();
    let subject = format!("Re: [{}{}] {core}", portal.tag_prefix, t.number);
    let ids: Vec<String> = t
        .events
        .iter()
        .filter_map(|e| e.message_id.clone())
        .map(|m| format!("<{}>", crate::store::normalise_id(&m)))
        .collect();
    let mut b = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{id}>")))
        .date(
            std::time::SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(at.as_second().max(0) as u64),
        )
        .header(ContentType::TEXT_PLAIN);
    if let Some(last) = ids.last() {
        b = b.in_reply_to(last.clone()).references(ids.join(" "));
    }
    let body = text.replace("\r\n", "\n");
    let msg = b
        .body(body)
        .map_err(|e| PortalError::Internal(format!("reply message: {e}")))?;
    Ok((msg.formatted(), id))
}

async fn reply(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ReplyForm>,
    portal: web::Data<Portal>,
) -> Result<HttpResponse, PortalError> {
    let Some((_, s)) = session(&portal, &req).await? else {
        return Ok(redirect("/portal"));
    };
    if !same_token(&s.csrf, &form.csrf) {
        return Err(PortalError::Csrf);
    }
    let t = own_ticket(&portal, &s, &path).await?;
    if form.text.trim().is_empty() {
        return Ok(redirect(&format!("/portal/tickets/{}", t.number)));
    }
    let at = now(&portal);
    let (raw, _id) = reply_message(&portal, &s, &t, &form.text, at)?;
    let envelope = Envelope {
        mail_from: Some(s.email.clone()),
        rcpt_to: vec![portal.reply_from.clone()],
        client_ip: req.peer_addr().map(|a| a.ip().to_string()),
    };
    let pipeline = portal.pipeline.clone();
    let guard = pipeline.committer.begin();
    let p = pipeline.clone();
    let prepared = blocking(move || p.prepare(raw, envelope, at)).await?;
    let record = match prepared {
        Prepared::Filed(r) => *r,
        Prepared::New { filing, .. } => {
            let c = pipeline.committer.commit(*filing).await;
            drop(guard);
            c.map_err(|e| PortalError::Internal(format!("filing failed: {e}")))?
                .record
        }
    };
    if record.reply_message_id.is_some() {
        portal.wake.notify_one();
    }
    let d = &record.decision;
    tracing::info!(ticket = t.number, outcome = d.outcome.as_str(), filed_ticket = ?d.ticket, "portal reply filed");
    let to = match (d.outcome, d.ticket) {
        (Outcome::Append | Outcome::Duplicate, Some(n)) if n == t.number => {
            format!("/portal/tickets/{n}?filed=append")
        }
        (Outcome::Create, Some(n)) => format!("/portal/tickets/{n}?filed=create"),
        _ => {
            let codes = d.codes().join(",");
            format!(
                "/portal/tickets/{}?filed={}&detail={}",
                t.number,
                d.outcome.as_str(),
                codes
            )
        }
    };
    Ok(redirect(&to))
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(
    req: HttpRequest,
    form: web::Form<LogoutForm>,
    portal: web::Data<Portal>,
) -> Result<HttpResponse, PortalError> {
    let Some((token, s)) = session(&portal, &req).await? else {
        return Ok(redirect("/portal"));
    };
    if !same_token(&s.csrf, &form.csrf) {
        return Err(PortalError::Csrf);
    }
    let auth = portal.auth.clone();
    blocking(move || auth.end_session(&token)).await?;
    let mut resp = redirect("/portal");
    let mut gone = cookie(&portal, SESSION_COOKIE, String::new(), None);
    gone.make_removal();
    resp.add_cookie(&gone)
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    Ok(resp)
}

#[derive(Deserialize)]
struct RevokeRequest {
    email: String,
}

/// Admin: revoke every session and unused link of an address.
async fn revoke(
    req: HttpRequest,
    body: web::Json<RevokeRequest>,
    portal: web::Data<Portal>,
    state: web::Data<crate::intake::app::AppState>,
) -> Result<HttpResponse, crate::intake::error::ApiError> {
    crate::intake::handlers::authorize(&req, &[&state.tokens.admin])?;
    let auth = portal.auth.clone();
    let email = body.email.clone();
    let n = web::block(move || auth.revoke_address(&email))
        .await
        .map_err(|e| crate::intake::error::ApiError::Internal(anyhow::anyhow!("{e}")))?
        .map_err(|e| crate::intake::error::ApiError::StoreUnavailable(e.into()))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revoked": n })))
}
