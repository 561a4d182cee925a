//! ggml tensor block types: their GGUF type ids and block geometry, as declared in ggml's
//! `ggml.h` (`enum ggml_type`) and `ggml-common.h` (the `block_*` structs).

use crate::GgufError;

/// Elements per K-quant super-block (`QK_K` in ggml).
pub const QK_K: usize = 256;

/// A ggml tensor element type this crate can store and decode.
///
/// Ids not listed here (the IQ and TQ families, integer types, removed types) are rejected by
/// [`GgmlType::from_u32`] with [`GgufError::UnsupportedType`].
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
}

impl GgmlType {
    /// Every supported type, in ggml id order except BF16.
    pub const ALL: [GgmlType; 14] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q8_K,
    ];

    /// The type with ggml id `v`. Unknown or unsupported ids give
    /// [`GgufError::UnsupportedType`] with an empty tensor name (the reader fills it in).
    pub fn from_u32(v: u32) -> Result<Self, GgufError> {
        Ok(match v {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            10 => GgmlType::Q2_K,
            11 => GgmlType::Q3_K,
            12 => GgmlType::Q4_K,
            13 => GgmlType::Q5_K,
            14 => GgmlType::Q6_K,
            15 => GgmlType::Q8_K,
            30 => GgmlType::BF16,
            _ => {
                return Err(GgufError::UnsupportedType {
                    tensor: String::new(),
                    type_id: v,
                });
            }
        })
    }

    /// The ggml id stored in GGUF tensor infos.
    pub fn as_u32(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q2_K => 10,
            GgmlType::Q3_K => 11,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::Q8_K => 15,
            GgmlType::BF16 => 30,
        }
    }

    /// Elements per block (1 for the float types).
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => 32,
            GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K | GgmlType::Q8_K => QK_K,
        }
    }

    /// Bytes per block (the `sizeof` of ggml's `block_*` struct).
    pub fn type_size(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => 2 + 16,
            GgmlType::Q4_1 => 2 + 2 + 16,
            GgmlType::Q5_0 => 2 + 4 + 16,
            GgmlType::Q5_1 => 2 + 2 + 4 + 16,
            GgmlType::Q8_0 => 2 + 32,
            GgmlType::Q2_K => QK_K / 16 + QK_K / 4 + 2 + 2,
            GgmlType::Q3_K => QK_K / 8 + QK_K / 4 + 12 + 2,
            GgmlType::Q4_K => 2 + 2 + 12 + QK_K / 2,
            GgmlType::Q5_K => 2 + 2 + 12 + QK_K / 8 + QK_K / 2,
            GgmlType::Q6_K => QK_K / 2 + QK_K / 4 + QK_K / 16 + 2,
            GgmlType::Q8_K => 4 + QK_K + 2 * (QK_K / 16),
        }
    }

    /// The name ggml and llama.cpp print for this type, e.g. `"Q4_1"`.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q2_K => "Q2_K",
            GgmlType::Q3_K => "Q3_K",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q5_K => "Q5_K",
            GgmlType::Q6_K => "Q6_K",
            GgmlType::Q8_K => "Q8_K",
        }
    }

    /// Bytes taken by `n_elements` consecutive elements (one row), which must be a whole number of
    /// blocks.
    pub fn row_bytes(self, n_elements: usize) -> Result<usize, GgufError> {
        let block_size = self.block_size();
        if !n_elements.is_multiple_of(block_size) {
            return Err(GgufError::NotBlockMultiple {
                ty: self.name(),
                n_elements,
                block_size,
            });
        }
        (n_elements / block_size)
            .checked_mul(self.type_size())
            .ok_or_else(|| GgufError::TooLarge {
                what: format!("element count of a {} row", self.name()),
                value: n_elements as u64,
                max: (usize::MAX / self.type_size()).saturating_mul(block_size) as u64,
            })
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_ggml_struct_sizes() {
        let expected = [
            (GgmlType::Q4_0, 18),
            (GgmlType::Q4_1, 20),
            (GgmlType::Q5_0, 22),
            (GgmlType::Q5_1, 24),
            (GgmlType::Q8_0, 34),
            (GgmlType::Q2_K, 84),
            (GgmlType::Q3_K, 110),
            (GgmlType::Q4_K, 144),
            (GgmlType::Q5_K, 176),
            (GgmlType::Q6_K, 210),
            (GgmlType::Q8_K, 292),
        ];
        for (ty, size) in expected {
            assert_eq!(ty.type_size(), size, "{ty}");
        }
    }

    #[test]
    fn ids_round_trip_and_unknown_ids_are_rejected() {
        for ty in GgmlType::ALL {
            assert_eq!(GgmlType::from_u32(ty.as_u32()).ok(), Some(ty));
        }
        for id in [4, 5, 9, 16, 24, 29, 31, u32::MAX] {
            assert!(GgmlType::from_u32(id).is_err(), "id {id}");
        }
    }

    #[test]
    fn row_bytes_rejects_partial_blocks() {
        assert_eq!(GgmlType::Q4_1.row_bytes(64).ok(), Some(40));
        assert!(GgmlType::Q4_1.row_bytes(33).is_err());
        assert!(GgmlType::F32.row_bytes(usize::MAX).is_err());
        // Found by the fuzzer: the error's `max` once overflowed for 256-element blocks.
        assert_eq!(GgmlType::Q2_K.row_bytes(0).ok(), Some(0));
        assert!(GgmlType::Q8_0.row_bytes(usize::MAX / 32 * 32).is_err());
    }
}
