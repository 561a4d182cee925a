//! `airlock demo`: the whole story in one command. Fetches the default model on first use,
//! loads the adapters that ship in `adapters/`, and turns the example clinical note into billing
//! JSON (constrained to the billing schema) with the medical-billing adapter, next to the base
//! model's answer.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use airlock_constrain::{Constraint, ConstraintCompiler};
use airlock_engine::Request;
use airlock_tokenizer::ChatMessage;
use anyhow::Context;

use crate::loaded;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The clinical note (default: examples/billing-note.txt).
    #[arg(long, default_value = "examples/billing-note.txt")]
    pub note: PathBuf,
    #[arg(long, default_value = "adapters/medical-billing")]
    pub adapter: PathBuf,
    #[arg(long, default_value = "configs/medical-billing.codes.schema.json")]
    pub schema: PathBuf,
    #[arg(long)]
    pub model: Option<String>,
}

/// The prompt of the structured-output example, byte for byte as the dataset uses it.
pub fn billing_prompt(note: &str) -> String {
    format!(
        "Extract medical billing information from this note.\n{note}\nRespond with JSON matching this schema:\n- diagnosis: string\n- urgency: \"routine\" | \"urgent\" | \"emergency\"\n- procedures: list of strings\n- billing_codes: list of strings (ICD-10 codes if applicable)"
    )
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let note = std::fs::read_to_string(&args.note).with_context(|| format!("reading {}", args.note.display()))?;
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&args.schema).with_context(|| format!("reading {}", args.schema.display()))?,
    )?;
    let loaded = loaded::load(args.model.as_deref())?;
    let adapter = airlock_adapter::load_peft(&args.adapter, loaded.model.config())
        .with_context(|| format!("loading the adapter in {}", args.adapter.display()))?;
    let weights = Arc::new(adapter.to_weights(loaded.model.device())?);
    let compiler = ConstraintCompiler::new(&loaded.tokenizer)?;
    let message = ChatMessage {
        role: "user".into(),
        content: billing_prompt(note.trim_end()),
    };
    let prompt = loaded.tokenizer.apply_chat_template(&[message], true)?;
    println!("note:\n{}\n", note.trim_end());
    for (label, adapters) in [
        ("base model", Vec::new()),
        ("medical-billing adapter", vec![(weights, 1.0)]),
    ] {
        let request = Request {
            prompt: prompt.clone(),
            max_tokens: 200,
            adapters,
            constraint: Some(compiler.compile(&Constraint::JsonSchema(schema.clone()))?),
            ..Request::default()
        };
        let generation =
            airlock_engine::generate(&loaded.model, &loaded.tokenizer, request, |_| ControlFlow::Continue(()))?;
        println!("{label}:\n{}\n", generation.text);
    }
    Ok(())
}
