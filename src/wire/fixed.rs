//! The fixed-width types: BOOLEAN, INT8 to INT64, UINT16, UINT32, FLOAT64 (all
//! big-endian) and UUID.

use super::{Buf, Bytes, DecodeError, Out, Uuid, need};

macro_rules! fixed {
    ($read:ident, $put:ident, $ty:ty, $get:ident, $putm:ident, $n:expr, $doc:expr) => {
        #[doc = concat!("Decodes ", $doc, " (big-endian, ", stringify!($n), " bytes).")]
        #[inline]
        pub fn $read(buf: &mut Bytes, field: &'static str) -> Result<$ty, DecodeError> {
            need(buf, $n, field)?;
            Ok(buf.$get())
        }
        #[doc = concat!("Encodes ", $doc, " (big-endian, ", stringify!($n), " bytes).")]
        #[inline]
        pub fn $put<W: Out + ?Sized>(buf: &mut W, value: $ty) {
            buf.write_slice(&value.to_be_bytes());
        }
    };
}

fixed!(read_i8, put_i8, i8, get_i8, put_i8, 1, "an INT8");
fixed!(read_i16, put_i16, i16, get_i16, put_i16, 2, "an INT16");
fixed!(read_u16, put_u16, u16, get_u16, put_u16, 2, "a UINT16");
fixed!(read_i32, put_i32, i32, get_i32, put_i32, 4, "an INT32");
fixed!(read_u32, put_u32, u32, get_u32, put_u32, 4, "a UINT32");
fixed!(read_i64, put_i64, i64, get_i64, put_i64, 8, "an INT64");
fixed!(read_f64, put_f64, f64, get_f64, put_f64, 8, "a FLOAT64");

/// The first `N` bytes of `buf`, if it holds that many, consuming nothing: generated
/// decoders read a run of fixed-width fields with this one length check, then
/// [`skip_fixed`].
///
/// ```
/// use kafka_sansio::wire::{self, Bytes};
///
/// let mut buf = Bytes::from_static(&[0, 7, 0, 0, 0, 42, 0xff]);
/// if let Some(b) = wire::peek_fixed::<6>(&buf) {
///     let error_code = i16::from_be_bytes([b[0], b[1]]);
///     let partition = i32::from_be_bytes([b[2], b[3], b[4], b[5]]);
///     wire::skip_fixed::<6>(&mut buf);
///     assert_eq!((error_code, partition), (7, 42));
/// }
/// assert_eq!(&buf[..], &[0xff]);
/// assert!(wire::peek_fixed::<2>(&buf).is_none());
/// ```
#[inline(always)]
#[must_use]
pub fn peek_fixed<const N: usize>(buf: &Bytes) -> Option<[u8; N]> {
    buf.first_chunk::<N>().copied()
}

/// Consumes the `N` bytes [`peek_fixed`] returned (all of `buf` if it holds fewer,
/// which cannot happen after [`peek_fixed`] succeeded; it never panics).
#[inline(always)]
pub fn skip_fixed<const N: usize>(buf: &mut Bytes) {
    buf.advance(N.min(buf.len()));
}

/// Decodes a BOOLEAN: one byte, any non-zero value is `true` (as Kafka's Java reader).
#[inline]
pub fn read_bool(buf: &mut Bytes, field: &'static str) -> Result<bool, DecodeError> {
    need(buf, 1, field)?;
    Ok(buf.get_u8() != 0)
}

/// Encodes a BOOLEAN as one byte, 0 or 1.
#[inline]
pub fn put_bool<W: Out + ?Sized>(buf: &mut W, value: bool) {
    buf.write_byte(u8::from(value));
}

/// Decodes a UUID (16 bytes).
#[inline]
pub fn read_uuid(buf: &mut Bytes, field: &'static str) -> Result<Uuid, DecodeError> {
    need(buf, 16, field)?;
    let mut raw = [0u8; 16];
    buf.copy_to_slice(&mut raw);
    Ok(Uuid::from_bytes(raw))
}

/// Encodes a UUID (16 bytes).
#[inline]
pub fn put_uuid<W: Out + ?Sized>(buf: &mut W, value: &Uuid) {
    buf.write_slice(value.as_bytes());
}
