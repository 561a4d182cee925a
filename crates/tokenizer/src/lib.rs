//! airlock's tokenizer: a Hugging Face `tokenizers` pipeline built from GGUF metadata (or loaded from
//! a `tokenizer.json`), with llama.cpp's conventions for special tokens, chat templates rendered by
//! minijinja, an incremental UTF-8-safe detokenizer and the byte table constrained decoding needs.
//!
//! # Design decisions
//!
//! * **Two encoding modes, one splitter.** Special-token text (control tokens such as
//!   `<|im_start|>`) is found by our own leftmost-longest matcher (module `special`); the text between
//!   matches is encoded by a `tokenizers` pipeline that never produces control tokens. [`Tokenizer::encode`]
//!   skips the matcher (plain text: `"<|im_start|>"` becomes `<`, `|`, `im`, ...), while
//!   [`Tokenizer::encode_with_special`] uses it (llama.cpp's `parse_special`, Ollama's `raw`).
//!   User-defined tokens (GGUF token type 4) are always matched, as in llama.cpp.
//! * **Special tokens only where the template puts them.** [`Tokenizer::apply_chat_template`]
//!   renders the template with each message content replaced by a private-use marker, then puts the
//!   contents back while recording where they are; special tokens are searched for only outside
//!   those ranges. Text runs that mix template text and content are encoded in one piece, so the
//!   tokens are exactly those of `encode_with_special` on the rendered string whenever the contents
//!   hold no special-token text. See [`chat`].
//! * **Decoding is ours, not the pipeline's.** Each token's bytes are computed once
//!   ([`Tokenizer::token_bytes`]: byte-level BPE chars mapped back to bytes; SentencePiece `▁` to a
//!   space and `<0xNN>` to the byte; control tokens to their text). [`Tokenizer::decode`] joins them,
//!   so special tokens decode to their text (llama.cpp's `token_to_piece(.., special = true)`),
//!   which makes `decode(encode_with_special(s)) == s`. The [`StreamDecoder`] uses the same table.
//! * **BOS.** `encode*` never add BOS; [`Tokenizer::prompt_tokens`] and
//!   [`Tokenizer::apply_chat_template`] add it when the model's `add_bos` says so and the text does
//!   not already start with it.

mod bpe;
pub mod chat;
mod error;
mod gguf;
mod hf;
pub mod spec;
mod special;
mod spm;
mod stream;

pub use chat::ChatMessage;
pub use error::{HfError, TokenizerError};
pub use spec::TokenizerSpec;
pub use stream::StreamDecoder;

use chat::ChatTemplate;
use spec::{ModelKind, token_type};
use special::{SpecialMatch, SpecialMatcher};

/// A model's tokenizer: encode, decode, chat templates and special ids.
#[derive(Clone)]
pub struct Tokenizer {
    /// Encodes text runs between special tokens; never yields control tokens.
    plain: tokenizers::Tokenizer,
    /// Control/unknown token texts parsed in special mode.
    specials: SpecialMatcher,
    /// The bytes each token stands for. [vocab_size]
    pieces: Vec<Vec<u8>>,
    /// Whether each token is a control/unknown (special) token. [vocab_size]
    special_mask: Vec<bool>,
    bos: Option<u32>,
    eos: Option<u32>,
    /// eos first, then every other end-of-generation token.
    eog: Vec<u32>,
    add_bos: bool,
    /// SentencePiece with a space prefix: the first token's leading space is dropped on decode.
    strip_space_prefix: bool,
    chat: ChatTemplate,
}

/// Everything the constructors (GGUF spec, tokenizer.json) resolve before assembly.
pub(crate) struct Parts {
    pub plain: tokenizers::Tokenizer,
    pub special_tokens: Vec<(String, u32)>,
    pub pieces: Vec<Vec<u8>>,
    pub special_mask: Vec<bool>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eog: Vec<u32>,
    pub add_bos: bool,
    pub strip_space_prefix: bool,
    pub chat_template: Option<String>,
}

