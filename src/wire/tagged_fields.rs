//! Tagged fields (flexible versions): a section is a count, then per field a tag, a
//! size and the data. The generated decoders read the fields they know by tag; the
//! rest are kept as [`RawTaggedField`]s in an [`UnknownTaggedFields`], which is
//! almost always empty, so the empty case is one null pointer that costs nothing to
//! build, move or drop.

use super::strings::take_after;
use super::varint::{read_unsigned_varint_at, varint_error};
use super::{
    Buf, Bytes, DecodeError, DecodeErrorKind, EncodeError, Out, put_unsigned_varint,
    put_unsigned_varlong, read_unsigned_varint,
};
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

/// A tagged field this crate's schema does not know, kept so it is re-encoded as-is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawTaggedField {
    /// The field's tag.
    pub tag: u32,
    /// The field's encoded value, without the tag and size prefixes.
    pub data: Bytes,
}

/// Reads the tagged-field section's field count (an unsigned varint), checked against
/// the remaining input (each tagged field takes at least two bytes).
#[inline(always)]
pub fn read_tagged_header(buf: &mut Bytes, field: &'static str) -> Result<usize, DecodeError> {
    // Nearly every section is empty: one zero byte, and the caller's loop over the
    // fields folds away.
    if buf.first() == Some(&0) {
        buf.advance(1);
        return Ok(0);
    }
    read_tagged_header_slow(buf, field)
}

#[inline(never)]
fn read_tagged_header_slow(buf: &mut Bytes, field: &'static str) -> Result<usize, DecodeError> {
    let count = read_unsigned_varint(buf, field)? as usize;
    if count > buf.len() / 2 {
        return Err(DecodeError::new(
            field,
            DecodeErrorKind::CountExceedsInput {
                count: count as u64,
                remaining: buf.len(),
            },
        ));
    }
    Ok(count)
}

/// Reads one tagged field's tag and its data (as a slice of the input).
#[inline]
pub fn read_tagged_field(
    buf: &mut Bytes,
    field: &'static str,
) -> Result<(u32, Bytes), DecodeError> {
    let mut n = 0;
    let tag = read_unsigned_varint_at(buf, &mut n).map_err(|e| varint_error(e, field, buf, 5))?;
    let size_at = n;
    let size = read_unsigned_varint_at(buf, &mut n)
        .map_err(|e| varint_error(e, field, buf.get(size_at..).unwrap_or_default(), 5))?;
    let data = take_after(buf, n, size as usize, field)?;
    Ok((tag, data))
}

/// Reads a whole tagged-field section where no tag is known, keeping every field.
pub fn read_raw_tagged_fields(
    buf: &mut Bytes,
    field: &'static str,
) -> Result<Vec<RawTaggedField>, DecodeError> {
    let count = read_tagged_header(buf, field)?;
    let mut out = Vec::with_capacity(count);
    let mut previous: Option<u32> = None;
    for _ in 0..count {
        let (tag, data) = read_tagged_field(buf, field)?;
        check_tag_order(previous, tag, field)?;
        previous = Some(tag);
        out.push(RawTaggedField { tag, data });
    }
    Ok(out)
}

/// Checks that `tag` comes strictly after `previous`.
#[inline]
pub fn check_tag_order(
    previous: Option<u32>,
    tag: u32,
    field: &'static str,
) -> Result<(), DecodeError> {
    match previous {
        Some(p) if p >= tag => Err(DecodeError::new(
            field,
            DecodeErrorKind::TaggedFieldOrder { previous: p, tag },
        )),
        _ => Ok(()),
    }
}

/// Encodes one tagged field: tag, size, data.
#[inline]
pub fn put_tagged_field<W: Out + ?Sized>(buf: &mut W, tag: u32, data: &[u8]) {
    put_unsigned_varint(buf, tag);
    put_unsigned_varlong(buf, data.len() as u64);
    buf.write_slice(data);
}

/// Encodes a tagged-field section holding only `fields` (which must be in strictly
/// ascending tag order, as [`read_raw_tagged_fields`] returns them).
pub fn put_raw_tagged_fields<W: Out + ?Sized>(
    buf: &mut W,
    fields: &[RawTaggedField],
    field: &'static str,
) -> Result<(), EncodeError> {
    check_unknown_tags(fields, field)?;
    put_unsigned_varlong(buf, fields.len() as u64);
    for f in fields {
        put_tagged_field(buf, f.tag, &f.data);
    }
    Ok(())
}

/// Checks that unknown tagged fields are in strictly ascending tag order (so no tag
/// repeats), as the encoding requires.
pub fn check_unknown_tags(
    fields: &[RawTaggedField],
    field: &'static str,
) -> Result<(), EncodeError> {
    for pair in fields.windows(2) {
        if pair[0].tag >= pair[1].tag {
            return Err(EncodeError::DuplicateTag {
                field,
                tag: pair[1].tag,
            });
        }
    }
    Ok(())
}

