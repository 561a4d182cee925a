//! One module per subcommand, plus the sampling flags that `run` and `generate` share.

pub mod adapters;
pub mod demo;
pub mod eval;
pub mod generate;
pub mod inspect;
pub mod list;
pub mod pull;
pub mod run;
pub mod serve;
pub mod train;

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use airlock_engine::{Generation, Request, Sampling};

use crate::loaded::Loaded;

/// Decoding options, named as llama.cpp's and Ollama's.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = Sampling::default().temperature)]
    pub temperature: f32,
    #[arg(long, default_value_t = Sampling::default().top_k)]
    pub top_k: usize,
    #[arg(long, default_value_t = Sampling::default().top_p)]
    pub top_p: f32,
    #[arg(long, default_value_t = Sampling::default().min_p)]
    pub min_p: f32,
    #[arg(long, default_value_t = Sampling::default().repeat_penalty)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = Sampling::default().seed)]
    pub seed: u64,
    /// Stop before this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    pub fn request(&self, prompt: Vec<u32>) -> Request {
        Request {
            prompt,
            max_tokens: self.max_tokens,
            sampling: Sampling {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                repeat_penalty: self.repeat_penalty,
                seed: self.seed,
                ..Sampling::default()
            },
            stop: self.stop.clone(),
            ..Request::default()
        }
    }
}

/// Generates, streaming text to stdout as it comes, and returns the finished generation.
pub fn stream_to_stdout(loaded: &Loaded, request: Request) -> anyhow::Result<Generation> {
    let mut stdout = std::io::stdout().lock();
    let generation = airlock_engine::generate(&loaded.model, &loaded.tokenizer, request, |text| {
        match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()), // stdout closed: stop generating
        }
    })?;
    Ok(generation)
}

/// The timing line printed to stderr, as llama.cpp's and Ollama's `--verbose` do.
pub fn report(loaded: &Loaded, prompt_tokens: usize, generation: &Generation) {
    eprintln!(
        "\nload {:.2}s | prompt {} tokens, {:.1} tokens/s | generation {} tokens, {:.1} tokens/s | {:?}",
        loaded.load_duration.as_secs_f64(),
        prompt_tokens,
        generation.prompt_tokens_per_second(prompt_tokens),
        generation.tokens.len(),
        generation.tokens_per_second(),
        generation.finish,
    );
}

/// An adapter given on the command line: a folder, or a name under `adapters/`.
pub fn adapter_dir(spec: &str) -> PathBuf {
    let path = Path::new(spec);
    if path.exists() {
        path.to_path_buf()
    } else {
        Path::new("adapters").join(spec)
    }
}
