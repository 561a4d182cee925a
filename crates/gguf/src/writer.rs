//! GGUF v3 writer: metadata in insertion order, tensor infos, then each tensor's blocks padded to
//! the alignment (32, or `general.alignment` when set), the layout gguf-py's `GGUFWriter` produces.
//! Files are written to a temporary file in the target directory and renamed into place, so a
//! reader never sees a half-written file.

use std::io::{self, Write};
use std::path::Path;

use crate::reader::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAX_ALIGNMENT, MAX_DIMS};
use crate::value::type_id;
use crate::{GgmlType, GgufError, TensorInfo, Value};

/// Builds a GGUF v3 file in memory, then writes it out.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(TensorInfo, Vec<u8>)>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, replacing an earlier value of the same key in place.
    pub fn add_metadata(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        let (key, value) = (key.into(), value.into());
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key, value)),
        }
        self
    }

    /// Adds a tensor of shape `dims` (GGUF order, row length first) whose raw blocks are `data`.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ty: GgmlType,
        data: Vec<u8>,
    ) -> Result<&mut Self, GgufError> {
        let info = TensorInfo {
            name: name.into(),
            dims: dims.to_vec(),
            ggml_type: ty,
            offset: 0,
        };
        if dims.len() > MAX_DIMS as usize {
            return Err(GgufError::TooLarge {
                what: format!("dimension count of tensor '{}'", info.name),
                value: dims.len() as u64,
                max: MAX_DIMS.into(),
            });
        }
        let n_bytes = info.checked_n_bytes()?;
        if n_bytes != data.len() as u64 {
            return Err(GgufError::LengthMismatch {
                what: format!("bytes of tensor '{}'", info.name),
                expected: info.n_bytes(),
                actual: data.len(),
            });
        }
        if self.tensors.iter().any(|(t, _)| t.name == info.name) {
            return Err(GgufError::DuplicateTensor { name: info.name });
        }
        self.tensors.push((info, data));
        Ok(self)
    }

    /// Quantizes `values` to `ty` with [`crate::quantize`] and adds the result as a tensor.
    pub fn add_tensor_f32(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ty: GgmlType,
        values: &[f32],
    ) -> Result<&mut Self, GgufError> {
        let data = crate::quantize(ty, values)?;
        self.add_tensor(name, dims, ty, data)
    }

    /// The complete file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        let alignment = self.alignment()?;
        let mut out = Vec::new();
        self.serialize(&mut out, alignment).map_err(|source| GgufError::Io {
            path: "<memory>".into(),
            source,
        })?;
        Ok(out)
    }

    /// Writes the file to `path` atomically: a temporary file in the same directory, synced, then
    /// renamed over `path`.
    pub fn write_to_path(&self, path: &Path) -> Result<(), GgufError> {
        let alignment = self.alignment()?;
        let io_err = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
        {
            let mut w = io::BufWriter::new(tmp.as_file_mut());
            self.serialize(&mut w, alignment).map_err(io_err)?;
            w.flush().map_err(io_err)?;
        }
        tmp.as_file().sync_all().map_err(io_err)?;
        tmp.persist(path).map_err(|e| io_err(e.error))?;
        Ok(())
    }

    /// Checks what `add_metadata` could not and returns the alignment to use.
    fn alignment(&self) -> Result<u64, GgufError> {
        for (key, value) in &self.metadata {
            check_homogeneous(key, value)?;
        }
        let Some((_, value)) = self.metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) else {
            return Ok(DEFAULT_ALIGNMENT);
        };
        let a = value.as_u64().ok_or_else(|| GgufError::WrongType {
            key: ALIGNMENT_KEY.to_owned(),
            expected: "a non-negative integer",
        })?;
        if !a.is_power_of_two() || a > MAX_ALIGNMENT {
            return Err(GgufError::BadAlignment {
                value: a,
                max: MAX_ALIGNMENT,
            });
        }
        Ok(a)
    }

    fn serialize(&self, w: &mut dyn Write, alignment: u64) -> io::Result<()> {
        w.write_all(b"GGUF")?;
        w.write_all(&3u32.to_le_bytes())?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        w.write_all(&(self.metadata.len() as u64).to_le_bytes())?;
        let mut written = 24u64;
        for (key, value) in &self.metadata {
            written += write_string(w, key)?;
            w.write_all(&value.type_id().to_le_bytes())?;
            written += 4 + write_value(w, value)?;
        }
        let mut offset = 0u64;
        for (info, data) in &self.tensors {
            written += write_string(w, &info.name)?;
            w.write_all(&(info.dims.len() as u32).to_le_bytes())?;
            for d in &info.dims {
                w.write_all(&d.to_le_bytes())?;
            }
            w.write_all(&info.ggml_type.as_u32().to_le_bytes())?;
            w.write_all(&offset.to_le_bytes())?;
            written += 4 + 8 * info.dims.len() as u64 + 4 + 8;
            offset = (offset + data.len() as u64).next_multiple_of(alignment);
        }
        write_padding(w, written, alignment)?;
        for (_, data) in &self.tensors {
            w.write_all(data)?;
            write_padding(w, data.len() as u64, alignment)?;
        }
        Ok(())
    }
}

/// GGUF arrays store one element type; nested arrays each carry their own.
fn check_homogeneous(key: &str, value: &Value) -> Result<(), GgufError> {
    if let Value::Array(items) = value {
        if let Some(first) = items.first()
            && items.iter().any(|v| v.type_id() != first.type_id())
        {
            return Err(GgufError::WrongType {
                key: key.to_owned(),
                expected: "an array whose elements share one type",
            });
        }
        for item in items {
            check_homogeneous(key, item)?;
        }
    }
    Ok(())
}

fn write_padding(w: &mut dyn Write, written: u64, alignment: u64) -> io::Result<()> {
    let pad = written.next_multiple_of(alignment) - written;
    w.write_all(&vec![0u8; pad as usize])
}

/// Writes a length-prefixed string; returns the bytes written.
fn write_string(w: &mut dyn Write, s: &str) -> io::Result<u64> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())?;
    Ok(8 + s.len() as u64)
}

/// Writes a value without its type id; returns the bytes written.
fn write_value(w: &mut dyn Write, value: &Value) -> io::Result<u64> {
    let bytes: &[u8] = match value {
        Value::U8(v) => &v.to_le_bytes(),
        Value::I8(v) => &v.to_le_bytes(),
        Value::U16(v) => &v.to_le_bytes(),
        Value::I16(v) => &v.to_le_bytes(),
        Value::U32(v) => &v.to_le_bytes(),
        Value::I32(v) => &v.to_le_bytes(),
        Value::F32(v) => &v.to_le_bytes(),
        Value::Bool(v) => &[u8::from(*v)],
        Value::U64(v) => &v.to_le_bytes(),
        Value::I64(v) => &v.to_le_bytes(),
        Value::F64(v) => &v.to_le_bytes(),
        Value::String(s) => return write_string(w, s),
        Value::Array(items) => {
            let elem_ty = items.first().map_or(type_id::U8, Value::type_id);
            w.write_all(&elem_ty.to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            let mut n = 12;
            for item in items {
                n += write_value(w, item)?;
            }
            return Ok(n);
        }
    };
    w.write_all(bytes)?;
    Ok(bytes.len() as u64)
}
