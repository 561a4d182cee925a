//! Loading a Hugging Face `tokenizer.json` (+ `tokenizer_config.json` for BOS/EOS, `add_bos_token`
//! and the chat template, or a `chat_template.jinja` beside it).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::spec::{EOG_TEXTS, eog_list};
use crate::{Parts, TokenizerError, bpe, spm};

/// The fields of `tokenizer_config.json` we use, as written (all optional).
#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    bos_token: Option<TokenText>,
    eos_token: Option<TokenText>,
    add_bos_token: Option<bool>,
    chat_template: Option<TemplateField>,
}

/// A special token in the config: a plain string or an `AddedToken` object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenText {
    Text(String),
    Object { content: String },
}

impl TokenText {
    fn text(&self) -> &str {
        match self {
            TokenText::Text(t) | TokenText::Object { content: t } => t,
        }
    }
}

/// `chat_template`: one template, or named templates of which we take `default`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Debug, Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

/// How vocabulary strings map to bytes, read off the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteScheme {
    ByteLevel,
    SentencePiece,
}

fn read(path: &Path) -> Result<String, TokenizerError> {
    std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn json<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T, TokenizerError> {
    serde_json::from_str(text).map_err(|source| TokenizerError::Json {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn load(tokenizer_json: &Path, config_json: Option<&Path>) -> Result<Parts, TokenizerError> {
    let text = read(tokenizer_json)?;
    let plain: tokenizers::Tokenizer = text.parse().map_err(|source| TokenizerError::TokenizerJson {
        path: tokenizer_json.to_path_buf(),
        source,
    })?;
    let raw: serde_json::Value = json(tokenizer_json, &text)?;
    let decoder = raw.get("decoder").map(|d| d.to_string()).unwrap_or_default();
    let scheme = if decoder.contains("ByteLevel") {
        ByteScheme::ByteLevel
    } else if decoder.contains("ByteFallback") || decoder.contains("Metaspace") || decoder.contains('▁') {
        ByteScheme::SentencePiece
    } else {
        return Err(TokenizerError::UnsupportedDecoder {
            path: tokenizer_json.to_path_buf(),
        });
    };
    let strip_space_prefix =
        scheme == ByteScheme::SentencePiece && (decoder.contains("Strip") || decoder.contains("Metaspace"));

    let config = match config_json {
        Some(path) => json::<TokenizerConfig>(path, &read(path)?)?,
        None => TokenizerConfig::default(),
    };

    let vocab = plain.get_vocab(true);
    let n = vocab.values().max().map_or(0, |&m| m as usize + 1);
    if n == 0 {
        return Err(TokenizerError::EmptyVocabulary);
    }
    let added = plain.get_added_tokens_decoder();
    let byte_map = bpe::char_to_byte_map();
    let mut pieces = vec![Vec::new(); n];
    let mut special_mask = vec![false; n];
    let mut special_tokens = Vec::new();
    for (id, slot) in pieces.iter_mut().enumerate() {
        let id32 = id as u32;
        if let Some(token) = added.get(&id32) {
            *slot = token.content.as_bytes().to_vec();
            if token.special {
                special_mask[id] = true;
                special_tokens.push((token.content.clone(), id32));
            }
        } else if let Some(token) = plain.id_to_token(id32) {
            *slot = match scheme {
                ByteScheme::ByteLevel => bpe::byte_level_bytes(&token, &byte_map),
                ByteScheme::SentencePiece => spm::piece_bytes(&token),
            };
        }
    }

    let lookup = |t: &Option<TokenText>| t.as_ref().and_then(|t| vocab.get(t.text()).copied());
    let bos = lookup(&config.bos_token);
    let eos = lookup(&config.eos_token);
    let add_bos = match (config.add_bos_token, bos) {
        (_, None) => false,
        (Some(add), Some(_)) => add,
        // Not stated: does the post-processor put BOS in front?
        (None, Some(bos)) => plain
            .encode_fast("a", true)
            .map(|e| e.get_ids().first() == Some(&bos))
            .unwrap_or(false),
    };
    let others = EOG_TEXTS.iter().filter_map(|t| vocab.get(*t).copied()).collect();

    let chat_template = match config.chat_template {
        Some(TemplateField::One(t)) => Some(t),
        Some(TemplateField::Named(list)) => list.into_iter().find(|t| t.name == "default").map(|t| t.template),
        None => sibling_template(config_json.unwrap_or(tokenizer_json))?,
    };

    Ok(Parts {
        plain,
        special_tokens,
        pieces,
        special_mask,
        bos,
        eos,
        eog: eog_list(eos, others),
        add_bos,
        strip_space_prefix,
        chat_template,
    })
}

/// `chat_template.jinja` in the same folder, where newer Hugging Face repositories keep it.
fn sibling_template(beside: &Path) -> Result<Option<String>, TokenizerError> {
    let path: PathBuf = beside.with_file_name("chat_template.jinja");
    if path.is_file() {
        read(&path).map(Some)
    } else {
        Ok(None)
    }
}
