//! The dashboard's error answers: a status and a sentence, as JSON `{"error": "..."}`. The page
//! shows the sentence as text, never as markup.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> ApiError {
        use crate::Error as E;
        let status = match &e {
            E::UnknownSweep(_) | E::NotFound(_) | E::UnknownAgent(_) | E::NoSuchAgent(_) => StatusCode::NOT_FOUND,
            E::PermissionDenied(_) => StatusCode::FORBIDDEN,
            E::InvalidArgument(_) | E::Refused(_) => StatusCode::BAD_REQUEST,
            E::Conflict(_) | E::StaleLease(_) | E::TrialFinished { .. } => StatusCode::CONFLICT,
            E::Store(_) | E::Results(_) | E::Io(_) | E::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}
