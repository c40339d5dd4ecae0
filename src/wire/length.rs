//! The length prefixes of strings, bytes and arrays: INT16 (strings) or INT32 (bytes
//! and arrays) with -1 for null, or in flexible versions an UNSIGNED_VARINT holding
//! length + 1 with 0 for null.

use super::varint::{read_unsigned_at, read_unsigned_short, short_bytes, varint_error};
use super::{Bytes, DecodeError, DecodeErrorKind, EncodeError, Out, need, put_unsigned_varlong};

/// The common case of [`peek_len`], inlined where it is used: a well-formed prefix
/// (`(None, n)` for null), or `None` to take the full path, which also makes the
/// errors. Never accepts a prefix [`peek_len`] rejects.
#[inline(always)]
pub(super) fn peek_len_fast(s: &[u8], compact: bool, wide: bool) -> Option<(Option<usize>, usize)> {
    let (len, n) = if compact {
        let (v, n) = read_unsigned_short(s, 0)?;
        // Below 2^21: fits any `usize`.
        return Some(((v as usize).checked_sub(1), n));
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
pub(super) fn peek_len(
    buf: &Bytes,
    compact: bool,
    wide: bool,
    field: &'static str,
) -> Result<(Option<usize>, usize), DecodeError> {
    let (len, n): (i64, usize) = if compact {
        let mut n = 0;
        let v = read_unsigned_at(buf, &mut n, 5).map_err(|e| varint_error(e, field, buf, 5))?;
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

/// Encodes the length prefix of a string (`wide == false`), bytes or array; `None`
/// is the null marker. A length the form cannot hold is an error.
#[inline(always)]
pub(super) fn put_len<W: Out + ?Sized>(
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
                let (b, used) = short_bytes(n as u32 + 1);
                buf.write_padded(&b, used);
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

/// The rest of [`put_len`]: the null marker (-1, or 0 in the compact form), a compact
/// length of several bytes, and a length too long for its form (an error).
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

#[cfg(test)]
mod tests {
    use crate::wire::{self, Bytes, BytesMut, VecOut};

    /// Compact byte-string lengths around every varint width boundary, through the
    /// inline 2- and 3-byte paths and the general one, into every kind of sink.
    #[test]
    fn compact_bytes_lengths_at_varint_boundaries() {
        for len in [
            0usize, 1, 126, 127, 128, 0x3ffe, 0x3fff, 0x4000, 0x1f_fffe, 0x1f_ffff, 0x20_0000,
        ] {
            let data = vec![0x5au8; len];
            let mut expected = Vec::new();
            wire::put_unsigned_varint(&mut expected, len as u32 + 1);
            expected.extend_from_slice(&data);
            let mut plain = Vec::new();
            wire::put_bytes(&mut plain, &data, true, "b").expect("encodes");
            assert!(plain == expected, "Vec, length {len}");
            let mut fast = Vec::new();
            let mut out = VecOut::new(&mut fast);
            wire::put_bytes(&mut out, &data, true, "b").expect("encodes");
            wire::put_shared_bytes(&mut out, &Bytes::from(data.clone()), true, "b")
                .expect("encodes");
            drop(out);
            assert_eq!(fast.len(), 2 * expected.len(), "VecOut, length {len}");
            assert!(
                fast[..expected.len()] == expected[..],
                "VecOut, length {len}"
            );
            assert!(
                fast[expected.len()..] == expected[..],
                "VecOut, length {len}"
            );
            let mut spilled = BytesMut::new();
            wire::put_bytes(&mut spilled, &data, true, "b").expect("encodes");
            assert!(spilled[..] == expected[..], "BytesMut, length {len}");
        }
    }
}
