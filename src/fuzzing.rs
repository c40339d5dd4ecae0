//! Property checks and fuzz target bodies, kept in the library so that the normal
//! build compiles them (feature `arbitrary`; hidden from the documentation).
//!
//! The files in `fuzz/fuzz_targets/` and the property tests in `tests/` are thin
//! callers of these functions.

use crate::wire::arb::{ArbValue, Normalize};
use crate::wire::{Bytes, BytesMut, DecodeError, Message, VersionRange};
use arbitrary::Unstructured;

/// A failed check: what went wrong, with enough context to reproduce it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFailure(pub String);

impl std::fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One generated message type and the checks instantiated for it.
#[derive(Clone, Copy)]
pub struct MessageEntry {
    /// The schema name, e.g. `ProduceRequest`.
    pub name: &'static str,
    /// `request`, `response`, `header` or `data`.
    pub kind: &'static str,
    /// Every valid version.
    pub versions: VersionRange,
    /// Builds a value from fuzzer bytes, normalizes it for the version, and checks
    /// that encode then decode gives it back with no byte left over. `Ok(false)` when
    /// the bytes ran out before a value was built.
    pub arbitrary_roundtrip: fn(&mut Unstructured<'_>, i16) -> Result<bool, CheckFailure>,
    /// Decodes arbitrary bytes; when that succeeds, checks that encoding the value and
    /// decoding it again gives the same value. `Ok(true)` when the first decode
    /// succeeded.
    pub decode_roundtrip: fn(Bytes, i16) -> Result<bool, CheckFailure>,
    /// Builds a value from fuzzer bytes, normalizes it for the version and returns its
    /// encoding (`None` when the bytes ran out or the value cannot be encoded): seeds
    /// for mutation-based checks.
    pub arbitrary_encoding: fn(&mut Unstructured<'_>, i16) -> Option<Bytes>,
    /// Only decodes (for allocation and panic checks); returns the bytes left over.
    pub decode_only: fn(Bytes, i16) -> Result<usize, DecodeError>,
}

impl MessageEntry {
    /// The entry for `T`.
    pub const fn of<T: Message + ArbValue + Normalize>(kind: &'static str) -> Self {
        MessageEntry {
            name: T::NAME,
            kind,
            versions: T::VALID_VERSIONS,
            arbitrary_roundtrip: arbitrary_roundtrip::<T>,
            decode_roundtrip: decode_roundtrip::<T>,
            arbitrary_encoding: arbitrary_encoding::<T>,
            decode_only: decode_only::<T>,
        }
    }
}

/// Builds [`ALL_MESSAGES`] from the list the generator writes beside the messages.
macro_rules! message_entries {
    ($($name:ident: $kind:literal,)*) => {
        &[$(MessageEntry::of::<crate::messages::$name>($kind),)*]
    };
}

/// Every message type with its version range and the generic property checks
/// instantiated for it (property tests and fuzz targets walk this table), in the
/// generator's order: the committed corpus picks messages by their index here.
pub const ALL_MESSAGES: &[MessageEntry] = crate::messages::for_each_message!(message_entries);

/// See [`MessageEntry::arbitrary_roundtrip`].
pub fn arbitrary_roundtrip<T: Message + ArbValue + Normalize>(
    u: &mut Unstructured<'_>,
    version: i16,
) -> Result<bool, CheckFailure> {
    let Ok(mut value) = T::arb(u) else {
        return Ok(false);
    };
    value.normalize_for_version(version);
    let mut buf = BytesMut::new();
    value.encode(&mut buf, version).map_err(|e| {
        CheckFailure(format!(
            "{} v{version}: normalized value does not encode: {e}\n{value:?}",
            T::NAME
        ))
    })?;
    let mut bytes = buf.freeze();
    let encoded = bytes.clone();
    // Every output path writes the same bytes.
    let mut vec = Vec::new();
    let _ = value.encode_into(&mut vec, version);
    // Appended after bytes already there, as a caller batching requests would.
    let mut appended = vec![0xa5; 3];
    let _ = value.encode_to_vec(&mut appended, version);
    let chunks = value
        .encode_chunks(version)
        .map(|c| c.concat())
        .unwrap_or_default();
    if vec != encoded
        || chunks != encoded
        || appended.get(..3) != Some(&[0xa5; 3][..])
        || appended.get(3..) != Some(&encoded[..])
    {
        return Err(CheckFailure(format!(
            "{} v{version}: encode, encode_into, encode_to_vec and encode_chunks disagree",
            T::NAME
        )));
    }
    let back = T::decode(&mut bytes, version).map_err(|e| {
        CheckFailure(format!(
            "{} v{version}: own encoding does not decode: {e}\nvalue: {value:?}\nbytes: {encoded:?}",
            T::NAME
        ))
    })?;
    if !bytes.is_empty() {
        return Err(CheckFailure(format!(
            "{} v{version}: {} bytes left after decoding own encoding",
            T::NAME,
            bytes.len()
        )));
    }
    if back != value {
        return Err(CheckFailure(format!(
            "{} v{version}: round trip changed the value\nbefore: {value:?}\nafter:  {back:?}",
            T::NAME
        )));
    }
    Ok(true)
}

/// See [`MessageEntry::decode_only`].
pub fn decode_only<T: Message>(data: Bytes, version: i16) -> Result<usize, DecodeError> {
    let mut input = data;
    T::decode(&mut input, version)?;
    Ok(input.len())
}

/// See [`MessageEntry::arbitrary_encoding`].
pub fn arbitrary_encoding<T: Message + ArbValue + Normalize>(
    u: &mut Unstructured<'_>,
    version: i16,
) -> Option<Bytes> {
    let mut value = T::arb(u).ok()?;
    value.normalize_for_version(version);
    let mut buf = BytesMut::new();
    value.encode(&mut buf, version).ok()?;
    Some(buf.freeze())
}

/// See [`MessageEntry::decode_roundtrip`].
///
/// The second decode is compared by its encoding (byte for byte), which also holds
/// for FLOAT64 fields that decode to NaN, where value equality cannot.
pub fn decode_roundtrip<T: Message>(data: Bytes, version: i16) -> Result<bool, CheckFailure> {
    let mut input = data;
    let Ok(first) = T::decode(&mut input, version) else {
        return Ok(false);
    };
    let mut buf = BytesMut::new();
    first.encode(&mut buf, version).map_err(|e| {
        CheckFailure(format!(
            "{} v{version}: a decoded value does not re-encode: {e}\n{first:?}",
            T::NAME
        ))
    })?;
    let once = buf.freeze();
    let mut again = once.clone();
    let second = T::decode(&mut again, version).map_err(|e| {
        CheckFailure(format!(
            "{} v{version}: re-encoded value does not decode: {e}\n{first:?}",
            T::NAME
        ))
    })?;
    let mut buf = BytesMut::new();
    second.encode(&mut buf, version).map_err(|e| {
        CheckFailure(format!(
            "{} v{version}: second decode does not re-encode: {e}",
            T::NAME
        ))
    })?;
    if buf.freeze() != once || !again.is_empty() {
        return Err(CheckFailure(format!(
            "{} v{version}: decode -> encode -> decode changed the value\nfirst:  {first:?}\nsecond: {second:?}",
            T::NAME
        )));
    }
    Ok(true)
}

pub mod client;
pub mod machines;
pub mod targets;
