//! VARINT, VARLONG and UNSIGNED_VARINT: the crate's one implementation of Kafka's
//! variable-length integers (7 value bits a byte, least significant first, the high
//! bit set on every byte but the last; the signed forms zig-zag encoded).
//!
//! Messages read them from the front of a [`Bytes`] and write them to an [`Out`];
//! records read them from a byte slice at a cursor and write them into a slice they
//! sized. Both go through the same two functions, [`read_unsigned_at`] and
//! [`write_unsigned_at`], which keep the values of one to three bytes (every length,
//! count and delta below 2 MiB) inline and the rest out of line.

use super::{Buf, Bytes, DecodeError, DecodeErrorKind, Out, eof};

/// Why a varint could not be read; each caller turns it into its own error with the
/// field and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended inside the varint.
    Eof,
    /// More bytes or value bits than the type allows.
    Overflow,
}

/// Reads an unsigned varint of at most `max_bytes` bytes (5: 32 value bits; 10: 64)
/// at `*pos` of `data`, advancing `*pos` past it; on error `*pos` is left as it was.
#[inline(always)]
pub(crate) fn read_unsigned_at(
    data: &[u8],
    pos: &mut usize,
    max_bytes: u8,
) -> Result<u64, VarintError> {
    let p = *pos;
    // Each path hands the position back by value, so `pos` can stay in a register.
    let (value, next) = match read_unsigned_short(data, p) {
        Some(short) => short,
        None => read_unsigned_slow(data, p, max_bytes)?,
    };
    *pos = next;
    Ok(value)
}

/// The inline part of [`read_unsigned_at`]: a varint of one to three bytes at `pos`
/// (a value below 2^21, which fits every varint type) and the position after it, or
/// `None` for anything else (longer, cut short), which the full reader then decodes
/// or rejects. Length prefixes try this alone and leave the rest to their slow path.
#[inline(always)]
pub(crate) fn read_unsigned_short(data: &[u8], pos: usize) -> Option<(u64, usize)> {
    let b0 = *data.get(pos)?;
    if b0 < 0x80 {
        return Some((u64::from(b0), pos + 1));
    }
    // One bounds check for both longer forms: a two-byte varint is followed by at
    // least a byte in every message and record (or takes the full path).
    let [_, b1, b2] = data.get(pos..)?.first_chunk::<3>()?.map(u64::from);
    let v = (u64::from(b0) & 0x7f) | ((b1 & 0x7f) << 7);
    if b1 < 0x80 {
        return Some((v, pos + 2));
    }
    (b2 < 0x80).then_some((v | (b2 << 14), pos + 3))
}

/// [`read_unsigned_at`] for four bytes and more, and for every error: the value and
/// the position after it.
#[inline(never)]
fn read_unsigned_slow(
    data: &[u8],
    start: usize,
    max_bytes: u8,
) -> Result<(u64, usize), VarintError> {
    let bits: u32 = if max_bytes == 5 { 32 } else { 64 };
    let mut value: u64 = 0;
    for i in 0..usize::from(max_bytes) {
        let Some(&b) = data.get(start + i) else {
            return Err(VarintError::Eof);
        };
        let shift = 7 * i as u32;
        let chunk = u64::from(b & 0x7f);
        // Reject value bits that would not fit the type.
        if shift + 7 > bits && (chunk >> (bits - shift)) != 0 {
            return Err(VarintError::Overflow);
        }
        value |= chunk << shift;
        if b & 0x80 == 0 {
            return Ok((value, start + i + 1));
        }
    }
    Err(VarintError::Overflow)
}

/// Reads an UNSIGNED_VARINT (at most 5 bytes, 32 value bits) at `*pos`, advancing it.
#[inline(always)]
pub(crate) fn read_unsigned_varint_at(data: &[u8], pos: &mut usize) -> Result<u32, VarintError> {
    // Five bytes of at most 32 value bits always fit.
    read_unsigned_at(data, pos, 5).map(|u| u as u32)
}

/// Reads a VARINT (zig-zag `i32`, at most 5 bytes) at `*pos`, advancing it.
#[inline(always)]
pub(crate) fn read_varint_at(data: &[u8], pos: &mut usize) -> Result<i32, VarintError> {
    read_unsigned_varint_at(data, pos).map(unzigzag32)
}

/// Reads a VARLONG (zig-zag `i64`, at most 10 bytes) at `*pos`, advancing it.
#[inline(always)]
pub(crate) fn read_varlong_at(data: &[u8], pos: &mut usize) -> Result<i64, VarintError> {
    read_unsigned_at(data, pos, 10).map(unzigzag64)
}

