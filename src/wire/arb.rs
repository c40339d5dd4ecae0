//! Structure-aware random values for property tests and fuzzing (feature `arbitrary`).
//!
//! Every generated message implements [`ArbValue`] and `arbitrary::Arbitrary`; this
//! module gives the impls for the wire types the messages are built from.

use super::{ByteString, Bytes, RawTaggedField, Scalar, ScalarList, UnknownTaggedFields, Uuid};
use arbitrary::{Result, Unstructured};

/// A value that can be built from fuzzer bytes.
pub trait ArbValue: Sized {
    /// Builds one value, consuming bytes from `u`.
    fn arb(u: &mut Unstructured<'_>) -> Result<Self>;
}

macro_rules! via_arbitrary {
    ($($t:ty),*) => {$(
        impl ArbValue for $t {
            fn arb(u: &mut Unstructured<'_>) -> Result<Self> {
                u.arbitrary()
            }
        }
    )*};
}
via_arbitrary!(bool, i8, i16, u16, i32, u32, i64);

impl ArbValue for f64 {
    fn arb(u: &mut Unstructured<'_>) -> Result<Self> {
        // NaN never equals itself, which would break round-trip equality.
        let v: f64 = u.arbitrary()?;
        Ok(if v.is_nan() { 0.0 } else { v })
    }
}

impl ArbValue for Uuid {
    fn arb(u: &mut Unstructured<'_>) -> Result<Self> {
        Ok(Uuid::from_u128(u.arbitrary()?))
    }
}

impl ArbValue for ByteString {
    fn arb(u: &mut Unstructured<'_>) -> Result<Self> {
        let s: String = u.arbitrary()?;
        Ok(ByteString::from(s))
    }
}

impl ArbValue for Bytes {
    fn arb(u: &mut Unstructured<'_>) -> Result<Self> {
        let v: Vec<u8> = u.arbitrary()?;
        Ok(Bytes::from(v))
    }
}

impl<T: ArbValue> ArbValue for Option<T> {
    fn arb(u: &mut Unstructured<'_>) -> Result<Self> {
        Ok(if u.arbitrary()? {
            Some(T::arb(u)?)
        } else {
            None
        })
    }
}

impl<T: ArbValue> ArbValue for Vec<T> {
    fn arb(u: &mut Unstructured<'_>) -> Result<Self> {
        // Short arrays keep nested messages small and fast to shrink.
        let len = u.int_in_range(0..=4u8)?;
        (0..len).map(|_| T::arb(u)).collect()
    }
}

impl<T: Scalar + ArbValue> ArbValue for ScalarList<T> {
    fn arb(u: &mut Unstructured<'_>) -> Result<Self> {
        // Sometimes past the inline capacity, so both representations are exercised.
        let len = u.int_in_range(0..=6u8)?;
        (0..len).map(|_| T::arb(u)).collect()
    }
}

impl ArbValue for RawTaggedField {
    fn arb(u: &mut Unstructured<'_>) -> Result<Self> {
        Ok(RawTaggedField {
            tag: u.int_in_range(0..=64u32)?,
            data: Bytes::arb(u)?,
        })
    }
}

impl ArbValue for UnknownTaggedFields {
    fn arb(u: &mut Unstructured<'_>) -> Result<Self> {
        Ok(Vec::<RawTaggedField>::arb(u)?.into())
    }
}

/// Truncates a string to what a non-compact STRING can hold (32,767 bytes), on a
/// character boundary.
pub fn fit_string(s: &mut ByteString) {
    let max = i16::MAX as usize;
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        *s = ByteString::from(s[..end].to_string());
    }
}

/// Makes a value representable at a version (every generated message implements it):
/// fields absent at the version get their default, nulls where the version allows none
/// get an empty value, strings too long for a non-compact length are cut, and unknown
/// tagged fields are sorted, deduplicated and kept off the tags of known fields.
/// After it, `encode` then `decode` at that version must give the value back.
pub trait Normalize {
    /// Adjusts `self` in place for `version`.
    fn normalize_for_version(&mut self, version: i16);
}
