//! Compression codecs of record batches and legacy messages, each behind its feature.
//!
//! Every decompressor is bounded: output past the caller's limit is an error, and the
//! buffer it grows is never larger than the limit or than what the compressed bytes
//! could expand to under the codec's own maximum ratio.

use bytes::BytesMut;

use super::error::{EncodeError, RecordsErrorKind};

/// The compression codec of a batch (bits 0-2 of its attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (id 0).
    #[default]
    None,
    /// gzip (id 1), feature `gzip`.
    Gzip,
    /// Snappy (id 2), feature `snappy`; decodes both raw and xerial-framed data.
    Snappy,
    /// LZ4 in the LZ4 frame format (id 3), feature `lz4`.
    Lz4,
    /// Zstandard (id 4), feature `zstd`.
    Zstd,
}

impl Compression {
    /// The codec for an attributes id (the low three bits).
    ///
    /// ```
    /// use kafka_sansio::records::Compression;
    /// assert_eq!(Compression::from_id(4), Ok(Compression::Zstd));
    /// assert!(Compression::from_id(5).is_err());
    /// ```
    pub fn from_id(id: u8) -> Result<Self, RecordsErrorKind> {
        match id {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            other => Err(RecordsErrorKind::UnknownCompression(other)),
        }
    }

    /// The id written in the attributes.
    #[must_use]
    pub fn id(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// The codec's name as Kafka's `compression.type` spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

/// How snappy-compressed batches are framed when encoding.
///
/// Decoding accepts both, whichever is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SnappyFraming {
    /// The xerial snappy-java stream framing the Java client writes; readable by every
    /// Kafka client.
    #[default]
    Xerial,
    /// One raw snappy block, as librdkafka writes.
    Raw,
}

/// Decompresses `input` with `codec`, failing if the output would exceed `limit` bytes.
pub(crate) fn decompress(
    codec: Compression,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, RecordsErrorKind> {
    match codec {
        Compression::None => {
            if input.len() > limit {
                return Err(RecordsErrorKind::DecompressedTooLarge { limit });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => gzip::decompress(input, limit),
        Compression::Snappy => snappy::decompress(input, limit),
        Compression::Lz4 => lz4::decompress(input, limit),
        Compression::Zstd => zstd_codec::decompress(input, limit),
    }
}

/// Appends `input` compressed with `codec` to `out`.
pub(crate) fn compress(
    codec: Compression,
    input: &[u8],
    level: Option<i32>,
    framing: SnappyFraming,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    match codec {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => gzip::compress(input, level, out),
        Compression::Snappy => snappy::compress(input, framing, out),
        Compression::Lz4 => lz4::compress(input, out),
        Compression::Zstd => zstd_codec::compress(input, level, out),
    }
}

/// Initial capacity for a decompression buffer: a guess from the input, never past the limit.
#[cfg(any(feature = "gzip", feature = "zstd"))]
fn initial_capacity(input_len: usize, limit: usize) -> usize {
    input_len.saturating_mul(4).min(limit).min(1 << 20)
}

#[cfg(feature = "gzip")]
mod gzip {
    use super::*;
    use std::io::{Read, Write};

    pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsErrorKind> {
        let mut out = Vec::with_capacity(initial_capacity(input.len(), limit));
        let decoder = flate2::read::MultiGzDecoder::new(input);
        // Read one byte past the limit so "exactly the limit" and "more" differ.
        let read = decoder
            .take((limit as u64).saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| RecordsErrorKind::Decompress {
                codec: "gzip",
                reason: e.to_string(),
            })?;
        if read > limit {
            return Err(RecordsErrorKind::DecompressedTooLarge { limit });
        }
        Ok(out)
    }

    pub(super) fn compress(
        input: &[u8],
        level: Option<i32>,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let level = flate2::Compression::new(level.map_or(6, |l| l.clamp(0, 9) as u32));
        let mut encoder = flate2::write::GzEncoder::new(bytes::BufMut::writer(out), level);
        let err = |e: std::io::Error| EncodeError::Compress {
            codec: "gzip",
            reason: e.to_string(),
        };
        encoder.write_all(input).map_err(err)?;
        encoder.finish().map_err(err)?;
        Ok(())
    }
}

#[cfg(not(feature = "gzip"))]
mod gzip {
    use super::*;
    pub(super) fn decompress(_: &[u8], _: usize) -> Result<Vec<u8>, RecordsErrorKind> {
        Err(RecordsErrorKind::CodecDisabled("gzip"))
    }
    pub(super) fn compress(_: &[u8], _: Option<i32>, _: &mut BytesMut) -> Result<(), EncodeError> {
        Err(EncodeError::CodecDisabled("gzip"))
    }
}

#[cfg(feature = "snappy")]
mod snappy {
    use super::*;

    /// The magic that starts xerial snappy-java's stream framing.
    const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
    /// xerial header: magic, version and compatible version (big-endian i32s).
    const XERIAL_HEADER_LEN: usize = 16;
    /// Chunk size snappy-java writes by default.
    const XERIAL_CHUNK: usize = 32 * 1024;

    fn malformed(e: impl std::fmt::Display) -> RecordsErrorKind {
        RecordsErrorKind::Decompress {
            codec: "snappy",
            reason: e.to_string(),
        }
    }

    /// Decompresses one raw snappy block, appending to `out`.
    fn raw_block(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), RecordsErrorKind> {
        let len = snap::raw::decompress_len(input).map_err(malformed)?;
        // A snappy element of n bytes expands to at most 64 bytes per 3 input bytes:
        // a declared length past that is a lie, refuse it before allocating.
        let plausible = (input.len() / 3 + 1).saturating_mul(64);
        if len > plausible {
            return Err(malformed(format_args!(
                "declared length {len} is impossible for {} input bytes",
                input.len()
            )));
        }
        if len > limit.saturating_sub(out.len()) {
            return Err(RecordsErrorKind::DecompressedTooLarge { limit });
        }
        let start = out.len();
        out.resize(start + len, 0);
        let written = snap::raw::Decoder::new()
            .decompress(input, &mut out[start..])
            .map_err(malformed)?;
        out.truncate(start + written);
        Ok(())
    }

    pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsErrorKind> {
        let mut out = Vec::new();
        if input.len() >= XERIAL_HEADER_LEN && input[..8] == XERIAL_MAGIC {
            let mut rest = &input[XERIAL_HEADER_LEN..];
            while !rest.is_empty() {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return Err(malformed("xerial chunk length truncated"));
                };
                let len = u32::from_be_bytes(*len) as usize;
                if len > tail.len() {
                    return Err(malformed(format_args!(
                        "xerial chunk of {len} bytes but {} remain",
                        tail.len()
                    )));
                }
                raw_block(&tail[..len], &mut out, limit)?;
                rest = &tail[len..];
            }
        } else {
            raw_block(input, &mut out, limit)?;
        }
        Ok(out)
    }

    fn raw_into(input: &[u8], out: &mut BytesMut) -> Result<usize, EncodeError> {
        let start = out.len();
        out.resize(start + snap::raw::max_compress_len(input.len()), 0);
        let n = snap::raw::Encoder::new()
            .compress(input, &mut out[start..])
            .map_err(|e| EncodeError::Compress {
                codec: "snappy",
                reason: e.to_string(),
            })?;
        out.truncate(start + n);
        Ok(n)
    }

    pub(super) fn compress(
        input: &[u8],
        framing: SnappyFraming,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        match framing {
            SnappyFraming::Raw => raw_into(input, out).map(|_| ()),
            SnappyFraming::Xerial => {
                out.extend_from_slice(&XERIAL_MAGIC);
                out.extend_from_slice(&1i32.to_be_bytes());
                out.extend_from_slice(&1i32.to_be_bytes());
                for chunk in input.chunks(XERIAL_CHUNK) {
                    let len_at = out.len();
                    out.extend_from_slice(&[0; 4]);
                    let n = raw_into(chunk, out)?;
                    let n = u32::try_from(n).map_err(|_| EncodeError::BatchTooLong(n))?;
                    out[len_at..len_at + 4].copy_from_slice(&n.to_be_bytes());
                }
                Ok(())
            }
        }
    }
}

#[cfg(not(feature = "snappy"))]
mod snappy {
    use super::*;
    pub(super) fn decompress(_: &[u8], _: usize) -> Result<Vec<u8>, RecordsErrorKind> {
        Err(RecordsErrorKind::CodecDisabled("snappy"))
    }
    pub(super) fn compress(
        _: &[u8],
        _: SnappyFraming,
        _: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        Err(EncodeError::CodecDisabled("snappy"))
    }
}

/// xxHash32, used only for the LZ4 frame header checksum byte.
#[cfg_attr(not(feature = "lz4"), allow(dead_code))]
pub(crate) fn xxh32(input: &[u8], seed: u32) -> u32 {
    const P1: u32 = 2_654_435_761;
    const P2: u32 = 2_246_822_519;
    const P3: u32 = 3_266_489_917;
    const P4: u32 = 668_265_263;
    const P5: u32 = 374_761_393;
    let round = |acc: u32, lane: u32| {
        acc.wrapping_add(lane.wrapping_mul(P2))
            .rotate_left(13)
            .wrapping_mul(P1)
    };
    let lane = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let mut rest = input;
    let mut h = if input.len() >= 16 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 16 {
            for (i, acc) in v.iter_mut().enumerate() {
                *acc = round(*acc, lane(&rest[i * 4..]));
            }
            rest = &rest[16..];
        }
        v[0].rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(input.len() as u32);
    while rest.len() >= 4 {
        h = h
            .wrapping_add(lane(rest).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
        rest = &rest[4..];
    }
    for &b in rest {
        h = h
            .wrapping_add(u32::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

#[cfg(feature = "lz4")]
mod lz4 {
    use super::*;

    const MAGIC: u32 = 0x184D_2204;
    /// Frame flags we write: version 01, independent blocks, no checksums, no size.
    const FLG: u8 = 0b0110_0000;
    /// Block descriptor we write: 64 KiB maximum block size, as the Java client does.
    const BD: u8 = 4 << 4;
    const BLOCK: usize = 64 * 1024;
    /// LZ4's largest possible expansion: a match length extended by one 255 byte.
    const MAX_RATIO: usize = 255;

    fn malformed(reason: impl std::fmt::Display) -> RecordsErrorKind {
        RecordsErrorKind::Decompress {
            codec: "lz4",
            reason: reason.to_string(),
        }
    }

    fn take<'a>(input: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], RecordsErrorKind> {
        if input.len() < n {
            return Err(malformed(format_args!("{what} truncated")));
        }
        let (head, tail) = input.split_at(n);
        *input = tail;
        Ok(head)
    }

    /// Decodes one or more LZ4 frames.
    ///
    /// The header checksum byte is read but not verified: Kafka's magic-0 messages
    /// carry a checksum computed over the wrong bytes (KAFKA-1493), and the batch's own
    /// CRC already covers these bytes. Block and content checksums are skipped for the
    /// same reason.
    pub(super) fn decompress(mut input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsErrorKind> {
        let mut out: Vec<u8> = Vec::new();
        let mut filled = 0usize;
        loop {
            let magic = take(&mut input, 4, "frame magic")?;
            if u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]) != MAGIC {
                return Err(malformed("bad frame magic"));
            }
            let desc = take(&mut input, 2, "frame descriptor")?;
            let (flg, bd) = (desc[0], desc[1]);
            if flg >> 6 != 0b01 {
                return Err(malformed(format_args!(
                    "unsupported frame version {}",
                    flg >> 6
                )));
            }
            let independent = flg & 0x20 != 0;
            let block_checksum = flg & 0x10 != 0;
            let content_size = flg & 0x08 != 0;
            let content_checksum = flg & 0x04 != 0;
            let dict_id = flg & 0x01 != 0;
            let block_max = match (bd >> 4) & 0x7 {
                4 => 64 * 1024,
                5 => 256 * 1024,
                6 => 1024 * 1024,
                7 => 4 * 1024 * 1024,
                other => return Err(malformed(format_args!("invalid block size id {other}"))),
            };
            if content_size {
                take(&mut input, 8, "content size")?;
            }
            if dict_id {
                return Err(malformed("dictionary ids are not supported"));
            }
            take(&mut input, 1, "header checksum")?;
            loop {
                let raw = take(&mut input, 4, "block size")?;
                let word = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                if word == 0 {
                    break;
                }
                let stored = word & 0x8000_0000 != 0;
                let size = (word & 0x7fff_ffff) as usize;
                let block = take(&mut input, size, "block")?;
                if block_checksum {
                    take(&mut input, 4, "block checksum")?;
                }
                if stored {
                    if size > block_max {
                        return Err(malformed("stored block larger than the block size"));
                    }
                    if size > limit - filled {
                        return Err(RecordsErrorKind::DecompressedTooLarge { limit });
                    }
                    out.truncate(filled);
                    out.extend_from_slice(block);
                    filled += size;
                    continue;
                }
                let room = limit - filled;
                let window = block_max.min(size.saturating_mul(MAX_RATIO)).min(room);
                if out.len() < filled + window {
                    out.resize(filled + window, 0);
                }
                let result = if independent || filled == 0 {
                    lz4_flex::block::decompress_into(block, &mut out[filled..filled + window])
                } else {
                    let (dict, rest) = out.split_at_mut(filled);
                    let dict = &dict[filled.saturating_sub(64 * 1024)..];
                    lz4_flex::block::decompress_into_with_dict(block, &mut rest[..window], dict)
                };
                match result {
                    Ok(n) => filled += n,
                    Err(_) if window == room && room < block_max => {
                        return Err(RecordsErrorKind::DecompressedTooLarge { limit });
                    }
                    Err(e) => return Err(malformed(e)),
                }
            }
            if content_checksum {
                take(&mut input, 4, "content checksum")?;
            }
            if input.is_empty() {
                break;
            }
        }
        out.truncate(filled);
        Ok(out)
    }

    pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
        out.extend_from_slice(&MAGIC.to_le_bytes());
        let hc = (xxh32(&[FLG, BD], 0) >> 8) as u8;
        out.extend_from_slice(&[FLG, BD, hc]);
        let bound = lz4_flex::block::get_maximum_output_size(BLOCK);
        for chunk in input.chunks(BLOCK) {
            let size_at = out.len();
            out.resize(size_at + 4 + bound, 0);
            let n =
                lz4_flex::block::compress_into(chunk, &mut out[size_at + 4..]).map_err(|e| {
                    EncodeError::Compress {
                        codec: "lz4",
                        reason: e.to_string(),
                    }
                })?;
            if n >= chunk.len() {
                // Incompressible: store the block as is, flagged by the high bit.
                out.truncate(size_at + 4);
                out.extend_from_slice(chunk);
                let word = chunk.len() as u32 | 0x8000_0000;
                out[size_at..size_at + 4].copy_from_slice(&word.to_le_bytes());
            } else {
                out.truncate(size_at + 4 + n);
                out[size_at..size_at + 4].copy_from_slice(&(n as u32).to_le_bytes());
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        Ok(())
    }
}

#[cfg(not(feature = "lz4"))]
mod lz4 {
    use super::*;
    pub(super) fn decompress(_: &[u8], _: usize) -> Result<Vec<u8>, RecordsErrorKind> {
        Err(RecordsErrorKind::CodecDisabled("lz4"))
    }
    pub(super) fn compress(_: &[u8], _: &mut BytesMut) -> Result<(), EncodeError> {
        Err(EncodeError::CodecDisabled("lz4"))
    }
}

#[cfg(feature = "zstd")]
mod zstd_codec {
    use super::*;
    use std::io::Read;

    pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsErrorKind> {
        let malformed = |e: std::io::Error| RecordsErrorKind::Decompress {
            codec: "zstd",
            reason: e.to_string(),
        };
        let mut out = Vec::with_capacity(initial_capacity(input.len(), limit));
        let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(malformed)?;
        // zstd allocates the window a frame declares before reading any data: without
        // this, ten bytes declaring a 128 MiB window reserve 128 MiB whatever the limit.
        decoder
            .window_log_max(window_log_max(limit))
            .map_err(malformed)?;
        let read = decoder
            .take((limit as u64).saturating_add(1))
            .read_to_end(&mut out)
            .map_err(malformed)?;
        if read > limit {
            return Err(RecordsErrorKind::DecompressedTooLarge { limit });
        }
        Ok(out)
    }

    /// Largest window (log2) accepted for an output `limit`: enough for any frame
    /// whose output fits the limit, at least 8 MiB (the window zstd's levels up to 19
    /// use when the size is unknown, as in the Java client's streams) and at most
    /// zstd's own default cap of 128 MiB.
    pub(super) fn window_log_max(limit: usize) -> u32 {
        let ceil_log2 = usize::BITS - limit.saturating_sub(1).leading_zeros();
        ceil_log2.clamp(23, 27)
    }

    pub(super) fn compress(
        input: &[u8],
        level: Option<i32>,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let start = out.len();
        out.resize(start + zstd::zstd_safe::compress_bound(input.len()), 0);
        let n = zstd::bulk::compress_to_buffer(input, &mut out[start..], level.unwrap_or(3))
            .map_err(|e| EncodeError::Compress {
                codec: "zstd",
                reason: e.to_string(),
            })?;
        out.truncate(start + n);
        Ok(())
    }
}

#[cfg(not(feature = "zstd"))]
mod zstd_codec {
    use super::*;
    pub(super) fn decompress(_: &[u8], _: usize) -> Result<Vec<u8>, RecordsErrorKind> {
        Err(RecordsErrorKind::CodecDisabled("zstd"))
    }
    pub(super) fn compress(_: &[u8], _: Option<i32>, _: &mut BytesMut) -> Result<(), EncodeError> {
        Err(EncodeError::CodecDisabled("zstd"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_codecs_are_errors_not_panics() {
        let cases: [(Compression, bool, &str); 4] = [
            (Compression::Gzip, cfg!(feature = "gzip"), "gzip"),
            (Compression::Snappy, cfg!(feature = "snappy"), "snappy"),
            (Compression::Lz4, cfg!(feature = "lz4"), "lz4"),
            (Compression::Zstd, cfg!(feature = "zstd"), "zstd"),
        ];
        for (codec, enabled, name) in cases {
            let mut out = BytesMut::new();
            let written = compress(codec, b"data", None, SnappyFraming::Xerial, &mut out);
            let read = decompress(codec, b"data", 100);
            if enabled {
                assert!(written.is_ok(), "{name}");
            } else {
                assert_eq!(written, Err(EncodeError::CodecDisabled(name)));
                assert_eq!(read, Err(RecordsErrorKind::CodecDisabled(name)));
            }
        }
    }

    #[test]
    fn xxh32_known_values() {
        // Reference values of xxHash32 with seed 0.
        assert_eq!(xxh32(b"", 0), 0x02CC_5D05);
        assert_eq!(xxh32(b"a", 0), 0x550D_7456);
        assert_eq!(xxh32(b"abc", 0), 0x32D1_53FF);
        assert_eq!(
            xxh32(b"Nobody inspects the spammish repetition", 0),
            0xE229_3B2F
        );
    }

    #[test]
    #[cfg(all(
        feature = "gzip",
        feature = "snappy",
        feature = "lz4",
        feature = "zstd"
    ))]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7) as u8)
            .collect();
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for framing in [SnappyFraming::Xerial, SnappyFraming::Raw] {
                let mut out = BytesMut::new();
                compress(codec, &data, None, framing, &mut out).expect("compress");
                let back = decompress(codec, &out, data.len()).expect("decompress");
                assert_eq!(back, data, "{codec:?}");
                assert_eq!(
                    decompress(codec, &out, data.len() - 1),
                    Err(RecordsErrorKind::DecompressedTooLarge {
                        limit: data.len() - 1
                    }),
                    "{codec:?} must refuse output past the limit"
                );
            }
        }
    }
}