impl Tokenizer {
    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*`, `tokenizer.chat_template`).
    /// Without a chat template, ChatML is used (see [`chat::CHATML_TEMPLATE`]).
    pub fn from_gguf(file: &airlock_gguf::GgufFile) -> Result<Self, TokenizerError> {
        Self::from_spec(&gguf::spec_from_gguf(file)?)
    }

    /// Builds the tokenizer from GGUF-style metadata held in a [`TokenizerSpec`].
    pub fn from_spec(spec: &TokenizerSpec) -> Result<Self, TokenizerError> {
        let kind = ModelKind::parse(&spec.model)?;
        let (plain, ids, strip_space_prefix) = match kind {
            ModelKind::ByteLevelBpe => {
                let pre = bpe::PreTokenizer::for_pre(spec.pre.as_deref())?;
                let ids = spec.resolve(pre.default_add_bos)?;
                (bpe::build(spec, &pre)?, ids, false)
            }
            ModelKind::SentencePiece => {
                let ids = spec.resolve(true)?;
                let plain = spm::build(spec, ids.unk, ids.add_space_prefix)?;
                let strip = ids.add_space_prefix;
                (plain, ids, strip)
            }
        };
        let byte_map = bpe::char_to_byte_map();
        let mut pieces = Vec::with_capacity(spec.tokens.len());
        let mut special_mask = Vec::with_capacity(spec.tokens.len());
        let mut special_tokens = Vec::new();
        for (id, text) in spec.tokens.iter().enumerate() {
            let ty = spec.token_type(id);
            let special = ty == token_type::CONTROL || ty == token_type::UNKNOWN;
            let raw_text = special || ty == token_type::USER_DEFINED;
            pieces.push(match kind {
                _ if raw_text => text.as_bytes().to_vec(),
                ModelKind::ByteLevelBpe => bpe::byte_level_bytes(text, &byte_map),
                ModelKind::SentencePiece => spm::piece_bytes(text),
            });
            special_mask.push(special);
            if special {
                special_tokens.push((text.clone(), id as u32));
            }
        }
        Self::assemble(Parts {
            plain,
            special_tokens,
            pieces,
            special_mask,
            bos: ids.bos,
            eos: ids.eos,
            eog: ids.eog,
            add_bos: ids.add_bos,
            strip_space_prefix,
            chat_template: spec.chat_template.clone(),
        })
    }

    /// Loads a Hugging Face `tokenizer.json`, taking BOS/EOS, `add_bos_token` and the chat template
    /// from `tokenizer_config.json` when given (and from a `chat_template.jinja` beside it).
    pub fn from_file(
        tokenizer_json: &std::path::Path,
        tokenizer_config_json: Option<&std::path::Path>,
    ) -> Result<Self, TokenizerError> {
        Self::assemble(hf::load(tokenizer_json, tokenizer_config_json)?)
    }

    pub(crate) fn assemble(parts: Parts) -> Result<Self, TokenizerError> {
        let mut plain = parts.plain;
        // Added tokens marked special (tokenizer.json) must not be matched in plain text.
        plain.set_encode_special_tokens(true);
        Ok(Self {
            plain,
            specials: SpecialMatcher::new(parts.special_tokens),
            pieces: parts.pieces,
            special_mask: parts.special_mask,
            bos: parts.bos,
            eos: parts.eos,
            eog: parts.eog,
            add_bos: parts.add_bos,
            strip_space_prefix: parts.strip_space_prefix,
            chat: ChatTemplate::new(parts.chat_template)?,
        })
    }

    /// Encodes plain text: special-token text is tokenized as ordinary characters. No BOS.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::new();
        self.encode_plain_into(text, &mut ids)?;
        Ok(ids)
    }

    /// Encodes text in which special-token text (`<|im_start|>`, `<s>`) stands for those tokens, as
    /// llama.cpp's `parse_special` and Ollama's `raw` prompts do. No BOS.
    pub fn encode_with_special(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut matches = Vec::new();
        self.specials.find_in(text, 0..text.len(), &mut matches);
        self.encode_segments(text, &matches)
    }

    /// A raw (non-chat) prompt as the model expects it: BOS when the model's `add_bos` says so and
    /// the prompt does not already start with it, then the prompt with special tokens parsed.
    pub fn prompt_tokens(&self, prompt: &str) -> Result<Vec<u32>, TokenizerError> {
        let ids = self.encode_with_special(prompt)?;
        Ok(self.with_bos(ids))
    }

    /// Decodes ids to text. Every token decodes to its bytes, control tokens to their text; invalid
    /// UTF-8 becomes U+FFFD. For SentencePiece vocabularies with a space prefix, the first token's
    /// leading space is dropped (llama.cpp's `detokenize`).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.decode_filtered(ids, false)
    }

    /// Like [`Tokenizer::decode`], leaving out control tokens.
    pub fn decode_skip_special(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.decode_filtered(ids, true)
    }

    fn decode_filtered(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        let mut bytes = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let piece = self.piece(id)?;
            if skip_special && self.is_special(id) {
                continue;
            }
            let piece = if i == 0 && self.strip_space_prefix {
                piece.strip_prefix(b" ").unwrap_or(piece)
            } else {
                piece
            };
            bytes.extend_from_slice(piece);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Renders the chat template for `messages` and tokenizes it: special tokens are parsed in the
    /// template's own text only, never inside message contents. BOS is prepended when the model's
    /// `add_bos` says so and the template did not already emit it.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        for m in messages {
            if self.specials.contains_any(&m.role) {
                return Err(TokenizerError::SpecialTokenInRole { role: m.role.clone() });
            }
        }
        let rendered = self
            .chat
            .render_marked(messages, add_generation_prompt, &self.bos_eos_text())?;
        let mut matches = Vec::new();
        let mut pos = 0;
        for content in rendered
            .contents
            .iter()
            .chain(std::iter::once(&(rendered.text.len()..rendered.text.len())))
        {
            self.specials.find_in(&rendered.text, pos..content.start, &mut matches);
            pos = content.end;
        }
        let ids = self.encode_segments(&rendered.text, &matches)?;
        Ok(self.with_bos(ids))
    }

    /// The chat template's output for `messages` (for display and debugging).
    pub fn render_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        self.chat.render(messages, add_generation_prompt, &self.bos_eos_text())
    }

    /// The model's own chat template; `None` when it has none (then ChatML is used, see
    /// [`Tokenizer::effective_chat_template`]).
    pub fn chat_template(&self) -> Option<&str> {
        (!self.chat.is_fallback()).then(|| self.chat.source())
    }

    /// The chat template rendering uses: the model's, or [`chat::CHATML_TEMPLATE`].
    pub fn effective_chat_template(&self) -> &str {
        self.chat.source()
    }

    /// The beginning-of-sequence token.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// Every token that ends generation: eos first, then eot/eom and tokens such as `<|im_end|>`,
    /// `<|eot_id|>`, `<|end|>`, `<|endoftext|>`.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// Whether `id` ends generation.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// Whether the model wants BOS at the start of a sequence.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Number of token ids (the embedding rows).
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The raw bytes a token stands for (byte-level chars decoded, SentencePiece `▁` as a space and
    /// `<0xNN>` as the byte, control tokens as their text); empty for an unknown id.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.pieces.get(id as usize).cloned().unwrap_or_default()
    }

    /// The byte table for all tokens, indexed by id. [vocab_size]
    pub fn token_bytes_table(&self) -> &[Vec<u8>] {
        &self.pieces
    }

    /// Whether `id` is a control (or unknown) token, which plain text never produces.
    pub fn is_special(&self, id: u32) -> bool {
        self.special_mask.get(id as usize).copied().unwrap_or(false)
    }

    /// Whether decoding drops the first token's leading space (SentencePiece space prefix).
    pub(crate) fn strips_space_prefix(&self) -> bool {
        self.strip_space_prefix
    }

    pub(crate) fn piece(&self, id: u32) -> Result<&[u8], TokenizerError> {
        self.pieces
            .get(id as usize)
            .map(Vec::as_slice)
            .ok_or(TokenizerError::Decode {
                id,
                vocab_size: self.pieces.len(),
            })
    }

    fn bos_eos_text(&self) -> chat::SpecialTexts {
        let text = |id: Option<u32>| {
            id.and_then(|id| self.pieces.get(id as usize))
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default()
        };
        chat::SpecialTexts {
            bos: text(self.bos),
            eos: text(self.eos),
        }
    }

    fn with_bos(&self, mut ids: Vec<u32>) -> Vec<u32> {
        if let Some(bos) = self.bos.filter(|_| self.add_bos)
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        ids
    }

    /// Encodes `text` with the given special-token matches (sorted, non-overlapping) as tokens and
    /// everything between them as plain text.
    fn encode_segments(&self, text: &str, matches: &[SpecialMatch]) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::new();
        let mut pos = 0;
        for m in matches {
            self.encode_plain_into(&text[pos..m.start], &mut ids)?;
            ids.push(m.id);
            pos = m.end;
        }
        self.encode_plain_into(&text[pos..], &mut ids)?;
        Ok(ids)
    }

    fn encode_plain_into(&self, text: &str, ids: &mut Vec<u32>) -> Result<(), TokenizerError> {
        if text.is_empty() {
            return Ok(());
        }
        let encoding = self
            .plain
            .encode_fast(text, false)
            .map_err(|source| TokenizerError::Encode { source })?;
        ids.extend_from_slice(encoding.get_ids());
        Ok(())
    }
}
