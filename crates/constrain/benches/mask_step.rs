//! Cost of constrained decoding on the default model's tokenizer (SmolLM2, 49152 tokens): building
//! the compiler, compiling each constraint, and one `mask_logits` per step along seeded random
//! walks (the mask is recomputed for every state, as in generation; the first mask of a request,
//! which builds the lexer states, is reported apart). Prints a table.
//!
//! `cargo bench -p airlock-constrain --bench mask_step`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use airlock_constrain::{Constraint, ConstraintCompiler};
use airlock_tokenizer::Tokenizer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const SEEDS: u64 = 20;
const MAX_STEPS: usize = 400;

fn main() {
    let path = airlock_store::resolve_model(None, false).expect("the default model");
    let file = airlock_gguf::GgufFile::open(&path).expect("open GGUF");
    let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
    let start = Instant::now();
    let compiler = ConstraintCompiler::new(&tok).expect("compiler");
    println!(
        "ConstraintCompiler::new (vocab {}): {:.1} ms",
        compiler.vocab_size(),
        ms(start.elapsed())
    );

    let schema = json!({
        "type": "object",
        "properties": {
            "diagnosis": {"type": "string"},
            "urgency": {"enum": ["routine", "urgent", "emergency"]},
            "procedures": {"type": "array", "items": {"type": "string"}},
            "billing_codes": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["diagnosis", "urgency", "procedures", "billing_codes"]
    });
    let constraints = [
        ("json object", Constraint::JsonObject),
        ("billing schema", Constraint::JsonSchema(schema)),
        ("regex", Constraint::Regex(r"(yes|no), [0-9]{3}-[0-9]{4}".into())),
    ];
    println!(
        "{:<16} {:>11} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5}",
        "constraint", "compile ms", "1st mask ms", "steps", "mean µs", "p50 µs", "p90 µs", "p99 µs", "max µs", ">1ms"
    );
    for (name, constraint) in &constraints {
        let mut compile_times = Vec::new();
        let mut first_steps = Vec::new();
        let mut steps = Vec::new();
        let mut example = String::new();
        for seed in 0..SEEDS {
            let start = Instant::now();
            let mut matcher = compiler.compile(constraint).expect("compile");
            compile_times.push(start.elapsed());
            let mut rng = StdRng::seed_from_u64(seed);
            let mut logits = vec![0.0_f32; compiler.vocab_size()];
            let mut out = Vec::new();
            for step in 0..MAX_STEPS {
                logits.fill(0.0);
                let start = Instant::now();
                matcher.mask_logits(&mut logits).expect("mask");
                // The first mask of a request also builds the lexer states it needs (cold).
                if step == 0 { &mut first_steps } else { &mut steps }.push(start.elapsed());
                let allowed: Vec<u32> = (0..logits.len() as u32)
                    .filter(|&i| logits[i as usize].is_finite())
                    .collect();
                let (eog, content): (Vec<u32>, Vec<u32>) = allowed.into_iter().partition(|&i| tok.is_eog(i));
                if !eog.is_empty() && (content.is_empty() || rng.random_bool(0.5)) {
                    break;
                }
                let closers: Vec<u32> = content
                    .iter()
                    .copied()
                    .filter(|&i| tok.token_bytes(i).iter().any(|b| matches!(b, b'"' | b']' | b'}')))
                    .collect();
                let pool = if !closers.is_empty() && rng.random_bool(0.4) {
                    &closers
                } else {
                    &content
                };
                let pick = pool[rng.random_range(0..pool.len())];
                matcher.consume(pick).expect("consume");
                out.push(pick);
            }
            if seed == 0 {
                example = tok.decode(&out).expect("decode");
            }
        }
        steps.sort_unstable();
        let mean = steps.iter().sum::<Duration>() / steps.len() as u32;
        let pct = |p: f64| steps[((steps.len() - 1) as f64 * p) as usize];
        let compile_mean = compile_times.iter().sum::<Duration>() / compile_times.len() as u32;
        let first_mean = first_steps.iter().sum::<Duration>() / first_steps.len() as u32;
        println!(
            "{:<16} {:>11.2} {:>10.2} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>5}",
            name,
            ms(compile_mean),
            ms(first_mean),
            steps.len(),
            us(mean),
            us(pct(0.5)),
            us(pct(0.9)),
            us(pct(0.99)),
            us(pct(1.0)),
            steps.iter().filter(|d| d.as_millis() >= 1).count()
        );
        println!("  e.g. {}", example.chars().take(200).collect::<String>());
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
