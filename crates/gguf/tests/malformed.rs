//! Malformed input is rejected with an error, never a panic: every truncation of a valid file,
//! seeded random corruption, and hand-crafted files with huge counts, bad ids and bad layouts.

use airlock_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value};

/// A valid file with strings, nested arrays and tensors of several block types.
fn valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama")
        .add_metadata("llama.block_count", Value::U32(2))
        .add_metadata(
            "tokenizer.ggml.tokens",
            Value::Array(["<s>", "a", "bc"].map(Value::from).to_vec()),
        )
        .add_metadata("nested", Value::Array(vec![Value::Array(vec![Value::F32(1.0)])]));
    let values: Vec<f32> = (0..256).map(|i| (i as f32 - 128.0) / 50.0).collect();
    for (name, ty) in [
        ("a", GgmlType::F32),
        ("b", GgmlType::Q8_0),
        ("c", GgmlType::Q4_1),
        ("d", GgmlType::F16),
    ] {
        w.add_tensor_f32(name, &[64, 4], ty, &values).expect("add");
    }
    w.add_tensor("e", &[256], GgmlType::Q6_K, vec![1; 210]).expect("add");
    w.to_bytes().expect("serialize")
}

/// Parses, then touches every tensor the way a loader would.
fn parse_and_decode(bytes: Vec<u8>) -> Result<(), GgufError> {
    let file = GgufFile::from_bytes(bytes)?;
    for info in &file.tensors {
        assert_eq!(file.tensor_bytes(info).len(), info.n_bytes());
        let values = file.dequantize(&info.name)?;
        assert_eq!(values.len() as u64, info.n_elements());
    }
    Ok(())
}

/// Bytes up to the end of the last tensor's data (what follows is padding).
fn required_len(bytes: &[u8]) -> usize {
    let file = GgufFile::from_bytes(bytes.to_vec()).expect("valid");
    let end = file
        .tensors
        .iter()
        .map(|t| t.offset as usize + t.n_bytes())
        .max()
        .unwrap_or(0);
    file.data_offset() + end
}

#[test]
fn every_truncation_of_a_valid_file_is_rejected() {
    let bytes = valid_file();
    let needed = required_len(&bytes);
    parse_and_decode(bytes.clone()).expect("the untruncated file is valid");
    for cut in 0..bytes.len() {
        let result = parse_and_decode(bytes[..cut].to_vec());
        if cut < needed {
            assert!(result.is_err(), "cut at {cut} of {} accepted", bytes.len());
        }
    }
}

/// xorshift64*: a fixed-seed generator so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_corruption_never_panics() {
    let original = valid_file();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..20_000 {
        let mut bytes = original.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes[at] = rng.next() as u8,
                _ => bytes[at] = 0xff,
            }
        }
        match parse_and_decode(bytes) {
            Ok(()) => accepted += 1,
            Err(_) => rejected += 1,
        }
    }
    // Flips inside tensor data are legal; flips in the header mostly are not.
    assert!(accepted > 0 && rejected > 0, "{accepted} accepted, {rejected} rejected");
}

/// A little-endian byte builder for hand-made files.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        Raw(b"GGUF".to_vec()).u32(version).u64(n_tensors).u64(n_kv)
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend(b);
        self
    }
    fn str(self, s: &str) -> Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// A tensor info with the given dims, type id and offset.
    fn tensor(self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> Self {
        let mut r = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            r = r.u64(d);
        }
        r.u32(type_id).u64(offset)
    }
    /// Zero padding to 32, then `n` data bytes.
    fn data(mut self, n: usize) -> Vec<u8> {
        let padded = self.0.len().next_multiple_of(32);
        self.0.resize(padded + n, 0);
        self.0
    }
}

fn parse(bytes: Vec<u8>) -> GgufError {
    match GgufFile::from_bytes(bytes) {
        Ok(_) => panic!("malformed file accepted"),
        Err(e) => e,
    }
}

