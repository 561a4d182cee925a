//! `airlock`: run, fine-tune and serve quantized Llama models on your own machine.
//!
//! The commands are shaped like Ollama's (`pull`, `run`, `list`, `serve`) so the people we serve can type
//! what they already know; `generate` and `inspect` are for scripts and debugging.

mod commands;
mod loaded;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "airlock",
    version,
    about = "Offline LoRA fine-tuning and serving of quantized Llama models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole story: the example clinical note to billing JSON, base model vs adapter.
    Demo(commands::demo::Args),
    /// Fetch a model into the local store (default: the default model).
    Pull(commands::pull::Args),
    /// Chat with a model: one answer for a prompt, an interactive session without one.
    Run(commands::run::Args),
    /// List the models in the local store.
    List,
    /// Generate text from a prompt, streaming it to stdout (statistics go to stderr).
    Generate(commands::generate::Args),
    /// Show a model's architecture, quantization, sizes and chat template.
    Inspect(commands::inspect::Args),
    /// Measure adapters' accuracy on a test split and gate on thresholds.
    Eval(Box<commands::eval::Args>),
    /// Fine-tune a LoRA adapter on a JSONL dataset.
    Train(Box<commands::train::Args>),
    /// Export an adapter to llama.cpp's GGUF LoRA format, or merge it into the base.
    #[command(subcommand)]
    Adapters(commands::adapters::Command),
    /// Serve the model and its adapters over Ollama's and OpenAI's HTTP APIs.
    Serve(commands::serve::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Pull(args) => commands::pull::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::List => commands::list::run(),
        Command::Generate(args) => commands::generate::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Train(args) => commands::train::run(*args),
        Command::Eval(args) => commands::eval::run(*args),
        Command::Adapters(command) => commands::adapters::run(command),
        Command::Serve(args) => commands::serve::run(args),
    }
}
