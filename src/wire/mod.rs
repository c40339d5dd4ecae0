//! Kafka's primitive wire types.
//!
//! Every type of the Kafka protocol guide has a `read_*` function that decodes it from
//! a [`Bytes`] and a `put_*` function that encodes it into an [`Out`] (a `Vec<u8>`, a
//! [`BytesMut`], or any [`BufMut`] through [`SpillOut`]):
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
mod error;
mod message;
mod out;
mod scalar_list;
mod tagged_fields;
mod uuid;

pub use bytes::{Buf, BufMut, Bytes, BytesMut};
pub use bytestring::ByteString;
pub use error::{DecodeError, DecodeErrorDetails, DecodeErrorKind, EncodeError};
pub use message::{Message, Versioned, decode_versioned, decode_versioned_forward_compatible};
pub(crate) use out::SliceOut;
pub use out::{ChunkedOut, Out, SPILL_THRESHOLD, SpillOut, VecOut};
pub use scalar_list::{
    INLINE_CAPACITY, Scalar, ScalarList, put_scalar_array, put_scalar_list,
    read_nullable_scalar_array, read_scalar_array,
};
pub use tagged_fields::UnknownTaggedFields;
pub use uuid::Uuid;

#[cold]
fn eof(field: &'static str, needed: u64, remaining: usize) -> DecodeError {
    DecodeError::new(field, DecodeErrorKind::UnexpectedEof { needed, remaining })
}

#[inline]
fn need(buf: &Bytes, n: usize, field: &'static str) -> Result<(), DecodeError> {
    if buf.len() < n {
        Err(eof(field, n as u64, buf.len()))
    } else {
        Ok(())
    }
}

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

/// Decodes an UNSIGNED_VARINT: at most 5 bytes, and no value bits past 32.
#[inline]
pub fn read_unsigned_varint(buf: &mut Bytes, field: &'static str) -> Result<u32, DecodeError> {
    // Fast path: one byte.
    if let Some(&b) = buf.first()
        && b & 0x80 == 0
    {
        buf.advance(1);
        return Ok(u32::from(b));
    }
    let v = read_unsigned_varlong_inner(buf, field, 5)?;
    u32::try_from(v)
        .map_err(|_| DecodeError::new(field, DecodeErrorKind::VarintOverflow { max_bytes: 5 }))
}

/// Decodes an unsigned 64-bit varint: at most 10 bytes, and no value bits past 64.
#[inline]
pub fn read_unsigned_varlong(buf: &mut Bytes, field: &'static str) -> Result<u64, DecodeError> {
    read_unsigned_varlong_inner(buf, field, 10)
}

fn read_unsigned_varlong_inner(
    buf: &mut Bytes,
    field: &'static str,
    max_bytes: u8,
) -> Result<u64, DecodeError> {
    let (value, n) = varint_from_slice(buf, field, max_bytes)?;
    buf.advance(n);
    Ok(value)
}

