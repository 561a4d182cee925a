//! Adapters out to llama.cpp: its GGUF LoRA format (`convert_lora_to_gguf.py`'s output, read by
//! `llama-cli --lora`), and a merged model (`llama-export-lora`'s job: `W + scale * B A` written
//! into a copy of the base GGUF).
//!
//! llama.cpp's LoRA file: `general.type = "adapter"`, `adapter.type = "lora"`,
//! `adapter.lora.alpha`, and per projection `blk.N.attn_q.weight.lora_a` (GGUF dims `[in, r]`,
//! i.e. PEFT's `[r, in]` row-major) and `.lora_b` (`[r, out]`, PEFT's `[out, r]`). llama.cpp
//! scales by `alpha / r`; rsLoRA's `alpha / sqrt(r)` is written as the alpha that gives it.
//! B's q/k rows are kept in GGUF's RoPE order, which is how [`LoraPair`] holds them.

use std::collections::HashMap;
use std::path::Path;

use airlock_gguf::{GgmlType, GgufFile, GgufWriter};
use airlock_model::{LoraPair, WeightName};

use crate::{Adapter, AdapterError};

/// Writes `adapter` as a llama.cpp GGUF LoRA for a base of architecture `arch`, atomically.
pub fn export_gguf(adapter: &Adapter, arch: &str, path: &Path) -> Result<(), AdapterError> {
    let mut out = GgufWriter::new();
    let alpha = adapter.config.scale() * adapter.config.r as f32; // llama.cpp divides by r
    out.add_metadata("general.architecture", arch)
        .add_metadata("general.type", "adapter")
        .add_metadata("adapter.type", "lora")
        .add_metadata("adapter.lora.alpha", alpha);
    for pair in &adapter.pairs {
        let base = WeightName::Layer(pair.layer, pair.weight).gguf();
        let (a, b) = factors(pair)?;
        let [r, inp] = [pair.a.shape[0], pair.a.shape[1]];
        let out_rows = pair.b.shape[0];
        out.add_tensor_f32(format!("{base}.lora_a"), &[inp as u64, r as u64], GgmlType::F32, &a)
            .and_then(|w| {
                w.add_tensor_f32(
                    format!("{base}.lora_b"),
                    &[r as u64, out_rows as u64],
                    GgmlType::F32,
                    &b,
                )
            })
            .map_err(|source| gguf_error(path, source))?;
    }
    out.write_to_path(path).map_err(|source| gguf_error(path, source))
}

/// Writes a copy of `base` (its metadata and every tensor) with `adapter` folded into the
/// projections it adapts: `W' = W + weight * scale * B A`. Adapted tensors are stored as
/// `ty` (F16 or F32: re-quantizing to 4 bits would round most of the small delta away, which
/// is why llama.cpp's `export-lora` writes F16 too); the rest keep their blocks untouched.
pub fn merge_into_gguf(
    base: &GgufFile,
    adapter: &Adapter,
    weight: f32,
    ty: GgmlType,
    path: &Path,
) -> Result<(), AdapterError> {
    let err = |source| gguf_error(path, source);
    let mut out = GgufWriter::new();
    for (key, value) in &base.metadata {
        out.add_metadata(key.clone(), value.clone());
    }
    let scale = weight * adapter.config.scale();
    let pairs: HashMap<String, &LoraPair> = adapter
        .pairs
        .iter()
        .map(|p| (WeightName::Layer(p.layer, p.weight).gguf(), p))
        .collect();
    for info in &base.tensors {
        match pairs.get(&info.name) {
            None => {
                out.add_tensor(
                    info.name.clone(),
                    &info.dims,
                    info.ggml_type,
                    base.tensor_bytes(info).to_vec(),
                )
                .map_err(err)?;
            }
            Some(pair) => {
                let mut w = base.dequantize(&info.name).map_err(err)?; // [out, in]
                let (a, b) = factors(pair)?;
                let (r, inp) = (pair.a.shape[0], pair.a.shape[1]);
                if w.len() != pair.b.shape[0] * inp {
                    return Err(AdapterError::Shape {
                        path: path.to_path_buf(),
                        key: info.name.clone(),
                        expected: vec![w.len() / inp.max(1), inp],
                        actual: vec![pair.b.shape[0], inp],
                    });
                }
                for (row, b_row) in w.chunks_exact_mut(inp).zip(b.chunks_exact(r)) {
                    for (&coeff, a_row) in b_row.iter().zip(a.chunks_exact(inp)) {
                        let coeff = coeff * scale;
                        row.iter_mut().zip(a_row).for_each(|(x, &y)| *x += coeff * y);
                    }
                }
                out.add_tensor_f32(info.name.clone(), &info.dims, ty, &w).map_err(err)?;
            }
        }
    }
    out.write_to_path(path).map_err(err)
}

/// A pair's factors as f32: `A` `[r, in]` and `B` `[out, r]`, row-major.
fn factors(pair: &LoraPair) -> Result<(Vec<f32>, Vec<f32>), AdapterError> {
    Ok((pair.a.clone().into_f32()?, pair.b.clone().into_f32()?))
}

fn gguf_error(path: &Path, source: airlock_gguf::GgufError) -> AdapterError {
    AdapterError::Gguf {
        path: path.to_path_buf(),
        source,
    }
}
