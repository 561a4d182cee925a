//! Shared helpers of the end-to-end tests: the real default model, fetched the way the CLI
//! fetches it, and the reference files in `../shared/reference/`.

use std::path::PathBuf;
use std::sync::OnceLock;

use airlock_model::{GgufSource, Llama, default_device};
use airlock_tokenizer::Tokenizer;

/// The default model's GGUF, pulled into the store on first use (like `airlock pull`).
pub fn default_model_path() -> PathBuf {
    airlock_store::resolve_model(None, false).expect("the default model can be fetched or is in the store")
}

/// The default model and its tokenizer, loaded once per test binary.
pub fn default_model() -> &'static (Llama, Tokenizer) {
    static MODEL: OnceLock<(Llama, Tokenizer)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let source = GgufSource::open(&default_model_path()).expect("default model opens");
        let tokenizer = Tokenizer::from_gguf(source.file()).expect("tokenizer builds");
        let model = Llama::load(&source, &default_device()).expect("model loads");
        (model, tokenizer)
    })
}

/// A reference PEFT adapter, loaded for the default model and ready to attach to requests.
pub fn reference_adapter(name: &str) -> std::sync::Arc<airlock_model::LoraWeights> {
    let (model, _) = default_model();
    let adapter = airlock_adapter::load_peft(&reference_path(name), model.config()).expect("adapter loads");
    std::sync::Arc::new(adapter.to_weights(model.device()).expect("adapter weights"))
}

/// `../shared/reference/<name>`, next to the repository.
pub fn reference_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference")
        .join(name)
}

/// A reference JSON file, `../shared/reference/<name>`, parsed.
pub fn reference_json(name: &str) -> serde_json::Value {
    let bytes = std::fs::read(reference_path(name)).expect("reference file reads");
    serde_json::from_slice(&bytes).expect("reference file is JSON")
}

/// A JSON array of token ids, as the reference files store them.
pub fn token_ids(ids: &serde_json::Value) -> Vec<u32> {
    ids.as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_u64().unwrap_or(0) as u32)
        .collect()
}
