//! The state every handler shares: the engine, the constraint compiler, the adapter registry,
//! the base model's facts, the configuration and the metrics; and how model names resolve to
//! "the base with these adapters".

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use airlock_constrain::ConstraintCompiler;
use airlock_engine::Engine;
use airlock_model::{AdapterSet, GgufSource, Llama, default_device};
use airlock_store::Store;
use airlock_tokenizer::Tokenizer;

use crate::config::{ServeConfig, normalize_name};
use crate::error::ApiError;
use crate::metrics::ServerMetrics;
use crate::model_info::ModelInfo;
use crate::registry::AdapterRegistry;

/// Most adapters one request may mix.
pub const MAX_ADAPTERS_PER_REQUEST: usize = 8;
/// Largest |scale| accepted for an adapter in a request.
pub const MAX_ADAPTER_SCALE: f32 = 8.0;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot load the model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error(transparent)]
    Constraint(#[from] airlock_constrain::ConstrainError),
}

/// Handlers' shared state; clones share it.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub engine: Engine,
    pub compiler: Arc<ConstraintCompiler>,
    pub adapters: AdapterRegistry,
    pub model: ModelInfo,
    pub config: ServeConfig,
    /// Bearer token required on every route but `/health`.
    pub api_key: Option<String>,
    pub metrics: ServerMetrics,
    /// The local model store, for `/api/pull` and `/api/delete`.
    pub store: Option<Store>,
    pub started: Instant,
    /// How long loading the model took (Ollama's `load_duration` of the first request).
    pub load_duration: std::time::Duration,
}

/// Everything besides the model that [`AppState::load`] needs.
#[derive(Debug, Clone, Default)]
pub struct StateOptions {
    pub api_key: Option<String>,
    /// Where `adapters.json` lives (the store's root in `airlock serve`); `None` remembers nothing.
    pub state_dir: Option<PathBuf>,
    pub store: Option<Store>,
    /// The file's SHA-256 when already known (from the store's manifest), to skip hashing it.
    pub sha256: Option<String>,
}

/// What a model name stands for.
#[derive(Debug, Clone)]
pub struct Target {
    /// The adapters to apply, with their scales (empty for the base).
    pub adapters: AdapterSet,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Loads the GGUF at `path`, starts the engine and loads the adapters of `config.adapters_dir`
    /// and those remembered in the state directory. Problems with single adapters are returned
    /// as warnings; the server starts without them.
    pub fn load(path: &Path, config: ServeConfig, options: StateOptions) -> Result<(Self, Vec<String>), StartError> {
        let started = Instant::now();
        let err = |reason: String| StartError::Model {
            path: path.to_path_buf(),
            reason,
        };
        let source = GgufSource::open(path).map_err(|e| err(e.to_string()))?;
        let tokenizer = Arc::new(Tokenizer::from_gguf(source.file()).map_err(|e| err(e.to_string()))?);
        let device = default_device();
        let model = Llama::load(&source, &device).map_err(|e| err(e.to_string()))?;
        let info = ModelInfo::read(
            path,
            source.file(),
            model.config().context_length,
            options.sha256.clone(),
        )
        .map_err(|e| err(e.to_string()))?;
        let compiler = Arc::new(ConstraintCompiler::new(&tokenizer)?);
        let adapters = AdapterRegistry::new(model.config().clone(), device, options.state_dir.as_deref());
        let engine = Engine::start(model, tokenizer, config.engine);
        let mut warnings = Vec::new();
        if let Some(dir) = &config.adapters_dir {
            warnings.extend(adapters.load_directory(dir));
        }
        warnings.extend(adapters.load_remembered());
        let state = AppState(Arc::new(Inner {
            engine,
            compiler,
            adapters,
            model: info,
            config,
            api_key: options.api_key,
            metrics: ServerMetrics::default(),
            store: options.store,
            started: Instant::now(),
            load_duration: started.elapsed(),
        }));
        Ok((state, warnings))
    }

    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        self.engine.tokenizer()
    }

    /// Whether `name` (normalized) is the base model.
    fn is_base(&self, name: &str) -> bool {
        name == self.model.name
            || self.model.other_names.iter().any(|n| n == name)
            || airlock_store::canonical_name(name) == Some(self.model.name.as_str())
    }

    /// Resolves a requested model name: an alias from the config, then the base model (by its
    /// name, a store alias or `name:tag`), then a loaded adapter. 404 otherwise.
    pub fn resolve_model(&self, requested: &str) -> Result<Target, ApiError> {
        let normalized = normalize_name(requested);
        if normalized.is_empty() {
            return Err(ApiError::BadRequest("model is required".into()));
        }
        let name = match self.config.aliases.get(&normalized) {
            Some(target) => normalize_name(target),
            None => normalized,
        };
        if self.is_base(&name) {
            return Ok(Target { adapters: Vec::new() });
        }
        match self.adapters.get(&name) {
            Some(adapter) => Ok(Target {
                adapters: vec![(Arc::clone(&adapter.weights), 1.0)],
            }),
            None => Err(ApiError::ModelNotFound(requested.to_string())),
        }
    }

    /// The target of `model` plus the request's own adapters (`[{"name", "scale"}]`).
    pub fn resolve_adapters(&self, model: &str, extra: &[crate::request::AdapterRef]) -> Result<AdapterSet, ApiError> {
        let mut set = self.resolve_model(model)?.adapters;
        for item in extra {
            if !item.scale.is_finite() || item.scale.abs() > MAX_ADAPTER_SCALE {
                return Err(ApiError::BadRequest(format!(
                    "adapter '{}': scale must be a number between -{MAX_ADAPTER_SCALE} and {MAX_ADAPTER_SCALE}",
                    item.name
                )));
            }
            let key = normalize_name(&item.name);
            let key = self.config.aliases.get(&key).map_or(key, |t| normalize_name(t));
            let adapter = self
                .adapters
                .get(&key)
                .ok_or_else(|| ApiError::AdapterNotFound(item.name.clone()))?;
            set.push((Arc::clone(&adapter.weights), item.scale));
        }
        if set.len() > MAX_ADAPTERS_PER_REQUEST {
            return Err(ApiError::BadRequest(format!(
                "at most {MAX_ADAPTERS_PER_REQUEST} adapters per request"
            )));
        }
        Ok(set)
    }

    /// Every name a client may use for the base model, the adapters and the aliases, as listed
    /// by `/api/tags` and `/v1/models`: `(name, adapter or None for the base)`.
    pub fn model_names(&self) -> Vec<(String, Option<Arc<crate::registry::LoadedAdapter>>)> {
        let mut names = vec![(self.model.name.clone(), None)];
        for adapter in self.adapters.list() {
            names.push((adapter.name.clone(), Some(adapter)));
        }
        for (alias, target) in &self.config.aliases {
            let target = normalize_name(target);
            if self.is_base(&target) {
                names.push((alias.clone(), None));
            } else if let Some(adapter) = self.adapters.get(&target) {
                names.push((alias.clone(), Some(adapter)));
            }
        }
        names
    }
}
