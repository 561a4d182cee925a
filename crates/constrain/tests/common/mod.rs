//! Shared test helpers: the default model's tokenizer and a seeded random walk through a matcher.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use airlock_constrain::{ConstraintCompiler, Matcher};
use airlock_tokenizer::Tokenizer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The default model's tokenizer (SmolLM2-135M-Instruct: vocab 49152, EOS 2, `<|im_end|>` also
/// ends generation), fetched through the store like every other test of the real model.
pub fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path =
            airlock_store::resolve_model(None, false).expect("the default model can be fetched or is in the store");
        let file = airlock_gguf::GgufFile::open(&path).expect("open the default model GGUF");
        Tokenizer::from_gguf(&file).expect("tokenizer from the default model")
    })
}

pub fn compiler() -> &'static ConstraintCompiler {
    static COMPILER: OnceLock<ConstraintCompiler> = OnceLock::new();
    COMPILER.get_or_init(|| ConstraintCompiler::new(tokenizer()).expect("compiler for the default tokenizer"))
}

/// What a random walk produced.
pub struct Walk {
    /// The generated content tokens (no end-of-generation token).
    pub tokens: Vec<u32>,
    /// Whether it ended on an end-of-generation token the matcher allowed.
    pub ended: bool,
}

/// Samples allowed tokens at random (seeded) until an end-of-generation token is taken or
/// `max_steps` pass. Stands in for a model: when the output is complete it stops with
/// probability 1/2; otherwise, 40% of the time it picks among allowed tokens holding a closing
/// character (`"`, `]`, `}`) so strings and containers end, else among all allowed tokens.
pub fn random_walk(matcher: &mut Matcher, seed: u64, max_steps: usize) -> Walk {
    let tok = tokenizer();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tokens = Vec::new();
    for _ in 0..max_steps {
        let allowed: Vec<u32> = matcher.allowed().expect("mask").iter().collect();
        let (eog, content): (Vec<u32>, Vec<u32>) = allowed.into_iter().partition(|&id| tok.is_eog(id));
        if !eog.is_empty() && (content.is_empty() || rng.random_bool(0.5)) {
            assert!(
                matcher.is_accepting(),
                "an end-of-generation token is allowed only when accepting"
            );
            matcher.consume(eog[0]).expect("consume end of generation");
            assert!(matcher.is_finished());
            return Walk { tokens, ended: true };
        }
        let closers: Vec<u32> = content
            .iter()
            .copied()
            .filter(|&id| tok.token_bytes(id).iter().any(|b| matches!(b, b'"' | b']' | b'}')))
            .collect();
        let pool = if !closers.is_empty() && rng.random_bool(0.4) {
            &closers
        } else {
            &content
        };
        let pick = pool[rng.random_range(0..pool.len())];
        matcher.consume(pick).expect("an allowed token is consumed");
        tokens.push(pick);
    }
    Walk { tokens, ended: false }
}

/// The text of `tokens`, which must be valid UTF-8.
pub fn text(tokens: &[u32]) -> String {
    let bytes: Vec<u8> = tokens.iter().flat_map(|&id| tokenizer().token_bytes(id)).collect();
    String::from_utf8(bytes).expect("constrained output is valid UTF-8")
}
