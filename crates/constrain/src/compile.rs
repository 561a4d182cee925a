//! Building constraints: the per-tokenizer llguidance token trie and parser factory, and the
//! compilation of a [`Constraint`] (JSON object, JSON Schema, regex) into a fresh [`Matcher`].

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};
use llguidance::{JsonCompileOptions, ParserFactory};
use serde_json::Value;

use crate::error::{ConstrainError, Source, classify};
use crate::matcher::Matcher;

/// Separator after `,` in arrays and objects: a comma and at most one space. A regex (llguidance
/// reads separators as regexes). With `whitespace_flexible: false` nothing else may hold whitespace,
/// so the model can neither loop on blanks nor pad the output: both `{"a":1,"b":2}` and
/// `{"a": 1, "b": 2}` (Python's `json.dumps` style, common in training data) are allowed.
const ITEM_SEPARATOR: &str = ", ?";
/// Separator after an object key: a colon and at most one space (see [`ITEM_SEPARATOR`]).
const KEY_SEPARATOR: &str = ": ?";
/// The key llguidance reads its JSON options from; reserved for this crate (it could turn
/// lenient mode, which drops unsupported keywords, back on).
const X_GUIDANCE: &str = "x-guidance";

/// What the generated text must be.
#[derive(Clone, Debug, PartialEq)]
pub enum Constraint {
    /// Any JSON object (Ollama `format: "json"`, OpenAI `response_format: {"type": "json_object"}`).
    JsonObject,
    /// A JSON value valid against this JSON Schema (Ollama `format: {schema}`, OpenAI `json_schema`).
    JsonSchema(Value),
    /// Text fully matching this regular expression (Rust `regex` syntax; anchored at both ends).
    Regex(String),
}

/// Builds [`Matcher`]s for one tokenizer. Construction walks the whole vocabulary (tens of ms), so
/// build it once per model and share it; `compile` is cheap enough to run per request.
pub struct ConstraintCompiler {
    factory: Arc<ParserFactory>,
    vocab_size: usize,
    eog: Arc<[u32]>,
}

impl std::fmt::Debug for ConstraintCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintCompiler")
            .field("vocab_size", &self.vocab_size)
            .field("eog", &self.eog)
            .finish_non_exhaustive()
    }
}

impl ConstraintCompiler {
    /// Builds llguidance's token trie from the tokenizer's byte table. Special (control) tokens
    /// and end-of-generation tokens are marked with llguidance's special-token prefix byte, so
    /// their text (`<|im_end|>`) can never be produced as content; the end-of-generation tokens
    /// are the ones allowed once the output is complete.
    pub fn new(tokenizer: &airlock_tokenizer::Tokenizer) -> Result<Self, ConstrainError> {
        let table = tokenizer.token_bytes_table();
        let vocab_size = table.len();
        let vocab_u32 = u32::try_from(vocab_size)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| ConstrainError::Tokenizer {
                reason: format!("vocabulary size {vocab_size}"),
            })?;
        let eog = dedup_keep_order(
            tokenizer
                .eos_id()
                .into_iter()
                .chain(tokenizer.eog_ids().iter().copied()),
        );
        if let Some(&bad) = eog.iter().find(|&&id| id >= vocab_u32) {
            return Err(ConstrainError::Tokenizer {
                reason: format!("end-of-generation token {bad} outside the vocabulary of {vocab_size}"),
            });
        }
        let Some(&eos) = eog.first() else {
            return Err(ConstrainError::Tokenizer {
                reason: "no end-of-generation token".into(),
            });
        };
        let words: Vec<Vec<u8>> = table
            .iter()
            .enumerate()
            .map(|(id, bytes)| {
                let id = id as u32;
                if tokenizer.is_special(id) || eog.contains(&id) {
                    let mut word = Vec::with_capacity(bytes.len() + 1);
                    word.push(TokTrie::SPECIAL_TOKEN_MARKER);
                    word.extend_from_slice(bytes);
                    word
                } else {
                    bytes.clone()
                }
            })
            .collect();
        let trie = TokTrie::from(&TokRxInfo::new(vocab_u32, eos), &words).with_eos_tokens(&eog);
        // Greedy tokenization is only used for fast-forward tokens, which this crate never asks for.
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| ConstrainError::Internal(e.to_string()))?;
        factory.quiet();
        // Errors must not quote the grammar or the tokens generated so far back to a client.
        factory.limits_mut().verbose_errors = false;
        Ok(Self {
            factory: Arc::new(factory),
            vocab_size,
            eog: eog.into(),
        })
    }

    /// The vocabulary size masks are computed over.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The end-of-generation tokens a finished constraint allows (EOS first).
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// Compiles a constraint into a fresh per-request [`Matcher`]. Schema features llguidance
    /// cannot enforce are errors ([`ConstrainError::Unsupported`]), never silently dropped.
    pub fn compile(&self, constraint: &Constraint) -> Result<Matcher, ConstrainError> {
        let (grammar, source) = match constraint {
            Constraint::JsonObject => (
                json_grammar(serde_json::json!({ "type": "object" }))?,
                Source::JsonObject,
            ),
            Constraint::JsonSchema(schema) => (json_grammar(schema.clone())?, Source::JsonSchema),
            Constraint::Regex(regex) => (TopLevelGrammar::from_regex(regex), Source::Regex),
        };
        let parser = self.factory.create_parser(grammar).map_err(|e| classify(&e, source))?;
        Matcher::new(
            llguidance::Matcher::new(Ok(parser)),
            self.vocab_size,
            Arc::clone(&self.eog),
        )
    }
}

/// Wraps a JSON Schema with this crate's llguidance options: strict (no lenient mode) and bounded
/// whitespace (see [`ITEM_SEPARATOR`]).
fn json_grammar(schema: Value) -> Result<TopLevelGrammar, ConstrainError> {
    let mut schema = match schema {
        Value::Object(map) => map,
        // `true` is the schema that accepts everything; `{}` says the same in object form.
        Value::Bool(true) => serde_json::Map::new(),
        Value::Bool(false) => {
            return Err(ConstrainError::InvalidSchema {
                reason: "the schema `false` accepts no value".into(),
            });
        }
        other => {
            return Err(ConstrainError::InvalidSchema {
                reason: format!("a schema must be an object or a boolean, not {}", json_kind(&other)),
            });
        }
    };
    if schema.contains_key(X_GUIDANCE) {
        return Err(ConstrainError::Unsupported {
            feature: X_GUIDANCE.into(),
        });
    }
    let options = JsonCompileOptions {
        item_separator: ITEM_SEPARATOR.into(),
        key_separator: KEY_SEPARATOR.into(),
        whitespace_flexible: false,
        whitespace_pattern: None,
        lenient: false,
        ..JsonCompileOptions::default()
    };
    let options = serde_json::to_value(&options).map_err(|e| ConstrainError::Internal(e.to_string()))?;
    schema.insert(X_GUIDANCE.into(), options);
    Ok(TopLevelGrammar::from_json_schema(Value::Object(schema)))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn dedup_keep_order(ids: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut out = Vec::new();
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}
