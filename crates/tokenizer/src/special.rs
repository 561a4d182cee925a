//! Finding special-token text (control and unknown tokens) in a string, for llama.cpp's
//! `parse_special` mode: leftmost match wins, the longest text among those starting there.

use std::collections::HashMap;
use std::ops::Range;

/// A special token found in text: its byte range and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpecialMatch {
    pub start: usize,
    pub end: usize,
    pub id: u32,
}

/// Special-token texts grouped by first byte, longest first within a group.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpecialMatcher {
    by_first_byte: HashMap<u8, Vec<(String, u32)>>,
}

impl SpecialMatcher {
    /// Builds a matcher over `(text, id)` pairs; empty texts are ignored. When two ids share a text,
    /// the lower id wins.
    pub(crate) fn new(tokens: impl IntoIterator<Item = (String, u32)>) -> Self {
        let mut by_first_byte: HashMap<u8, Vec<(String, u32)>> = HashMap::new();
        for (text, id) in tokens {
            if let Some(&first) = text.as_bytes().first() {
                by_first_byte.entry(first).or_default().push((text, id));
            }
        }
        for group in by_first_byte.values_mut() {
            group.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
            group.dedup_by(|later, earlier| later.0 == earlier.0);
        }
        Self { by_first_byte }
    }

    /// Whether `text` contains any special-token text.
    pub(crate) fn contains_any(&self, text: &str) -> bool {
        let mut out = Vec::new();
        self.find_in(text, 0..text.len(), &mut out);
        !out.is_empty()
    }

    /// Appends the special tokens found in `text[range]` (absolute byte ranges) to `out`.
    pub(crate) fn find_in(&self, text: &str, range: Range<usize>, out: &mut Vec<SpecialMatch>) {
        if self.by_first_byte.is_empty() {
            return;
        }
        let bytes = &text.as_bytes()[..range.end];
        let mut pos = range.start;
        while pos < range.end {
            let found = self
                .by_first_byte
                .get(&bytes[pos])
                .and_then(|group| group.iter().find(|(t, _)| bytes[pos..].starts_with(t.as_bytes())));
            match found {
                Some((t, id)) => {
                    out.push(SpecialMatch {
                        start: pos,
                        end: pos + t.len(),
                        id: *id,
                    });
                    pos += t.len();
                }
                None => pos += 1,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn longest_special_text_wins_at_the_same_position() {
        let m = SpecialMatcher::new([("<|a|>".to_string(), 1), ("<|a|>x".to_string(), 2)]);
        let mut out = Vec::new();
        let text = "q<|a|>x<|a|>";
        m.find_in(text, 0..text.len(), &mut out);
        let ids: Vec<u32> = out.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![2, 1]);
        assert_eq!((out[0].start, out[0].end), (1, 7));
    }

    #[test]
    fn matches_never_extend_past_the_range() {
        let m = SpecialMatcher::new([("<s>".to_string(), 1)]);
        let mut out = Vec::new();
        m.find_in("ab<s>", 0..4, &mut out);
        assert!(out.is_empty());
    }
}
