//! What the server tells clients about its base model (`/api/tags`, `/api/show`, `/v1/models`),
//! read once from the GGUF file at start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use airlock_gguf::{GgufFile, Value};

/// The served base model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The name it is served as (the store's canonical name, or the file stem).
    pub name: String,
    /// Other names that mean it (the store's aliases, the file stem), lower case.
    pub other_names: Vec<String>,
    pub path: PathBuf,
    /// Bytes of the file.
    pub size: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    pub family: String,
    /// Ollama's rounded count, e.g. `135M`.
    pub parameter_size: String,
    /// The type of most weights, e.g. `Q4_1`.
    pub quantization_level: String,
    pub context_length: usize,
    /// The Jinja chat template the model carries, if any.
    pub template: Option<String>,
    /// File modification time, seconds since the Unix epoch.
    pub modified_at: u64,
    /// Scalar GGUF metadata (`general.*`, `llama.*`), as `/api/show`'s `model_info`.
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl ModelInfo {
    /// Reads the facts from `file` (the GGUF at `path`); hashes the file unless `sha256` is known.
    pub fn read(path: &Path, file: &GgufFile, context_length: usize, sha256: Option<String>) -> std::io::Result<Self> {
        let file_name = path.file_name().and_then(|s| s.to_str()).unwrap_or_default();
        let store_entry = airlock_store::KNOWN_MODELS.iter().find(|e| e.file == file_name);
        let (name, mut other_names) = match store_entry {
            Some(e) => (e.name.to_string(), e.aliases.iter().map(|a| a.to_string()).collect()),
            None => (
                path.file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("model")
                    .to_ascii_lowercase(),
                Vec::new(),
            ),
        };
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            other_names.push(stem.to_ascii_lowercase());
        }
        let sha256 = match sha256 {
            Some(s) => s,
            None => {
                airlock_store::sha256_file(path)
                    .map_err(|e| std::io::Error::other(e.to_string()))?
                    .0
            }
        };
        let meta = std::fs::metadata(path)?;
        let parameters: u64 = file.tensors.iter().map(|t| t.n_elements()).sum();
        let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
        for t in file.tensors.iter().filter(|t| t.dims.len() >= 2) {
            *by_type.entry(t.ggml_type.name().to_uppercase()).or_default() += t.n_elements();
        }
        let quantization_level = by_type
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map_or_else(|| "unknown".to_string(), |(t, _)| t);
        let metadata = file
            .metadata
            .iter()
            .filter_map(|(k, v)| scalar(v).map(|v| (k.clone(), v)))
            .collect();
        Ok(Self {
            name,
            other_names,
            path: path.to_path_buf(),
            size: meta.len(),
            sha256,
            family: file.architecture().unwrap_or("llama").to_string(),
            parameter_size: round_count(parameters),
            quantization_level,
            context_length,
            template: file.get_str("tokenizer.chat_template").ok().map(str::to_string),
            modified_at: meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
            metadata,
        })
    }
}

fn scalar(v: &Value) -> Option<serde_json::Value> {
    Some(match v {
        Value::U8(x) => (*x).into(),
        Value::I8(x) => (*x).into(),
        Value::U16(x) => (*x).into(),
        Value::I16(x) => (*x).into(),
        Value::U32(x) => (*x).into(),
        Value::I32(x) => (*x).into(),
        Value::U64(x) => (*x).into(),
        Value::I64(x) => (*x).into(),
        Value::F32(x) => serde_json::Number::from_f64(f64::from(*x))?.into(),
        Value::F64(x) => serde_json::Number::from_f64(*x)?.into(),
        Value::Bool(x) => (*x).into(),
        Value::String(s) if s.len() <= 256 => s.clone().into(),
        Value::String(_) | Value::Array(_) => return None,
    })
}

/// `134515008` -> `135M`, as Ollama shows parameter counts.
fn round_count(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0}M", n / 1e6)
    } else {
        format!("{:.0}K", n / 1e3)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_round_like_ollama() {
        assert_eq!(super::round_count(134_515_008), "135M");
        assert_eq!(super::round_count(8_030_261_248), "8.0B");
    }
}
