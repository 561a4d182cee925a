//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`): the pre-tokenizer regexes llama.cpp uses for
//! each `tokenizer.ggml.pre` (`llm_tokenizer_bpe` in llama.cpp's `src/llama-vocab.cpp`), the GPT-2
//! byte <-> unicode table, and the `tokenizers` pipeline: Split(regex, Isolated)* + ByteLevel ->
//! BPE(merges) -> ByteLevel decoder.

use std::collections::HashMap;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::TokenizerError;
use crate::spec::{TokenizerSpec, token_type};

/// The GPT-2 word regex (also the second half of many others).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's regex (tiktoken cl100k_base), case-insensitive contractions spelled out.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's regex: Llama 3's with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Mistral's Tekken regex, as in its tokenizer.json (oniguruma has the Unicode classes it needs).
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// GPT-4o / Llama 4's regex, as in their tokenizer.json.
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// BLOOM / Poro / GPT3-Finnish.
const BLOOM: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";

/// What a `tokenizer.ggml.pre` value implies: the regexes applied in turn (each splits every piece
/// the previous ones left, keeping matches and gaps), whether a whole pre-token found in the
/// vocabulary skips merging, and llama.cpp's default for `add_bos`.
#[derive(Debug, Clone)]
pub(crate) struct PreTokenizer {
    pub regexes: Vec<&'static str>,
    pub ignore_merges: bool,
    pub default_add_bos: bool,
}

impl PreTokenizer {
    /// Looks up llama.cpp's settings for `pre`; unknown names are an error naming them.
    pub(crate) fn for_pre(pre: Option<&str>) -> Result<Self, TokenizerError> {
        let plain = |regexes: Vec<&'static str>| Self {
            regexes,
            ignore_merges: false,
            default_add_bos: false,
        };
        let pre = pre.unwrap_or("default");
        Ok(match pre {
            "default" => plain(vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"]),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" => Self {
                regexes: vec![LLAMA3],
                ignore_merges: true,
                default_add_bos: true,
            },
            "dbrx" | "smaug-bpe" | "chatglm-bpe" | "glm4" => plain(vec![LLAMA3]),
            "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" | "exaone4" | "jina-es" | "jina-de" | "jina-v2-es"
            | "jina-v2-de" | "gigachat" | "trillion" | "granite-docling" => plain(vec![GPT2]),
            "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" => {
                plain(vec![r"\p{N}", GPT2])
            }
            "qwen2" | "stablelm2" | "deepseek-r1-qwen" | "megrez" | "hunyuan" => plain(vec![QWEN2]),
            "tekken" => Self {
                regexes: vec![TEKKEN],
                ignore_merges: true,
                default_add_bos: true,
            },
            "gpt-4o" | "llama4" => plain(vec![GPT4O]),
            "falcon" => plain(vec![r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"]),
            "deepseek-coder" => plain(vec![
                r"[\r\n]",
                r"\s?\p{L}+",
                r"\s?\p{P}+",
                "[一-龥ࠀ-一가-퟿]+",
                r"\p{N}",
            ]),
            "poro-chat" | "bloom" | "gpt3-finnish" => plain(vec![BLOOM]),
            "viking" => plain(vec![BLOOM, r"\p{N}"]),
            other => return Err(TokenizerError::UnsupportedPreTokenizer(other.to_string())),
        })
    }
}

/// GPT-2's `bytes_to_unicode`: byte -> the printable char that stands for it in the vocabulary.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + extra).unwrap_or('\0');
            extra += 1;
            c
        };
    }
    table
}

/// The inverse of [`byte_to_char_table`].
pub(crate) fn char_to_byte_map() -> HashMap<char, u8> {
    byte_to_char_table()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

/// The bytes a byte-level vocabulary entry stands for; chars outside the table (which a well-formed
/// vocabulary never has) keep their UTF-8 encoding.
pub(crate) fn byte_level_bytes(text: &str, map: &HashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match map.get(&c) {
            Some(&b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

/// Builds the plain-text `tokenizers` pipeline for a byte-level BPE spec. Control tokens are not
/// registered (plain text never produces them); user-defined tokens are, as non-special added tokens
/// that are always matched, as in llama.cpp.
pub(crate) fn build(spec: &TokenizerSpec, pre: &PreTokenizer) -> Result<tokenizers::Tokenizer, TokenizerError> {
    let vocab: tokenizers::models::bpe::Vocab = spec
        .tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), id as u32))
        .collect();
    let mut merges = Vec::with_capacity(spec.merges.len());
    for (index, rule) in spec.merges.iter().enumerate() {
        let (left, right) = rule.split_once(' ').ok_or_else(|| TokenizerError::BadMerge {
            index,
            rule: rule.clone(),
        })?;
        merges.push((left.to_string(), right.to_string()));
    }
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre.ignore_merges)
        .build()
        .map_err(|source| TokenizerError::Build {
            what: "byte-level BPE model",
            source,
        })?;

    let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(pre.regexes.len() + 1);
    for regex in &pre.regexes {
        let split = Split::new(
            SplitPattern::Regex((*regex).to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|source| TokenizerError::Build {
            what: "pre-tokenizer regex",
            source,
        })?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, false, false).into());

    let mut tokenizer = tokenizers::Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(steps)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    add_user_defined(&mut tokenizer, spec);
    Ok(tokenizer)
}

/// Registers `USER_DEFINED` tokens as non-special added tokens matched on the raw text.
pub(crate) fn add_user_defined(tokenizer: &mut tokenizers::Tokenizer, spec: &TokenizerSpec) {
    let added: Vec<AddedToken> = spec
        .tokens
        .iter()
        .enumerate()
        .filter(|&(id, t)| spec.token_type(id) == token_type::USER_DEFINED && !t.is_empty())
        .map(|(_, t)| AddedToken::from(t.clone(), false).normalized(false))
        .collect();
    if !added.is_empty() {
        tokenizer.add_tokens(&added);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_maps_space_to_g_dot_and_newline_to_c_dot() {
        let t = byte_to_char_table();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
        let inv = char_to_byte_map();
        assert_eq!(inv.len(), 256);
        assert_eq!(byte_level_bytes("Ġhi", &inv), b" hi");
    }

    #[test]
    fn unknown_pre_tokenizer_is_named_in_the_error() {
        let err = PreTokenizer::for_pre(Some("klingon")).unwrap_err();
        assert!(err.to_string().contains("klingon"), "{err}");
    }
}
