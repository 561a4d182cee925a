//! Tensor infos: shape, block type and placement of each tensor, and the checks that every
//! tensor's bytes are well-shaped, aligned, inside the data section and disjoint from the others.

use crate::cursor::Cursor;
use crate::reader::{MAX_DIMS, MAX_KEY_LEN};
use crate::{GgmlType, GgufError};

/// One tensor's entry in the file's tensor-info table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// GGUF order: `dims[0]` is the fastest-varying dimension (the row length), so a PyTorch
    /// weight of shape `[out, in]` is stored with `dims == [in, out]`.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Byte offset of the first block, relative to the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Product of the dimensions (saturating; the reader rejects files where it overflows).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |acc, &d| acc.saturating_mul(d))
    }

    /// Bytes of the tensor's blocks (saturating; the reader rejects files where it overflows).
    pub fn n_bytes(&self) -> usize {
        let row_len = self.dims.first().copied().unwrap_or(1);
        let n_rows = self.dims.iter().skip(1).fold(1u64, |acc, &d| acc.saturating_mul(d));
        let blocks_per_row = row_len.div_ceil(self.ggml_type.block_size() as u64);
        let bytes = blocks_per_row
            .saturating_mul(self.ggml_type.type_size() as u64)
            .saturating_mul(n_rows);
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }

    /// The checked byte size, or why the shape is unusable.
    pub(crate) fn checked_n_bytes(&self) -> Result<u64, GgufError> {
        let bad = |reason| GgufError::BadShape {
            name: self.name.clone(),
            dims: self.dims.clone(),
            reason,
        };
        let mut n_elements: u64 = 1;
        for &d in &self.dims {
            n_elements = n_elements
                .checked_mul(d)
                .filter(|&n| n <= i64::MAX as u64)
                .ok_or_else(|| bad("element count overflows"))?;
        }
        let row_len = self.dims.first().copied().unwrap_or(1);
        let block_size = self.ggml_type.block_size() as u64;
        if !row_len.is_multiple_of(block_size) {
            return Err(bad("row length is not a multiple of the block size"));
        }
        (n_elements / block_size)
            .checked_mul(self.ggml_type.type_size() as u64)
            .ok_or_else(|| bad("byte size overflows"))
    }
}

pub(crate) fn read_tensor_info(cur: &mut Cursor<'_>) -> Result<TensorInfo, GgufError> {
    let name = cur.string(MAX_KEY_LEN, "tensor name")?;
    let what = format!("tensor info of '{name}'");
    let n_dims = cur.u32(&what)?;
    if n_dims > MAX_DIMS {
        return Err(GgufError::TooLarge {
            what: format!("dimension count of tensor '{name}'"),
            value: n_dims.into(),
            max: MAX_DIMS.into(),
        });
    }
    let dims = (0..n_dims).map(|_| cur.u64(&what)).collect::<Result<Vec<_>, _>>()?;
    let type_id = cur.u32(&what)?;
    let ggml_type = GgmlType::from_u32(type_id).map_err(|_| GgufError::UnsupportedType {
        tensor: name.clone(),
        type_id,
    })?;
    let offset = cur.u64(&what)?;
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
    })
}

/// Checks shapes, alignment, bounds and non-overlap of every tensor's bytes.
pub(crate) fn check_tensor_layout(
    tensors: &[TensorInfo],
    data_offset: usize,
    file_len: usize,
    alignment: u64,
) -> Result<(), GgufError> {
    let data_len = (file_len as u64).saturating_sub(data_offset as u64);
    let mut ranges = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        let n_bytes = t.checked_n_bytes()?;
        if !t.offset.is_multiple_of(alignment) {
            return Err(GgufError::TensorMisaligned {
                name: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let end = t.offset.checked_add(n_bytes);
        if data_offset > file_len || end.is_none_or(|end| end > data_len) {
            return Err(GgufError::TensorOutOfBounds { name: t.name.clone() });
        }
        ranges.push((t.offset, t.offset + n_bytes, i));
    }
    ranges.sort_unstable();
    // (end, index) of the non-empty range reaching furthest so far; zero-sized tensors occupy no
    // bytes and cannot overlap anything.
    let mut furthest: Option<(u64, usize)> = None;
    for &(start, end, i) in ranges.iter().filter(|r| r.1 > r.0) {
        if let Some((prev_end, prev)) = furthest
            && start < prev_end
        {
            return Err(GgufError::TensorOverlap {
                first: tensors[prev].name.clone(),
                second: tensors[i].name.clone(),
            });
        }
        if furthest.is_none_or(|(prev_end, _)| end > prev_end) {
            furthest = Some((end, i));
        }
    }
    Ok(())
}
