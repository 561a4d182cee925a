//! The crate's error type: one variant per way building or using a tokenizer can fail, each naming
//! the key, file, token or template stage involved.

use std::path::PathBuf;

/// Boxed error of the `tokenizers` crate.
pub type HfError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong building a [`crate::Tokenizer`] or using it.
#[derive(thiserror::Error, Debug)]
pub enum TokenizerError {
    /// A metadata key the tokenizer needs is absent.
    #[error("tokenizer metadata key `{key}` is missing")]
    MissingKey { key: &'static str },

    /// A metadata key is present but holds a value of another type.
    #[error("tokenizer metadata key `{key}` should be {expected}")]
    WrongType { key: &'static str, expected: &'static str },

    /// `tokenizer.ggml.model` names a tokenizer family this crate does not build.
    #[error("unsupported tokenizer model `{0}` (supported: `gpt2` byte-level BPE, `llama` SentencePiece)")]
    UnsupportedModel(String),

    /// `tokenizer.ggml.pre` names a pre-tokenizer whose regexes this crate does not know.
    #[error("unsupported pre-tokenizer `{0}` for a byte-level BPE vocabulary")]
    UnsupportedPreTokenizer(String),

    /// A per-token array does not have one entry per token.
    #[error("`{key}` has {len} entries but the vocabulary has {vocab_size} tokens")]
    LengthMismatch {
        key: &'static str,
        len: usize,
        vocab_size: usize,
    },

    /// A special-token id points past the end of the vocabulary.
    #[error("`{key}` = {id} is outside the vocabulary of {vocab_size} tokens")]
    IdOutOfRange {
        key: &'static str,
        id: u64,
        vocab_size: usize,
    },

    /// The vocabulary is empty.
    #[error("the vocabulary has no tokens")]
    EmptyVocabulary,

    /// A BPE merge rule is not two space-separated tokens of the vocabulary.
    #[error("merge rule #{index} `{rule}` is not two space-separated tokens")]
    BadMerge { index: usize, rule: String },

    /// The `tokenizers` crate rejected the model we assembled.
    #[error("building the {what} failed")]
    Build {
        what: &'static str,
        #[source]
        source: HfError,
    },

    /// The chat template failed to parse or to render.
    #[error("chat template {stage} failed: {source:#}")]
    Template {
        stage: &'static str,
        #[source]
        source: minijinja::Error,
    },

    /// The chat template transformed message contents beyond trimming, so the contents could not be
    /// located in its output to keep special-token text inside them literal.
    #[error("chat template altered message contents beyond trimming; cannot locate them in its output")]
    TemplateAlteredContent,

    /// A chat message role contains the text of a special token (roles are rendered as template
    /// text, where special tokens are parsed).
    #[error("message role `{role}` contains special-token text")]
    SpecialTokenInRole { role: String },

    /// The underlying tokenizer failed to encode text.
    #[error("encoding text failed")]
    Encode {
        #[source]
        source: HfError,
    },

    /// A token id to decode is not in the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    Decode { id: u32, vocab_size: usize },

    /// A file could not be read.
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file could not be parsed.
    #[error("parsing {path}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A `tokenizer.json` could not be loaded by the `tokenizers` crate.
    #[error("loading {path}")]
    TokenizerJson {
        path: PathBuf,
        #[source]
        source: HfError,
    },

    /// A `tokenizer.json` whose decoder is neither byte-level nor SentencePiece-style, so token
    /// bytes cannot be derived.
    #[error("unsupported tokenizer.json decoder in {path}: need ByteLevel or SentencePiece-style (▁, byte fallback)")]
    UnsupportedDecoder { path: PathBuf },
}
