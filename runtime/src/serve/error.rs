//! Errors of the server, each owning its HTTP status and gRPC code.
//!
//! Every failed REST request answers `{"error": "…"}` with the status the
//! KServe v2 protocol and mature servers use: 400 for input the client can
//! fix (the message names the field), 401/403 for keys, 404 for unknown
//! models and versions, 413/415 for bodies, 503 when not ready, 500 when the
//! module traps and 504 when it meets its deadline.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::registry::{InferError, RegistryError};
use crate::sandbox::SandboxError;

/// A failed request: a status and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

/// Longest message a client is sent, in bytes: a message that echoes what
/// the client sent must not grow with it.
pub(crate) const MAX_MESSAGE: usize = 1024;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE - 3;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        ApiError { status, message }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// The gRPC status for the same failure.
    pub fn to_status(&self) -> tonic::Status {
        use tonic::Code;
        let code = match self.status {
            StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::InvalidArgument,
            StatusCode::UNAUTHORIZED => Code::Unauthenticated,
            StatusCode::FORBIDDEN => Code::PermissionDenied,
            StatusCode::NOT_FOUND => Code::NotFound,
            StatusCode::CONFLICT => Code::FailedPrecondition,
            StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
            StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
            StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
            _ => Code::Internal,
        };
        tonic::Status::new(code, self.message.clone())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kiln\""),
            );
        }
        r
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let status = match &e {
            RegistryError::UnknownModel(_)
            | RegistryError::UnknownVersion { .. }
            | RegistryError::NotInRepository(_) => StatusCode::NOT_FOUND,
            RegistryError::NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
            RegistryError::Load { .. }
            | RegistryError::Import { .. }
            | RegistryError::File { .. }
            | RegistryError::Refused { .. }
            | RegistryError::NoMeta { .. }
            | RegistryError::NoVersionSelected { .. } => StatusCode::BAD_REQUEST,
            RegistryError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<InferError> for ApiError {
    fn from(e: InferError) -> Self {
        match e {
            InferError::Sandbox(e) => e.into(),
            e => ApiError::unavailable(e.to_string()),
        }
    }
}

impl From<SandboxError> for ApiError {
    fn from(e: SandboxError) -> Self {
        let status = match &e {
            SandboxError::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
            SandboxError::InputLen { .. } => StatusCode::BAD_REQUEST,
            SandboxError::PoolExhausted => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, format!("inference failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn statuses_follow_the_protocol() {
        let s = |e: ApiError| e.status.as_u16();
        assert_eq!(
            s(SandboxError::Deadline(Duration::from_secs(1)).into()),
            504
        );
        assert_eq!(s(SandboxError::Trap("unreachable".into()).into()), 500);
        assert_eq!(s(SandboxError::MemoryCap(1).into()), 500);
        assert_eq!(s(RegistryError::UnknownModel("x".into()).into()), 404);
        let e: ApiError = RegistryError::NotReady {
            model: "x".into(),
            reason: "r".into(),
        }
        .into();
        assert_eq!(e.to_status().code(), tonic::Code::Unavailable);
    }
}
