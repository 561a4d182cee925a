//! A bounds-checked little-endian reader over a GGUF file's bytes, and the decoding of metadata
//! values with the reader's caps on string lengths, array lengths and nesting.

use crate::reader::{MAX_ARRAY_DEPTH, MAX_ARRAY_LEN, MAX_STRING_LEN};
use crate::value::type_id;
use crate::{GgufError, Value};

/// The error for input that ended while reading `what`, which started at byte `offset`.
pub(crate) fn truncated(what: &str, offset: usize) -> GgufError {
    GgufError::Truncated {
        what: what.to_owned(),
        offset: offset as u64,
    }
}

/// A bounds-checked little-endian reader over the file's bytes.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    /// Bytes consumed so far.
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], GgufError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| truncated(what, self.pos))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    pub(crate) fn string(&mut self, max: u64, what: &str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        if len > max {
            return Err(GgufError::TooLarge {
                what: format!("length of {what}"),
                value: len,
                max,
            });
        }
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 { what: what.to_owned() })
    }

    /// One metadata value of type `ty`; `depth` counts enclosing arrays; `what` names it in errors.
    pub(crate) fn value(&mut self, ty: u32, key: &str, depth: u32, what: &str) -> Result<Value, GgufError> {
        Ok(match ty {
            type_id::U8 => Value::U8(u8::from_le_bytes(self.array(what)?)),
            type_id::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            type_id::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            type_id::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            type_id::U32 => Value::U32(u32::from_le_bytes(self.array(what)?)),
            type_id::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            type_id::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            type_id::BOOL => Value::Bool(u8::from_le_bytes(self.array(what)?) != 0),
            type_id::STRING => Value::String(self.string(MAX_STRING_LEN, what)?),
            type_id::U64 => Value::U64(u64::from_le_bytes(self.array(what)?)),
            type_id::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            type_id::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            type_id::ARRAY => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::NestingTooDeep {
                        key: key.to_owned(),
                        max_depth: MAX_ARRAY_DEPTH,
                    });
                }
                let elem_ty = self.u32(what)?;
                let min_size = min_value_size(elem_ty).ok_or_else(|| GgufError::UnknownValueType {
                    key: key.to_owned(),
                    type_id: elem_ty,
                })?;
                let count = self.u64(what)?;
                if count > MAX_ARRAY_LEN {
                    return Err(GgufError::TooLarge {
                        what: format!("element count of {what}"),
                        value: count,
                        max: MAX_ARRAY_LEN,
                    });
                }
                // Never allocate for more elements than the remaining bytes could hold.
                if count.saturating_mul(min_size) > self.remaining() as u64 {
                    return Err(truncated(what, self.pos));
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(elem_ty, key, depth + 1, what)?);
                }
                Value::Array(items)
            }
            other => {
                return Err(GgufError::UnknownValueType {
                    key: key.to_owned(),
                    type_id: other,
                });
            }
        })
    }
}

/// The fewest bytes a value of type `ty` occupies on disk, or `None` for an unknown type.
fn min_value_size(ty: u32) -> Option<u64> {
    Some(match ty {
        type_id::U8 | type_id::I8 | type_id::BOOL => 1,
        type_id::U16 | type_id::I16 => 2,
        type_id::U32 | type_id::I32 | type_id::F32 => 4,
        type_id::U64 | type_id::I64 | type_id::F64 | type_id::STRING => 8,
        type_id::ARRAY => 12,
        _ => return None,
    })
}
