//! (COMPACT_)(NULLABLE_)ARRAY: a count checked against the input before anything is
//! reserved, then the elements, each decoded by the caller's function.

use super::length::{peek_len, peek_len_fast, put_len};
use super::{Buf, Bytes, DecodeError, DecodeErrorKind, EncodeError, Out};

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
