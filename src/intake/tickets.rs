//! Staff routes of the ticket lifecycle: status changes with a note, replies to
//! the client through the outbox, ticket lists (with `?overdue=true`) and the
//! overdue counts per contract level.
//!
//! Input: JSON requests with the staff token; output: the changed ticket as JSON.
//! The lifecycle rules themselves are in [`crate::lifecycle`].

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::app::AppState;
use super::error::ApiError;
use super::staff_auth::{caller, Role};
use crate::decision::Status;
use crate::lifecycle::{self, NotifyPolicy};
use crate::store::{StoreError, Ticket};

/// Routes of this module (registered next to [`super::handlers::configure`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(1 << 20)
            .error_handler(|e, _| ApiError::InvalidPayload(format!("bad JSON body: {e}")).into()),
    )
    .route("/v1/tickets", web::get().to(list_tickets))
    .route("/v1/tickets/{number}/status", web::post().to(change_status))
    .route("/v1/tickets/{number}/replies", web::post().to(reply))
    .route("/v1/sla/overdue", web::get().to(overdue));
}

fn number(path: &str) -> Result<u64, ApiError> {
    path.trim_start_matches('#')
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no ticket {path:?}")))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NoSuchTicket(n) => ApiError::NotFound(format!("no ticket {n}")),
        StoreError::Lifecycle(e) => ApiError::Conflict(e.to_string()),
        e => ApiError::StoreUnavailable(e.into()),
    }
}

fn blocking_error(e: actix_web::error::BlockingError) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("store task failed: {e}"))
}

/// A ticket as lists show it: identity, status, SLA with pauses and overdue flags.
pub fn ticket_summary(state: &AppState, t: &Ticket, now: jiff::Timestamp) -> Value {
    json!({
        "number": t.number,
        "tag": format!("[{}{}]", state.tag_prefix, t.number),
        "status": t.status,
        "client_id": t.client_id,
        "owner": t.owner,
        "subject": t.subject,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "link": t.link,
        "sla": lifecycle::sla_view(t, &state.pipeline.sla, now),
    })
}

fn reply_domain(state: &AppState) -> String {
    state
        .pipeline
        .reply_from
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .unwrap_or_else(|| "intake.invalid".into())
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    overdue: bool,
    status: Option<String>,
    client_id: Option<String>,
}

async fn list_tickets(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller(&req, &state, Role::Agent).await?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            Status::parse(s).ok_or_else(|| ApiError::InvalidPayload(format!("no status {s:?}")))?,
        ),
    };
    let store = state.pipeline.store.clone();
    let all = web::block(move || store.all_tickets())
        .await
        .map_err(blocking_error)?
        .map_err(store_error)?;
    let now = (state.clock)();
    let tickets: Vec<Value> = all
        .iter()
        .filter(|t| status.is_none_or(|s| t.status == s))
        .filter(|t| {
            query
                .client_id
                .as_deref()
                .is_none_or(|c| t.client_id.as_deref() == Some(c))
        })
        .filter(|t| {
            !query.overdue
                || lifecycle::sla_view(t, &state.pipeline.sla, now).is_some_and(|v| v.overdue())
        })
        .map(|t| ticket_summary(&state, t, now))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "at": now, "count": tickets.len(), "tickets": tickets })))
}

/// Overdue tickets per contract level now: `{ level: { reaction, in_work, tickets } }`.
///
/// # Errors
/// The store cannot be read.
pub fn overdue_now(
    state: &AppState,
) -> Result<std::collections::BTreeMap<String, lifecycle::OverdueCount>, StoreError> {
    let all = state.pipeline.store.all_tickets()?;
    Ok(lifecycle::overdue_counts(
        &all,
        &state.pipeline.sla,
        (state.clock)(),
    ))
}

