//! Checkpoints: the adapter (PEFT layout), the AdamW moments and the loop's counters, each in
//! its own `step-N` folder. A folder is written under a temporary name and renamed when
//! complete, and only then does `latest` (itself replaced atomically) point to it, so a crash
//! mid-save leaves the previous checkpoint whole. The data order and dropout are functions of
//! (seed, step), so they need no saving.

use std::path::{Path, PathBuf};

use airlock_adapter::{load_peft, save_peft, write_atomic};
use airlock_model::{HostTensor, LlamaConfig};
use burn::tensor::Device;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::{LoraState, TrainError};

const LATEST: &str = "latest";
const MOMENTS: &str = "optimizer.safetensors";
const STATE: &str = "state.json";
/// Checkpoints kept besides the newest.
const KEEP: usize = 1;

/// The loop's counters at a checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoopState {
    pub step: usize,
    pub best_valid_loss: Option<f64>,
    pub evals_without_improvement: usize,
}

fn err(path: &Path, reason: impl ToString) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

pub fn save(dir: &Path, state: &LoraState, counters: &LoopState, base: &LlamaConfig) -> Result<PathBuf, TrainError> {
    let io = |path: &Path, source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let name = format!("step-{}", counters.step);
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    save_peft(&state.to_adapter(), &tmp, base)?;
    let moments = state.moments();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = moments
        .iter()
        .enumerate()
        .flat_map(|(i, (m, v))| [(format!("{i}.m"), m), (format!("{i}.v"), v)])
        .map(|(k, t)| {
            let values = t.clone().into_f32().unwrap_or_default();
            (
                k,
                t.shape.clone(),
                values.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(k, shape, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b).map(|v| (k.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&tmp, e))?;
    let data = safetensors::serialize(views, None).map_err(|e| err(&tmp, e))?;
    write_atomic(&tmp.join(MOMENTS), &data)?;
    let json = serde_json::to_vec_pretty(counters).map_err(|e| err(&tmp, e))?;
    write_atomic(&tmp.join(STATE), &json)?;
    let done = dir.join(&name);
    let _ = std::fs::remove_dir_all(&done);
    std::fs::rename(&tmp, &done).map_err(|e| io(&done, e))?;
    write_atomic(&dir.join(LATEST), name.as_bytes())?;
    prune(dir, counters.step);
    Ok(done)
}

/// Removes all but the newest checkpoints (best effort: a leftover folder is harmless).
fn prune(dir: &Path, newest: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut steps: Vec<usize> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("step-")?.parse().ok())
        .filter(|&s| s < newest)
        .collect();
    steps.sort_unstable();
    let drop = steps.len().saturating_sub(KEEP);
    for step in &steps[..drop] {
        let _ = std::fs::remove_dir_all(dir.join(format!("step-{step}")));
    }
}

/// The newest complete checkpoint in `dir`, if any.
pub fn latest(dir: &Path) -> Option<PathBuf> {
    let name = std::fs::read_to_string(dir.join(LATEST)).ok()?;
    let path = dir.join(name.trim());
    path.join(STATE).exists().then_some(path)
}

pub fn load(path: &Path, base: &LlamaConfig, device: &Device) -> Result<(LoraState, LoopState), TrainError> {
    let adapter = load_peft(path, base)?;
    let mut state = LoraState::from_adapter(&adapter, device);
    let counters: LoopState =
        serde_json::from_slice(&std::fs::read(path.join(STATE)).map_err(|source| TrainError::Io {
            path: path.join(STATE),
            source,
        })?)
        .map_err(|e| err(path, e))?;
    let bytes = std::fs::read(path.join(MOMENTS)).map_err(|source| TrainError::Io {
        path: path.join(MOMENTS),
        source,
    })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| err(path, e))?;
    let read = |key: String| -> Result<HostTensor, TrainError> {
        let view = file.tensor(&key).map_err(|e| err(path, e))?;
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(HostTensor::f32(view.shape().to_vec(), values))
    };
    let n = state.params().count();
    let moments = (0..n)
        .map(|i| Ok((read(format!("{i}.m"))?, read(format!("{i}.v"))?)))
        .collect::<Result<_, TrainError>>()?;
    state.set_moments(moments, device);
    state.step = counters.step;
    Ok((state, counters))
}
