//! Incremental detokenizer: turns generated token ids into text as they arrive, emitting only
//! complete UTF-8 characters (a character split across byte-fallback tokens or byte-level BPE tokens
//! is held back until its last byte arrives).

use crate::{Tokenizer, TokenizerError};

/// Buffers token bytes and releases the longest valid UTF-8 prefix after each token.
///
/// Bytes that can never become valid UTF-8 (an invalid sequence followed by more bytes) are replaced
/// by U+FFFD as soon as that is certain; an incomplete character left at the end is replaced only by
/// [`StreamDecoder::finish`]. The concatenation of everything emitted equals
/// [`Tokenizer::decode`] of the same ids.
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    /// Bytes received but not yet emitted (at most an incomplete character, 3 bytes, after a push).
    pending: Vec<u8>,
    /// Drop the leading space of the first token (SentencePiece space prefix), as `decode` does.
    strip_space_prefix: bool,
    /// Whether a token has been pushed.
    started: bool,
}

impl StreamDecoder {
    /// A decoder whose output matches `tokenizer.decode` of the whole sequence (including dropping a
    /// SentencePiece first token's leading space).
    pub fn new(tokenizer: &Tokenizer) -> Self {
        Self {
            strip_space_prefix: tokenizer.strips_space_prefix(),
            ..Self::default()
        }
    }

    /// A decoder that keeps every byte, for continuing text whose start was decoded elsewhere.
    pub fn continuation() -> Self {
        Self::default()
    }

    /// Adds one token; returns the text that became complete (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String, TokenizerError> {
        let piece = tokenizer.piece(id)?;
        let piece = if !self.started && self.strip_space_prefix {
            piece.strip_prefix(b" ").unwrap_or(piece)
        } else {
            piece
        };
        self.started = true;
        Ok(self.push_bytes(piece))
    }

    /// Adds raw bytes; returns the text that became complete (possibly empty).
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // Invalid bytes: they can never complete a character.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                    }
                }
            }
        }
    }

    /// Whether bytes of an incomplete character are being held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the stream: whatever is still held back, with U+FFFD for an incomplete character.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_four_byte_emoji_split_over_pushes_is_emitted_once_whole() {
        let mut d = StreamDecoder::continuation();
        let robot = "🤖".as_bytes();
        assert_eq!(d.push_bytes(&robot[..1]), "");
        assert_eq!(d.push_bytes(&robot[1..3]), "");
        assert!(d.has_pending());
        assert_eq!(d.push_bytes(&[robot[3], b'!']), "🤖!");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn invalid_bytes_become_a_replacement_without_stalling_the_stream() {
        let mut d = StreamDecoder::continuation();
        assert_eq!(d.push_bytes(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
        assert_eq!(d.push_bytes(&[0xE6, 0x9D]), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }
}
