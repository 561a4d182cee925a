//! Reads a [`TokenizerSpec`] from GGUF metadata: the `tokenizer.ggml.*` keys llama.cpp's
//! `convert_hf_to_gguf.py` writes, and `tokenizer.chat_template`.

use airlock_gguf::{GgufFile, Value};

use crate::{TokenizerError, TokenizerSpec};

/// Collects the tokenizer keys of `file`; only `tokenizer.ggml.model` and `tokenizer.ggml.tokens`
/// are required.
pub(crate) fn spec_from_gguf(file: &GgufFile) -> Result<TokenizerSpec, TokenizerError> {
    let model = string(file, "tokenizer.ggml.model")?.ok_or(TokenizerError::MissingKey {
        key: "tokenizer.ggml.model",
    })?;
    let tokens = array(file, "tokenizer.ggml.tokens", "an array of strings", |v| {
        v.as_str().map(str::to_owned)
    })?
    .ok_or(TokenizerError::MissingKey {
        key: "tokenizer.ggml.tokens",
    })?;
    Ok(TokenizerSpec {
        model,
        pre: string(file, "tokenizer.ggml.pre")?,
        tokens,
        token_types: array(file, "tokenizer.ggml.token_type", "an array of integers", |v| {
            v.as_i64().and_then(|t| i32::try_from(t).ok())
        })?
        .unwrap_or_default(),
        scores: array(file, "tokenizer.ggml.scores", "an array of floats", Value::as_f32)?.unwrap_or_default(),
        merges: array(file, "tokenizer.ggml.merges", "an array of strings", |v| {
            v.as_str().map(str::to_owned)
        })?
        .unwrap_or_default(),
        bos_id: id(file, "tokenizer.ggml.bos_token_id")?,
        eos_id: id(file, "tokenizer.ggml.eos_token_id")?,
        eot_id: id(file, "tokenizer.ggml.eot_token_id")?,
        eom_id: id(file, "tokenizer.ggml.eom_token_id")?,
        unk_id: id(file, "tokenizer.ggml.unknown_token_id")?,
        pad_id: id(file, "tokenizer.ggml.padding_token_id")?,
        add_bos: flag(file, "tokenizer.ggml.add_bos_token")?,
        add_eos: flag(file, "tokenizer.ggml.add_eos_token")?,
        add_space_prefix: flag(file, "tokenizer.ggml.add_space_prefix")?,
        chat_template: string(file, "tokenizer.chat_template")?,
    })
}

fn string(file: &GgufFile, key: &'static str) -> Result<Option<String>, TokenizerError> {
    file.get(key)
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or(TokenizerError::WrongType {
                key,
                expected: "a string",
            })
        })
        .transpose()
}

fn flag(file: &GgufFile, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    file.get(key)
        .map(|v| {
            v.as_bool().ok_or(TokenizerError::WrongType {
                key,
                expected: "a bool",
            })
        })
        .transpose()
}

/// A token id. llama.cpp writes -1 (as a signed or wrapped unsigned value) for "none".
fn id(file: &GgufFile, key: &'static str) -> Result<Option<u64>, TokenizerError> {
    let Some(v) = file.get(key) else {
        return Ok(None);
    };
    match v.as_i64() {
        Some(id) if id >= 0 && id < i64::from(u32::MAX) => Ok(Some(id as u64)),
        Some(_) => Ok(None),
        None if v.as_u64().is_some() => Ok(None),
        None => Err(TokenizerError::WrongType {
            key,
            expected: "an integer token id",
        }),
    }
}

fn array<T>(
    file: &GgufFile,
    key: &'static str,
    expected: &'static str,
    each: impl Fn(&Value) -> Option<T>,
) -> Result<Option<Vec<T>>, TokenizerError> {
    let Some(v) = file.get(key) else {
        return Ok(None);
    };
    let items = v.as_array().ok_or(TokenizerError::WrongType { key, expected })?;
    items
        .iter()
        .map(|item| each(item).ok_or(TokenizerError::WrongType { key, expected }))
        .collect::<Result<Vec<T>, _>>()
        .map(Some)
}
