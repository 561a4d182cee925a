//! The default model against llama.cpp's own outputs on the same GGUF
//! (`../shared/reference/smollm2-135m-instruct-q4_1.llamacpp.json`, made with llama-cpp-python
//! 0.3.36 (llama.cpp 0c1e570) on an x86-64 CPU with AVX-512, its plain CPU kernels (no weight
//! repacking), f32 logits): prompt token ids, top-10 logits at the last prompt position, greedy
//! continuations. (Tokenization against the same file is tested in `airlock-tokenizer`.)
//!
//! airlock's CPU path reproduces llama.cpp's arithmetic on x86-64 bit for bit (checked layer by
//! layer on AVX-512; the AVX2 build's rounding follows ggml's source): the same 8-bit activation
//! blocks, Q4_1 sums in ggml's order, f16 KV cache and attention operands, ggml's `expf`, RMSNorm
//! and RoPE rounding (`airlock-kernels`). Over the reference's 245 logits
//! (top-10 at each prompt's end, top-5 at nine teacher-forced greedy steps) we measure max |Δ|
//! 7.6e-6, mean 1.2e-6, all from the output head's summation order (before every rounding was
//! matched: max 0.51, mean 0.15, the 8-bit noise of two different roundings), and all 48 greedy
//! tokens of every prompt (or all up to its end-of-generation) are llama.cpp's. So on the
//! reference's kind of CPU the bounds are issue 3's: each logit within 0.25, identical top-10
//! sets and top-1 tokens, the first 16 greedy tokens identical (or all, to EOS). On other CPUs
//! llama.cpp itself rounds differently (8-wide vectors, another `expf`), and 8-bit activation
//! noise grows those last bits to ~0.5 in the logits, so there the bounds are the noise's.

use airlock_engine::{Request, Sampling};
use airlock_kernels::Isa;
use airlock_tests::{default_model, reference_path};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    eos_token_id: u32,
    prompts: Vec<PromptCase>,
}

#[derive(Deserialize)]
struct PromptCase {
    prompt: String,
    prompt_token_ids: Vec<u32>,
    last_position_top10: Vec<Scored>,
    greedy_token_ids: Vec<u32>,
    greedy_stopped_at_eos: bool,
    greedy_positions_top5: Vec<Vec<Scored>>,
}

#[derive(Deserialize)]
struct Scored {
    id: u32,
    logit: f32,
}

/// What "matches llama.cpp" means on this CPU (see the module doc).
struct Bounds {
    /// How far a logit may be from llama.cpp's.
    logit: f32,
    /// Where llama.cpp's own top-2 margin is below this, our top-1 may be its second, and a
    /// greedy continuation is compared only up to there.
    decisive_margin: f32,
    /// Whether our top 10 must be llama.cpp's as a set (else its top 5 must be in our top 10).
    same_top10: bool,
}

fn bounds() -> Bounds {
    if Isa::best() == Isa::Avx512Vnni {
        // The reference's kind of CPU: issue 3's criteria.
        Bounds {
            logit: 0.25,
            decisive_margin: 0.0,
            same_top10: true,
        }
    } else {
        // Another ggml build's rounding, amplified by 8-bit noise: up to ~0.5 (our divergent
        // greedy tokens were all at llama.cpp margins under 0.2).
        Bounds {
            logit: 0.6,
            decisive_margin: 0.5,
            same_top10: false,
        }
    }
}

fn reference() -> Reference {
    let path = reference_path("smollm2-135m-instruct-q4_1.llamacpp.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference file")).expect("reference json")
}

/// llama.cpp's gap between its best and second-best token.
fn margin(scored: &[Scored]) -> f32 {
    scored[0].logit - scored[1].logit
}

fn top(logits: &[f32], n: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    ids.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    ids.truncate(n);
    ids
}

