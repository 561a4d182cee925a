//! The crate's error type: one variant per way a GGUF file, a tensor or a call can be wrong, with
//! structured fields so callers can match on them and messages that name the offending key or tensor.

use std::path::PathBuf;

/// Everything that can go wrong reading, writing, quantizing or dequantizing GGUF data.
#[derive(thiserror::Error, Debug)]
pub enum GgufError {
    /// The operating system refused to open, map, write or rename a file.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the four bytes `GGUF`.
    #[error("not a GGUF file: the first four bytes are not \"GGUF\"")]
    BadMagic,
    /// Only GGUF versions 2 and 3 are read.
    #[error("unsupported GGUF version {0} (supported: 2 and 3)")]
    UnsupportedVersion(u32),
    /// The file ended in the middle of `what`, which started at byte `offset`.
    #[error("file truncated while reading {what} at byte offset {offset}")]
    Truncated { what: String, offset: u64 },
    /// A count or size read from the file exceeds the cap this reader enforces.
    #[error("{what} is {value}, more than the maximum of {max}")]
    TooLarge { what: String, value: u64, max: u64 },
    /// A string in the file is not valid UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: String },
    /// A tensor uses a ggml block type this crate cannot decode (or an unknown type id).
    #[error("tensor '{tensor}' has unsupported ggml type id {type_id}")]
    UnsupportedType { tensor: String, type_id: u32 },
    /// A metadata value has a type id outside the GGUF value types.
    #[error("metadata key '{key}' has unknown value type id {type_id}")]
    UnknownValueType { key: String, type_id: u32 },
    /// Arrays nested deeper than the reader allows.
    #[error("metadata key '{key}' nests arrays deeper than {max_depth} levels")]
    NestingTooDeep { key: String, max_depth: u32 },
    /// The same metadata key appears twice.
    #[error("metadata key '{key}' appears more than once")]
    DuplicateKey { key: String },
    /// A required metadata key is absent.
    #[error("metadata key '{0}' is missing")]
    MissingKey(String),
    /// A metadata key holds a value of another type than the caller asked for.
    #[error("metadata key '{key}' is not {expected}")]
    WrongType { key: String, expected: &'static str },
    /// `general.alignment` is zero, not a power of two, or absurdly large.
    #[error("alignment {value} is invalid: it must be a nonzero power of two no larger than {max}")]
    BadAlignment { value: u64, max: u64 },
    /// Two tensors share a name.
    #[error("tensor name '{name}' appears more than once")]
    DuplicateTensor { name: String },
    /// No tensor of that name exists.
    #[error("tensor '{0}' not found")]
    MissingTensor(String),
    /// A tensor's shape is unusable: too many dimensions, an element count that overflows, or a row
    /// length that is not a whole number of blocks.
    #[error("tensor '{name}' has an invalid shape {dims:?}: {reason}")]
    BadShape {
        name: String,
        dims: Vec<u64>,
        reason: &'static str,
    },
    /// A tensor's bytes do not lie inside the data section of the file.
    #[error("tensor '{name}' lies outside the file's data section")]
    TensorOutOfBounds { name: String },
    /// A tensor's offset is not a multiple of the file's alignment.
    #[error("tensor '{name}' starts at data offset {offset}, which is not a multiple of the alignment {alignment}")]
    TensorMisaligned { name: String, offset: u64, alignment: u64 },
    /// Two tensors' byte ranges overlap.
    #[error("tensors '{first}' and '{second}' overlap in the data section")]
    TensorOverlap { first: String, second: String },
    /// A buffer handed to a (de)quantization or writer call has the wrong length.
    #[error("{what}: expected {expected}, got {actual}")]
    LengthMismatch {
        what: String,
        expected: usize,
        actual: usize,
    },
    /// An element count is not a whole number of blocks of the given type.
    #[error("{n_elements} elements is not a multiple of the {ty} block size {block_size}")]
    NotBlockMultiple {
        ty: &'static str,
        n_elements: usize,
        block_size: usize,
    },
    /// `quantize` was asked for a block type it has no quantizer for.
    #[error("quantization to {ty} is not implemented")]
    QuantizeUnsupported { ty: &'static str },
}
