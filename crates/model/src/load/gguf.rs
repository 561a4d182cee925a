//! Loads Llama weights from a GGUF file (llama.cpp's format), keeping each tensor's blocks as
//! the file packs them.
//!
//! A file opened from a path has its tensors read with positioned reads rather than copied out
//! of the memory map: copied pages of a mapping stay resident until it is unmapped, so a load
//! would briefly hold every weight twice (the peak RSS counts both).

use std::fs::File;
use std::path::{Path, PathBuf};

use airlock_gguf::GgufFile;

use super::{HostData, HostTensor, WeightSource};
use crate::{LlamaConfig, ModelError, WeightName};

pub struct GgufSource {
    file: GgufFile,
    config: LlamaConfig,
    /// The file again, for positioned reads of tensor data, when opened from a path.
    reader: Option<(File, PathBuf)>,
}

impl GgufSource {
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let mut source = Self::new(GgufFile::open(path)?)?;
        let io = |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        source.reader = Some((File::open(path).map_err(io)?, path.to_path_buf()));
        Ok(source)
    }

    pub fn new(file: GgufFile) -> Result<Self, ModelError> {
        let config = LlamaConfig::from_gguf(&file)?;
        Ok(Self {
            file,
            config,
            reader: None,
        })
    }

    /// The tensor's bytes, read from the file where possible, else copied from the mapping.
    fn tensor_bytes(&self, info: &airlock_gguf::TensorInfo) -> Result<Vec<u8>, ModelError> {
        #[cfg(unix)]
        if let Some((file, path)) = &self.reader {
            use std::os::unix::fs::FileExt;
            // The parser checked that every tensor lies inside the data section.
            let mut bytes = vec![0u8; info.n_bytes()];
            let at = self.file.data_offset() as u64 + info.offset;
            file.read_exact_at(&mut bytes, at).map_err(|source| ModelError::Io {
                path: path.clone(),
                source,
            })?;
            return Ok(bytes);
        }
        Ok(self.file.tensor_bytes(info).to_vec())
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }
}

impl WeightSource for GgufSource {
    fn config(&self) -> &LlamaConfig {
        &self.config
    }

    fn load(&self, name: WeightName) -> Result<Option<HostTensor>, ModelError> {
        let key = name.gguf();
        let Some(info) = self.file.tensor(&key) else {
            return Ok(None);
        };
        // GGUF lists dimensions fastest-varying first; row-major shape is the reverse.
        let shape = info.dims.iter().rev().map(|&d| d as usize).collect();
        let bytes = self.tensor_bytes(info)?;
        Ok(Some(HostTensor {
            shape,
            data: HostData::Packed {
                ggml_type: info.ggml_type,
                bytes,
            },
        }))
    }
}
