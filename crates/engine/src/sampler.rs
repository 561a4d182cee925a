//! Token sampling: penalties, then greedy or temperature / top-k / top-p / min-p sampling, in
//! llama.cpp's order. Seeded, so the same seed gives the same text.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Resolved sampling options; every default lives in [`Sampling::default`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// `<= 0` means greedy (argmax).
    pub temperature: f32,
    /// `0` disables top-k.
    pub top_k: usize,
    /// `1.0` disables nucleus sampling.
    pub top_p: f32,
    /// `0.0` disables min-p.
    pub min_p: f32,
    /// CTRL-style penalty on recently seen tokens; `1.0` disables it.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub repeat_last_n: usize,
    /// OpenAI-style penalties: `logit -= presence * seen + frequency * count`.
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub seed: u64,
}

impl Default for Sampling {
    /// Ollama's defaults, with greedy decoding unless a temperature is asked for.
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0,
        }
    }
}

/// Draws tokens from logits with a fixed configuration and its own seeded generator.
#[derive(Debug)]
pub struct Sampler {
    params: Sampling,
    rng: StdRng,
}

impl Sampler {
    pub fn new(params: Sampling) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    /// Picks the next token; `history` is every token so far (prompt and generated).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        self.apply_penalties(logits, history);
        if self.params.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut candidates: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        if self.params.top_k > 0 {
            candidates.truncate(self.params.top_k);
        }
        let probs = softmax(&candidates, self.params.temperature);
        let mut keep = probs.len();
        if self.params.top_p < 1.0 {
            let mut cumulative = 0.0;
            for (i, p) in probs.iter().enumerate() {
                cumulative += p;
                if cumulative >= self.params.top_p {
                    keep = i + 1;
                    break;
                }
            }
        }
        if self.params.min_p > 0.0 {
            let floor = probs[0] * self.params.min_p;
            keep = keep.min(probs.iter().take_while(|&&p| p >= floor).count().max(1));
        }
        let total: f32 = probs[..keep].iter().sum();
        let mut draw = self.rng.random::<f32>() * total;
        for (i, p) in probs[..keep].iter().enumerate() {
            draw -= p;
            if draw <= 0.0 {
                return candidates[i].0;
            }
        }
        candidates[keep - 1].0
    }

    fn apply_penalties(&self, logits: &mut [f32], history: &[u32]) {
        let p = &self.params;
        if p.repeat_penalty == 1.0 && p.presence_penalty == 0.0 && p.frequency_penalty == 0.0 {
            return;
        }
        let recent = &history[history.len().saturating_sub(p.repeat_last_n)..];
        let mut counts = std::collections::HashMap::<u32, u32>::new();
        for &t in recent {
            *counts.entry(t).or_default() += 1;
        }
        for (&token, &count) in &counts {
            let Some(logit) = logits.get_mut(token as usize) else {
                continue;
            };
            if *logit > 0.0 {
                *logit /= p.repeat_penalty;
            } else {
                *logit *= p.repeat_penalty;
            }
            *logit -= p.presence_penalty + p.frequency_penalty * count as f32;
        }
    }
}

/// Index of the largest logit (the lowest index among ties, as llama.cpp).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Probabilities of sorted candidates at a temperature.
fn softmax(sorted: &[(u32, f32)], temperature: f32) -> Vec<f32> {
    let max = sorted.first().map_or(0.0, |c| c.1);
    let exps: Vec<f32> = sorted.iter().map(|c| ((c.1 - max) / temperature).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.5, -1.0, 0.5]
    }

    #[test]
    fn greedy_picks_the_largest_logit() {
        let mut s = Sampler::new(Sampling::default());
        assert_eq!(s.sample(&mut logits(), &[]), 1);
    }

    #[test]
    fn same_seed_gives_the_same_draws_and_another_seed_differs() {
        let params = Sampling {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            seed: 7,
            ..Sampling::default()
        };
        let draw = |p: Sampling| {
            let mut s = Sampler::new(p);
            (0..64).map(|_| s.sample(&mut logits(), &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(params.clone()), draw(params.clone()));
        assert_ne!(draw(params.clone()), draw(Sampling { seed: 8, ..params }));
    }

    #[test]
    fn top_k_one_is_greedy_even_when_hot() {
        let mut s = Sampler::new(Sampling {
            temperature: 5.0,
            top_k: 1,
            ..Sampling::default()
        });
        for _ in 0..20 {
            assert_eq!(s.sample(&mut logits(), &[]), 1);
        }
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // p(1) ~ 0.56, p(2) ~ 0.34: top_p 0.5 keeps token 1 alone.
        let mut s = Sampler::new(Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
            ..Sampling::default()
        });
        for _ in 0..50 {
            assert_eq!(s.sample(&mut logits(), &[]), 1);
        }
    }

    #[test]
    fn min_p_drops_tokens_far_below_the_best() {
        let mut s = Sampler::new(Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.5,
            ..Sampling::default()
        });
        for _ in 0..100 {
            let t = s.sample(&mut logits(), &[]);
            assert!(t == 1 || t == 2, "got {t}");
        }
    }

    #[test]
    fn repetition_penalty_moves_greedy_off_a_seen_token() {
        let mut s = Sampler::new(Sampling {
            repeat_penalty: 1.5,
            ..Sampling::default()
        });
        // 3.0 / 1.5 = 2.0 < 2.5, so token 2 wins once token 1 was seen.
        assert_eq!(s.sample(&mut logits(), &[1]), 2);
    }
}
