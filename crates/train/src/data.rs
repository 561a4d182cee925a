//! Datasets: JSONL records in the `text`, `prompt`/`completion` or `messages` (chat) forms
//! (mlx-lm's and Hugging Face's conventions), turned into token sequences with a loss mask.
//!
//! - `text`: every token is learned.
//! - `prompt`/`completion`: the two strings are tokenized separately and joined, raw (as TRL's
//!   non-conversational prompt-completion format); only the completion is learned.
//! - `messages`: rendered with the model's chat template; only assistant turns (with the
//!   template's end-of-turn token) are learned.
//!
//! `--train-on-prompt` learns every token of every form. A bad line stops everything before
//! training starts, with its file, line number and reason.

use std::path::{Path, PathBuf};

use airlock_tokenizer::{ChatMessage, Tokenizer};
use serde::Deserialize;

use crate::TrainError;

/// One tokenized example: `tokens[i]` is learned (as the prediction after `tokens[..i]`)
/// where `learn[i]` is true.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub tokens: Vec<u32>,
    pub learn: Vec<bool>,
}

impl Example {
    pub fn learned_tokens(&self) -> usize {
        self.learn.iter().skip(1).filter(|&&l| l).count()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    text: Option<String>,
    prompt: Option<String>,
    completion: Option<String>,
    messages: Option<Vec<RawMessage>>,
    // Fields other tools add and that training does not need.
    #[serde(default, rename = "id")]
    _id: Option<serde_json::Value>,
    #[serde(default, rename = "kind")]
    _kind: Option<serde_json::Value>,
    #[serde(default, rename = "prompt_ids")]
    _prompt_ids: Option<serde_json::Value>,
    #[serde(default, rename = "completion_ids")]
    _completion_ids: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct RawMessage {
    role: String,
    content: String,
}

/// A record in one of the three forms.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Text(String),
    Completion { prompt: String, completion: String },
    Chat(Vec<ChatMessage>),
}

/// Reads every record of a JSONL file, or the first bad line's error.
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
        path: path.into(),
        source,
    })?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| TrainError::Line {
            path: path.into(),
            line: i + 1,
            reason,
        };
        let raw: RawRecord = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let record = match raw {
            RawRecord { messages: Some(m), .. } => {
                if !m.iter().any(|m| m.role == "assistant") {
                    return Err(bad("`messages` has no assistant message to learn".into()));
                }
                if let Some(m) = m
                    .iter()
                    .find(|m| !["system", "user", "assistant"].contains(&m.role.as_str()))
                {
                    return Err(bad(format!("unknown role `{}` (system, user or assistant)", m.role)));
                }
                Record::Chat(
                    m.into_iter()
                        .map(|m| ChatMessage {
                            role: m.role,
                            content: m.content,
                        })
                        .collect(),
                )
            }
            RawRecord {
                prompt: Some(prompt),
                completion: Some(completion),
                ..
            } => Record::Completion { prompt, completion },
            RawRecord { text: Some(text), .. } => Record::Text(text),
            RawRecord { prompt: Some(_), .. } => return Err(bad("`prompt` without `completion`".into())),
            _ => return Err(bad("expected `text`, `prompt` and `completion`, or `messages`".into())),
        };
        records.push(record);
    }
    if records.is_empty() {
        return Err(TrainError::Line {
            path: path.into(),
            line: 0,
            reason: "the file holds no records".into(),
        });
    }
    Ok(records)
}

/// Tokens and loss mask of one record.
pub fn tokenize(record: &Record, tokenizer: &Tokenizer, train_on_prompt: bool) -> Result<Example, TrainError> {
    let mut tokens = Vec::new();
    let mut learn = Vec::new();
    let mut push = |ids: Vec<u32>, learned: bool| {
        learn.extend(std::iter::repeat_n(learned || train_on_prompt, ids.len()));
        tokens.extend(ids);
    };
    match record {
        Record::Text(text) => {
            let mut ids = tokenizer.prompt_tokens(text)?;
            ids.extend(tokenizer.eos_id());
            push(ids, true);
        }
        Record::Completion { prompt, completion } => {
            push(tokenizer.prompt_tokens(prompt)?, false);
            push(tokenizer.encode(completion)?, true);
        }
        Record::Chat(messages) => {
            // Each assistant turn is what the template adds past the prompt before it.
            let mut done = 0;
            for (i, m) in messages.iter().enumerate() {
                if m.role != "assistant" {
                    continue;
                }
                let before = tokenizer.apply_chat_template(&messages[..i], true)?;
                let through = tokenizer.apply_chat_template(&messages[..=i], false)?;
                if !through.starts_with(&before) || before.len() < done {
                    return Err(TrainError::Template);
                }
                push(before[done..].to_vec(), false);
                push(through[before.len()..].to_vec(), true);
                done = through.len();
            }
        }
    }
    Ok(Example { tokens, learn })
}

/// The splits of a dataset folder (`train.jsonl`, optional `valid.jsonl`) or one file.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub train: Vec<Example>,
    pub valid: Vec<Example>,
    /// Examples cut to the maximum sequence length.
    pub truncated: usize,
}

pub fn split_paths(data: &Path) -> Result<(PathBuf, Option<PathBuf>), TrainError> {
    if data.is_dir() {
        let train = data.join("train.jsonl");
        if !train.exists() {
            return Err(TrainError::Io {
                path: train,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "a dataset folder needs train.jsonl"),
            });
        }
        let valid = data.join("valid.jsonl");
        Ok((train, valid.exists().then_some(valid)))
    } else {
        Ok((data.to_path_buf(), None))
    }
}

pub fn load_dataset(
    data: &Path,
    tokenizer: &Tokenizer,
    train_on_prompt: bool,
    max_seq_len: usize,
) -> Result<Dataset, TrainError> {
    let (train_path, valid_path) = split_paths(data)?;
    let mut truncated = 0;
    let mut load = |path: &Path| -> Result<Vec<Example>, TrainError> {
        let mut out = Vec::new();
        for record in read_jsonl(path)? {
            let mut ex = tokenize(&record, tokenizer, train_on_prompt)?;
            if ex.tokens.len() > max_seq_len {
                ex.tokens.truncate(max_seq_len);
                ex.learn.truncate(max_seq_len);
                truncated += 1;
            }
            if ex.learned_tokens() > 0 {
                out.push(ex);
            }
        }
        Ok(out)
    };
    let train = load(&train_path)?;
    let valid = match valid_path {
        Some(p) => load(&p)?,
        None => Vec::new(),
    };
    Ok(Dataset {
        train,
        valid,
        truncated,
    })
}
