//! Kafka's primitive wire types.
//!
//! Every type of the Kafka protocol guide has a `read_*` function that decodes it from
//! a [`Bytes`] and a `put_*` function that encodes it into an [`Out`] (a `Vec<u8>`, a
//! [`BytesMut`], or a [`ChunkedOut`] that keeps large byte fields by reference):
//!
//! | protocol type | Rust type | read / put |
//! |---|---|---|
//! | BOOLEAN | `bool` | [`read_bool`] / [`put_bool`] |
//! | INT8, INT16, INT32, INT64 | `i8`.. `i64` | [`read_i8`] .. [`read_i64`] |
//! | UINT16, UINT32 | `u16`, `u32` | [`read_u16`], [`read_u32`] |
//! | VARINT, VARLONG | `i32`, `i64` (zig-zag) | [`read_varint`], [`read_varlong`] |
//! | UNSIGNED_VARINT | `u32` | [`read_unsigned_varint`] |
//! | UUID | [`Uuid`] | [`read_uuid`] |
//! | FLOAT64 | `f64` | [`read_f64`] |
//! | (COMPACT_)(NULLABLE_)STRING | [`ByteString`] | [`read_string`], [`read_nullable_string`] |
//! | (COMPACT_)(NULLABLE_)BYTES, RECORDS | [`Bytes`] | [`read_bytes`], [`read_nullable_bytes`] |
//! | (COMPACT_)ARRAY | `Vec<T>` | [`read_array_len`] + elements |
//! | tagged fields | [`RawTaggedField`], [`UnknownTaggedFields`] | [`read_tagged_header`], [`put_raw_tagged_fields`] |
//!
//! The string, bytes and array readers take a `compact` flag: `true` selects the
//! COMPACT_ form used by flexible message versions.
//!
//! Decoding never panics, never reads past the input, never overflows, and never
//! allocates more than the remaining input can justify: strings and bytes are slices
//! of the input (no copy), and array counts are checked against the bytes left before
//! anything is reserved.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use kafka_sansio::wire;
//!
//! let mut out = BytesMut::new();
//! wire::put_string(&mut out, "orders", true, "topic").unwrap(); // COMPACT_STRING
//! wire::put_varint(&mut out, -3);
//! let mut input: Bytes = out.freeze();
//! assert_eq!(wire::read_string(&mut input, true, "topic").unwrap(), "orders");
//! assert_eq!(wire::read_varint(&mut input, "delta").unwrap(), -3);
//! assert!(input.is_empty());
//! ```

#[cfg(feature = "arbitrary")]
#[doc(hidden)]
pub mod arb;
mod array;
mod error;
mod fixed;
mod length;
mod message;
mod out;
mod scalar_list;
mod strings;
mod tagged_fields;
mod uuid;
mod varint;

pub use array::{put_array_len, read_array, read_array_len, read_nullable_array};
pub use bytes::{Buf, BufMut, Bytes, BytesMut};
pub use bytestring::ByteString;
pub use error::{DecodeError, DecodeErrorDetails, DecodeErrorKind, EncodeError};
pub use fixed::{
    peek_fixed, put_bool, put_f64, put_i8, put_i16, put_i32, put_i64, put_u16, put_u32, put_uuid,
    read_bool, read_f64, read_i8, read_i16, read_i32, read_i64, read_u16, read_u32, read_uuid,
    skip_fixed,
};
pub use message::{
    Message, VersionRange, Versioned, decode_versioned, decode_versioned_forward_compatible,
};
pub use out::{ChunkedOut, Out};
pub(crate) use out::{SliceOut, SpillOut, VecOut};
pub use scalar_list::{
    INLINE_CAPACITY, Scalar, ScalarList, put_scalar_array, put_scalar_list,
    read_nullable_scalar_array, read_scalar_array,
};
pub use strings::{
    put_bytes, put_nullable_bytes, put_nullable_shared_bytes, put_nullable_string,
    put_shared_bytes, put_string, read_bytes, read_nullable_bytes, read_nullable_string,
    read_string,
};
pub use tagged_fields::{
    RawTaggedField, UnknownTaggedFields, check_tag_order, check_unknown_tags,
    put_raw_tagged_fields, put_tagged_field, read_raw_tagged_fields, read_tagged_field,
    read_tagged_header,
};
pub use uuid::Uuid;
pub(crate) use varint::{
    VarintError, read_unsigned_varint_at, read_varint_at, read_varlong_at, write_unsigned_at,
    zigzag64,
};
pub use varint::{
    put_unsigned_varint, put_unsigned_varlong, put_varint, put_varlong, read_unsigned_varint,
    read_unsigned_varlong, read_varint, read_varlong, unsigned_varint_len, varint_len, varlong_len,
};

/// The error for `field` when `needed` bytes were wanted and `remaining` were left.
#[cold]
fn eof(field: &'static str, needed: u64, remaining: usize) -> DecodeError {
    DecodeError::new(field, DecodeErrorKind::UnexpectedEof { needed, remaining })
}

/// Fails unless `buf` holds at least `n` bytes.
#[inline]
fn need(buf: &Bytes, n: usize, field: &'static str) -> Result<(), DecodeError> {
    if buf.len() < n {
        Err(eof(field, n as u64, buf.len()))
    } else {
        Ok(())
    }
}
