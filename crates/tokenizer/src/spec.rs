//! `TokenizerSpec`: the tokenizer as GGUF metadata describes it (`tokenizer.ggml.*` and
//! `tokenizer.chat_template`), parsed as-is with optional fields, and its resolution into the defaults
//! llama.cpp applies (`llama_vocab::impl::load` in llama.cpp's `src/llama-vocab.cpp`).

use crate::TokenizerError;

/// llama.cpp's `llama_token_type` values stored in `tokenizer.ggml.token_type`.
pub mod token_type {
    /// An ordinary vocabulary entry.
    pub const NORMAL: i32 = 1;
    /// The unknown token.
    pub const UNKNOWN: i32 = 2;
    /// A control token (`<|im_start|>`, `<s>`): only parsed from text in special mode.
    pub const CONTROL: i32 = 3;
    /// A user-defined token: always matched in text as a whole.
    pub const USER_DEFINED: i32 = 4;
    /// An unused slot.
    pub const UNUSED: i32 = 5;
    /// A SentencePiece byte-fallback token `<0xNN>`.
    pub const BYTE: i32 = 6;
}

/// The tokenizer family (`tokenizer.ggml.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// `gpt2`: byte-level BPE with merges and a regex pre-tokenizer.
    ByteLevelBpe,
    /// `llama`: SentencePiece with scores, `▁` for space and `<0xNN>` byte fallback.
    SentencePiece,
}

impl ModelKind {
    /// Maps a `tokenizer.ggml.model` value; anything else is an error naming it.
    pub fn parse(model: &str) -> Result<Self, TokenizerError> {
        match model {
            "gpt2" => Ok(Self::ByteLevelBpe),
            "llama" => Ok(Self::SentencePiece),
            other => Err(TokenizerError::UnsupportedModel(other.to_string())),
        }
    }
}

/// Tokenizer metadata as stored in a GGUF file: every field optional where the file may omit it.
#[derive(Debug, Clone, Default)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`: `gpt2` or `llama`.
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer name (byte-level BPE only).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, indexed by token id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type` (see [`token_type`]); empty means all normal.
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.scores` (SentencePiece); empty means none.
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.merges` as `"left right"` (byte-level BPE).
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<u64>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<u64>,
    /// `tokenizer.ggml.eot_token_id`.
    pub eot_id: Option<u64>,
    /// `tokenizer.ggml.eom_token_id`.
    pub eom_id: Option<u64>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk_id: Option<u64>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad_id: Option<u64>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece).
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

/// Token texts that end generation wherever they occur in a vocabulary, after llama.cpp's list in
/// `llama_vocab::impl::load` (special_eog_ids).
pub const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<｜end▁of▁sentence｜>",
    "<|return|>",
    "<|call|>",
];

/// The spec with every default applied and every id checked against the vocabulary.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    /// eos first, then eot/eom and every token whose text is in [`EOG_TEXTS`], ascending.
    pub eog: Vec<u32>,
    pub add_bos: bool,
    pub add_space_prefix: bool,
}

impl TokenizerSpec {
    /// The token type of `id` (normal when the file carries no types).
    pub(crate) fn token_type(&self, id: usize) -> i32 {
        self.token_types.get(id).copied().unwrap_or(token_type::NORMAL)
    }

    /// Checks array lengths and resolves the special ids and flags. `default_add_bos` is what the
    /// model family / pre-tokenizer implies when the file does not say.
    pub(crate) fn resolve(&self, default_add_bos: bool) -> Result<ResolvedIds, TokenizerError> {
        let n = self.tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocabulary);
        }
        for (key, len) in [
            ("tokenizer.ggml.token_type", self.token_types.len()),
            ("tokenizer.ggml.scores", self.scores.len()),
        ] {
            if len != 0 && len != n {
                return Err(TokenizerError::LengthMismatch {
                    key,
                    len,
                    vocab_size: n,
                });
            }
        }
        let check = |key: &'static str, id: Option<u64>| -> Result<Option<u32>, TokenizerError> {
            match id {
                None => Ok(None),
                Some(id) if (id as usize) < n => Ok(Some(id as u32)),
                Some(id) => Err(TokenizerError::IdOutOfRange { key, id, vocab_size: n }),
            }
        };
        let bos = check("tokenizer.ggml.bos_token_id", self.bos_id)?;
        let eos = check("tokenizer.ggml.eos_token_id", self.eos_id)?;
        let eot = check("tokenizer.ggml.eot_token_id", self.eot_id)?;
        let eom = check("tokenizer.ggml.eom_token_id", self.eom_id)?;
        let unk = check("tokenizer.ggml.unknown_token_id", self.unk_id)?;
        check("tokenizer.ggml.padding_token_id", self.pad_id)?;

        let mut others: Vec<u32> = eot.into_iter().chain(eom).collect();
        for (id, text) in self.tokens.iter().enumerate() {
            if EOG_TEXTS.contains(&text.as_str()) {
                others.push(id as u32);
            }
        }
        Ok(ResolvedIds {
            bos,
            eos,
            unk,
            eog: eog_list(eos, others),
            add_bos: self.add_bos.unwrap_or(default_add_bos) && bos.is_some(),
            add_space_prefix: self.add_space_prefix.unwrap_or(true),
        })
    }
}

/// eos first, then the other end-of-generation ids sorted and without duplicates.
pub(crate) fn eog_list(eos: Option<u32>, mut others: Vec<u32>) -> Vec<u32> {
    others.sort_unstable();
    others.dedup();
    others.retain(|&id| Some(id) != eos);
    eos.into_iter().chain(others).collect()
}
