//! The trait every generated message implements, and the version ranges it declares.

use super::{
    Buf, BufMut, Bytes, ChunkedOut, DecodeError, DecodeErrorKind, EncodeError, Out, SpillOut,
    VecOut,
};

/// A versioned Kafka message: a request or response body, a header, or a data schema.
///
/// Implemented by every type in [`crate::messages`]. Encoding checks that the value is
/// representable at the version (fields absent there hold their default, nulls only
/// where allowed); decoding never panics and slices strings and bytes from the input.
///
/// ```
/// use kafka_sansio::messages::{ApiVersionsRequest, MetadataRequest};
/// use kafka_sansio::wire::{BytesMut, Message};
///
/// let request = ApiVersionsRequest {
///     client_software_name: "kafka-sansio".into(),
///     client_software_version: "0.1.0".into(),
///     ..Default::default()
/// };
/// let mut buf = BytesMut::new();
/// request.encode(&mut buf, 3).unwrap();
/// assert_eq!(&buf[..], b"\x0dkafka-sansio\x060.1.0\x00");
/// // Version 0 has no client software fields; the schema marks them ignorable, so
/// // they are dropped there, as Kafka's own clients do.
/// request.encode(&mut BytesMut::new(), 0).unwrap();
///
/// // A null topic list ("all topics") does not exist before Metadata v1: an error,
/// // not a silently different request.
/// let all_topics = MetadataRequest { topics: None, ..Default::default() };
/// assert!(all_topics.encode(&mut BytesMut::new(), 0).is_err());
/// all_topics.encode(&mut BytesMut::new(), 1).unwrap();
/// ```
pub trait Message: Sized + Clone + PartialEq + std::fmt::Debug + Default {
    /// The schema's name, e.g. `ProduceRequest`.
    const NAME: &'static str;
    /// Every version the schema defines.
    const VALID_VERSIONS: VersionRange;
    /// The versions that use the flexible (compact, tagged-field) encoding.
    const FLEXIBLE_VERSIONS: VersionRange;

    /// Writes the message at `version` into any [`Out`]. On error, `out` may hold part
    /// of the message. [`Message::encode_to_vec`] is the fastest way into memory.
    fn encode_into<W: Out + ?Sized>(&self, out: &mut W, version: i16) -> Result<(), EncodeError>;

    /// Writes the message at `version` into any `BufMut`. Small fields are gathered in
    /// a scratch buffer and handed over in large pieces; record batches and other
    /// large byte fields are copied straight in. On error, `buf` may hold part of the
    /// message.
    fn encode<B: BufMut>(&self, buf: &mut B, version: i16) -> Result<(), EncodeError> {
        let mut out = SpillOut::new(buf);
        self.encode_into(&mut out, version)?;
        out.finish();
        Ok(())
    }

    /// Appends the message at `version` to `vec`: the fastest way to encode into
    /// memory. Fields are written through a cursor over zeroed room instead of one
    /// `Vec` capacity check and length update each. On error, `vec` may hold part of
    /// the message.
    ///
    /// ```
    /// use kafka_sansio::messages::ApiVersionsRequest;
    /// use kafka_sansio::wire::Message;
    ///
    /// let request = ApiVersionsRequest {
    ///     client_software_name: "kafka-sansio".into(),
    ///     client_software_version: "0.1.0".into(),
    ///     ..Default::default()
    /// };
    /// let mut vec = Vec::new();
    /// request.encode_to_vec(&mut vec, 3).unwrap();
    /// assert_eq!(vec, b"\x0dkafka-sansio\x060.1.0\x00");
    /// ```
    fn encode_to_vec(&self, vec: &mut Vec<u8>, version: i16) -> Result<(), EncodeError> {
        let mut out = VecOut::new(vec);
        self.encode_into(&mut out, version)
    }

    /// Encodes the message at `version` as chunks for a vectored write, without
    /// copying record batches and other large byte fields ([`ChunkedOut`]): what a
    /// producer sends is mostly records it already holds.
    fn encode_chunks(&self, version: i16) -> Result<Vec<Bytes>, EncodeError> {
        let mut out = ChunkedOut::new();
        self.encode_into(&mut out, version)?;
        Ok(out.finish())
    }

    /// Reads a message at `version` from the front of `buf`, advancing it.
    fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError>;
}

/// A value together with the schema version it was written at (the `__consumer_offsets`
/// values and the consumer protocol blobs carry their version in front).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The version read from the `int16` prefix.
    pub version: i16,
    /// The decoded value.
    pub data: T,
}

/// Reads an `int16` version and then `T` at that version; a version `T` does not
/// define is an error.
pub fn decode_versioned<T: Message>(buf: &mut Bytes) -> Result<Versioned<T>, DecodeError> {
    let version = super::read_i16(buf, T::NAME)?;
    let data = T::decode(buf, version).map_err(|e| e.at_offset(2))?;
    Ok(Versioned { version, data })
}

/// Reads an `int16` version and then `T`, reading a version newer than `T` knows as its
/// highest one. Kafka's consumer protocol (`ConsumerProtocolSubscription`,
/// `ConsumerProtocolAssignment`) promises that newer versions only append fields, so
/// this is how its readers parse blobs from newer clients.
pub fn decode_versioned_forward_compatible<T: Message>(
    buf: &mut Bytes,
) -> Result<Versioned<T>, DecodeError> {
    let version = super::read_i16(buf, T::NAME)?;
    if version < T::VALID_VERSIONS.min {
        return Err(DecodeError::new(
            T::NAME,
            DecodeErrorKind::UnsupportedVersion { version },
        ));
    }
    let read_as = version.min(T::VALID_VERSIONS.max);
    let data = T::decode(buf, read_as).map_err(|e| e.at_offset(2))?;
    if read_as < version {
        // Fields a newer version appended are not ours to interpret.
        buf.advance(buf.remaining());
    }
    Ok(Versioned { version, data })
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
