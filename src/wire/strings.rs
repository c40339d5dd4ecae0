//! (COMPACT_)(NULLABLE_)STRING and (COMPACT_)(NULLABLE_)BYTES (RECORDS too): decoded as
//! slices of the input, never copied; strings are checked to be UTF-8.

use super::length::{peek_len, peek_len_fast, put_len};
use super::{Buf, ByteString, Bytes, DecodeError, DecodeErrorKind, EncodeError, Out, eof};

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
pub(super) fn take_after(
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
    read_slow(buf, compact, false, field, take_utf8)
}

/// The full path of the readers of a value that may not be null: every prefix check
/// and its error, then `take` the value. Nothing is consumed on error.
#[inline(never)]
fn read_slow<T>(
    buf: &mut Bytes,
    compact: bool,
    wide: bool,
    field: &'static str,
    take: impl FnOnce(&mut Bytes, usize, usize, &'static str) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    match peek_len(buf, compact, wide, field)? {
        (Some(len), n) => take(buf, n, len, field),
        (None, _) => Err(DecodeError::new(field, DecodeErrorKind::UnexpectedNull)),
    }
}

/// [`read_slow`] for a nullable value: a null is consumed and gives `None`.
#[inline(never)]
fn read_nullable_slow<T>(
    buf: &mut Bytes,
    compact: bool,
    wide: bool,
    field: &'static str,
    take: impl FnOnce(&mut Bytes, usize, usize, &'static str) -> Result<T, DecodeError>,
) -> Result<Option<T>, DecodeError> {
    match peek_len(buf, compact, wide, field)? {
        (Some(len), n) => take(buf, n, len, field).map(Some),
        (None, n) => {
            buf.advance(n);
            Ok(None)
        }
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
    read_nullable_slow(buf, compact, false, field, take_utf8)
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
    read_slow(buf, compact, true, field, take_after)
}

/// Decodes NULLABLE_BYTES, COMPACT_NULLABLE_BYTES or RECORDS as a slice of the input.
#[inline(always)]
pub fn read_nullable_bytes(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<Option<Bytes>, DecodeError> {
    // `checked_sub` tests what `advance(n)` asserts, so the assertion folds away.
    // (The same fast path as `read_array_len`'s: a shared helper cost 3% to 9% on
    // decoding a Fetch response, measured.)
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
    read_nullable_slow(buf, compact, true, field, take_after)
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
/// reference ([`ChunkedOut`](super::ChunkedOut)) does not copy them.
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
