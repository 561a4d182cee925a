//! GGUF reader following the GGUF spec (ggml `docs/gguf.md`, v2 and v3): header, metadata, tensor
//! infos, aligned data section. Every count and size read from the file is capped and checked
//! against the bytes that remain before anything is allocated, so no input can make it panic or
//! allocate without bound.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::Path;

use crate::cursor::{Cursor, truncated};
use crate::tensor::{check_tensor_layout, read_tensor_info};
use crate::{GgufError, TensorInfo, Value};

/// Most tensors a file may declare.
pub const MAX_TENSORS: u64 = 65_536;
/// Most metadata key/value pairs a file may declare.
pub const MAX_KV: u64 = 65_536;
/// Longest metadata key or tensor name, in bytes.
pub const MAX_KEY_LEN: u64 = 64 * 1024;
/// Longest string value, in bytes.
pub const MAX_STRING_LEN: u64 = 16 * 1024 * 1024;
/// Most elements in one metadata array.
pub const MAX_ARRAY_LEN: u64 = 16 * 1024 * 1024;
/// Deepest nesting of arrays inside arrays (a plain array is depth 1).
pub const MAX_ARRAY_DEPTH: u32 = 4;
/// Most dimensions of a tensor (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Largest accepted `general.alignment`.
pub const MAX_ALIGNMENT: u64 = 1 << 24;
/// Alignment of the data section and of tensor offsets when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The key that overrides the alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";

const MAGIC: &[u8; 4] = b"GGUF";

/// Where the file's bytes live.
enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Mapped(m) => write!(f, "Mapped({} bytes)", m.len()),
            Storage::Owned(v) => write!(f, "Owned({} bytes)", v.len()),
        }
    }
}

/// A parsed GGUF file: metadata and tensor infos decoded, tensor data left in place (memory-mapped
/// or owned) and handed out as byte slices.
#[derive(Debug)]
pub struct GgufFile {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
    storage: Storage,
    data_offset: usize,
    alignment: u64,
}

impl GgufFile {
    /// Memory-maps and parses the file at `path`.
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let io_err = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len == 0 {
            return Err(truncated("magic", 0));
        }
        let map = map_file(&file).map_err(io_err)?;
        let parsed = parse(&map)?;
        Ok(parsed.into_file(Storage::Mapped(map)))
    }

    /// Parses a file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, GgufError> {
        let parsed = parse(&bytes)?;
        Ok(parsed.into_file(Storage::Owned(bytes)))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    fn get_as<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        f: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<T, GgufError> {
        let value = self.get(key).ok_or_else(|| GgufError::MissingKey(key.to_owned()))?;
        f(value).ok_or_else(|| GgufError::WrongType {
            key: key.to_owned(),
            expected,
        })
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        self.get_as(key, "a string", Value::as_str)
    }

    /// Any non-negative integer value.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get_as(key, "a non-negative integer", Value::as_u64)
    }

    /// An `F32` or `F64` value.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        self.get_as(key, "a float", Value::as_f32)
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        self.get_as(key, "a bool", Value::as_bool)
    }

    pub fn get_array(&self, key: &str) -> Result<&[Value], GgufError> {
        self.get_as(key, "an array", Value::as_array)
    }

    /// `general.architecture`, e.g. `"llama"`.
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.get_str("general.architecture")
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw block bytes of `info` (empty if `info` does not belong to this file).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = usize::try_from(info.offset)
            .ok()
            .and_then(|o| o.checked_add(self.data_offset));
        let range = start.and_then(|s| Some(s..s.checked_add(info.n_bytes())?));
        range.and_then(|r| self.storage.bytes().get(r)).unwrap_or(&[])
    }

    /// The whole tensor `name` decoded to f32, in GGUF element order.
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>, GgufError> {
        let info = self
            .tensor(name)
            .ok_or_else(|| GgufError::MissingTensor(name.to_owned()))?;
        let n = usize::try_from(info.n_elements()).map_err(|_| GgufError::TooLarge {
            what: format!("element count of tensor '{name}'"),
            value: info.n_elements(),
            max: usize::MAX as u64,
        })?;
        let mut out = vec![0.0f32; n];
        crate::dequantize(info.ggml_type, self.tensor_bytes(info), &mut out).map_err(|e| match e {
            GgufError::LengthMismatch { expected, actual, .. } => GgufError::LengthMismatch {
                what: format!("bytes of tensor '{name}'"),
                expected,
                actual,
            },
            other => other,
        })?;
        Ok(out)
    }

    /// Alignment of the data section and of tensor offsets.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute byte offset of the data section in the file.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// Every byte of the file.
    pub fn as_bytes(&self) -> &[u8] {
        self.storage.bytes()
    }
}

