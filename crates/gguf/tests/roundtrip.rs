//! Writer -> reader round trips: metadata of every value type, tensors of every block type,
//! alignment handling, and atomic writes to a path.

use airlock_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value};

fn sample_values(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect()
}

fn metadata_of_every_type() -> Vec<(&'static str, Value)> {
    vec![
        ("general.architecture", Value::from("llama")),
        ("t.u8", Value::U8(200)),
        ("t.i8", Value::I8(-100)),
        ("t.u16", Value::U16(60_000)),
        ("t.i16", Value::I16(-30_000)),
        ("t.u32", Value::U32(4_000_000_000)),
        ("t.i32", Value::I32(-2_000_000_000)),
        ("t.f32", Value::F32(1.5e-3)),
        ("t.bool", Value::Bool(true)),
        ("t.string", Value::from("héllo\n\u{1F600}")),
        ("t.u64", Value::U64(u64::MAX)),
        ("t.i64", Value::I64(i64::MIN)),
        ("t.f64", Value::F64(-2.25e100)),
        ("t.empty", Value::Array(vec![])),
        (
            "t.strings",
            Value::Array(vec![Value::from("a"), Value::from(""), Value::from("ccc")]),
        ),
        (
            "t.nested",
            Value::Array(vec![
                Value::Array(vec![Value::I32(1), Value::I32(-2)]),
                Value::Array(vec![]),
            ]),
        ),
    ]
}

#[test]
fn metadata_of_every_value_type_survives_a_round_trip() {
    let mut w = GgufWriter::new();
    for (k, v) in metadata_of_every_type() {
        w.add_metadata(k, v);
    }
    let file = GgufFile::from_bytes(w.to_bytes().expect("serialize")).expect("parse");
    assert_eq!(file.version, 3);
    assert_eq!(file.metadata.len(), metadata_of_every_type().len());
    for (k, v) in metadata_of_every_type() {
        assert_eq!(file.get(k), Some(&v), "{k}");
    }
    assert_eq!(file.architecture().expect("arch"), "llama");
    assert_eq!(file.get_u64("t.u32").expect("u32"), 4_000_000_000);
    assert_eq!(file.get_f32("t.f64").expect("f64"), -2.25e100_f64 as f32);
}

#[test]
fn typed_getters_name_the_key_when_missing_or_mistyped() {
    let mut w = GgufWriter::new();
    w.add_metadata("a.string", "x").add_metadata("a.neg", Value::I32(-1));
    let file = GgufFile::from_bytes(w.to_bytes().expect("serialize")).expect("parse");
    let missing = file.get_str("no.such.key").expect_err("missing");
    assert!(matches!(&missing, GgufError::MissingKey(k) if k == "no.such.key"));
    assert!(missing.to_string().contains("no.such.key"));
    let wrong = file.get_u64("a.string").expect_err("wrong type");
    assert!(matches!(&wrong, GgufError::WrongType { key, .. } if key == "a.string"));
    assert!(file.get_u64("a.neg").is_err());
    assert!(file.get_f32("a.string").is_err());
    assert!(file.architecture().is_err());
}

#[test]
fn tensors_of_every_type_survive_a_round_trip() {
    let mut w = GgufWriter::new();
    let mut expected = Vec::new();
    for (i, ty) in GgmlType::ALL.into_iter().enumerate() {
        let row = ty.block_size().max(8) as u64;
        let dims = [row, 3];
        let n_bytes = ty.row_bytes(row as usize).expect("whole blocks") * 3;
        // Arbitrary bytes are valid blocks for every type; scales may decode to inf/NaN.
        let data: Vec<u8> = (0..n_bytes).map(|j| (j * 7 + i) as u8).collect();
        w.add_tensor(format!("t.{}", ty.name()), &dims, ty, data.clone())
            .expect("add tensor");
        expected.push((ty, dims, data));
    }
    let file = GgufFile::from_bytes(w.to_bytes().expect("serialize")).expect("parse");
    assert_eq!(file.tensors.len(), expected.len());
    for (ty, dims, data) in expected {
        let info = file.tensor(&format!("t.{}", ty.name())).expect("tensor");
        assert_eq!(info.ggml_type, ty);
        assert_eq!(info.dims, dims);
        assert_eq!(info.offset % file.alignment(), 0);
        assert_eq!(file.tensor_bytes(info), &data[..]);
        let n = file.dequantize(&info.name).expect("dequantize").len();
        assert_eq!(n as u64, dims[0] * dims[1]);
    }
}

