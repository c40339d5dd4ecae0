//! Slice-based zig-zag varints for the record hot path.
//!
//! `crate::wire` has the general readers over `Bytes`; records parse a `&[u8]` with a
//! cursor instead, which lets the common one-byte case cost a compare and a load.

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended inside the varint.
    Eof,
    /// More bytes or value bits than the type allows.
    Overflow,
}

/// Reads an unsigned varint of at most `max_bytes` bytes and `bits` value bits.
#[inline(never)]
fn read_unsigned_slow(
    data: &[u8],
    pos: &mut usize,
    max_bytes: usize,
    bits: u32,
) -> Result<u64, VarintError> {
    let mut value: u64 = 0;
    let start = *pos;
    for i in 0..max_bytes {
        let Some(&b) = data.get(start + i) else {
            return Err(VarintError::Eof);
        };
        let shift = 7 * i as u32;
        let chunk = u64::from(b & 0x7f);
        if shift + 7 > bits && (chunk >> (bits - shift)) != 0 {
            return Err(VarintError::Overflow);
        }
        value |= chunk << shift;
        if b & 0x80 == 0 {
            *pos = start + i + 1;
            return Ok(value);
        }
    }
    Err(VarintError::Overflow)
}

/// Reads an unsigned varint, inlining the one- and two-byte cases (every length,
/// delta and count of a typical record) and leaving longer ones to the slow path.
#[inline(always)]
fn read_unsigned(
    data: &[u8],
    pos: &mut usize,
    max_bytes: usize,
    bits: u32,
) -> Result<u64, VarintError> {
    let p = *pos;
    if let Some(&b0) = data.get(p) {
        if b0 < 0x80 {
            *pos = p + 1;
            return Ok(u64::from(b0));
        }
        if let Some(&b1) = data.get(p + 1)
            && b1 < 0x80
        {
            *pos = p + 2;
            return Ok(u64::from(b0 & 0x7f) | (u64::from(b1) << 7));
        }
    }
    read_unsigned_slow(data, pos, max_bytes, bits)
}

/// Reads the raw (still zig-zag encoded) `u32` of a varint at `*pos`, advancing
/// it: even values are non-negative lengths (`u >> 1`), 1 is the null marker -1.
#[inline(always)]
pub(crate) fn read_raw32(data: &[u8], pos: &mut usize) -> Option<u32> {
    read_unsigned(data, pos, 5, 32).ok().map(|u| u as u32)
}

/// Reads a zig-zag `i32` varint (at most 5 bytes) at `*pos`, advancing it.
#[inline(always)]
pub(crate) fn read_varint(data: &[u8], pos: &mut usize) -> Result<i32, VarintError> {
    let u = read_unsigned(data, pos, 5, 32)? as u32;
    Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
}

/// Reads a zig-zag `i64` varlong (at most 10 bytes) at `*pos`, advancing it.
#[inline(always)]
pub(crate) fn read_varlong(data: &[u8], pos: &mut usize) -> Result<i64, VarintError> {
    let u = read_unsigned(data, pos, 10, 64)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

/// Zig-zag encodes an `i64`.
#[inline(always)]
pub(crate) fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Bytes an unsigned varint of `v` takes.
#[inline(always)]
pub(crate) fn uvarint_len(v: u64) -> usize {
    // Record fields are nearly always one or two bytes: compare before counting bits.
    if v < 0x80 {
        1
    } else if v < 0x4000 {
        2
    } else {
        let bits = 64 - v.leading_zeros() as usize;
        bits.div_ceil(7)
    }
}

/// Writes the unsigned varint `v` into `out` at `pos`, returning the new position.
///
/// `out` must have room for `uvarint_len(v)` bytes after `pos`; the callers size
/// their stack buffers for the longest encoding.
#[inline(always)]
pub(crate) fn put_uvarint(out: &mut [u8], pos: usize, v: u64) -> usize {
    if v < 0x80 {
        if let Some(slot) = out.get_mut(pos) {
            *slot = v as u8;
        }
        return pos + 1;
    }
    if v < 0x4000 {
        let pair = ((v & 0x7f) | 0x80 | ((v >> 7) << 8)) as u16;
        if let Some(slot) = out.get_mut(pos..pos + 2) {
            slot.copy_from_slice(&pair.to_le_bytes());
        }
        return pos + 2;
    }
    put_uvarint_long(out, pos, v)
}

#[inline(never)]
fn put_uvarint_long(out: &mut [u8], mut pos: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        if let Some(slot) = out.get_mut(pos) {
            *slot = (v as u8) | 0x80;
        }
        v >>= 7;
        pos += 1;
    }
    if let Some(slot) = out.get_mut(pos) {
        *slot = v as u8;
    }
    pos + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edges() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut buf = [0u8; 10];
            let n = put_uvarint(&mut buf, 0, zigzag64(v));
            assert_eq!(n, uvarint_len(zigzag64(v)));
            let mut pos = 0;
            assert_eq!(read_varlong(&buf[..n], &mut pos), Ok(v));
            assert_eq!(pos, n);
            if let Ok(v32) = i32::try_from(v) {
                let mut pos = 0;
                assert_eq!(read_varint(&buf[..n], &mut pos), Ok(v32));
            }
        }
    }

    #[test]
    fn rejects_overlong_and_wide() {
        let mut pos = 0;
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f], &mut pos),
            Err(VarintError::Overflow)
        );
        let mut pos = 0;
        assert_eq!(
            read_varint(&[0x80; 6], &mut pos),
            Err(VarintError::Overflow)
        );
        let mut pos = 0;
        assert_eq!(
            read_varlong(&[0x80; 11], &mut pos),
            Err(VarintError::Overflow)
        );
        let mut pos = 0;
        assert_eq!(read_varlong(&[0x80, 0x80], &mut pos), Err(VarintError::Eof));
        let mut pos = 0;
        assert_eq!(read_varint(&[], &mut pos), Err(VarintError::Eof));
        assert_eq!(pos, 0);
    }
}