#[test]
fn last_position_top10_matches_llamacpp() {
    let (model, _) = default_model();
    let bounds = bounds();
    for case in reference().prompts {
        let mut cache = model.new_cache(case.prompt_token_ids.len());
        let logits = model.next_logits(&case.prompt_token_ids, &mut cache);
        let expected: Vec<u32> = case.last_position_top10.iter().map(|s| s.id).collect();
        let got = top(&logits, 10);
        if margin(&case.last_position_top10) >= bounds.decisive_margin {
            assert_eq!(got[0], expected[0], "top-1 for {:?}", case.prompt);
        } else {
            assert!(
                expected[..2].contains(&got[0]),
                "top-1 {} is not llama.cpp's top-2 for {:?}",
                got[0],
                case.prompt
            );
        }
        for s in &case.last_position_top10 {
            let diff = (logits[s.id as usize] - s.logit).abs();
            assert!(
                diff <= bounds.logit,
                "token {} logit {} vs llama.cpp {} in {:?}",
                s.id,
                logits[s.id as usize],
                s.logit,
                case.prompt
            );
        }
        if bounds.same_top10 {
            let (mut ours, mut theirs) = (got.clone(), expected.clone());
            ours.sort_unstable();
            theirs.sort_unstable();
            assert_eq!(ours, theirs, "top-10 set for {:?}", case.prompt);
        } else {
            // Near-ties lower down may swap: llama.cpp's top 5 must be in our top 10.
            for id in &expected[..5] {
                assert!(
                    got.contains(id),
                    "llama.cpp's top-5 token {id} is not in our top 10 for {:?}",
                    case.prompt
                );
            }
        }
    }
}

#[test]
fn greedy_continuations_match_llamacpp() {
    let (model, tokenizer) = default_model();
    let reference = reference();
    let bounds = bounds();
    let mut compared = 0;
    for case in &reference.prompts {
        // Margins llama.cpp saw before each greedy token (known for the first nine).
        let margins: Vec<f32> = std::iter::once(&case.last_position_top10)
            .chain(&case.greedy_positions_top5)
            .map(|s| margin(s))
            .collect();
        // Compare up to 16 tokens (the whole answer when shorter), stopping before the first
        // token llama.cpp itself chose by less than the noise.
        let limit = 16.min(case.greedy_token_ids.len());
        let n = margins
            .iter()
            .take(limit)
            .take_while(|&&m| m >= bounds.decisive_margin)
            .count();
        let n = if n == margins.len().min(limit) { limit } else { n };
        let request = Request {
            prompt: case.prompt_token_ids.clone(),
            max_tokens: limit + 1,
            sampling: Sampling::default(),
            ..Request::default()
        };
        let generation = airlock_engine::generate(model, tokenizer, request, |_| std::ops::ControlFlow::Continue(()))
            .expect("generates");
        assert!(generation.tokens.len() >= n, "stopped early for {:?}", case.prompt);
        assert_eq!(
            generation.tokens[..n],
            case.greedy_token_ids[..n],
            "greedy tokens for {:?}",
            case.prompt
        );
        if n == case.greedy_token_ids.len() && case.greedy_stopped_at_eos {
            // The whole answer, then end of generation where llama.cpp stopped.
            assert_eq!(
                generation.tokens.get(n),
                Some(&reference.eos_token_id),
                "EOS for {:?}",
                case.prompt
            );
        }
        compared += n;
    }
    let first = &reference.prompts[0];
    assert!(
        compared >= first.greedy_token_ids.len() + 16,
        "only {compared} tokens were decisive"
    );
}

#[test]
fn teacher_forced_top5_logits_match_llamacpp() {
    // Position `step` holds the logits after feeding greedy token `step`.
    let (model, _) = default_model();
    let bounds = bounds();
    for case in reference().prompts {
        let mut cache = model.new_cache(case.prompt_token_ids.len() + case.greedy_positions_top5.len());
        model.next_logits(&case.prompt_token_ids, &mut cache);
        for (step, expected) in case.greedy_positions_top5.iter().enumerate() {
            let logits = model.next_logits(&[case.greedy_token_ids[step]], &mut cache);
            if margin(expected) >= bounds.decisive_margin {
                assert_eq!(top(&logits, 1)[0], expected[0].id, "step {step} of {:?}", case.prompt);
            }
            for s in expected {
                let diff = (logits[s.id as usize] - s.logit).abs();
                assert!(
                    diff <= bounds.logit,
                    "step {step}: token {} logit {} vs {}",
                    s.id,
                    logits[s.id as usize],
                    s.logit
                );
            }
        }
    }
}
