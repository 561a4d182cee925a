//! Stop strings: text is held back while it could still be the start of one, and generation ends
//! before the first complete one.

/// Holds back text that might be the beginning of a stop string.
#[derive(Debug)]
pub(crate) struct StopMatcher {
    stops: Vec<String>,
    pending: String,
    stopped: bool,
}

impl StopMatcher {
    pub(crate) fn new(stops: Vec<String>) -> Self {
        Self {
            stops,
            pending: String::new(),
            stopped: false,
        }
    }

    /// Adds text; returns what can be emitted and whether a stop string was found.
    pub(crate) fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            let emit = self.pending[..at].to_string();
            self.pending.clear();
            self.stopped = true;
            return (emit, true);
        }
        // Keep the longest suffix that is a prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| (1..s.len()).filter(|&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
            .filter(|prefix| self.pending.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let split = self.pending.len() - keep;
        let emit = self.pending[..split].to_string();
        self.pending.drain(..split);
        (emit, false)
    }

    /// Releases held-back text at the end of generation.
    pub(crate) fn finish(&mut self, tail: &str) -> String {
        if self.stopped {
            return String::new();
        }
        let (mut emit, stopped) = self.push(tail);
        if !stopped {
            emit.push_str(&std::mem::take(&mut self.pending));
        }
        emit
    }
}

#[cfg(test)]
mod tests {
    use super::StopMatcher;

    #[test]
    fn stop_string_split_across_pieces_is_not_emitted() {
        let stops = vec!["</end>".to_string()];
        let mut m = StopMatcher::new(stops);
        assert_eq!(m.push("hello </"), ("hello ".to_string(), false));
        assert_eq!(m.push("en"), (String::new(), false));
        assert_eq!(m.push("d> more"), (String::new(), true));
    }

    #[test]
    fn held_back_prefix_is_released_when_it_does_not_complete() {
        let stops = vec!["STOP".to_string()];
        let mut m = StopMatcher::new(stops);
        assert_eq!(m.push("a ST"), ("a ".to_string(), false));
        assert_eq!(m.push("ART"), ("START".to_string(), false));
        assert_eq!(m.push("ST"), (String::new(), false));
        assert_eq!(m.finish(""), "ST");
    }

    #[test]
    fn without_stop_strings_everything_passes_through() {
        let mut m = StopMatcher::new(Vec::new());
        assert_eq!(m.push("abc"), ("abc".to_string(), false));
    }
}
