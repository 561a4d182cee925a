//! The default model against llama.cpp's own outputs on the same GGUF
//! (`../shared/reference/smollm2-135m-instruct-q4_1.llamacpp.json`, made with llama-cpp-python,
//! f32 logits): prompt token ids, top-10 logits at the last prompt position, greedy
//! continuations. (Tokenization against the same file is tested in `airlock-tokenizer`.)

use airlock_engine::{Request, Sampling};
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

/// How far a logit may be from llama.cpp's. The goal is 0.25, but llama.cpp is itself up to
/// 0.58 away from the exact f32 logits (the PEFT reference README measured it), and our 8-bit
/// activation path is ~0.2 (mean) from them too, while our f32 path matches them to < 0.01
/// (`f32_reference.rs`). Over the 245 reference logits (top-10 at each prompt's end, top-5 at
/// nine greedy steps) we measure max 0.51, mean 0.15; rounding our KV cache and queries to f16
/// as llama.cpp stores them made it worse (0.58-0.76), so the gap is not there. This bound keeps
/// what we have from regressing; issue 3 notes it.
const LOGIT_TOLERANCE: f32 = 0.6;

/// Where llama.cpp's own top-2 margin is below this, the noise above can swap the two, and a
/// different greedy token is not a wrong model (our divergences were all at margins under 0.2).
/// Above it, tokens must be identical.
const DECISIVE_MARGIN: f32 = 0.5;

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
    for case in reference().prompts {
        let mut cache = model.new_cache(case.prompt_token_ids.len());
        let logits = model.next_logits(&case.prompt_token_ids, &mut cache);
        let expected: Vec<u32> = case.last_position_top10.iter().map(|s| s.id).collect();
        let got = top(&logits, 10);
        if margin(&case.last_position_top10) >= DECISIVE_MARGIN {
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
                diff <= LOGIT_TOLERANCE,
                "token {} logit {} vs llama.cpp {} in {:?}",
                s.id,
                logits[s.id as usize],
                s.logit,
                case.prompt
            );
        }
        // Near-ties lower down may swap: llama.cpp's top 5 must be in our top 10.
        let ours = top(&logits, 10);
        for id in &expected[..5] {
            assert!(
                ours.contains(id),
                "llama.cpp's top-5 token {id} is not in our top 10 for {:?}",
                case.prompt
            );
        }
    }
}

#[test]
fn greedy_continuations_match_llamacpp() {
    let (model, tokenizer) = default_model();
    let reference = reference();
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
            .take_while(|&&m| m >= DECISIVE_MARGIN)
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
    for case in reference().prompts {
        let mut cache = model.new_cache(case.prompt_token_ids.len() + case.greedy_positions_top5.len());
        model.next_logits(&case.prompt_token_ids, &mut cache);
        for (step, expected) in case.greedy_positions_top5.iter().enumerate() {
            let logits = model.next_logits(&[case.greedy_token_ids[step]], &mut cache);
            if margin(expected) >= DECISIVE_MARGIN {
                assert_eq!(top(&logits, 1)[0], expected[0].id, "step {step} of {:?}", case.prompt);
            }
            for s in expected {
                let diff = (logits[s.id as usize] - s.logit).abs();
                assert!(
                    diff <= LOGIT_TOLERANCE,
                    "step {step}: token {} logit {} vs {}",
                    s.id,
                    logits[s.id as usize],
                    s.logit
                );
            }
        }
    }
}
