//! SentencePiece vocabularies (`tokenizer.ggml.model = "llama"`: Llama 2, TinyLlama, Mistral v0.1):
//! a `tokenizers` BPE with byte fallback whose merges are derived from the piece scores, the way
//! Hugging Face's `LlamaConverter` builds `LlamaTokenizerFast`, which reproduces llama.cpp's
//! `llm_tokenizer_spm` (repeatedly join the adjacent pair whose concatenation is the highest-scoring
//! piece; characters missing from the vocabulary become `<0xNN>` byte tokens). Normalizer:
//! Prepend("▁") (when `add_space_prefix`) + Replace(" ", "▁"); decoder: Replace + ByteFallback +
//! Fuse + Strip.

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::{DecoderWrapper, NormalizerWrapper};

use crate::TokenizerError;
use crate::spec::TokenizerSpec;

/// SentencePiece's word-boundary mark, standing for a space.
pub(crate) const SPACE_MARK: &str = "▁";

/// Merge rules `(left, right)` for every split of every piece into two pieces of the vocabulary,
/// ordered by the score of the joined piece (best first), then by its id.
pub(crate) fn derive_merges(tokens: &[String], scores: &[f32]) -> Vec<(String, String)> {
    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    for (id, t) in tokens.iter().enumerate() {
        ids.insert(t.as_str(), id);
    }
    // (score of joined piece, joined id, left id, left, right)
    let mut found: Vec<(f32, usize, usize, &str, &str)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        let score = scores.get(id).copied().unwrap_or(0.0);
        for (split, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(split);
            if let (Some(&l), Some(_)) = (ids.get(left), ids.get(right)) {
                found.push((score, id, l, left, right));
            }
        }
    }
    found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    found
        .into_iter()
        .map(|(_, _, _, l, r)| (l.to_string(), r.to_string()))
        .collect()
}

/// The bytes a SentencePiece piece stands for: `<0xNN>` is byte NN, `▁` is a space.
pub(crate) fn piece_bytes(piece: &str) -> Vec<u8> {
    if let Some(b) = parse_byte_piece(piece) {
        return vec![b];
    }
    piece.replace(SPACE_MARK, " ").into_bytes()
}

/// Parses a byte-fallback piece `<0xNN>`.
pub(crate) fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Builds the plain-text `tokenizers` pipeline for a SentencePiece spec.
pub(crate) fn build(
    spec: &TokenizerSpec,
    unk: Option<u32>,
    add_space_prefix: bool,
) -> Result<tokenizers::Tokenizer, TokenizerError> {
    let vocab: tokenizers::models::bpe::Vocab = spec
        .tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), id as u32))
        .collect();
    let merges = derive_merges(&spec.tokens, &spec.scores);
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk.and_then(|id| spec.tokens.get(id as usize)) {
        builder = builder.unk_token(unk.clone());
    }
    let model = builder.build().map_err(|source| TokenizerError::Build {
        what: "SentencePiece BPE model",
        source,
    })?;

    let replace = Replace::new(" ", SPACE_MARK).map_err(|source| TokenizerError::Build {
        what: "normalizer",
        source,
    })?;
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if add_space_prefix {
        normalizers.push(Prepend::new(SPACE_MARK.to_string()).into());
    }
    normalizers.push(replace.into());

    let decode_replace =
        tokenizers::decoders::DecoderWrapper::Replace(Replace::new(SPACE_MARK, " ").map_err(|source| {
            TokenizerError::Build {
                what: "decoder",
                source,
            }
        })?);
    let mut decoders: Vec<DecoderWrapper> = vec![decode_replace, ByteFallback::new().into(), Fuse::new().into()];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }

    let mut tokenizer = tokenizers::Tokenizer::new(model);
    tokenizer.with_normalizer(Some(NormalizerSequence::new(normalizers)));
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    crate::bpe::add_user_defined(&mut tokenizer, spec);
    Ok(tokenizer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_the_score_of_the_joined_piece() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"].map(String::from).to_vec();
        let scores = [0.0, 0.0, 0.0, -2.0, -1.0, -0.5];
        let merges = derive_merges(&tokens, &scores);
        assert_eq!(
            merges,
            vec![
                ("a".into(), "bc".into()),
                ("ab".into(), "c".into()),
                ("b".into(), "c".into()),
                ("a".into(), "b".into()),
            ]
        );
    }

    #[test]
    fn byte_pieces_and_space_marks_become_bytes() {
        assert_eq!(piece_bytes("<0x0A>"), b"\n");
        assert_eq!(piece_bytes("▁the"), b" the");
        assert_eq!(piece_bytes("<0xZZ>"), b"<0xZZ>");
    }
}
