//! The adapter registry: loaded LoRA adapters by name, hot-swapped while serving.
//!
//! Requests capture an `Arc<LoraWeights>` when they are submitted, so unloading an adapter only
//! removes it from the map: rows already running keep the weights they started with. Loading
//! (reading, checking and converting the files) runs on a blocking thread, never on the async
//! runtime. Adapters loaded through the API are remembered in `adapters.json` in the state
//! directory (written atomically: temp file + rename) and loaded again, with their SHA-256
//! checked, at the next start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use airlock_adapter::{CONFIG_FILE, load_peft, module_name, write_atomic};
use airlock_model::{Device, LlamaConfig, LoraWeights};
use serde::{Deserialize, Serialize};

use crate::config::normalize_name;
use crate::error::ApiError;

/// The file in the state directory listing adapters loaded through the API.
pub const REMEMBERED_FILE: &str = "adapters.json";
const MAX_NAME_LEN: usize = 64;

/// How an adapter came to be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A directory under `--adapters`, loaded at start.
    Directory,
    /// The API (`POST /api/adapters`, `/v1/load_lora_adapter`); remembered across restarts.
    Api,
}

/// One loaded adapter and what `GET /api/adapters` reports of it.
#[derive(Debug, Serialize)]
pub struct LoadedAdapter {
    pub name: String,
    pub path: PathBuf,
    pub rank: usize,
    pub alpha: f32,
    pub targets: Vec<String>,
    /// Bytes of the weights file.
    pub size: u64,
    pub sha256: String,
    /// Seconds since the Unix epoch.
    pub loaded_at: u64,
    pub origin: Origin,
    #[serde(skip)]
    pub weights: Arc<LoraWeights>,
}

/// An entry of `adapters.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    name: String,
    path: PathBuf,
    sha256: String,
}

#[derive(Debug)]
pub struct AdapterRegistry {
    adapters: RwLock<BTreeMap<String, Arc<LoadedAdapter>>>,
    /// `adapters.json`; `None` keeps nothing across restarts.
    remembered: Option<PathBuf>,
    /// Serializes rewrites of `adapters.json`.
    write_lock: std::sync::Mutex<()>,
    base: LlamaConfig,
    device: Device,
}

