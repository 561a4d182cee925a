//! Loads Llama weights from a GGUF file (llama.cpp's format), keeping each tensor's blocks as
//! the file packs them.

use std::path::Path;

use airlock_gguf::GgufFile;

use super::{HostData, HostTensor, WeightSource};
use crate::{LlamaConfig, ModelError, WeightName};

pub struct GgufSource {
    file: GgufFile,
    config: LlamaConfig,
}

impl GgufSource {
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        Self::new(GgufFile::open(path)?)
    }

    pub fn new(file: GgufFile) -> Result<Self, ModelError> {
        let config = LlamaConfig::from_gguf(&file)?;
        Ok(Self { file, config })
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
        let bytes = self.file.tensor_bytes(info).to_vec();
        Ok(Some(HostTensor {
            shape,
            data: HostData::Packed {
                ggml_type: info.ggml_type,
                bytes,
            },
        }))
    }
}
