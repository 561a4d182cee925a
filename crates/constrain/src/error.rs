//! The crate's error type, and the mapping from llguidance's untyped (`anyhow`) compile errors to it.

/// Longest reason text kept from an llguidance message (they can quote whole grammars).
const MAX_REASON_CHARS: usize = 400;

/// Everything that can go wrong building or running a constraint.
///
/// `Unsupported`, `InvalidSchema` and `InvalidRegex` are the client's doing (HTTP 400); `Rejected` is a
/// caller bug (a token was sampled that the mask forbade); `Tokenizer` and `Internal` are ours.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConstrainError {
    /// The tokenizer cannot back a token mask (no end-of-generation token, empty vocabulary...).
    #[error("tokenizer unusable for constrained decoding: {reason}")]
    Tokenizer { reason: String },
    /// A JSON Schema keyword (or `format`) that llguidance cannot enforce. Never silently ignored.
    #[error("unsupported JSON Schema feature: {feature}")]
    Unsupported { feature: String },
    /// The schema is not a valid or satisfiable JSON Schema, or is too large to compile.
    #[error("invalid JSON Schema: {reason}")]
    InvalidSchema { reason: String },
    /// The regular expression does not parse or is too large to compile.
    #[error("invalid regex: {reason}")]
    InvalidRegex { reason: String },
    /// `consume` was given a token the constraint does not allow at this point.
    #[error("token {token} is not allowed by the constraint at this point")]
    Rejected { token: u32 },
    /// llguidance failed while computing a mask or advancing (e.g. a per-step work limit was hit).
    #[error("constraint engine error: {0}")]
    Internal(String),
}

/// What was being compiled when llguidance failed, so its message lands in the right variant.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source {
    JsonObject,
    JsonSchema,
    Regex,
}

/// Turns an llguidance compile error into a typed one. llguidance reports unsupported keywords as
/// `Unimplemented keys: ["uniqueItems"]` and unknown formats as `Unknown format: credit-card`
/// (both bail in non-lenient mode, which is the only mode this crate uses); those become
/// [`ConstrainError::Unsupported`] naming the feature.
pub(crate) fn classify(err: &dyn std::fmt::Display, source: Source) -> ConstrainError {
    let message = err.to_string();
    if let Some(feature) = unsupported_feature(&message) {
        return ConstrainError::Unsupported { feature };
    }
    let reason = truncate(&message);
    match source {
        Source::JsonSchema => ConstrainError::InvalidSchema { reason },
        Source::Regex => ConstrainError::InvalidRegex { reason },
        Source::JsonObject => ConstrainError::Internal(reason),
    }
}

/// The feature an llguidance message says it cannot enforce, if it says so.
fn unsupported_feature(message: &str) -> Option<String> {
    const KEYS: &str = "Unimplemented keys: ";
    const FORMAT: &str = "Unknown format: ";
    if let Some(at) = message.find(KEYS) {
        let rest = &message[at + KEYS.len()..];
        let list = rest.find(']').map_or(rest, |end| &rest[..=end]);
        // The list is Rust's Debug of `Vec<&str>`, which is JSON for plain keyword names.
        let keys = serde_json::from_str::<Vec<String>>(list).map_or_else(|_| list.to_string(), |keys| keys.join(", "));
        return Some(keys);
    }
    if let Some(at) = message.find(FORMAT) {
        let name = message[at + FORMAT.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default();
        return Some(format!("format: {name}"));
    }
    None
}

pub(crate) fn truncate(message: &str) -> String {
    match message.char_indices().nth(MAX_REASON_CHARS) {
        Some((end, _)) => format!("{}...", &message[..end]),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unimplemented_keys_become_unsupported_naming_each_key() {
        let err = classify(&r#"Unimplemented keys: ["not", "uniqueItems"]"#, Source::JsonSchema);
        assert_eq!(
            err,
            ConstrainError::Unsupported {
                feature: "not, uniqueItems".into()
            }
        );
    }

    #[test]
    fn unknown_format_becomes_unsupported_naming_the_format() {
        let err = classify(&"Unknown format: credit-card", Source::JsonSchema);
        assert_eq!(
            err,
            ConstrainError::Unsupported {
                feature: "format: credit-card".into()
            }
        );
    }

    #[test]
    fn other_messages_keep_their_source_and_are_truncated() {
        let long = "x".repeat(10_000);
        match classify(&long, Source::Regex) {
            ConstrainError::InvalidRegex { reason } => assert!(reason.len() < 500),
            other => panic!("unexpected {other:?}"),
        }
    }
}
