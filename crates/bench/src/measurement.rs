//! What one child process reports for one run, and how it reads its own peak memory.

use serde::{Deserialize, Serialize};

/// One run of one engine, as a child process prints it (one JSON line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// Seconds to load the model (and, for airlock, build the tokenizer).
    pub load_s: f64,
    /// Seconds to run the whole prompt through the model (logits at its last position).
    pub prompt_s: f64,
    /// Seconds from the start of the prompt pass to the first greedy token.
    pub ttft_s: f64,
    /// Seconds to decode the remaining `gen_tokens - 1` greedy tokens.
    pub gen_s: f64,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    /// The process's peak resident set (`VmHWM` of `/proc/self/status`), KiB.
    pub peak_rss_kib: u64,
    /// The greedy tokens, to check that both engines agree.
    pub tokens: Vec<u32>,
}

impl Measurement {
    pub fn prompt_tps(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_s
    }

    pub fn gen_tps(&self) -> f64 {
        self.gen_tokens.saturating_sub(1) as f64 / self.gen_s
    }
}

/// This process's peak resident set in KiB (0 where `/proc` has no answer).
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
