//! Legacy message sets: magic 0 and 1 messages, including compressed wrappers.
//!
//! Only decoding: Kafka brokers since 0.11 accept v2 batches from every client that
//! speaks this crate's Produce versions, but old messages still sit in real topics and
//! come back on Fetch.

use bytes::Bytes;

use super::DecodeOptions;
use super::compression::{self, Compression};
use super::error::{RecordsError, RecordsErrorKind};
use super::record::{LOG_OVERHEAD, Record};

/// Smallest legacy message after the 12-byte log overhead: crc, magic, attributes,
/// and the two length fields of a null key and value (magic 0).
pub(crate) const MIN_MESSAGE_LEN: usize = 14;

/// Attribute bit 3 of a magic-1 message: the timestamp is log-append time.
const LOG_APPEND_TIME: i8 = 0x08;

/// One legacy message (magic 0 or 1) as it sits in a message set.
///
/// A compressed message is a wrapper whose value is a compressed message set of
/// inner messages; [`LegacyMessage::records`] unpacks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMessage {
    /// The offset; for a magic-1 wrapper, the offset of its last inner message.
    pub offset: i64,
    /// 0 or 1.
    pub magic: i8,
    /// Compression (bits 0-2) and, for magic 1, timestamp type (bit 3).
    pub attributes: i8,
    /// The timestamp (magic 1 only).
    pub timestamp: Option<i64>,
    /// CRC32 (IEEE) of magic through the end of the value.
    pub crc: u32,
    /// The key, `None` when null.
    pub key: Option<Bytes>,
    /// The value (the compressed inner set for a wrapper), `None` when null.
    pub value: Option<Bytes>,
    /// Byte offset of the message in the buffer it was read from.
    pub position: usize,
    /// The whole message, which the records built from it share.
    entry: Bytes,
    /// Where the key and the value sit in `entry`.
    key_span: Option<(usize, usize)>,
    value_span: Option<(usize, usize)>,
}

