//! HTTP handlers of SPEC §9: the hook, tickets, admin, health.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::app::AppState;
use super::error::ApiError;
use crate::config::Secret;
use crate::facts::Envelope;
use crate::pipeline::Prepared;
use crate::store::MessageRecord;

/// Routes of the service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/messages", web::post().to(post_message))
        .route("/v1/tickets/{number}", web::get().to(get_ticket))
        .route("/v1/admin/reload", web::post().to(reload))
        .route("/v1/admin/rules", web::get().to(rules_info))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

pub(crate) fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

pub(crate) fn same(a: &str, b: &Secret) -> bool {
    let (a, b) = (a.as_bytes(), b.expose().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Accepts any of `allowed`; a missing token is 401, a wrong one 403.
pub(crate) fn authorize(req: &HttpRequest, allowed: &[&Secret]) -> Result<(), ApiError> {
    let Some(token) = bearer(req) else {
        return Err(ApiError::Unauthorized);
    };
    if allowed.iter().any(|s| same(token, s)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

#[derive(Deserialize)]
struct HookQuery {
    #[serde(default)]
    dry_run: bool,
}

fn envelope(req: &HttpRequest) -> Envelope {
    let one = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_owned())
    };
    Envelope {
        mail_from: one("X-Envelope-From"),
        rcpt_to: req
            .headers()
            .get_all("X-Envelope-To")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect(),
        client_ip: one("X-Client-IP"),
    }
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(ApiError::TooLarge { limit });
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::InvalidPayload(format!("cannot read body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The decision JSON of SPEC §9.
pub fn decision_json(record: &MessageRecord) -> Value {
    let d = &record.decision;
    json!({
        "outcome": d.outcome,
        "status": d.status,
        "ticket": d.ticket,
        "findings": d.findings.iter().map(|f| json!({"code": f.code, "rule": f.rule, "detail": f.detail})).collect::<Vec<_>>(),
        "reply": d.reply,
        "message_id": record.message_id,
        "rules_revision": record.rules_revision,
    })
}

async fn post_message(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<HookQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &[&state.tokens.gateway])?;
    if let Some(ct) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !["message/rfc822", "application/octet-stream", "text/plain"].contains(&essence.as_str())
        {
            return Err(ApiError::UnsupportedMediaType(essence));
        }
    }
    let raw = tokio::time::timeout(state.body_timeout, read_body(&req, payload, state.max_body))
        .await
        .map_err(|_| ApiError::RequestTimeout(state.body_timeout))??;
    if raw.is_empty() {
        return Err(ApiError::InvalidPayload(
            "empty body: send the raw message".into(),
        ));
    }
    let env = envelope(&req);
    let received_at = (state.clock)();
    // Rspamd is asked on the blocking pool, bounded by `spam.timeout_ms`; whatever
    // it does, the message goes on (without a verdict when it gave none).
    let (raw, env, spam) = match state.rspamd.clone() {
        Some(rspamd) => web::block(move || {
            let verdict = rspamd.check(&raw, &env);
            (raw, env, verdict)
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("spam check task failed: {e}")))?,
        None => (raw, env, crate::spam::SpamInput::default()),
    };
    crate::metrics::record_spam_check(&spam.check);
    let guard = state.pipeline.committer.begin();
    // Every message is evaluated on the evaluation pool, never on this HTTP
    // worker: a policy that uses its whole budget on every message must not leave
    // the other requests unanswered (evalpool.rs).
    let pipeline = state.pipeline.clone();
    let prepared = state
        .eval_pool
        // Called with the gateway's token (checked above): its spam headers may count.
        .run(move || pipeline.prepare_with(raw, env, received_at, spam, true))
        .await
        .map_err(|e| match e {
            super::evalpool::PoolError::Overloaded => ApiError::Overloaded,
            e => ApiError::Internal(anyhow::anyhow!(e)),
        })?
        .map_err(|e| ApiError::StoreUnavailable(e.into()))?;
    if let Prepared::New { evaluation, .. } = &prepared {
        crate::metrics::record_evaluation(evaluation);
    }
    match prepared {
        Prepared::Filed(record) => {
            drop(guard);
            crate::metrics::record_filed(&record, true);
            let mut body = decision_json(&record);
            body["redelivery"] = json!(true);
            tracing::info!(message_id = ?record.message_id, ticket = ?record.decision.ticket, "re-delivery answered with the first decision");
            Ok(HttpResponse::Ok().json(body))
        }
        Prepared::New {
            filing, evaluation, ..
        } if query.dry_run => {
            drop(guard);
            let record = MessageRecord {
                seq: 0,
                message_id: filing.message_id.clone(),
                from: filing.from.clone(),
                subject: filing.subject.clone(),
                received_at: filing.received_at,
                size: filing.raw.len() as u64,
                envelope: filing.envelope.clone(),
                decision: evaluation.decision.clone(),
                rules_revision: evaluation.revision.clone(),
                timings: filing.timings.clone(),
                reply_message_id: None,
                reply_suppressed: filing.reply_suppressed.clone(),
            };
            let mut body = decision_json(&record);
            body["dry_run"] = json!(true);
            if filing.reply.is_none() {
                body["reply"] = Value::Null;
            }
            Ok(HttpResponse::Ok().json(body))
        }
        Prepared::New { filing, .. } => {
            drop(guard);
            let committed = state.pipeline.committer.commit(*filing).await;
            let committed =
                committed.map_err(|e| ApiError::StoreUnavailable(anyhow::anyhow!(e)))?;
            let r = &committed.record;
            crate::metrics::record_filed(r, committed.redelivery);
            if r.reply_message_id.is_some() {
                state.outbox.wake.notify_one();
            }
            tracing::info!(
                message_id = ?r.message_id,
                outcome = r.decision.outcome.as_str(),
                ticket = ?r.decision.ticket,
                findings = ?r.decision.codes(),
                reply = ?r.decision.reply,
                redelivery = committed.redelivery,
                "message filed"
            );
            let mut body = decision_json(r);
            if committed.redelivery {
                body["redelivery"] = json!(true);
            }
            Ok(HttpResponse::Ok().json(body))
        }
    }
}

async fn get_ticket(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::staff_auth::caller(&req, &state, super::staff_auth::Role::Agent).await?;
    let number: u64 = path
        .trim_start_matches('#')
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no ticket {:?}", path.as_str())))?;
    let store = state.pipeline.store.clone();
    let found = web::block(move || -> Result<_, crate::store::StoreError> {
        let Some(t) = store.ticket(number)? else {
            return Ok(None);
        };
        let msgs = store.ticket_messages(&t)?;
        Ok(Some((t, msgs)))
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?
    .map_err(|e| ApiError::StoreUnavailable(e.into()))?;
    let Some((t, msgs)) = found else {
        return Err(ApiError::NotFound(format!("no ticket {number}")));
    };
    let contract = t
        .client_id
        .as_deref()
        .and_then(|id| state.pipeline.contracts.by_client_id(id))
        .cloned();
    let now = (state.clock)();
    let timers = crate::lifecycle::sla_view(&t, &state.pipeline.sla, now);
    let overdue = timers.as_ref().is_some_and(|v| v.reaction_overdue);
    Ok(HttpResponse::Ok().json(json!({
        "number": t.number,
        "tag": format!("[{}{}]", state.tag_prefix, t.number),
        "status": t.status,
        "client_id": t.client_id,
        "contract": contract,
        "owner": t.owner,
        "subject": t.subject,
        "subject_core": t.subject_core,
        "lang": t.lang,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "sla": t.sla,
        "reaction_overdue": overdue,
        "sla_timers": timers,
        "link": t.link,
        "events": t.events,
        "messages": msgs.iter().map(|m| json!({
            "seq": m.seq,
            "message_id": m.message_id,
            "from": m.from,
            "subject": m.subject,
            "received_at": m.received_at,
            "envelope": m.envelope,
            "decision": decision_json(m),
            "reply_message_id": m.reply_message_id,
            "reply_suppressed": m.reply_suppressed,
            "timings": m.timings,
        })).collect::<Vec<_>>(),
    })))
}

async fn reload(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let by = super::staff_auth::caller(&req, &state, super::staff_auth::Role::Admin).await?;
    tracing::info!(by = %by, "rules reload asked");
    let rules = state.pipeline.rules.clone();
    let res = web::block(move || super::reload::reload(&rules, super::reload::Trigger::Api))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    match res {
        Ok(revision) => Ok(HttpResponse::Ok().json(json!({ "revision": revision }))),
        Err(e) => Err(ApiError::RulesInvalid {
            message: format!(
                "rules refused; revision {} keeps running",
                state.pipeline.rules.current().revision
            ),
            diagnostics: e.diagnostics.iter().map(ToString::to_string).collect(),
        }),
    }
}

async fn rules_info(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::staff_auth::caller(&req, &state, super::staff_auth::Role::Agent).await?;
    let set = state.pipeline.rules.current();
    Ok(HttpResponse::Ok().json(json!({
        "revision": set.revision,
        "path": set.root,
        "rules": set.rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        "last_reload_error": state.pipeline.rules.last_error(),
    })))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.pipeline.store.clone();
    let ok = web::block(move || store.check()).await;
    match ok {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "rules_revision": state.pipeline.rules.current().revision,
            "outbox": state.pipeline.store.outbox_len(),
        })),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "store not ready");
            HttpResponse::ServiceUnavailable().json(json!({ "error": { "code": "store_unavailable", "message": "the store does not accept writes" } }))
        }
        Err(e) => {
            tracing::error!(error = %e, "readiness probe failed");
            HttpResponse::ServiceUnavailable().json(
                json!({ "error": { "code": "internal", "message": "readiness probe failed" } }),
            )
        }
    }
}
