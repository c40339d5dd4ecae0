//! Error values for decoding and encoding Kafka's wire types.

/// Why a decode failed, without the context of where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended before the value did.
    #[error("needed {needed} bytes but only {remaining} remain")]
    UnexpectedEof {
        /// Bytes the value needed.
        needed: u64,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A length prefix was negative and not the null marker `-1`.
    #[error("length {0} is negative and not the null marker")]
    NegativeLength(i64),
    /// A null marker where the field is not nullable at this version.
    #[error("null where the field is not nullable")]
    UnexpectedNull,
    /// An array count larger than the remaining input could possibly hold.
    #[error("count {count} cannot fit in the {remaining} bytes that remain")]
    CountExceedsInput {
        /// The count read from the input.
        count: u64,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A varint with more continuation bytes, or more value bits, than its type allows.
    #[error("varint longer than {max_bytes} bytes or wider than its type")]
    VarintOverflow {
        /// Longest encoding the type allows.
        max_bytes: u8,
    },
    /// A string whose bytes are not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// Tagged fields out of ascending order or repeated (KIP-482 requires ascending tags).
    #[error("tagged field {tag} follows tag {previous}; tags must ascend")]
    TaggedFieldOrder {
        /// The tag seen before.
        previous: u32,
        /// The tag that broke the order.
        tag: u32,
    },
    /// The version is not one the message defines.
    #[error("version {version} is not a valid version of this message")]
    UnsupportedVersion {
        /// The version asked for.
        version: i16,
    },
    /// An API key this crate does not know.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// A value outside the set the field allows.
    #[error("invalid value {value}: {reason}")]
    InvalidValue {
        /// The offending value.
        value: i64,
        /// What the field allows.
        reason: &'static str,
    },
    /// Bytes left over after a value that should have consumed its whole input.
    #[error("{0} bytes left over after the value")]
    TrailingBytes(usize),
}

/// A decode failure: what was being decoded, where, and why.
///
/// `field` names the value as `Struct.field` (or a primitive's role); `offset` is
/// the byte offset from the start of the message being decoded where the failing
/// value began (0 when decoding a lone primitive). The details sit behind one pointer
/// so that `Result<T, DecodeError>` stays small: decoders return it from every
/// primitive read, and a large error type would cost every successful read too. The
/// fields read through it directly (`err.field`, `err.offset`, `err.kind`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(Box<DecodeErrorDetails>);

/// The details of a [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeErrorDetails {
    /// What was being decoded, as `Struct.field`.
    pub field: &'static str,
    /// Byte offset from the start of the outermost value being decoded.
    pub offset: usize,
    /// Why it failed.
    pub kind: DecodeErrorKind,
}

impl std::ops::Deref for DecodeError {
    type Target = DecodeErrorDetails;
    fn deref(&self) -> &DecodeErrorDetails {
        &self.0
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot decode {} at byte {}: {}",
            self.0.field, self.0.offset, self.0.kind
        )
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.kind)
    }
}

impl DecodeError {
    /// A new error at offset 0; callers that know the position use [`Self::at_offset`].
    #[cold]
    #[must_use]
    pub fn new(field: &'static str, kind: DecodeErrorKind) -> Self {
        DecodeError(Box::new(DecodeErrorDetails {
            field,
            offset: 0,
            kind,
        }))
    }

    /// The same error, placed `offset` bytes into the outermost value.
    #[must_use]
    pub fn at_offset(mut self, offset: usize) -> Self {
        self.0.offset += offset;
        self
    }
}

/// An encode failure: a value that cannot be written at the chosen version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field that does not exist at this version holds a value other than its
    /// default; writing would silently lose it.
    #[error("{field} does not exist in version {version} but holds a non-default value")]
    FieldNotInVersion {
        /// The field, as `Struct.field`.
        field: &'static str,
        /// The version being written.
        version: i16,
    },
    /// A null value in a field that is not nullable at this version.
    #[error("{field} is null but not nullable in version {version}")]
    NullNotAllowed {
        /// The field, as `Struct.field`.
        field: &'static str,
        /// The version being written.
        version: i16,
    },
    /// A string, bytes or array longer than its length prefix can express.
    #[error("{field} has length {length}, more than the maximum {max}")]
    TooLong {
        /// The field, as `Struct.field`.
        field: &'static str,
        /// Its length.
        length: usize,
        /// The longest the encoding allows.
        max: usize,
    },
    /// The version is not one the message defines.
    #[error("version {version} is not a valid version of {message}")]
    UnsupportedVersion {
        /// The message name.
        message: &'static str,
        /// The version asked for.
        version: i16,
    },
    /// Unknown tagged fields out of ascending order, repeating a tag, or reusing the
    /// tag of a known field that is written too.
    #[error("{field}: tagged field {tag} out of order or written twice")]
    DuplicateTag {
        /// The struct, as `Struct.unknown_tagged_fields`.
        field: &'static str,
        /// The repeated tag.
        tag: u32,
    },
}