async fn overdue(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller(&req, &state, Role::Agent).await?;
    let st = state.clone();
    let counts = web::block(move || overdue_now(&st))
        .await
        .map_err(blocking_error)?
        .map_err(store_error)?;
    Ok(HttpResponse::Ok().json(json!({ "at": (state.clock)(), "levels": counts })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusRequest {
    status: String,
    /// Why: required, it goes into the history.
    note: String,
    /// Refused when present (see [`refuse_by`]).
    #[serde(default)]
    by: Option<serde::de::IgnoredAny>,
    /// Whether the note is told to the client (notification, portal).
    #[serde(default)]
    public_note: bool,
}

/// A `by` in a request body is refused: events record the authenticated caller.
fn refuse_by(by: &Option<serde::de::IgnoredAny>) -> Result<(), ApiError> {
    match by {
        Some(_) => Err(ApiError::InvalidPayload(
            "`by` is not accepted: events record the account the request is authenticated as"
                .into(),
        )),
        None => Ok(()),
    }
}

async fn change_status(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StatusRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = caller(&req, &state, Role::Agent).await?;
    let number = number(&path)?;
    let body = body.into_inner();
    refuse_by(&body.by)?;
    let to = Status::parse(&body.status)
        .ok_or_else(|| ApiError::InvalidPayload(format!("no status {:?}", body.status)))?;
    if body.note.trim().is_empty() {
        return Err(ApiError::InvalidPayload(
            "`note`: say why the status changes".into(),
        ));
    }
    let policy = match NotifyPolicy::load(&state.pipeline.rules.current().root) {
        Ok(p) => p,
        Err(e) => {
            // The change itself must not fail on a broken notification policy.
            tracing::error!(error = %e, "notification policy unusable; no status email");
            NotifyPolicy::default()
        }
    };
    let now = (state.clock)();
    let domain = reply_domain(&state);
    let store = state.pipeline.store.clone();
    let public_note = body.public_note;
    let note = body.note.trim().to_owned();
    let (ticket, notified) = web::block(move || {
        store.change_ticket(number, |t| {
            let mut event = lifecycle::staff_change(t, to, &by, &note, now)?;
            event.public = public_note;
            if let Some(last) = t.events.last_mut() {
                last.public = public_note;
            }
            let items: Vec<_> = lifecycle::notification(t, &event, &policy, public_note, &domain)
                .into_iter()
                .collect();
            Ok((
                (t.clone(), items.first().map(|i| i.message_id.clone())),
                items,
            ))
        })
    })
    .await
    .map_err(blocking_error)?
    .map_err(store_error)?;
    if notified.is_some() {
        state.outbox.wake.notify_one();
    }
    tracing::info!(
        ticket = number,
        status = to.as_str(),
        notified = notified.is_some(),
        "status changed"
    );
    let mut out = ticket_summary(&state, &ticket, now);
    out["events"] = json!(ticket.events);
    out["notification_message_id"] = json!(notified);
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyRequest {
    text: String,
    /// Refused when present (see [`refuse_by`]).
    #[serde(default)]
    by: Option<serde::de::IgnoredAny>,
}

async fn reply(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<ReplyRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = caller(&req, &state, Role::Agent).await?;
    let number = number(&path)?;
    let body = body.into_inner();
    refuse_by(&body.by)?;
    if body.text.trim().is_empty() {
        return Err(ApiError::InvalidPayload("`text` is empty".into()));
    }
    let now = (state.clock)();
    let domain = reply_domain(&state);
    let store = state.pipeline.store.clone();
    let text = body.text;
    let (ticket, message_id) = web::block(move || {
        store.change_ticket(number, |t| {
            let item = lifecycle::staff_reply(t, &by, &text, &domain, now)?;
            Ok(((t.clone(), item.message_id.clone()), vec![item]))
        })
    })
    .await
    .map_err(blocking_error)?
    .map_err(store_error)?;
    state.outbox.wake.notify_one();
    tracing::info!(ticket = number, message_id = %message_id, "staff reply queued");
    let mut out = ticket_summary(&state, &ticket, now);
    out["message_id"] = json!(message_id);
    Ok(HttpResponse::Created().json(out))
}
