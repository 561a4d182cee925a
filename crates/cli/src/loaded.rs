//! Finding and loading a model: a store name or a path (GGUF file, or a Hugging Face directory
//! with config.json, model.safetensors and tokenizer.json), with its tokenizer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airlock_model::{GgufSource, Llama, SafetensorsSource, default_device};
use airlock_tokenizer::Tokenizer;
use anyhow::Context;

/// A model ready to generate with.
pub struct Loaded {
    pub model: Llama,
    pub tokenizer: Tokenizer,
    pub path: PathBuf,
    pub load_duration: Duration,
}

/// Resolves `spec` (a path, a store name, or `None` for `$AIRLOCK_MODEL` / the default model),
/// fetching the model on first use unless `AIRLOCK_OFFLINE=1`.
pub fn resolve(spec: Option<&str>) -> anyhow::Result<PathBuf> {
    let from_env = std::env::var("AIRLOCK_MODEL").ok().filter(|s| !s.is_empty());
    let spec = spec.map(str::to_string).or(from_env);
    if let Some(path) = spec.as_deref().map(Path::new).filter(|p| p.exists()) {
        return Ok(path.to_path_buf());
    }
    Ok(airlock_store::resolve_model(spec.as_deref(), true)?)
}

pub fn load(spec: Option<&str>) -> anyhow::Result<Loaded> {
    let path = resolve(spec)?;
    let started = Instant::now();
    let device = default_device();
    let (model, tokenizer) = if path.is_dir() {
        let source = SafetensorsSource::open(&path)?;
        let config = path.join("tokenizer_config.json");
        let tokenizer = Tokenizer::from_file(
            &path.join("tokenizer.json"),
            config.exists().then_some(config.as_path()),
        )
        .with_context(|| format!("loading the tokenizer in {}", path.display()))?;
        (Llama::load(&source, &device)?, tokenizer)
    } else {
        let source = GgufSource::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let tokenizer = Tokenizer::from_gguf(source.file())?;
        (Llama::load(&source, &device)?, tokenizer)
    };
    Ok(Loaded {
        model,
        tokenizer,
        path,
        load_duration: started.elapsed(),
    })
}
