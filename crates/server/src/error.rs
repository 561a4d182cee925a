//! The server's one error type and its mapping to HTTP: one exhaustive match gives each variant
//! its status and a stable code (as TGI's `From<InferError>` does). Bodies are
//! `{"error": "<message>", "code": "<code>"}`, the shape Ollama's clients read; internal faults
//! are logged and answered with a fixed message, never their details.

use airlock_constrain::ConstrainError;
use airlock_engine::EngineError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Seconds a client is told to wait when the queue is full.
const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON of the expected shape.
    #[error("invalid request body: {0}")]
    BadJson(String),
    /// A field has a value out of range or that cannot be honoured.
    #[error("{0}")]
    BadRequest(String),
    /// A JSON Schema keyword the constraint engine cannot enforce.
    #[error("unsupported JSON Schema feature: {feature}")]
    UnsupportedSchema { feature: String },
    #[error("model '{0}' not found")]
    ModelNotFound(String),
    #[error("adapter '{0}' not found")]
    AdapterNotFound(String),
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// The adapter files are unreadable, malformed, do not fit the base or fail their checksum.
    #[error("adapter refused: {0}")]
    BadAdapter(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("missing or wrong API key")]
    Unauthorized,
    #[error("the server is busy; retry later")]
    Overloaded,
    #[error("the request took longer than the server's timeout")]
    Timeout,
    /// The model store could not fetch or find something.
    #[error("{0}")]
    Store(String),
    /// A fault of ours; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// Status and stable machine-readable code of each variant.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::UnsupportedSchema { .. } => (StatusCode::BAD_REQUEST, "unsupported_schema"),
            ApiError::ModelNotFound(_) => (StatusCode::NOT_FOUND, "model_not_found"),
            ApiError::AdapterNotFound(_) => (StatusCode::NOT_FOUND, "adapter_not_found"),
            ApiError::RouteNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadAdapter(_) => (StatusCode::BAD_REQUEST, "invalid_adapter"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ApiError::Store(_) => (StatusCode::BAD_GATEWAY, "store_error"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The JSON body (also used for an error inside a stream).
    pub fn body(&self) -> serde_json::Value {
        if let ApiError::Internal(detail) = self {
            eprintln!("{}", serde_json::json!({"level": "error", "internal": detail}));
        }
        serde_json::json!({"error": self.to_string(), "code": self.status_and_code().1})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        let mut response = (status, axum::Json(self.body())).into_response();
        if matches!(self, ApiError::Overloaded) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::EmptyPrompt | EngineError::PromptTooLong { .. } => ApiError::BadRequest(e.to_string()),
            EngineError::QueueFull => ApiError::Overloaded,
            EngineError::Timeout => ApiError::Timeout,
            EngineError::Constraint(c) => c.into(),
            EngineError::Stopped | EngineError::Tokenizer(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<ConstrainError> for ApiError {
    fn from(e: ConstrainError) -> Self {
        match e {
            ConstrainError::Unsupported { feature } => ApiError::UnsupportedSchema { feature },
            ConstrainError::InvalidSchema { .. } | ConstrainError::InvalidRegex { .. } => {
                ApiError::BadRequest(e.to_string())
            }
            ConstrainError::Tokenizer { .. } | ConstrainError::Rejected { .. } | ConstrainError::Internal(_) => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl From<airlock_tokenizer::TokenizerError> for ApiError {
    /// Tokenizing a request fails only on input the template or vocabulary rejects.
    fn from(e: airlock_tokenizer::TokenizerError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("a blocking task failed: {e}"))
    }
}
