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
    /// A LoRA adapter folder (PEFT layout) to apply.
    #[arg(long)]
    pub adapter: Option<std::path::PathBuf>,
    /// Multiplies the adapter's own alpha / r.
    #[arg(long, default_value_t = 1.0, requires = "adapter")]
    pub adapter_scale: f32,
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
    let mut request = args.sampling.request(prompt);
    if let Some(dir) = &args.adapter {
        let adapter = airlock_adapter::load_peft(dir, loaded.model.config())?;
        request.adapters = vec![(
            std::sync::Arc::new(adapter.to_weights(loaded.model.device())?),
            args.adapter_scale,
        )];
    }
    let generation = stream_to_stdout(&loaded, request)?;
    println!();
    report(&loaded, prompt_tokens, &generation);
    Ok(())
}
