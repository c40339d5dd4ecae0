//! Kafka's UUID type.

/// A 128-bit UUID as Kafka sends it (topic ids, incarnation ids, ...).
///
/// `Display` writes the form Kafka's tools print: URL-safe base64 without padding
/// (22 characters). [`Uuid::to_hyphenated`] gives the RFC 4122 text form.
///
/// ```
/// use kafka_sansio::wire::Uuid;
/// let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
/// assert_eq!(id.to_hyphenated(), "01234567-89ab-cdef-0123-456789abcdef");
/// assert_eq!(id.to_string(), "ASNFZ4mrze8BI0VniavN7w");
/// assert!(Uuid::ZERO.is_zero());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Uuid([u8; 16]);

impl Uuid {
    /// The all-zero UUID Kafka uses for "no id".
    pub const ZERO: Uuid = Uuid([0; 16]);

    /// A UUID from its 16 bytes, most significant first.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Uuid(bytes)
    }

    /// A UUID from a 128-bit integer.
    #[must_use]
    pub const fn from_u128(value: u128) -> Self {
        Uuid(value.to_be_bytes())
    }

    /// The 16 bytes, most significant first.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The UUID as a 128-bit integer.
    #[must_use]
    pub const fn as_u128(&self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// Whether this is [`Uuid::ZERO`].
    #[must_use]
    pub const fn is_zero(&self) -> bool {
        self.as_u128() == 0
    }

    /// The RFC 4122 hyphenated lower-case hex form.
    #[must_use]
    pub fn to_hyphenated(&self) -> String {
        let h = format!("{:032x}", self.as_u128());
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(22);
        for chunk in self.0.chunks(3) {
            let mut n = [0u8; 3];
            n[..chunk.len()].copy_from_slice(chunk);
            let v = (u32::from(n[0]) << 16) | (u32::from(n[1]) << 8) | u32::from(n[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(char::from(ALPHABET[((v >> (18 - 6 * i)) & 0x3f) as usize]));
            }
        }
        f.write_str(&out)
    }
}