/// The tagged fields of a struct that its schema does not know, kept in tag order so
/// they are written back as they came.
///
/// Every generated struct of a flexible version has one (`unknown_tagged_fields`), and
/// nearly every one is empty. Where a `Vec` takes 24 bytes and a call to drop, this
/// takes 8 bytes (a null pointer when empty) and dropping it is a null check; the
/// fields go on the heap only once there is one. It dereferences to a slice of
/// [`RawTaggedField`] and has the `Vec` methods the codec and its users need.
///
/// ```
/// use kafka_sansio::wire::{Bytes, RawTaggedField, UnknownTaggedFields};
///
/// let mut fields = UnknownTaggedFields::new();
/// assert!(fields.is_empty());
/// fields.push(RawTaggedField { tag: 7, data: Bytes::from_static(b"\xbe\xef") });
/// assert_eq!(fields.len(), 1);
/// assert_eq!(fields[0].tag, 7);
/// assert_eq!(fields.iter().map(|f| f.tag).collect::<Vec<_>>(), [7]);
///
/// let same: UnknownTaggedFields = vec![RawTaggedField { tag: 7, data: Bytes::from_static(b"\xbe\xef") }].into();
/// assert_eq!(fields, same);
/// fields.clear();
/// assert_eq!(fields, UnknownTaggedFields::default());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
#[allow(
    clippy::box_collection,
    reason = "the box is the point: one word, null when empty, where a Vec takes three"
)]
pub struct UnknownTaggedFields(
    // `None` exactly when there are no fields, so the derived comparisons hold. Dropped
    // by hand (see `Drop`) so that dropping an empty one is a single test.
    ManuallyDrop<Option<Box<Vec<RawTaggedField>>>>,
);

impl UnknownTaggedFields {
    /// No fields (no allocation).
    #[inline]
    #[must_use]
    pub const fn new() -> Self {
        UnknownTaggedFields(ManuallyDrop::new(None))
    }

    /// Whether there are no fields.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many fields there are.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.len())
    }

    /// The fields as a slice.
    #[inline]
    #[must_use]
    pub fn as_slice(&self) -> &[RawTaggedField] {
        match &*self.0 {
            Some(v) => v,
            None => &[],
        }
    }

    /// The fields as a mutable slice.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [RawTaggedField] {
        match &mut *self.0 {
            Some(v) => v,
            None => &mut [],
        }
    }

    /// Appends a field (the caller keeps tag order: encoding checks it).
    pub fn push(&mut self, field: RawTaggedField) {
        self.0.get_or_insert_with(Box::default).push(field);
    }

    /// Removes every field.
    #[inline]
    pub fn clear(&mut self) {
        drop(self.0.take());
    }

    /// Keeps only the fields for which `keep` returns `true`.
    pub fn retain(&mut self, keep: impl FnMut(&RawTaggedField) -> bool) {
        if let Some(v) = &mut *self.0 {
            v.retain(keep);
        }
        self.drop_if_empty();
    }

    /// Removes consecutive fields with the same key, as [`Vec::dedup_by_key`].
    pub fn dedup_by_key<K: PartialEq>(&mut self, key: impl FnMut(&mut RawTaggedField) -> K) {
        if let Some(v) = &mut *self.0 {
            v.dedup_by_key(key);
        }
    }

    /// The fields as a `Vec`.
    #[must_use]
    pub fn into_vec(mut self) -> Vec<RawTaggedField> {
        self.0.take().map_or_else(Vec::new, |v| *v)
    }

    fn drop_if_empty(&mut self) {
        if self.0.as_ref().is_some_and(|v| v.is_empty()) {
            self.clear();
        }
    }
}

impl Drop for UnknownTaggedFields {
    // Inlined into every struct's drop: the empty case is one null check, with no call
    // and no store (the field is `ManuallyDrop`, so it has no drop of its own).
    #[inline]
    fn drop(&mut self) {
        if self.0.is_some() {
            drop_fields(self.0.take());
        }
    }
}

/// Frees the fields. `extern "C"` makes it a function that cannot unwind (a panic
/// would abort; dropping `Bytes` does not panic), so the drop of a struct, and of a
/// `Vec` of structs, needs no landing pad around it: that keeps those drops small
/// enough for the compiler to inline.
#[cold]
#[inline(never)]
#[allow(clippy::box_collection, reason = "see UnknownTaggedFields")]
extern "C" fn drop_fields(fields: Option<Box<Vec<RawTaggedField>>>) {
    drop(fields);
}

impl Deref for UnknownTaggedFields {
    type Target = [RawTaggedField];
    #[inline]
    fn deref(&self) -> &[RawTaggedField] {
        self.as_slice()
    }
}

impl DerefMut for UnknownTaggedFields {
    #[inline]
    fn deref_mut(&mut self) -> &mut [RawTaggedField] {
        self.as_mut_slice()
    }
}

impl fmt::Debug for UnknownTaggedFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl From<Vec<RawTaggedField>> for UnknownTaggedFields {
    fn from(v: Vec<RawTaggedField>) -> Self {
        if v.is_empty() {
            UnknownTaggedFields::new()
        } else {
            UnknownTaggedFields(ManuallyDrop::new(Some(Box::new(v))))
        }
    }
}

impl From<UnknownTaggedFields> for Vec<RawTaggedField> {
    fn from(v: UnknownTaggedFields) -> Self {
        v.into_vec()
    }
}

impl PartialEq<Vec<RawTaggedField>> for UnknownTaggedFields {
    fn eq(&self, other: &Vec<RawTaggedField>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<[RawTaggedField]> for UnknownTaggedFields {
    fn eq(&self, other: &[RawTaggedField]) -> bool {
        self.as_slice() == other
    }
}

impl FromIterator<RawTaggedField> for UnknownTaggedFields {
    fn from_iter<I: IntoIterator<Item = RawTaggedField>>(iter: I) -> Self {
        Vec::from_iter(iter).into()
    }
}

impl Extend<RawTaggedField> for UnknownTaggedFields {
    fn extend<I: IntoIterator<Item = RawTaggedField>>(&mut self, iter: I) {
        self.0.get_or_insert_with(Box::default).extend(iter);
        self.drop_if_empty();
    }
}

impl<'a> IntoIterator for &'a UnknownTaggedFields {
    type Item = &'a RawTaggedField;
    type IntoIter = std::slice::Iter<'a, RawTaggedField>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl IntoIterator for UnknownTaggedFields {
    type Item = RawTaggedField;
    type IntoIter = std::vec::IntoIter<RawTaggedField>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}