#[test]
fn header_problems_are_named() {
    assert!(matches!(parse(b"GGUX\x03\0\0\0".to_vec()), GgufError::BadMagic));
    assert!(matches!(parse(b"GG".to_vec()), GgufError::Truncated { .. }));
    for version in [0, 1, 4, u32::MAX] {
        let e = parse(Raw::header(version, 0, 0).data(0));
        assert!(matches!(e, GgufError::UnsupportedVersion(v) if v == version));
    }
    assert!(GgufFile::from_bytes(Raw::header(2, 0, 0).data(0)).is_ok());
    assert!(GgufFile::from_bytes(Raw::header(3, 0, 0).0).is_ok());
}

#[test]
fn huge_counts_are_rejected_before_allocating() {
    let e = parse(Raw::header(3, u64::MAX, 0).data(0));
    assert!(matches!(e, GgufError::TooLarge { .. }), "{e}");
    let e = parse(Raw::header(3, 0, 1 << 40).data(0));
    assert!(matches!(e, GgufError::TooLarge { .. }), "{e}");
    // Within the cap but far more than the file could hold.
    let e = parse(Raw::header(3, 60_000, 0).data(0));
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    let e = parse(Raw::header(3, 0, 60_000).data(0));
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
}

#[test]
fn huge_strings_and_arrays_are_rejected_before_allocating() {
    // Key length beyond the cap.
    let e = parse(Raw::header(3, 0, 1).u64(u64::MAX).data(0));
    assert!(matches!(e, GgufError::TooLarge { .. }), "{e}");
    // String value within the cap but longer than the file.
    let e = parse(Raw::header(3, 0, 1).str("k").u32(8).u64(1 << 20).data(0));
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    // String value beyond the cap.
    let e = parse(Raw::header(3, 0, 1).str("k").u32(8).u64(u64::MAX).data(0));
    assert!(matches!(e, GgufError::TooLarge { .. }), "{e}");
    // Array count beyond the cap, and within it but beyond the file.
    let e = parse(Raw::header(3, 0, 1).str("k").u32(9).u32(0).u64(u64::MAX).data(0));
    assert!(matches!(e, GgufError::TooLarge { .. }), "{e}");
    let e = parse(Raw::header(3, 0, 1).str("k").u32(9).u32(8).u64(1 << 20).data(64));
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    // Invalid UTF-8 in a key names the key position.
    let e = parse(
        Raw::header(3, 0, 1)
            .u64(2)
            .bytes(&[0xff, 0xfe])
            .u32(0)
            .bytes(&[1])
            .data(0),
    );
    assert!(matches!(e, GgufError::InvalidUtf8 { .. }), "{e}");
}

#[test]
fn bad_value_types_and_deep_nesting_are_rejected() {
    let e = parse(Raw::header(3, 0, 1).str("k").u32(13).data(8));
    assert!(matches!(e, GgufError::UnknownValueType { type_id: 13, .. }), "{e}");
    let e = parse(Raw::header(3, 0, 1).str("k").u32(9).u32(99).u64(0).data(0));
    assert!(matches!(e, GgufError::UnknownValueType { type_id: 99, .. }), "{e}");
    // Arrays of arrays, one deeper than allowed.
    let mut raw = Raw::header(3, 0, 1).str("deep").u32(9);
    for _ in 0..airlock_gguf::MAX_ARRAY_DEPTH {
        raw = raw.u32(9).u64(1);
    }
    let e = parse(raw.u32(0).u64(0).data(0));
    assert!(matches!(e, GgufError::NestingTooDeep { .. }), "{e}");
    // Duplicate keys.
    let e = parse(
        Raw::header(3, 0, 2)
            .str("k")
            .u32(0)
            .bytes(&[1])
            .str("k")
            .u32(0)
            .bytes(&[2])
            .data(0),
    );
    assert!(matches!(e, GgufError::DuplicateKey { .. }), "{e}");
}