/// Decodes an unsigned varint of at most `max_bytes` (5: 32 value bits; 10: 64) from
/// the front of `s`: `(value, bytes it took)`. Consumes nothing.
#[inline]
fn varint_from_slice(
    s: &[u8],
    field: &'static str,
    max_bytes: u8,
) -> Result<(u64, usize), DecodeError> {
    let mut value: u64 = 0;
    let bits_allowed: u32 = if max_bytes == 5 { 32 } else { 64 };
    for (i, &b) in s.iter().take(usize::from(max_bytes)).enumerate() {
        let shift = 7 * i as u32;
        let chunk = u64::from(b & 0x7f);
        // Reject value bits that would not fit the type.
        if shift + 7 > bits_allowed && (chunk >> (bits_allowed - shift)) != 0 {
            return Err(DecodeError::new(
                field,
                DecodeErrorKind::VarintOverflow { max_bytes },
            ));
        }
        value |= chunk << shift;
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if s.len() >= usize::from(max_bytes) {
        Err(DecodeError::new(
            field,
            DecodeErrorKind::VarintOverflow { max_bytes },
        ))
    } else {
        Err(eof(field, s.len() as u64 + 1, s.len()))
    }
}

/// Decodes a VARINT: a zig-zag encoded `i32` in at most 5 bytes.
#[inline]
pub fn read_varint(buf: &mut Bytes, field: &'static str) -> Result<i32, DecodeError> {
    let u = read_unsigned_varint(buf, field)?;
    Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
}

/// Decodes a VARLONG: a zig-zag encoded `i64` in at most 10 bytes.
#[inline]
pub fn read_varlong(buf: &mut Bytes, field: &'static str) -> Result<i64, DecodeError> {
    let u = read_unsigned_varlong(buf, field)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

/// Encodes an UNSIGNED_VARINT.
#[inline]
pub fn put_unsigned_varint<W: Out + ?Sized>(buf: &mut W, value: u32) {
    put_unsigned_varlong(buf, u64::from(value));
}

/// Encodes an unsigned 64-bit varint.
#[inline]
pub fn put_unsigned_varlong<W: Out + ?Sized>(buf: &mut W, mut value: u64) {
    if value < 0x80 {
        buf.write_byte(value as u8);
        return;
    }
    let mut tmp = [0u8; 10];
    let mut n = 0;
    while value >= 0x80 {
        tmp[n] = (value as u8) | 0x80;
        value >>= 7;
        n += 1;
    }
    tmp[n] = value as u8;
    buf.write_slice(&tmp[..=n]);
}

/// Encodes a VARINT (zig-zag `i32`).
#[inline]
pub fn put_varint<W: Out + ?Sized>(buf: &mut W, value: i32) {
    put_unsigned_varint(buf, ((value << 1) ^ (value >> 31)) as u32);
}

/// Encodes a VARLONG (zig-zag `i64`).
#[inline]
pub fn put_varlong<W: Out + ?Sized>(buf: &mut W, value: i64) {
    put_unsigned_varlong(buf, ((value << 1) ^ (value >> 63)) as u64);
}

/// The number of bytes [`put_unsigned_varlong`] writes for `value`.
#[inline]
#[must_use]
pub fn unsigned_varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// The number of bytes [`put_varint`] writes for `value`.
#[inline]
#[must_use]
pub fn varint_len(value: i32) -> usize {
    unsigned_varint_len(u64::from(((value << 1) ^ (value >> 31)) as u32))
}

/// The number of bytes [`put_varlong`] writes for `value`.
#[inline]
#[must_use]
pub fn varlong_len(value: i64) -> usize {
    unsigned_varint_len(((value << 1) ^ (value >> 63)) as u64)
}

/// Peeks an unsigned varint of at most `max_bytes` at the front of `s` without
/// consuming it: `(value, encoded length)`.
#[inline]
fn peek_unsigned_varint(
    s: &[u8],
    field: &'static str,
    max_bytes: u8,
) -> Result<(u64, usize), DecodeError> {
    if let Some(&b) = s.first()
        && b & 0x80 == 0
    {
        return Ok((u64::from(b), 1));
    }
    varint_from_slice(s, field, max_bytes)
}

/// Peeks an unsigned varint of one to four bytes (below 2^28): `(value, bytes it
/// takes)`, or `None` for anything else (longer, or fewer than four bytes left for a
/// multi-byte one), which the full reader then decodes or rejects. Every length a real
/// message carries fits, and a multi-byte length is followed by at least 127 bytes.
#[inline(always)]
fn peek_short_varint(s: &[u8]) -> Option<(usize, usize)> {
    let b0 = usize::from(*s.first()?);
    if b0 < 0x80 {
        return Some((b0, 1));
    }
    let [_, b1, b2, b3] = s.first_chunk::<4>()?.map(usize::from);
    let mut v = (b0 & 0x7f) | (b1 & 0x7f) << 7;
    if b1 < 0x80 {
        return Some((v, 2));
    }
    v |= (b2 & 0x7f) << 14;
    if b2 < 0x80 {
        return Some((v, 3));
    }
    v |= (b3 & 0x7f) << 21;
    if b3 < 0x80 {
        return Some((v, 4));
    }
    None
}

/// The common case of [`peek_len`], inlined where it is used: a well-formed prefix
/// (`(None, n)` for null), or `None` to take the full path, which also makes the
/// errors. Never accepts a prefix [`peek_len`] rejects.
#[inline(always)]
fn peek_len_fast(s: &[u8], compact: bool, wide: bool) -> Option<(Option<usize>, usize)> {
    let (len, n) = if compact {
        let (v, n) = peek_short_varint(s)?;
        return Some((v.checked_sub(1), n));
    } else if wide {
        (i64::from(i32::from_be_bytes(*s.first_chunk::<4>()?)), 4)
    } else {
        (i64::from(i16::from_be_bytes(*s.first_chunk::<2>()?)), 2)
    };
    match len {
        -1 => Some((None, n)),
        l if l < 0 => None,
        l => Some((Some(l as usize), n)),
    }
}

/// Peeks a length prefix for a string, bytes or array without consuming it:
/// `(length or None for null, bytes the prefix takes)`.
///
/// Non-compact lengths are `i16` (`wide == false`, strings) or `i32` (`wide == true`,
/// bytes and arrays); compact lengths are an unsigned varint holding length + 1.
/// Nothing is consumed so that an error points at the start of the value.
#[inline]
fn peek_len(
    buf: &Bytes,
    compact: bool,
    wide: bool,
    field: &'static str,
) -> Result<(Option<usize>, usize), DecodeError> {
    let (len, n): (i64, usize) = if compact {
        let (v, n) = peek_unsigned_varint(buf, field, 5)?;
        if v > u64::from(u32::MAX) {
            return Err(DecodeError::new(
                field,
                DecodeErrorKind::VarintOverflow { max_bytes: 5 },
            ));
        }
        (v as i64 - 1, n)
    } else if wide {
        need(buf, 4, field)?;
        (
            i64::from(i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]])),
            4,
        )
    } else {
        need(buf, 2, field)?;
        (i64::from(i16::from_be_bytes([buf[0], buf[1]])), 2)
    };
    match len {
        -1 => Ok((None, n)),
        l if l < 0 => Err(DecodeError::new(field, DecodeErrorKind::NegativeLength(l))),
        l => Ok((Some(l as usize), n)),
    }
}

