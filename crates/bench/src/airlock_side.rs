//! airlock's side: the benchmark prompts' token ids, and one measured run in this process.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use airlock_constrain::{Constraint, ConstraintCompiler};
use airlock_engine::{Request, argmax};
use airlock_model::{GgufSource, Llama, default_device};
use airlock_tokenizer::{ChatMessage, Tokenizer};
use anyhow::Context;

use crate::measurement::{Measurement, peak_rss_kib};

/// Plain prose, repeated as needed: the prompt both engines read.
const PROMPT_TEXT: &str = "The history of the lighthouse is a history of the coast itself. Long before \
electric lamps, keepers climbed narrow stairs every evening to trim wicks, polish brass and wind the \
clockwork that turned the great lens. Ships far out at sea counted the flashes to learn which light \
they saw, and from that, where they were. Storms tested the towers: waves threw stones through \
windows, and ice sealed the doors shut for days. Keepers wrote in their logbooks about the weather, \
passing ships, supplies that arrived late and the birds that struck the glass during migration. \
Some families lived on rocks for decades, teaching their children at the kitchen table and growing \
vegetables in boxes of carried soil. When automation came, the lamps kept turning without anyone to \
tend them, and the logbooks ended mid-page. Today many towers are museums, and visitors climb the \
same stairs to look out over water that still needs watching. ";

/// The first `n` token ids of the benchmark prompt, as airlock's tokenizer (which matches
/// llama.cpp's on this model) encodes it.
pub fn prompt_ids(model: &Path, n: usize) -> anyhow::Result<Vec<u32>> {
    let source = GgufSource::open(model).with_context(|| format!("opening {}", model.display()))?;
    let tokenizer = Tokenizer::from_gguf(source.file())?;
    let mut ids = Vec::new();
    let mut section = 1;
    while ids.len() < n {
        ids.extend(tokenizer.encode(&format!("Part {section}. {PROMPT_TEXT}"))?);
        section += 1;
    }
    ids.truncate(n);
    Ok(ids)
}

/// The structured-output prompt: a user message asking for the note as JSON, in the model's chat
/// template, ready for the assistant's answer.
pub fn json_prompt_ids(model: &Path, note: &str) -> anyhow::Result<Vec<u32>> {
    let source = GgufSource::open(model).with_context(|| format!("opening {}", model.display()))?;
    let tokenizer = Tokenizer::from_gguf(source.file())?;
    let message = ChatMessage {
        role: "user".into(),
        content: format!(
            "Extract medical billing information from this note as JSON.\n{}",
            note.trim_end()
        ),
    };
    Ok(tokenizer.apply_chat_template(&[message], true)?)
}

/// Loads the model and its tokenizer, timed as the load.
fn load(model: &Path, threads: usize) -> anyhow::Result<(Llama, Tokenizer, f64)> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global()?;
    let started = Instant::now();
    let source = GgufSource::open(model).with_context(|| format!("opening {}", model.display()))?;
    let tokenizer = Tokenizer::from_gguf(source.file())?;
    let llama = Llama::load(&source, &default_device())?;
    Ok((llama, tokenizer, started.elapsed().as_secs_f64()))
}

/// Loads the model, runs the prompt, then greedy-decodes until `gen_tokens` tokens exist.
/// A short warm-up pass first, as the peer does, so both measure steady state.
pub fn measure(model: &Path, threads: usize, ids: &[u32], gen_tokens: usize) -> anyhow::Result<Measurement> {
    let (llama, _, load_s) = load(model, threads)?;

    let mut cache = llama.new_cache(ids.len() + gen_tokens);
    let warm = ids.len().min(16);
    llama.next_logits(&ids[..warm], &mut cache);
    cache.clear();

    let started = Instant::now();
    let logits = llama.next_logits(ids, &mut cache);
    let prompt_s = started.elapsed().as_secs_f64();
    let mut tokens = vec![argmax(&logits)];
    let ttft_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    while tokens.len() < gen_tokens {
        let last = *tokens.last().context("at least one token")?;
        tokens.push(argmax(&llama.next_logits(&[last], &mut cache)));
    }
    let gen_s = started.elapsed().as_secs_f64();
    Ok(Measurement {
        load_s,
        prompt_s,
        ttft_s,
        gen_s,
        prompt_tokens: ids.len(),
        gen_tokens: tokens.len(),
        peak_rss_kib: peak_rss_kib(),
        tokens,
    })
}

/// Greedy decoding under `constraint` (enforced token by token), through the same engine loop
/// the CLI uses: until the JSON value is complete or `gen_tokens` tokens exist. The constraint
/// compiler is built with the model, so its cost counts as load time.
pub fn measure_constrained(
    model: &Path,
    threads: usize,
    ids: &[u32],
    gen_tokens: usize,
    constraint: Constraint,
) -> anyhow::Result<Measurement> {
    let started = Instant::now();
    let (llama, tokenizer, _) = load(model, threads)?;
    let compiler = ConstraintCompiler::new(&tokenizer)?;
    let load_s = started.elapsed().as_secs_f64();
    let mut cache = llama.new_cache(ids.len().min(16));
    llama.next_logits(&ids[..ids.len().min(16)], &mut cache);
    drop(cache);

    let request = Request {
        prompt: ids.to_vec(),
        max_tokens: gen_tokens,
        constraint: Some(compiler.compile(&constraint)?),
        ..Request::default()
    };
    let generation = airlock_engine::generate(&llama, &tokenizer, request, |_| ControlFlow::Continue(()))?;
    let prompt_s = generation.prompt_duration.as_secs_f64();
    Ok(Measurement {
        load_s,
        prompt_s,
        ttft_s: prompt_s,
        gen_s: generation.generate_duration.as_secs_f64(),
        prompt_tokens: ids.len(),
        gen_tokens: generation.tokens.len(),
        peak_rss_kib: peak_rss_kib(),
        tokens: generation.tokens,
    })
}