#[test]
fn quantized_tensors_decode_close_to_their_input() {
    let values = sample_values(64 * 4);
    let mut w = GgufWriter::new();
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0] {
        w.add_tensor_f32(ty.name(), &[64, 4], ty, &values).expect("quantize");
    }
    w.add_tensor_f32("Q4_1", &[64, 4], GgmlType::Q4_1, &values)
        .expect("quantize");
    let file = GgufFile::from_bytes(w.to_bytes().expect("serialize")).expect("parse");
    let max_err = |name: &str| {
        let back = file.dequantize(name).expect("dequantize");
        back.iter()
            .zip(&values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max)
    };
    assert_eq!(max_err("F32"), 0.0);
    assert!(max_err("F16") < 2e-3);
    assert!(max_err("BF16") < 2e-2);
    assert!(max_err("Q8_0") < 0.02);
    assert!(max_err("Q4_1") < 0.3);
}

#[test]
fn custom_alignment_is_honoured_and_invalid_alignment_rejected() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.alignment", Value::U32(64));
    w.add_tensor_f32("a", &[3], GgmlType::F32, &[1.0, 2.0, 3.0])
        .expect("add");
    w.add_tensor_f32("b", &[2], GgmlType::F32, &[4.0, 5.0]).expect("add");
    let bytes = w.to_bytes().expect("serialize");
    let file = GgufFile::from_bytes(bytes).expect("parse");
    assert_eq!(file.alignment(), 64);
    assert_eq!(file.data_offset() % 64, 0);
    assert_eq!(file.tensor("b").expect("b").offset, 64);
    assert_eq!(file.dequantize("b").expect("b"), vec![4.0, 5.0]);

    w.add_metadata("general.alignment", Value::U32(48));
    assert!(matches!(w.to_bytes(), Err(GgufError::BadAlignment { value: 48, .. })));
}

#[test]
fn writer_rejects_bad_tensors() {
    let mut w = GgufWriter::new();
    w.add_tensor("x", &[32], GgmlType::Q8_0, vec![0; 34])
        .expect("one block");
    assert!(matches!(
        w.add_tensor("x", &[32], GgmlType::Q8_0, vec![0; 34]),
        Err(GgufError::DuplicateTensor { .. })
    ));
    assert!(w.add_tensor("y", &[32], GgmlType::Q8_0, vec![0; 33]).is_err());
    assert!(w.add_tensor("z", &[16], GgmlType::Q8_0, vec![0; 17]).is_err());
    assert!(w.add_tensor("w", &[1, 1, 1, 1, 1], GgmlType::F32, vec![0; 4]).is_err());
    w.add_metadata("mixed", Value::Array(vec![Value::U8(1), Value::I8(1)]));
    assert!(matches!(w.to_bytes(), Err(GgufError::WrongType { .. })));
}

#[test]
fn write_to_path_replaces_the_file_and_mmap_reads_it_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, b"old contents").expect("seed file");
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama");
    w.add_tensor_f32("w", &[32, 2], GgmlType::Q4_0, &sample_values(64))
        .expect("add");
    w.write_to_path(&path).expect("write");
    let file = GgufFile::open(&path).expect("open");
    assert_eq!(file.architecture().expect("arch"), "llama");
    assert_eq!(file.dequantize("w").expect("w").len(), 64);
    let leftovers = std::fs::read_dir(dir.path()).expect("list").count();
    assert_eq!(leftovers, 1, "no temporary file left behind");
    assert!(matches!(
        GgufFile::open(&dir.path().join("absent.gguf")),
        Err(GgufError::Io { .. })
    ));
}

#[test]
fn missing_tensor_is_named() {
    let file = GgufFile::from_bytes(GgufWriter::new().to_bytes().expect("empty")).expect("parse");
    let err = file.dequantize("nope").expect_err("missing");
    assert!(err.to_string().contains("nope"));
}
