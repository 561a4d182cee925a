//! `airlock generate`: a completion of a prompt, as text on stdout.

use airlock_tokenizer::ChatMessage;

use super::{SamplingArgs, report, stream_to_stdout};
use crate::loaded;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: a store name, a GGUF file or a Hugging Face directory (default: $AIRLOCK_MODEL or
    /// the default model).
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub prompt: String,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long, conflicts_with = "raw")]
    pub chat: bool,
    /// Use the prompt verbatim with no template, parsing special-token text (`<|im_start|>`) in
    /// it as special tokens, as Ollama's raw mode and llama.cpp do.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let loaded = loaded::load(args.model.as_deref())?;
    let tokenizer = &loaded.tokenizer;
    let prompt = if args.chat {
        let message = ChatMessage {
            role: "user".into(),
            content: args.prompt.clone(),
        };
        tokenizer.apply_chat_template(&[message], true)?
    } else if args.raw {
        tokenizer.encode_with_special(&args.prompt)?
    } else {
        tokenizer.prompt_tokens(&args.prompt)?
    };
    let prompt_tokens = prompt.len();
    let generation = stream_to_stdout(&loaded, args.sampling.request(prompt))?;
    println!();
    report(&loaded, prompt_tokens, &generation);
    Ok(())
}
