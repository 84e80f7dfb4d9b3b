//! Admin routes for staff accounts, the API twin of `intake staff`:
//! `GET /v1/admin/staff`, `POST /v1/admin/staff` (`{email, role}`),
//! `POST /v1/admin/staff/{email}/disable`, `POST /v1/admin/staff/{email}/tokens`
//! (the new token is in the answer, once). Admins only.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::app::AppState;
use super::error::ApiError;
use super::staff_auth::{caller, Role};
use crate::staff::StaffError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/admin/staff", web::get().to(list))
        .route("/v1/admin/staff", web::post().to(add))
        .route("/v1/admin/staff/{email}/disable", web::post().to(disable))
        .route("/v1/admin/staff/{email}/tokens", web::post().to(token));
}

fn staff_error(e: StaffError) -> ApiError {
    match e {
        StaffError::BadAddress(_) => ApiError::InvalidPayload(e.to_string()),
        StaffError::NoSuchAccount(_) => ApiError::NotFound(e.to_string()),
        StaffError::Disabled(_) => ApiError::Conflict(e.to_string()),
        StaffError::Store(e) => ApiError::StoreUnavailable(e.into()),
    }
}

async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StaffError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("store task failed: {e}")))?
        .map_err(staff_error)
}

async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller(&req, &state, Role::Admin).await?;
    let staff = state.staff.clone();
    let accounts = run(move || staff.list()).await?;
    Ok(HttpResponse::Ok().json(json!({ "accounts": accounts })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    email: String,
    role: String,
}

async fn add(
    req: HttpRequest,
    body: web::Json<AddRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = caller(&req, &state, Role::Admin).await?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::InvalidPayload(format!("no role {:?} (agent or admin)", body.role))
    })?;
    let staff = state.staff.clone();
    let email = body.email.clone();
    let now = (state.clock)();
    let (account, new) = run(move || staff.add(&email, role, now)).await?;
    tracing::info!(by = %by, account = %account.email, role = role.as_str(), new, "staff account saved");
    let body = json!({ "account": account, "created": new });
    Ok(if new {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

async fn disable(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = caller(&req, &state, Role::Admin).await?;
    let staff = state.staff.clone();
    let email = path.into_inner();
    let now = (state.clock)();
    let e = email.clone();
    let removed = run(move || staff.disable(&e, now)).await?;
    tracing::info!(by = %by, account = %email, removed, "staff account disabled");
    Ok(HttpResponse::Ok().json(json!({ "disabled": email.to_lowercase(), "removed": removed })))
}

async fn token(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = caller(&req, &state, Role::Admin).await?;
    let staff = state.staff.clone();
    let email = path.into_inner();
    let now = (state.clock)();
    let e = email.clone();
    let token = run(move || staff.issue_token(&e, now)).await?;
    tracing::info!(by = %by, account = %email, "staff API token issued");
    Ok(HttpResponse::Created().json(json!({ "email": email.to_lowercase(), "token": token })))
}