/// Writes the unsigned varint `value` into `out` at `pos`, returning the position
/// after it.
///
/// `out` must have room for [`unsigned_varint_len`] bytes after `pos`; callers size
/// their room for the longest encoding. Bytes that do not fit are not written (a
/// sizing bug then shows as a short encoding, never as a panic).
#[inline(always)]
pub(crate) fn write_unsigned_at(out: &mut [u8], pos: usize, value: u64) -> usize {
    if value < 0x80 {
        if let Some(slot) = out.get_mut(pos) {
            *slot = value as u8;
        }
        return pos + 1;
    }
    if value < 0x4000 {
        let pair = ((value & 0x7f) | 0x80 | ((value >> 7) << 8)) as u16;
        if let Some(slot) = out.get_mut(pos..pos + 2) {
            slot.copy_from_slice(&pair.to_le_bytes());
        }
        return pos + 2;
    }
    if value < 0x20_0000 {
        let (bytes, _) = short_bytes(value as u32);
        if let Some(slot) = out.get_mut(pos..pos + 3) {
            slot.copy_from_slice(&bytes[..3]);
        }
        return pos + 3;
    }
    write_unsigned_long(out, pos, value)
}

/// The encoding of `value`, which must be from 2^7 to below 2^21 (two or three
/// bytes), and how many of the four bytes it takes: for a sink that copies four bytes
/// and keeps two or three ([`Out::write_padded`]). The two lengths are separate
/// branches so that each write is of a constant length (no call to `memcpy`).
#[inline(always)]
pub(crate) fn short_bytes(value: u32) -> ([u8; 4], usize) {
    if value >= 0x4000 {
        let bytes = [
            value as u8 | 0x80,
            (value >> 7) as u8 | 0x80,
            (value >> 14) as u8,
            0,
        ];
        (bytes, 3)
    } else {
        ([value as u8 | 0x80, (value >> 7) as u8, 0, 0], 2)
    }
}

/// [`write_unsigned_at`] for values of four bytes and more.
#[inline(never)]
fn write_unsigned_long(out: &mut [u8], mut pos: usize, mut value: u64) -> usize {
    while value >= 0x80 {
        if let Some(slot) = out.get_mut(pos) {
            *slot = (value as u8) | 0x80;
        }
        value >>= 7;
        pos += 1;
    }
    if let Some(slot) = out.get_mut(pos) {
        *slot = value as u8;
    }
    pos + 1
}

/// Zig-zag encodes an `i32`: 0, -1, 1, -2, ... become 0, 1, 2, 3, ...
#[inline(always)]
pub(crate) const fn zigzag32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

/// Zig-zag encodes an `i64`.
#[inline(always)]
pub(crate) const fn zigzag64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Zig-zag decodes an `i32`.
#[inline(always)]
const fn unzigzag32(u: u32) -> i32 {
    ((u >> 1) as i32) ^ -((u & 1) as i32)
}

