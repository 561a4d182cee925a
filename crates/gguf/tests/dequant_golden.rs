//! Our block decoders and encoders against gguf-py's independent NumPy implementation of ggml's
//! formats. `fixtures/quants.gguf` is made by `fixtures/make_fixtures.py` (gguf-py's
//! `gguf.quants.dequantize` / `quantize`; versions recorded in its `fixture.*` metadata).
//! Decoding must agree bit for bit; so must the reference encoders.

use std::path::Path;

use airlock_gguf::{GgmlType, GgufFile};

fn fixture() -> GgufFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quants.gguf");
    GgufFile::open(&path).expect("fixture parses")
}

/// Index and both values of the first element whose bits differ.
fn first_bit_difference(ours: &[f32], theirs: &[f32]) -> Option<(usize, f32, f32)> {
    ours.iter()
        .zip(theirs)
        .enumerate()
        .find(|(_, (a, b))| a.to_bits() != b.to_bits())
        .map(|(i, (a, b))| (i, *a, *b))
}

#[test]
fn dequantization_matches_gguf_py_bit_for_bit_for_every_type() {
    let file = fixture();
    assert!(file.get_str("fixture.gguf_py_version").is_ok());
    let decoded_by_gguf_py = GgmlType::ALL.iter().filter(|ty| **ty != GgmlType::Q8_K);
    for &ty in decoded_by_gguf_py {
        let info = file
            .tensor(&format!("{}.q", ty.name()))
            .unwrap_or_else(|| panic!("fixture has {ty} blocks"));
        assert_eq!(info.ggml_type, ty);
        let expected = file.dequantize(&format!("{}.f32", ty.name())).expect("expected values");
        let mut ours = vec![0.0f32; expected.len()];
        airlock_gguf::dequantize(ty, file.tensor_bytes(info), &mut ours).expect("decode");
        assert_eq!(first_bit_difference(&ours, &expected), None, "{ty}");
        // Through the file API too.
        let via_file = file.dequantize(&info.name).expect("decode via file");
        assert_eq!(first_bit_difference(&via_file, &expected), None, "{ty}");
    }
}

#[test]
fn reference_quantizers_match_gguf_py_byte_for_byte() {
    let file = fixture();
    let input = file.dequantize("quant.input").expect("input");
    for ty in [
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
    ] {
        let info = file
            .tensor(&format!("{}.quantized", ty.name()))
            .expect("fixture has gguf-py's encoding");
        let ours = airlock_gguf::quantize(ty, &input).expect("quantize");
        let theirs = file.tensor_bytes(info);
        let first_diff = ours.iter().zip(theirs).position(|(a, b)| a != b);
        assert_eq!(ours.len(), theirs.len(), "{ty}");
        assert_eq!(first_diff, None, "{ty}: first differing byte");
    }
}

#[test]
fn q8_k_decodes_as_scale_times_signed_bytes() {
    // gguf-py has no Q8_K decoder; the format is simple enough to state directly.
    let mut block = 0.25f32.to_le_bytes().to_vec();
    block.extend((0..256).map(|i| (i as i8).wrapping_sub(100) as u8));
    block.extend([0u8; 32]); // bsums, unused for decoding
    let mut out = vec![0.0f32; 256];
    airlock_gguf::dequantize(GgmlType::Q8_K, &block, &mut out).expect("one block");
    for (i, v) in out.iter().enumerate() {
        assert_eq!(*v, 0.25 * f32::from((i as i8).wrapping_sub(100)));
    }
}