/// `buf.split_to(len)` (the caller checked `len <= buf.len()`), inlined: `split_to`
/// is an out-of-line call in `bytes`, while `clone` (the reference count) and
/// `truncate` are inline.
#[inline(always)]
fn split_front(buf: &mut Bytes, len: usize) -> Bytes {
    let mut front = buf.clone();
    front.truncate(len);
    buf.advance(len);
    front
}

/// Takes a length-prefixed value of `len` bytes after an `n`-byte prefix, or fails
/// without consuming anything.
#[inline]
fn take_after(
    buf: &mut Bytes,
    n: usize,
    len: usize,
    field: &'static str,
) -> Result<Bytes, DecodeError> {
    if buf.len() - n < len {
        return Err(eof(field, (n + len) as u64, buf.len()));
    }
    buf.advance(n);
    Ok(buf.split_to(len))
}

#[inline]
fn take_utf8(
    buf: &mut Bytes,
    n: usize,
    len: usize,
    field: &'static str,
) -> Result<ByteString, DecodeError> {
    if buf.len() - n < len {
        return Err(eof(field, (n + len) as u64, buf.len()));
    }
    // Validate before consuming, so an error points at the string's start. (Clone,
    // advance and truncate are inline in `bytes`; `slice` and `split_to` are not.)
    let mut text = buf.clone();
    text.advance(n);
    text.truncate(len);
    let text = ByteString::try_from(text)
        .map_err(|_| DecodeError::new(field, DecodeErrorKind::InvalidUtf8))?;
    buf.advance(n + len);
    Ok(text)
}

