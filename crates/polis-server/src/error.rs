//! The one error type every handler returns.
//!
//! Client errors (4xx) answer `{"status": "error", "error": {"code",
//! "field", "message"}}`, naming the offending field where there is one.
//! Server errors (5xx) are logged with their detail and answered with a
//! generic message, so internals never leak.

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
        let (status, detail) = match self {
            AppError::Client { status, code, field, message } => {
                (status, ErrorDetail { code: code.to_owned(), field, message })
            }
            AppError::Internal { code, detail } => {
                tracing::error!(code, detail = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorDetail {
                        code: "internal".to_owned(),
                        field: None,
                        message: "internal error; the server log has the detail".to_owned(),
                    },
                )
            }
        };
        let mut response = (status, Json(ErrorBody { status: "error".to_owned(), error: detail })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