#[test]
fn bad_alignment_is_rejected() {
    for a in [0u32, 3, 48, 1 << 31] {
        let e = parse(Raw::header(3, 0, 1).str("general.alignment").u32(4).u32(a).data(0));
        assert!(matches!(e, GgufError::BadAlignment { .. }), "{a}: {e}");
    }
    let e = parse(Raw::header(3, 0, 1).str("general.alignment").u32(8).str("32").data(0));
    assert!(matches!(e, GgufError::WrongType { .. }), "{e}");
}

#[test]
fn bad_tensor_infos_are_rejected() {
    let f32_id = GgmlType::F32.as_u32();
    let one = |dims: &[u64], type_id: u32, offset: u64, data: usize| {
        parse(Raw::header(3, 1, 0).tensor("w", dims, type_id, offset).data(data))
    };
    let e = one(&[8], 31, 0, 32);
    assert!(
        matches!(&e, GgufError::UnsupportedType { tensor, type_id: 31 } if tensor == "w"),
        "{e}"
    );
    let e = one(&[1, 1, 1, 1, 1], f32_id, 0, 32);
    assert!(matches!(e, GgufError::TooLarge { .. }), "{e}");
    let e = one(&[u64::MAX, 2], f32_id, 0, 32);
    assert!(matches!(e, GgufError::BadShape { .. }), "{e}");
    let e = one(&[1 << 40, 1 << 40], f32_id, 0, 32);
    assert!(matches!(e, GgufError::BadShape { .. }), "{e}");
    let e = one(&[16], GgmlType::Q8_0.as_u32(), 0, 64);
    assert!(matches!(e, GgufError::BadShape { .. }), "{e}");
    let e = one(&[8], f32_id, 0, 31);
    assert!(
        matches!(&e, GgufError::TensorOutOfBounds { name } if name == "w"),
        "{e}"
    );
    let e = one(&[8], f32_id, u64::MAX - 31, 32);
    assert!(matches!(e, GgufError::TensorOutOfBounds { .. }), "{e}");
    let e = one(&[8], f32_id, 4, 64);
    assert!(matches!(e, GgufError::TensorMisaligned { offset: 4, .. }), "{e}");
    assert!(GgufFile::from_bytes(Raw::header(3, 1, 0).tensor("w", &[8], f32_id, 0).data(32)).is_ok());
}

#[test]
fn overlapping_and_duplicate_tensors_are_rejected() {
    let f32_id = GgmlType::F32.as_u32();
    let two = |second_name: &str, second_offset: u64| {
        Raw::header(3, 2, 0)
            .tensor("a", &[16], f32_id, 0)
            .tensor(second_name, &[8], f32_id, second_offset)
            .data(128)
    };
    let e = parse(two("b", 32));
    assert!(matches!(e, GgufError::TensorOverlap { .. }), "{e}");
    let e = parse(two("a", 64));
    assert!(matches!(e, GgufError::DuplicateTensor { .. }), "{e}");
    assert!(GgufFile::from_bytes(two("b", 64)).is_ok());
    // A zero-sized tensor inside another's bytes occupies nothing; a later real overlap is caught.
    let e = parse(
        Raw::header(3, 3, 0)
            .tensor("big", &[32], f32_id, 0)
            .tensor("empty", &[0], f32_id, 32)
            .tensor("c", &[8], f32_id, 64)
            .data(256),
    );
    assert!(matches!(e, GgufError::TensorOverlap { .. }), "{e}");
}

#[test]
fn zero_element_tensors_of_every_type_parse_and_decode_to_nothing() {
    // Found by the fuzzer: a [0, 0, 0, 0] Q2_K tensor overflowed an error message's arithmetic.
    for ty in GgmlType::ALL {
        let bytes = Raw::header(3, 1, 0)
            .tensor("empty", &[0, 0, 0, 0], ty.as_u32(), 0)
            .data(0);
        let file = GgufFile::from_bytes(bytes).expect("zero-element tensor is valid");
        assert_eq!(file.dequantize("empty").expect("decodes"), Vec::<f32>::new());
    }
}
