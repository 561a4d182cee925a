//! The serving configuration (TOML, `airlock serve --config FILE`): read as it is, every field
//! optional, then resolved once into [`ServeConfig`], where each default lives.
//!
//! ```toml
//! model = "smollm2-135m-instruct"   # a store name or a GGUF path
//! adapters_dir = "adapters"         # every PEFT adapter directory in it is loaded at start
//! max_batch = 8                     # rows decoded together
//! queue_capacity = 64               # waiting requests before 503
//! request_timeout_secs = 300
//! default_max_tokens = 1024         # when a request sets no limit
//! body_limit_bytes = 8388608
//! [aliases]                         # other names for the base model or an adapter
//! llama3 = "smollm2-135m-instruct"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use airlock_engine::EngineOptions;
use serde::Deserialize;

use crate::registry::check_name;

const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_MAX_TOKENS: usize = 1024;
const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Upper bounds that keep a typo from asking for absurd resources.
const MAX_BATCH: usize = 256;
const MAX_QUEUE: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid serving config: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("invalid serving config: {field} {reason}")]
    Invalid { field: String, reason: String },
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    model: Option<String>,
    adapters_dir: Option<PathBuf>,
    max_batch: Option<usize>,
    queue_capacity: Option<usize>,
    request_timeout_secs: Option<u64>,
    default_max_tokens: Option<usize>,
    body_limit_bytes: Option<usize>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
}

/// The resolved configuration; no field is optional except where absence means something.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The base model (store name or path); `None` = `$AIRLOCK_MODEL` or the default model.
    pub model: Option<String>,
    /// Adapters loaded at start, one PEFT directory each.
    pub adapters_dir: Option<PathBuf>,
    pub engine: EngineOptions,
    /// Longest a request may spend in the engine.
    pub request_timeout: Duration,
    /// Token limit of a request that sets none (the context length bounds it too).
    pub default_max_tokens: usize,
    /// Largest request body accepted (413 beyond).
    pub body_limit: usize,
    /// Alias (lower case, without `:latest`) -> model or adapter name.
    pub aliases: BTreeMap<String, String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            model: None,
            adapters_dir: None,
            engine: EngineOptions::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            default_max_tokens: DEFAULT_MAX_TOKENS,
            body_limit: DEFAULT_BODY_LIMIT,
            aliases: BTreeMap::new(),
        }
    }
}

impl ServeConfig {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str::<RawConfig>(text)?.resolve()
    }

    /// Reads `path`; a relative `adapters_dir` is taken relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text)?;
        if let (Some(dir), Some(parent)) = (&config.adapters_dir, path.parent())
            && dir.is_relative()
        {
            config.adapters_dir = Some(parent.join(dir));
        }
        Ok(config)
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn in_range(field: &str, value: usize, max: usize) -> Result<usize, ConfigError> {
    if value == 0 || value > max {
        return Err(invalid(field, format!("must be between 1 and {max}")));
    }
    Ok(value)
}

impl RawConfig {
    fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let defaults = ServeConfig::default();
        let engine = EngineOptions {
            max_batch: in_range(
                "max_batch",
                self.max_batch.unwrap_or(defaults.engine.max_batch),
                MAX_BATCH,
            )?,
            queue_capacity: in_range(
                "queue_capacity",
                self.queue_capacity.unwrap_or(defaults.engine.queue_capacity),
                MAX_QUEUE,
            )?,
        };
        let request_timeout = match self.request_timeout_secs {
            Some(0) => return Err(invalid("request_timeout_secs", "must be positive")),
            Some(secs) => Duration::from_secs(secs),
            None => defaults.request_timeout,
        };
        let mut aliases = BTreeMap::new();
        for (alias, target) in self.aliases {
            let key = normalize_name(&alias);
            check_name(&key).map_err(|reason| invalid(&format!("alias `{alias}`"), reason))?;
            if target.trim().is_empty() {
                return Err(invalid(&format!("alias `{alias}`"), "has an empty target"));
            }
            aliases.insert(key, target.trim().to_string());
        }
        Ok(ServeConfig {
            model: self.model.filter(|m| !m.trim().is_empty()),
            adapters_dir: self.adapters_dir,
            engine,
            request_timeout,
            default_max_tokens: in_range(
                "default_max_tokens",
                self.default_max_tokens.unwrap_or(defaults.default_max_tokens),
                1 << 20,
            )?,
            body_limit: in_range(
                "body_limit_bytes",
                self.body_limit_bytes.unwrap_or(defaults.body_limit),
                1 << 30,
            )?,
            aliases,
        })
    }
}

/// A model name as compared: trimmed, lower case, without Ollama's default `:latest` tag.
pub fn normalize_name(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    match name.strip_suffix(":latest") {
        Some(base) => base.to_string(),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = ServeConfig::parse("").expect("parses");
        assert_eq!(config.engine.max_batch, EngineOptions::default().max_batch);
        assert_eq!(config.body_limit, DEFAULT_BODY_LIMIT);
        assert!(config.aliases.is_empty());
    }

    #[test]
    fn aliases_are_normalized_and_unknown_keys_are_rejected() {
        let config = ServeConfig::parse("[aliases]\n\"Llama3:latest\" = \"smollm2\"\n").expect("parses");
        assert_eq!(config.aliases.get("llama3").map(String::as_str), Some("smollm2"));
        assert!(ServeConfig::parse("max_bach = 3").is_err());
        assert!(ServeConfig::parse("max_batch = 0").is_err());
        assert!(ServeConfig::parse("[aliases]\n\"a/b\" = \"x\"\n").is_err());
    }

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/serve.toml");
        let config = ServeConfig::load(&path).expect("configs/serve.toml parses");
        assert_eq!(
            config.aliases.get("llama3").map(String::as_str),
            Some("smollm2-135m-instruct")
        );
        assert!(config.adapters_dir.is_some());
    }
}
