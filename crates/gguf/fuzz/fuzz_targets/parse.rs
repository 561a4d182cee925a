//! Fuzz target: any byte string either fails to parse with an error or parses into a file whose
//! every tensor can be sliced and dequantized; nothing may panic or allocate without bound.
#![no_main]

use airlock_gguf::GgufFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    for info in &file.tensors {
        assert_eq!(file.tensor_bytes(info).len(), info.n_bytes());
        if let Ok(values) = file.dequantize(&info.name) {
            assert_eq!(values.len() as u64, info.n_elements());
        }
    }
});