/// Zig-zag decodes an `i64`.
#[inline(always)]
const fn unzigzag64(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// The [`DecodeError`] for a varint of `field` that failed at the front of `input`.
#[cold]
pub(crate) fn varint_error(
    err: VarintError,
    field: &'static str,
    input: &[u8],
    max_bytes: u8,
) -> DecodeError {
    match err {
        VarintError::Eof => eof(field, input.len() as u64 + 1, input.len()),
        VarintError::Overflow => {
            DecodeError::new(field, DecodeErrorKind::VarintOverflow { max_bytes })
        }
    }
}

/// Reads an unsigned varint of at most `max_bytes` from the front of `buf`.
#[inline(always)]
fn read_front(buf: &mut Bytes, field: &'static str, max_bytes: u8) -> Result<u64, DecodeError> {
    let mut n = 0;
    let value = read_unsigned_at(buf, &mut n, max_bytes)
        .map_err(|e| varint_error(e, field, buf, max_bytes))?;
    buf.advance(n);
    Ok(value)
}

/// Decodes an UNSIGNED_VARINT: at most 5 bytes, and no value bits past 32.
#[inline]
pub fn read_unsigned_varint(buf: &mut Bytes, field: &'static str) -> Result<u32, DecodeError> {
    // Five bytes of at most 32 value bits always fit.
    read_front(buf, field, 5).map(|u| u as u32)
}

/// Decodes an unsigned 64-bit varint: at most 10 bytes, and no value bits past 64.
#[inline]
pub fn read_unsigned_varlong(buf: &mut Bytes, field: &'static str) -> Result<u64, DecodeError> {
    read_front(buf, field, 10)
}

/// Decodes a VARINT: a zig-zag encoded `i32` in at most 5 bytes.
#[inline]
pub fn read_varint(buf: &mut Bytes, field: &'static str) -> Result<i32, DecodeError> {
    read_unsigned_varint(buf, field).map(unzigzag32)
}

/// Decodes a VARLONG: a zig-zag encoded `i64` in at most 10 bytes.
#[inline]
pub fn read_varlong(buf: &mut Bytes, field: &'static str) -> Result<i64, DecodeError> {
    read_unsigned_varlong(buf, field).map(unzigzag64)
}

/// Encodes an UNSIGNED_VARINT.
#[inline]
pub fn put_unsigned_varint<W: Out + ?Sized>(buf: &mut W, value: u32) {
    put_unsigned_varlong(buf, u64::from(value));
}

/// Encodes an unsigned 64-bit varint.
#[inline]
pub fn put_unsigned_varlong<W: Out + ?Sized>(buf: &mut W, value: u64) {
    // Counts of tagged fields and most lengths: one byte, inline where it is used.
    if value < 0x80 {
        buf.write_byte(value as u8);
        return;
    }
    put_unsigned_varlong_long(buf, value);
}

/// [`put_unsigned_varlong`] for values of two bytes and more, out of line so that
/// generated encoders, which write a tagged-field count per struct, stay small.
#[inline(never)]
fn put_unsigned_varlong_long<W: Out + ?Sized>(buf: &mut W, value: u64) {
    let mut tmp = [0u8; 10];
    let n = write_unsigned_at(&mut tmp, 0, value);
    buf.write_slice(tmp.get(..n).unwrap_or(&tmp));
}

/// Encodes a VARINT (zig-zag `i32`).
#[inline]
pub fn put_varint<W: Out + ?Sized>(buf: &mut W, value: i32) {
    put_unsigned_varint(buf, zigzag32(value));
}

/// Encodes a VARLONG (zig-zag `i64`).
#[inline]
pub fn put_varlong<W: Out + ?Sized>(buf: &mut W, value: i64) {
    put_unsigned_varlong(buf, zigzag64(value));
}

/// The number of bytes [`put_unsigned_varlong`] writes for `value`.
#[inline(always)]
#[must_use]
pub fn unsigned_varint_len(value: u64) -> usize {
    // Lengths, counts and deltas are nearly always one or two bytes: compare before
    // counting bits.
    if value < 0x80 {
        1
    } else if value < 0x4000 {
        2
    } else {
        let bits = 64 - value.leading_zeros() as usize;
        bits.div_ceil(7)
    }
}

/// The number of bytes [`put_varint`] writes for `value`.
#[inline]
#[must_use]
pub fn varint_len(value: i32) -> usize {
    unsigned_varint_len(u64::from(zigzag32(value)))
}

/// The number of bytes [`put_varlong`] writes for `value`.
#[inline]
#[must_use]
pub fn varlong_len(value: i64) -> usize {
    unsigned_varint_len(zigzag64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every width from one to ten bytes, both signs, through every reader and writer:
    /// the slice and `Bytes` forms agree with each other and with the length functions.
    #[test]
    fn round_trips_at_every_width() {
        let mut values: Vec<i64> = vec![0, 1, -1, 63, -64, 64, -65, i64::MAX, i64::MIN];
        for bits in 7..63 {
            let edge = 1i64 << bits;
            values.extend([edge - 1, edge, -edge, -edge - 1]);
        }
        for v in values {
            let u = zigzag64(v);
            let mut slice = [0u8; 10];
            let n = write_unsigned_at(&mut slice, 0, u);
            assert_eq!(n, unsigned_varint_len(u), "{v}");
            assert_eq!(n, varlong_len(v), "{v}");
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(out, slice[..n], "{v}");

            let mut pos = 0;
            assert_eq!(read_varlong_at(&slice[..n], &mut pos), Ok(v));
            assert_eq!(pos, n);
            let mut buf = Bytes::copy_from_slice(&out);
            assert_eq!(read_varlong(&mut buf, "v").ok(), Some(v));
            assert!(buf.is_empty());

            if let Ok(v32) = i32::try_from(v) {
                assert_eq!(varint_len(v32), n);
                let mut pos = 0;
                assert_eq!(read_varint_at(&slice[..n], &mut pos), Ok(v32));
                let mut out32 = Vec::new();
                put_varint(&mut out32, v32);
                assert_eq!(out32, out);
                let mut buf = Bytes::copy_from_slice(&out);
                assert_eq!(read_varint(&mut buf, "v").ok(), Some(v32));
            }
        }
    }

    #[test]
    fn rejects_overlong_wide_and_short_input() {
        use VarintError::Overflow;
        let mut pos = 0;
        assert_eq!(
            read_varint_at(&[0xff, 0xff, 0xff, 0xff, 0x1f], &mut pos),
            Err(Overflow)
        );
        assert_eq!(read_varint_at(&[0x80; 6], &mut pos), Err(Overflow));
        assert_eq!(read_varlong_at(&[0x80; 11], &mut pos), Err(Overflow));
        assert_eq!(
            read_varlong_at(&[0x80, 0x80], &mut pos),
            Err(VarintError::Eof)
        );
        assert_eq!(read_varint_at(&[], &mut pos), Err(VarintError::Eof));
        assert_eq!(pos, 0, "a failed read consumes nothing");
        // The largest values that fit.
        assert_eq!(
            read_unsigned_varint_at(&[0xff, 0xff, 0xff, 0xff, 0x0f], &mut pos),
            Ok(u32::MAX)
        );
        let mut pos = 0;
        let mut max64 = [0xffu8; 10];
        max64[9] = 0x01;
        assert_eq!(read_unsigned_at(&max64, &mut pos, 10), Ok(u64::MAX));
    }

    /// A slice too short for the value loses the bytes that do not fit, never panics.
    #[test]
    fn writing_past_the_room_does_not_panic() {
        for room in 0..4 {
            let mut out = vec![0u8; room];
            assert_eq!(write_unsigned_at(&mut out, 0, 1 << 20), 3);
            assert_eq!(write_unsigned_at(&mut out, 1, 300), 3);
        }
    }
}