/// Decodes a STRING (`compact == false`) or COMPACT_STRING; null is an error.
#[inline]
pub fn read_string(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<ByteString, DecodeError> {
    if let Some((Some(len), n)) = peek_len_fast(buf, compact, false) {
        return take_utf8(buf, n, len, field);
    }
    read_string_slow(buf, compact, field)
}

#[inline(never)]
fn read_string_slow(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<ByteString, DecodeError> {
    match peek_len(buf, compact, false, field)? {
        (Some(len), n) => take_utf8(buf, n, len, field),
        (None, _) => Err(DecodeError::new(field, DecodeErrorKind::UnexpectedNull)),
    }
}

/// Decodes a NULLABLE_STRING or COMPACT_NULLABLE_STRING.
#[inline]
pub fn read_nullable_string(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<Option<ByteString>, DecodeError> {
    match peek_len_fast(buf, compact, false) {
        Some((Some(len), n)) => return take_utf8(buf, n, len, field).map(Some),
        Some((None, n)) => {
            buf.advance(n);
            return Ok(None);
        }
        None => {}
    }
    read_nullable_string_slow(buf, compact, field)
}

#[inline(never)]
fn read_nullable_string_slow(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<Option<ByteString>, DecodeError> {
    match peek_len(buf, compact, false, field)? {
        (Some(len), n) => Ok(Some(take_utf8(buf, n, len, field)?)),
        (None, n) => {
            buf.advance(n);
            Ok(None)
        }
    }
}

/// Decodes BYTES or COMPACT_BYTES as a slice of the input; null is an error.
#[inline(always)]
pub fn read_bytes(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<Bytes, DecodeError> {
    if let Some((Some(len), n)) = peek_len_fast(buf, compact, true)
        && let Some(rest) = buf.len().checked_sub(n)
        && len <= rest
    {
        buf.advance(n);
        return Ok(split_front(buf, len));
    }
    read_bytes_slow(buf, compact, field)
}

#[inline(never)]
fn read_bytes_slow(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<Bytes, DecodeError> {
    match peek_len(buf, compact, true, field)? {
        (Some(len), n) => take_after(buf, n, len, field),
        (None, _) => Err(DecodeError::new(field, DecodeErrorKind::UnexpectedNull)),
    }
}

/// Decodes NULLABLE_BYTES, COMPACT_NULLABLE_BYTES or RECORDS as a slice of the input.
#[inline(always)]
pub fn read_nullable_bytes(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<Option<Bytes>, DecodeError> {
    // `checked_sub` tests what `advance(n)` asserts, so the assertion folds away.
    if let Some((len, n)) = peek_len_fast(buf, compact, true)
        && let Some(rest) = buf.len().checked_sub(n)
    {
        match len {
            None => {
                buf.advance(n);
                return Ok(None);
            }
            Some(len) if len <= rest => {
                buf.advance(n);
                return Ok(Some(split_front(buf, len)));
            }
            Some(_) => {}
        }
    }
    read_nullable_bytes_slow(buf, compact, field)
}

#[inline(never)]
fn read_nullable_bytes_slow(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<Option<Bytes>, DecodeError> {
    match peek_len(buf, compact, true, field)? {
        (Some(len), n) => Ok(Some(take_after(buf, n, len, field)?)),
        (None, n) => {
            buf.advance(n);
            Ok(None)
        }
    }
}

/// Reads an ARRAY or COMPACT_ARRAY count; `None` is the null array.
///
/// `min_element_size` is the fewest bytes one element can take (at least 1); a count
/// that could not fit in the remaining input is an error (and consumes nothing), so a
/// caller may reserve `count` elements without trusting the input.
#[inline(always)]
pub fn read_array_len(
    buf: &mut Bytes,
    compact: bool,
    min_element_size: usize,
    field: &'static str,
) -> Result<Option<usize>, DecodeError> {
    if let Some((len, n)) = peek_len_fast(buf, compact, true)
        && let Some(rest) = buf.len().checked_sub(n)
    {
        match len {
            None => {
                buf.advance(n);
                return Ok(None);
            }
            Some(count) if count <= rest / min_element_size.max(1) => {
                buf.advance(n);
                return Ok(Some(count));
            }
            Some(_) => {}
        }
    }
    read_array_len_slow(buf, compact, min_element_size, field)
}

#[inline(never)]
fn read_array_len_slow(
    buf: &mut Bytes,
    compact: bool,
    min_element_size: usize,
    field: &'static str,
) -> Result<Option<usize>, DecodeError> {
    let (len, n) = peek_len(buf, compact, true, field)?;
    if let Some(count) = len {
        let per = min_element_size.max(1);
        let remaining = buf.len() - n;
        if count > remaining / per {
            return Err(DecodeError::new(
                field,
                DecodeErrorKind::CountExceedsInput {
                    count: count as u64,
                    remaining,
                },
            ));
        }
    }
    buf.advance(n);
    Ok(len)
}

/// Decodes an array whose null marker is not allowed, each element by `element`.
#[inline(always)]
pub fn read_array<T>(
    buf: &mut Bytes,
    compact: bool,
    min_element_size: usize,
    field: &'static str,
    element: impl FnMut(&mut Bytes) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    match read_array_len(buf, compact, min_element_size, field)? {
        Some(count) => read_elements(buf, count, field, element),
        None => Err(DecodeError::new(field, DecodeErrorKind::UnexpectedNull)),
    }
}

/// Decodes a nullable array, each element by `element`.
#[inline(always)]
pub fn read_nullable_array<T>(
    buf: &mut Bytes,
    compact: bool,
    min_element_size: usize,
    field: &'static str,
    element: impl FnMut(&mut Bytes) -> Result<T, DecodeError>,
) -> Result<Option<Vec<T>>, DecodeError> {
    match read_array_len(buf, compact, min_element_size, field)? {
        Some(count) => read_elements(buf, count, field, element).map(Some),
        None => Ok(None),
    }
}

/// Decodes `count` elements (a count [`read_array_len`] checked against the input).
///
/// The elements are written straight into the `Vec`'s memory. A plain `push` after
/// decoding may grow the `Vec`, and growing may panic, so the compiler keeps the
/// decoded value in memory (to drop it while unwinding) and copies it in: a `memcpy`
/// per element. Here `push` runs only behind a test that there is room, which the
/// compiler sees, so it drops the growth path and builds the value in registers.
///
/// An empty array (the common case of many optional lists) costs no call; otherwise
/// the loop is a function of its own, with the element's decoding inlined into it: a
/// small function the register allocator handles well, whatever message holds it.
#[inline(always)]
fn read_elements<T>(
    buf: &mut Bytes,
    count: usize,
    field: &'static str,
    element: impl FnMut(&mut Bytes) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    if count == 0 {
        Ok(Vec::new())
    } else {
        read_elements_loop(buf, count, field, element)
    }
}

#[inline(never)]
fn read_elements_loop<T>(
    buf: &mut Bytes,
    count: usize,
    field: &'static str,
    mut element: impl FnMut(&mut Bytes) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let value = element(buf)?;
        if out.len() == out.capacity() {
            // Never: `with_capacity(count)` holds `count` values. Not dropping
            // `value` here (only forgetting it, which is safe) keeps it out of memory.
            std::mem::forget(value);
            return Err(DecodeError::new(
                field,
                DecodeErrorKind::CountExceedsInput {
                    count: count as u64,
                    remaining: buf.len(),
                },
            ));
        }
        out.push(value);
    }
    Ok(out)
}

#[inline(always)]
fn put_len<W: Out + ?Sized>(
    buf: &mut W,
    len: Option<usize>,
    compact: bool,
    wide: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    // The common cases inline: a short compact length is one byte, a classic one 2 or 4.
    if let Some(n) = len {
        if compact {
            if n < 0x7f {
                buf.write_byte(n as u8 + 1);
                return Ok(());
            }
            // Bytes and records (a fetched partition's batches): 2 or 3 bytes.
            if wide && n < 0x1f_ffff {
                let v = n as u32 + 1;
                let b = [
                    v as u8 | 0x80,
                    (v >> 7) as u8 | if v >= 0x4000 { 0x80 } else { 0 },
                    (v >> 14) as u8,
                    0,
                ];
                buf.write_padded(&b, if v >= 0x4000 { 3 } else { 2 });
                return Ok(());
            }
        } else if wide {
            if n <= i32::MAX as usize {
                buf.write_slice(&(n as i32).to_be_bytes());
                return Ok(());
            }
        } else if n <= i16::MAX as usize {
            buf.write_slice(&(n as i16).to_be_bytes());
            return Ok(());
        }
    }
    put_len_slow(buf, len, compact, wide, field)
}

#[inline(never)]
fn put_len_slow<W: Out + ?Sized>(
    buf: &mut W,
    len: Option<usize>,
    compact: bool,
    wide: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    match len {
        None => {
            if compact {
                buf.write_byte(0);
            } else if wide {
                buf.write_slice(&(-1i32).to_be_bytes());
            } else {
                buf.write_slice(&(-1i16).to_be_bytes());
            }
        }
        Some(len) => {
            let max = if compact {
                u32::MAX as usize - 1
            } else if wide {
                i32::MAX as usize
            } else {
                i16::MAX as usize
            };
            if len > max {
                return Err(EncodeError::TooLong {
                    field,
                    length: len,
                    max,
                });
            }
            if compact {
                put_unsigned_varlong(buf, len as u64 + 1);
            } else if wide {
                buf.write_slice(&(len as i32).to_be_bytes());
            } else {
                buf.write_slice(&(len as i16).to_be_bytes());
            }
        }
    }
    Ok(())
}

/// Encodes a STRING or COMPACT_STRING.
#[inline(always)]
pub fn put_string<W: Out + ?Sized>(
    buf: &mut W,
    value: &str,
    compact: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    put_len(buf, Some(value.len()), compact, false, field)?;
    buf.write_slice(value.as_bytes());
    Ok(())
}

/// Encodes a NULLABLE_STRING or COMPACT_NULLABLE_STRING.
#[inline(always)]
pub fn put_nullable_string<W: Out + ?Sized>(
    buf: &mut W,
    value: Option<&str>,
    compact: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    match value {
        Some(s) => put_string(buf, s, compact, field),
        None => put_len(buf, None, compact, false, field),
    }
}

/// Encodes BYTES or COMPACT_BYTES.
#[inline]
pub fn put_bytes<W: Out + ?Sized>(
    buf: &mut W,
    value: &[u8],
    compact: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    put_len(buf, Some(value.len()), compact, true, field)?;
    buf.write_slice(value);
    Ok(())
}

/// Encodes NULLABLE_BYTES, COMPACT_NULLABLE_BYTES or RECORDS.
#[inline]
pub fn put_nullable_bytes<W: Out + ?Sized>(
    buf: &mut W,
    value: Option<&[u8]>,
    compact: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    match value {
        Some(b) => put_bytes(buf, b, compact, field),
        None => put_len(buf, None, compact, true, field),
    }
}

/// Encodes BYTES, COMPACT_BYTES or RECORDS held as [`Bytes`]: a sink that can keep a
/// reference ([`ChunkedOut`]) does not copy them.
#[inline]
pub fn put_shared_bytes<W: Out + ?Sized>(
    buf: &mut W,
    value: &Bytes,
    compact: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    put_len(buf, Some(value.len()), compact, true, field)?;
    buf.write_shared(value);
    Ok(())
}

/// The nullable form of [`put_shared_bytes`].
#[inline]
pub fn put_nullable_shared_bytes<W: Out + ?Sized>(
    buf: &mut W,
    value: Option<&Bytes>,
    compact: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    match value {
        Some(b) => put_shared_bytes(buf, b, compact, field),
        None => put_len(buf, None, compact, true, field),
    }
}

/// Encodes an ARRAY or COMPACT_ARRAY count (`None` for the null array).
#[inline]
pub fn put_array_len<W: Out + ?Sized>(
    buf: &mut W,
    len: Option<usize>,
    compact: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    put_len(buf, len, compact, true, field)
}

/// A tagged field this crate's schema does not know, kept so it is re-encoded as-is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawTaggedField {
    /// The field's tag.
    pub tag: u32,
    /// The field's encoded value, without the tag and size prefixes.
    pub data: Bytes,
}

/// Reads the tagged-field section's field count (an unsigned varint), checked against
/// the remaining input (each tagged field takes at least two bytes).
#[inline(always)]
pub fn read_tagged_header(buf: &mut Bytes, field: &'static str) -> Result<usize, DecodeError> {
    // Nearly every section is empty: one zero byte, and the caller's loop over the
    // fields folds away.
    if buf.first() == Some(&0) {
        buf.advance(1);
        return Ok(0);
    }
    read_tagged_header_slow(buf, field)
}

#[inline(never)]
fn read_tagged_header_slow(buf: &mut Bytes, field: &'static str) -> Result<usize, DecodeError> {
    let count = read_unsigned_varint(buf, field)? as usize;
    if count > buf.len() / 2 {
        return Err(DecodeError::new(
            field,
            DecodeErrorKind::CountExceedsInput {
                count: count as u64,
                remaining: buf.len(),
            },
        ));
    }
    Ok(count)
}

/// Reads one tagged field's tag and its data (as a slice of the input).
#[inline]
pub fn read_tagged_field(
    buf: &mut Bytes,
    field: &'static str,
) -> Result<(u32, Bytes), DecodeError> {
    let (tag, a) = peek_unsigned_varint(buf, field, 5)?;
    let (size, b) = peek_unsigned_varint(&buf[a..], field, 5)?;
    let tag = u32::try_from(tag)
        .map_err(|_| DecodeError::new(field, DecodeErrorKind::VarintOverflow { max_bytes: 5 }))?;
    let data = take_after(buf, a + b, size as usize, field)?;
    Ok((tag, data))
}

/// Reads a whole tagged-field section where no tag is known, keeping every field.
pub fn read_raw_tagged_fields(
    buf: &mut Bytes,
    field: &'static str,
) -> Result<Vec<RawTaggedField>, DecodeError> {
    let count = read_tagged_header(buf, field)?;
    let mut out = Vec::with_capacity(count);
    let mut previous: Option<u32> = None;
    for _ in 0..count {
        let (tag, data) = read_tagged_field(buf, field)?;
        check_tag_order(previous, tag, field)?;
        previous = Some(tag);
        out.push(RawTaggedField { tag, data });
    }
    Ok(out)
}

/// Checks that `tag` comes strictly after `previous`.
#[inline]
pub fn check_tag_order(
    previous: Option<u32>,
    tag: u32,
    field: &'static str,
) -> Result<(), DecodeError> {
    match previous {
        Some(p) if p >= tag => Err(DecodeError::new(
            field,
            DecodeErrorKind::TaggedFieldOrder { previous: p, tag },
        )),
        _ => Ok(()),
    }
}

/// Encodes one tagged field: tag, size, data.
#[inline]
pub fn put_tagged_field<W: Out + ?Sized>(buf: &mut W, tag: u32, data: &[u8]) {
    put_unsigned_varint(buf, tag);
    put_unsigned_varlong(buf, data.len() as u64);
    buf.write_slice(data);
}

/// Encodes a tagged-field section holding only `fields` (which must be in strictly
/// ascending tag order, as [`read_raw_tagged_fields`] returns them).
pub fn put_raw_tagged_fields<W: Out + ?Sized>(
    buf: &mut W,
    fields: &[RawTaggedField],
    field: &'static str,
) -> Result<(), EncodeError> {
    check_unknown_tags(fields, field)?;
    put_unsigned_varlong(buf, fields.len() as u64);
    for f in fields {
        put_tagged_field(buf, f.tag, &f.data);
    }
    Ok(())
}

/// Checks that unknown tagged fields are in strictly ascending tag order (so no tag
/// repeats), as the encoding requires.
pub fn check_unknown_tags(
    fields: &[RawTaggedField],
    field: &'static str,
) -> Result<(), EncodeError> {
    for pair in fields.windows(2) {
        if pair[0].tag >= pair[1].tag {
            return Err(EncodeError::DuplicateTag {
                field,
                tag: pair[1].tag,
            });
        }
    }
    Ok(())
}

/// A range of message versions, inclusive at both ends; `EMPTY` holds none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VersionRange {
    /// Lowest version in the range.
    pub min: i16,
    /// Highest version in the range.
    pub max: i16,
}

impl VersionRange {
    /// The range with no versions (a `none` in the schema).
    pub const EMPTY: VersionRange = VersionRange { min: 0, max: -1 };

    /// Whether `version` lies in the range.
    #[inline]
    #[must_use]
    pub const fn contains(&self, version: i16) -> bool {
        version >= self.min && version <= self.max
    }

    /// Whether the range holds no versions.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.max < self.min
    }

    /// The versions both ranges hold, or `None` if they do not overlap.
    #[must_use]
    pub fn intersect(&self, other: &VersionRange) -> Option<VersionRange> {
        let r = VersionRange {
            min: self.min.max(other.min),
            max: self.max.min(other.max),
        };
        (!r.is_empty()).then_some(r)
    }
}

impl std::fmt::Display for VersionRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            write!(f, "none")
        } else if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}
