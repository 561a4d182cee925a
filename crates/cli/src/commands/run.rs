//! `airlock run [MODEL] [PROMPT]`: like `ollama run`, one answer for a prompt, or an
//! interactive chat that keeps the conversation's history when there is none.

use std::io::{BufRead, Write};

use airlock_tokenizer::ChatMessage;

use super::{SamplingArgs, report, stream_to_stdout};
use crate::loaded::{self, Loaded};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A store name or a path (default: $AIRLOCK_MODEL or the default model).
    pub model: Option<String>,
    /// The message; without one, an interactive chat starts.
    pub prompt: Vec<String>,
    /// Print timing statistics after each answer.
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let loaded = loaded::load(args.model.as_deref())?;
    if !args.prompt.is_empty() {
        let mut history = vec![ChatMessage {
            role: "user".into(),
            content: args.prompt.join(" "),
        }];
        answer(&loaded, &args, &mut history)?;
        return Ok(());
    }
    eprintln!(
        "{} loaded. Type a message; /clear forgets the conversation, /bye (or Ctrl-D) quits.",
        loaded.path.display()
    );
    let mut history = Vec::new();
    let stdin = std::io::stdin();
    loop {
        eprint!(">>> ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        match line.trim() {
            "" => continue,
            "/bye" | "/exit" => break,
            "/clear" => {
                history.clear();
                eprintln!("Cleared the conversation.");
                continue;
            }
            text => history.push(ChatMessage {
                role: "user".into(),
                content: text.to_string(),
            }),
        }
        answer(&loaded, &args, &mut history)?;
    }
    Ok(())
}

/// Streams the assistant's answer to the conversation and appends it to the history.
fn answer(loaded: &Loaded, args: &Args, history: &mut Vec<ChatMessage>) -> anyhow::Result<()> {
    let prompt = loaded.tokenizer.apply_chat_template(history, true)?;
    let prompt_tokens = prompt.len();
    let generation = stream_to_stdout(loaded, args.sampling.request(prompt))?;
    println!();
    if args.verbose {
        report(loaded, prompt_tokens, &generation);
    }
    history.push(ChatMessage {
        role: "assistant".into(),
        content: generation.text,
    });
    Ok(())
}
