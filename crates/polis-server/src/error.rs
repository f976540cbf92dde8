//! The one error type every handler returns.
//!
//! Client errors (4xx) answer `{"status": "error", "error": {"code",
//! "field", "message"}}`, naming the offending field where there is one.
//! Server errors (5xx) are logged with their detail and a correlation id
//! and answered with the code `internal` and that id only, so internals
//! (store and IO error text) never leak and an operator can still find the
//! log line a client reports. A job that fails on the server's side (not
//! its plugin's) stores the same: [`internal_failure`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The error half of every answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, such as `policy.unknown`.
    pub code: String,
    /// The request field at fault, such as `policy_version`, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, for people.
    pub message: String,
    /// For an internal error: the id its log line carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl ErrorDetail {
    /// A client-facing detail without a correlation id.
    pub fn new(code: impl Into<String>, field: Option<String>, message: impl Into<String>) -> Self {
        ErrorDetail { code: code.into(), field, message: message.into(), correlation_id: None }
    }

    /// The error of a failed job, as stored; `None` unless it failed.
    pub fn of_job(row: &polis_store::JobRow) -> Option<Self> {
        (row.status == polis_store::JobStatus::Error).then(|| {
            ErrorDetail::new(
                row.error_code.clone().unwrap_or_else(|| "job.failed".to_owned()),
                None,
                row.error_message.clone().unwrap_or_default(),
            )
        })
    }
}

/// A new correlation id: `err-`, this process's start in epoch ms and a
/// counter, in hex. Unique per process run; it decides nothing.
pub fn correlation_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static START: OnceLock<i64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let start = *START.get_or_init(crate::now_ms);
    format!("err-{start:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A job failure on the server's side (a store or IO error): the detail is
/// logged with a correlation id, and the job stores only the code and the
/// id.
pub fn internal_failure(code: &str, detail: impl std::fmt::Display) -> crate::domain::JobFailure {
    let id = correlation_id();
    tracing::error!(code, correlation_id = %id, detail = %detail, "internal error in a job");
    crate::domain::JobFailure::new(code, format!("internal error {id}; the server log has the detail"))
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `error`.
    pub status: String,
    /// The error.
    pub error: ErrorDetail,
}

/// Why a request failed.
#[derive(Debug)]
pub enum AppError {
    /// A client error: the status, a stable code, the field and a message.
    Client {
        /// The HTTP status, 4xx.
        status: StatusCode,
        /// A stable code.
        code: &'static str,
        /// The field at fault.
        field: Option<String>,
        /// The message.
        message: String,
    },
    /// The caller's token asked too often; try again after
    /// `retry_after_secs` (sent as `Retry-After`).
    RateLimited {
        /// Seconds until a request would be admitted.
        retry_after_secs: u64,
        /// What was limited.
        message: String,
    },
    /// Something broke on our side; the detail is logged, not sent.
    Internal {
        /// A stable code.
        code: &'static str,
        /// The detail, for the log.
        detail: String,
    },
}

impl AppError {
    /// A 400 naming `field`.
    pub fn bad_request(code: &'static str, field: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        AppError::Client { status: StatusCode::BAD_REQUEST, code, field: field.into(), message: message.into() }
    }

    /// A 422: well-formed but not acceptable.
    pub fn unprocessable(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        AppError::Client {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// A 404 for something the request named.
    pub fn not_found(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        AppError::Client { status: StatusCode::NOT_FOUND, code, field: Some(field.to_owned()), message: message.into() }
    }

    /// A 409: the request conflicts with what is recorded.
    pub fn conflict(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        AppError::Client { status: StatusCode::CONFLICT, code, field: Some(field.to_owned()), message: message.into() }
    }

    /// A 401: no or an unknown token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        AppError::Client {
            status: StatusCode::UNAUTHORIZED,
            code: "auth.unauthorized",
            field: Some("authorization".to_owned()),
            message: message.into(),
        }
    }

    /// A 403: a valid token without the role.
    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::Client {
            status: StatusCode::FORBIDDEN,
            code: "auth.forbidden",
            field: Some("authorization".to_owned()),
            message: message.into(),
        }
    }

    /// A 500 whose detail is only logged.
    pub fn internal(code: &'static str, detail: impl std::fmt::Display) -> Self {
        AppError::Internal { code, detail: detail.to_string() }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Client { status, .. } => *status,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<polis_store::StoreError> for AppError {
    fn from(e: polis_store::StoreError) -> Self {
        AppError::internal(e.code(), e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, detail) = match self {
            AppError::Client { status, code, field, message } => (status, ErrorDetail::new(code, field, message)),
            AppError::RateLimited { retry_after_secs, message } => {
                retry_after = Some(retry_after_secs);
                (StatusCode::TOO_MANY_REQUESTS, ErrorDetail::new("request.rate_limited", None, message))
            }
            AppError::Internal { code, detail } => {
                let id = correlation_id();
                tracing::error!(code, correlation_id = %id, detail = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorDetail {
                        code: "internal".to_owned(),
                        field: None,
                        message: format!("internal error {id}; the server log has the detail"),
                        correlation_id: Some(id),
                    },
                )
            }
        };
        let mut response = (status, Json(ErrorBody { status: "error".to_owned(), error: detail })).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
