//! Sign-in by one-time link, sign-out, and the admin's revocation.

use actix_web::cookie::time::Duration as CookieAge;
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use serde::Deserialize;

use super::auth::{same_token, LinkGrant};
use super::pages::{
    blocking, check_pre_csrf, cookie, now, pre_csrf, redirect, session, texts, Page,
};
use super::{Portal, PortalError, LANG_COOKIE, LINK_TTL, SESSION_COOKIE, SESSION_TTL};
use crate::store::{OutboxItem, ReplyIntent};

pub(super) async fn index(
    req: HttpRequest,
    portal: web::Data<Portal>,
) -> Result<HttpResponse, PortalError> {
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
pub(super) struct LoginForm {
    email: String,
    csrf: String,
}

fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub(super) async fn login(
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

pub(super) async fn confirm(
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
pub(super) struct RedeemForm {
    token: String,
    csrf: String,
}

pub(super) async fn redeem(
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
        &req,
        SESSION_COOKIE,
        token,
        Some(CookieAge::seconds(SESSION_TTL.as_secs() as i64)),
    );
    resp.add_cookie(&c)
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    let lang_cookie = cookie(
        &portal,
        &req,
        LANG_COOKIE,
        grant.lang,
        Some(CookieAge::days(365)),
    );
    resp.add_cookie(&lang_cookie)
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    Ok(resp)
}

#[derive(Deserialize)]
pub(super) struct LogoutForm {
    csrf: String,
}

pub(super) async fn logout(
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
    let mut gone = cookie(&portal, &req, SESSION_COOKIE, String::new(), None);
    gone.make_removal();
    resp.add_cookie(&gone)
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    Ok(resp)
}

#[derive(Deserialize)]
pub(super) struct RevokeRequest {
    email: String,
}

/// Admin: revoke every session and unused link of an address.
pub(super) async fn revoke(
    req: HttpRequest,
    body: web::Json<RevokeRequest>,
    portal: web::Data<Portal>,
    state: web::Data<crate::intake::app::AppState>,
) -> Result<HttpResponse, crate::intake::error::ApiError> {
    crate::intake::staff_auth::caller(&req, &state, crate::intake::staff_auth::Role::Admin).await?;
    let auth = portal.auth.clone();
    let email = body.email.clone();
    let n = web::block(move || auth.revoke_address(&email))
        .await
        .map_err(|e| crate::intake::error::ApiError::Internal(anyhow::anyhow!("{e}")))?
        .map_err(|e| crate::intake::error::ApiError::StoreUnavailable(e.into()))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revoked": n })))
}
