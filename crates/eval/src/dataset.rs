//! Evaluation examples: the same JSONL forms the trainer reads. The prompt is everything but the
//! last assistant message (or `prompt`); the reference is that message (or `completion`); an
//! optional `answer` field names the phrase the `contains` metric looks for.

use std::path::Path;

use airlock_tokenizer::ChatMessage;
use serde::Deserialize;

use crate::EvalError;

#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Chat(Vec<ChatMessage>),
    Raw(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvalExample {
    pub prompt: Prompt,
    pub reference: String,
    /// What `contains` looks for; the reference when absent.
    pub answer: Option<String>,
}

#[derive(Deserialize)]
struct Line {
    prompt: Option<String>,
    completion: Option<String>,
    messages: Option<Vec<Message>>,
    answer: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

pub fn read_examples(path: &Path) -> Result<Vec<EvalExample>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.into(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |reason: String| EvalError::Line {
            path: path.into(),
            line: i + 1,
            reason,
        };
        let raw: Line = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let example = match (raw.messages, raw.prompt, raw.completion) {
            (Some(mut messages), _, _) => {
                let last = messages.pop().filter(|m| m.role == "assistant");
                let reference = last.ok_or_else(|| bad("the last message must be the assistant's reference".into()))?;
                let prompt = messages
                    .into_iter()
                    .map(|m| ChatMessage {
                        role: m.role,
                        content: m.content,
                    })
                    .collect();
                EvalExample {
                    prompt: Prompt::Chat(prompt),
                    reference: reference.content,
                    answer: raw.answer,
                }
            }
            (None, Some(prompt), Some(completion)) => EvalExample {
                prompt: Prompt::Raw(prompt),
                reference: completion,
                answer: raw.answer,
            },
            _ => return Err(bad("expected `messages`, or `prompt` and `completion`".into())),
        };
        out.push(example);
    }
    if out.is_empty() {
        return Err(EvalError::Line {
            path: path.into(),
            line: 0,
            reason: "the file holds no examples".into(),
        });
    }
    Ok(out)
}
