//! Who is calling a staff or admin JSON route, and may they: the one place a
//! request is resolved to the `by` that events and audits record, and to a role.
//!
//! - a named account's API token (`intake staff token EMAIL`): `staff:<email>`,
//!   with the account's role, refused at once when the account is disabled;
//! - the shared `auth.staff_token`: an agent recorded as `api`;
//! - the shared `auth.admin_token`: an admin recorded as `admin`.
//!
//! A `by` in a request body is never believed (routes refuse it).

use actix_web::{web, HttpRequest};

use super::app::AppState;
use super::error::ApiError;
use super::handlers::{bearer, same};
pub use crate::staff::Role;

/// The `by` of the caller, when it holds `role` (an admin holds both).
///
/// # Errors
/// No bearer token (401); an unknown token, a disabled account's, or one
/// without the role (403); the store cannot be read (503).
pub async fn caller(req: &HttpRequest, state: &AppState, role: Role) -> Result<String, ApiError> {
    let Some(token) = bearer(req) else {
        return Err(ApiError::Unauthorized);
    };
    let (by, has) = if same(token, &state.tokens.admin) {
        ("admin".to_owned(), Role::Admin)
    } else if same(token, &state.tokens.staff) {
        ("api".to_owned(), Role::Agent)
    } else if token.starts_with(crate::staff::TOKEN_PREFIX) {
        let staff = state.staff.clone();
        let t = token.to_owned();
        let account = web::block(move || staff.by_token(&t))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("store task failed: {e}")))?
            .map_err(|e| ApiError::StoreUnavailable(e.into()))?;
        let Some(account) = account else {
            return Err(ApiError::Forbidden);
        };
        (account.by(), account.role)
    } else {
        return Err(ApiError::Forbidden);
    };
    if has.covers(role) {
        Ok(by)
    } else {
        Err(ApiError::Forbidden)
    }
}