impl LegacyMessage {
    /// Parses one message from `entry`, which holds exactly the message with its
    /// 12-byte offset and size prefix.
    pub(crate) fn parse(
        entry: &Bytes,
        position: usize,
        verify_crc: bool,
    ) -> Result<Self, RecordsError> {
        let d: &[u8] = entry;
        let eof = |field, at: usize, needed: usize| {
            RecordsError::eof(
                field,
                position + at,
                needed as u64,
                d.len().saturating_sub(at),
            )
        };
        if d.len() < LOG_OVERHEAD + MIN_MESSAGE_LEN {
            return Err(eof("Message.size", 8, LOG_OVERHEAD + MIN_MESSAGE_LEN));
        }
        let offset = i64::from_be_bytes(d[..8].try_into().unwrap_or([0; 8]));
        let crc = u32::from_be_bytes(d[12..16].try_into().unwrap_or([0; 4]));
        let magic = d[16] as i8;
        let attributes = d[17] as i8;
        if verify_crc {
            let computed = crc32_ieee(&d[16..]);
            if computed != crc {
                return Err(RecordsError::new(
                    "Message.crc",
                    position + 12,
                    RecordsErrorKind::CrcMismatch {
                        stored: crc,
                        computed,
                    },
                ));
            }
        }
        let mut pos = 18;
        let timestamp = if magic >= 1 {
            let ts = d
                .get(pos..pos + 8)
                .ok_or_else(|| eof("Message.timestamp", pos, 8))?;
            pos += 8;
            Some(i64::from_be_bytes(ts.try_into().unwrap_or([0; 8])))
        } else {
            None
        };
        let mut bytes_field =
            |field: &'static str| -> Result<Option<(usize, usize)>, RecordsError> {
                let raw = d.get(pos..pos + 4).ok_or_else(|| eof(field, pos, 4))?;
                let len = i32::from_be_bytes(raw.try_into().unwrap_or([0; 4]));
                pos += 4;
                if len == -1 {
                    return Ok(None);
                }
                if len < 0 {
                    return Err(RecordsError::new(
                        field,
                        position + pos - 4,
                        RecordsErrorKind::NegativeLength(i64::from(len)),
                    ));
                }
                let len = len as usize;
                if len > d.len() - pos {
                    return Err(eof(field, pos, len));
                }
                let out = (pos, pos + len);
                pos += len;
                Ok(Some(out))
            };
        let key = bytes_field("Message.key")?;
        let value = bytes_field("Message.value")?;
        if pos != d.len() {
            return Err(RecordsError::new(
                "Message.size",
                position + 8,
                RecordsErrorKind::RecordLengthMismatch {
                    declared: d.len() - LOG_OVERHEAD,
                    used: pos - LOG_OVERHEAD,
                },
            ));
        }
        Ok(Self {
            offset,
            magic,
            attributes,
            timestamp,
            crc,
            key: key.map(|(s, e)| entry.slice(s..e)),
            value: value.map(|(s, e)| entry.slice(s..e)),
            position,
            entry: entry.clone(),
            key_span: key,
            value_span: value,
        })
    }

    /// The compression codec of the message.
    pub fn compression(&self) -> Result<Compression, RecordsErrorKind> {
        Compression::from_id((self.attributes & 0x07) as u8)
    }

    fn plain_record(&self, offset: i64, timestamp: i64) -> Record {
        Record::from_parts(
            offset,
            timestamp,
            self.entry.clone(),
            self.key_span,
            self.value_span,
            self.entry.len(),
            0,
        )
    }

    /// The records this message holds: itself if uncompressed, otherwise its inner
    /// messages with absolute offsets (magic 1 inner offsets are relative to the
    /// wrapper's, which is the last inner offset) and timestamps (the wrapper's when
    /// it uses log-append time). Timestamps are `-1` for magic 0.
    pub fn records(&self, opts: &DecodeOptions) -> Result<Vec<Record>, RecordsError> {
        let at = |field, kind| RecordsError::new(field, self.position, kind);
        let codec = self
            .compression()
            .map_err(|k| at("Message.attributes", k))?;
        let own_ts = self.timestamp.unwrap_or(-1);
        if codec == Compression::None {
            return Ok(vec![self.plain_record(self.offset, own_ts)]);
        }
        let Some(value) = &self.value else {
            return Err(at("Message.value", RecordsErrorKind::NegativeLength(-1)));
        };
        let inner = Bytes::from(
            compression::decompress(codec, value, opts.max_decompressed_bytes)
                .map_err(|k| at("Message.value", k))?,
        );
        let mut messages = Vec::new();
        let mut pos = 0;
        while pos < inner.len() {
            let rest = &inner[pos..];
            let Some(size) = rest.get(8..12) else {
                return Err(RecordsError::eof(
                    "Message.size",
                    pos,
                    LOG_OVERHEAD as u64,
                    rest.len(),
                ));
            };
            let size = i32::from_be_bytes(size.try_into().unwrap_or([0; 4]));
            if size < MIN_MESSAGE_LEN as i32 {
                return Err(RecordsError::new(
                    "Message.size",
                    pos + 8,
                    RecordsErrorKind::InvalidLength {
                        length: i64::from(size),
                        minimum: MIN_MESSAGE_LEN,
                    },
                ));
            }
            let total = LOG_OVERHEAD + size as usize;
            if total > rest.len() {
                return Err(RecordsError::eof(
                    "Message.size",
                    pos,
                    total as u64,
                    rest.len(),
                ));
            }
            let message = Self::parse(&inner.slice(pos..pos + total), pos, opts.verify_crc)?;
            if message
                .compression()
                .map_err(|k| RecordsError::new("Message.attributes", pos, k))?
                != Compression::None
            {
                return Err(RecordsError::new(
                    "Message.attributes",
                    pos,
                    RecordsErrorKind::NestedCompression,
                ));
            }
            messages.push(message);
            pos += total;
        }
        let last_relative = messages.last().map_or(0, |m| m.offset);
        let log_append = self.magic >= 1 && self.attributes & LOG_APPEND_TIME != 0;
        Ok(messages
            .iter()
            .map(|m| {
                let offset = if self.magic >= 1 {
                    self.offset
                        .wrapping_sub(last_relative)
                        .wrapping_add(m.offset)
                } else {
                    m.offset
                };
                let timestamp = if log_append {
                    own_ts
                } else {
                    m.timestamp.unwrap_or(-1)
                };
                m.plain_record(offset, timestamp)
            })
            .collect())
    }
}

/// CRC32 (IEEE 802.3, reflected, as `java.util.zip.CRC32`) lookup table.
const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC32 (IEEE), the checksum of legacy messages.
pub(crate) fn crc32_ieee(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC32_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32_ieee(b"123456789"), 0xCBF4_3926);
    }
}