#[allow(unsafe_code)]
fn map_file(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and private to this process. Another process truncating or
    // rewriting the file while it is mapped could change or revoke the bytes under us; like every
    // mmap-based model loader we accept that, and the writer in this crate never modifies a file in
    // place (it writes a temporary file and renames it over the old one).
    unsafe { memmap2::Mmap::map(file) }
}

/// Everything but the storage, borrowed from nothing, so the bytes can be moved in afterwards.
struct Parsed {
    version: u32,
    metadata: BTreeMap<String, Value>,
    tensors: Vec<TensorInfo>,
    data_offset: usize,
    alignment: u64,
}

impl Parsed {
    fn into_file(self, storage: Storage) -> GgufFile {
        GgufFile {
            version: self.version,
            metadata: self.metadata,
            tensors: self.tensors,
            storage,
            data_offset: self.data_offset,
            alignment: self.alignment,
        }
    }
}

fn check_count(value: u64, max: u64, what: &str) -> Result<(), GgufError> {
    if value > max {
        return Err(GgufError::TooLarge {
            what: what.to_owned(),
            value,
            max,
        });
    }
    Ok(())
}

fn parse(bytes: &[u8]) -> Result<Parsed, GgufError> {
    let mut cur = Cursor::new(bytes);
    if &cur.array::<4>("magic")? != MAGIC {
        return Err(GgufError::BadMagic);
    }
    let version = cur.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion(version));
    }
    let n_tensors = cur.u64("tensor count")?;
    check_count(n_tensors, MAX_TENSORS, "tensor count")?;
    let n_kv = cur.u64("metadata key/value count")?;
    check_count(n_kv, MAX_KV, "metadata key/value count")?;

    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = cur.string(MAX_KEY_LEN, "metadata key")?;
        let what = format!("value of metadata key '{key}'");
        let ty = cur.u32(&what)?;
        let value = cur.value(ty, &key, 0, &what)?;
        if metadata.contains_key(&key) {
            return Err(GgufError::DuplicateKey { key });
        }
        metadata.insert(key, value);
    }

    let alignment = match metadata.get(ALIGNMENT_KEY) {
        None => DEFAULT_ALIGNMENT,
        Some(v) => {
            let a = v.as_u64().ok_or_else(|| GgufError::WrongType {
                key: ALIGNMENT_KEY.to_owned(),
                expected: "a non-negative integer",
            })?;
            if !a.is_power_of_two() || a > MAX_ALIGNMENT {
                return Err(GgufError::BadAlignment {
                    value: a,
                    max: MAX_ALIGNMENT,
                });
            }
            a
        }
    };

    // Each tensor info takes at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
    if n_tensors.saturating_mul(24) > cur.remaining() as u64 {
        return Err(truncated("tensor infos", cur.pos));
    }
    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names = HashSet::new();
    for _ in 0..n_tensors {
        let info = read_tensor_info(&mut cur)?;
        if !names.insert(info.name.clone()) {
            return Err(GgufError::DuplicateTensor { name: info.name });
        }
        tensors.push(info);
    }

    let data_offset = cur
        .pos
        .checked_next_multiple_of(alignment as usize)
        .ok_or_else(|| truncated("data section", cur.pos))?;
    check_tensor_layout(&tensors, data_offset, bytes.len(), alignment)?;
    Ok(Parsed {
        version,
        metadata,
        tensors,
        data_offset,
        alignment,
    })
}
