//! HTTP errors: stable snake_case codes mapped to statuses, answered as
//! `{ "error": { "code", "message" } }`. 4xx bodies explain; 5xx bodies are
//! opaque and the cause chain goes to the log.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or malformed bearer token")]
    Unauthorized,
    #[error("this token may not do that")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("message body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("content type {0:?} is not accepted; send message/rfc822")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    InvalidPayload(String),
    #[error("the request body did not arrive within {0:?}")]
    RequestTimeout(std::time::Duration),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    RulesInvalid {
        message: String,
        diagnostics: Vec<String>,
    },
    #[error("every evaluation thread is busy; retry later")]
    Overloaded,
    #[error("the store is not available; retry later")]
    StoreUnavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// The stable code clients and the gateway match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::TooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::InvalidPayload(_) => "invalid_payload",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Conflict(_) => "conflict",
            ApiError::RulesInvalid { .. } => "rules_invalid",
            ApiError::Overloaded => "overloaded",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::InvalidPayload(_) | ApiError::RulesInvalid { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::StoreUnavailable(_) | ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = ?anyhow_chain(self), "request failed");
        }
        let mut body = json!({ "error": { "code": self.code(), "message": self.to_string() } });
        if let ApiError::RulesInvalid { diagnostics, .. } = self {
            body["error"]["diagnostics"] = json!(diagnostics);
        }
        let mut resp = HttpResponse::build(status);
        if matches!(self, ApiError::Unauthorized) {
            resp.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if matches!(self, ApiError::StoreUnavailable(_) | ApiError::Overloaded) {
            resp.insert_header(("Retry-After", "5"));
        }
        resp.json(body)
    }
}

fn anyhow_chain(e: &ApiError) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