/// Adapter and alias names: a plain identifier that is safe in a URL path and a file name.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("must be 1 to {MAX_NAME_LEN} characters"));
    }
    if name.starts_with(['.', '-'])
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(
            "may hold only letters, digits, '-', '_', '.' and ':' and must start with a letter or digit".into(),
        );
    }
    Ok(())
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl AdapterRegistry {
    /// An empty registry; `state_dir`, when given, holds `adapters.json`.
    pub fn new(base: LlamaConfig, device: Device, state_dir: Option<&Path>) -> Self {
        Self {
            adapters: RwLock::new(BTreeMap::new()),
            remembered: state_dir.map(|d| d.join(REMEMBERED_FILE)),
            write_lock: std::sync::Mutex::new(()),
            base,
            device,
        }
    }

    /// The adapter of that name (compared as [`normalize_name`] does).
    pub fn get(&self, name: &str) -> Option<Arc<LoadedAdapter>> {
        self.read().get(&normalize_name(name)).cloned()
    }

    pub fn list(&self) -> Vec<Arc<LoadedAdapter>> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<LoadedAdapter>>> {
        self.adapters.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<LoadedAdapter>>> {
        self.adapters.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads, checks and converts an adapter, and adds it under `name`. Blocking: call it from
    /// `spawn_blocking`. `expected_sha256` (hex) must match the weights file when given.
    pub fn load(
        &self,
        name: &str,
        path: &Path,
        expected_sha256: Option<&str>,
        origin: Origin,
    ) -> Result<Arc<LoadedAdapter>, ApiError> {
        let name = &normalize_name(name);
        check_name(name).map_err(|reason| ApiError::BadRequest(format!("adapter name '{name}' {reason}")))?;
        if self.get(name).is_some() {
            return Err(ApiError::Conflict(format!(
                "an adapter named '{name}' is already loaded"
            )));
        }
        let path = &path
            .canonicalize()
            .map_err(|e| ApiError::BadAdapter(format!("{}: {e}", path.display())))?;
        if !path.join(CONFIG_FILE).is_file() {
            return Err(ApiError::BadAdapter(format!(
                "{} has no {CONFIG_FILE}: not a PEFT adapter directory",
                path.display()
            )));
        }
        let adapter = load_peft(path, &self.base).map_err(|e| ApiError::BadAdapter(e.to_string()))?;
        if let Some(expected) = expected_sha256
            && !expected.eq_ignore_ascii_case(&adapter.sha256)
        {
            return Err(ApiError::BadAdapter(format!(
                "{}: SHA-256 is {}, expected {expected}",
                path.display(),
                adapter.sha256
            )));
        }
        let weights = adapter
            .to_weights(&self.device)
            .map_err(|e| ApiError::BadAdapter(e.to_string()))?;
        let loaded = Arc::new(LoadedAdapter {
            name: name.to_string(),
            path: path.to_path_buf(),
            rank: adapter.config.r,
            alpha: adapter.config.alpha,
            targets: adapter
                .config
                .targets
                .iter()
                .map(|&w| module_name(w).to_string())
                .collect(),
            size: adapter.size,
            sha256: adapter.sha256,
            loaded_at: now_secs(),
            origin,
            weights: Arc::new(weights),
        });
        {
            let mut adapters = self.write();
            if adapters.contains_key(name) {
                return Err(ApiError::Conflict(format!(
                    "an adapter named '{name}' is already loaded"
                )));
            }
            adapters.insert(name.to_string(), Arc::clone(&loaded));
        }
        if origin == Origin::Api {
            self.persist()?;
        }
        Ok(loaded)
    }

    /// Removes `name`; requests already running keep its weights. Blocking (rewrites the file).
    pub fn unload(&self, name: &str) -> Result<Arc<LoadedAdapter>, ApiError> {
        let removed = self
            .write()
            .remove(&normalize_name(name))
            .ok_or_else(|| ApiError::AdapterNotFound(name.to_string()))?;
        if removed.origin == Origin::Api {
            self.persist()?;
        }
        Ok(removed)
    }

    /// Loads every adapter directory in `dir`, each named after its directory. Returns the
    /// problems with those that could not be loaded (they are skipped).
    pub fn load_directory(&self, dir: &Path) -> Vec<String> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return vec![format!("cannot read {}: {e}", dir.display())],
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join(CONFIG_FILE).is_file())
            .collect();
        paths.sort();
        let mut problems = Vec::new();
        for path in paths {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if let Err(e) = self.load(&name, &path, None, Origin::Directory) {
                problems.push(format!("adapter {}: {e}", path.display()));
            }
        }
        problems
    }

    /// Loads the adapters remembered in `adapters.json`, checking each file's SHA-256 against the
    /// one recorded. Returns the problems with those that could not be loaded.
    pub fn load_remembered(&self) -> Vec<String> {
        let Some(file) = &self.remembered else {
            return Vec::new();
        };
        let entries: Vec<Remembered> = match std::fs::read(file) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(entries) => entries,
                Err(e) => return vec![format!("{}: {e}", file.display())],
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => return vec![format!("cannot read {}: {e}", file.display())],
        };
        let mut problems = Vec::new();
        for entry in entries {
            if self.get(&entry.name).is_some() {
                continue;
            }
            if let Err(e) = self.load(&entry.name, &entry.path, Some(&entry.sha256), Origin::Api) {
                problems.push(format!("remembered adapter {}: {e}", entry.name));
            }
        }
        problems
    }

    /// Rewrites `adapters.json` with the adapters loaded through the API.
    fn persist(&self) -> Result<(), ApiError> {
        let Some(file) = &self.remembered else {
            return Ok(());
        };
        let _guard = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entries: Vec<Remembered> = self
            .list()
            .into_iter()
            .filter(|a| a.origin == Origin::Api)
            .map(|a| Remembered {
                name: a.name.clone(),
                path: a.path.clone(),
                sha256: a.sha256.clone(),
            })
            .collect();
        let json = serde_json::to_vec_pretty(&entries).map_err(|e| ApiError::Internal(e.to_string()))?;
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ApiError::Internal(format!("{}: {e}", parent.display())))?;
        }
        write_atomic(file, &json).map_err(|e| ApiError::Internal(e.to_string()))
    }
}
