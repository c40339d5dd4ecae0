//! Arrays of fixed-width values (`[]int32`, `[]int64`, `[]uuid`, ...) that keep a few
//! elements inline, so decoding the short lists Kafka sends by the thousand (a
//! partition's replicas and in-sync replicas) allocates nothing.

use super::{Bytes, DecodeError, EncodeError, Out, Uuid};
use std::fmt;
use std::ops::{Deref, DerefMut};

/// How many elements a [`ScalarList`] holds without allocating.
pub const INLINE_CAPACITY: usize = 4;

/// A fixed-width wire value that can live in a [`ScalarList`].
pub trait Scalar: Copy + Default + PartialEq + fmt::Debug {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Reads one value from exactly `SIZE` big-endian bytes.
    fn read_be(bytes: &[u8]) -> Self;
    /// Writes one value.
    fn put<W: Out + ?Sized>(self, buf: &mut W);
}

macro_rules! scalar {
    ($($t:ty => $n:expr),*) => {$(
        impl Scalar for $t {
            const SIZE: usize = $n;
            #[inline]
            fn read_be(bytes: &[u8]) -> Self {
                let mut raw = [0u8; $n];
                raw.copy_from_slice(&bytes[..$n]);
                <$t>::from_be_bytes(raw)
            }
            #[inline]
            fn put<W: Out + ?Sized>(self, buf: &mut W) {
                buf.write_slice(&self.to_be_bytes());
            }
        }
    )*};
}
scalar!(i8 => 1, i16 => 2, u16 => 2, i32 => 4, u32 => 4, i64 => 8, f64 => 8);

impl Scalar for bool {
    const SIZE: usize = 1;
    #[inline]
    fn read_be(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
    #[inline]
    fn put<W: Out + ?Sized>(self, buf: &mut W) {
        buf.write_byte(u8::from(self));
    }
}

impl Scalar for Uuid {
    const SIZE: usize = 16;
    #[inline]
    fn read_be(bytes: &[u8]) -> Self {
        let mut raw = [0u8; 16];
        raw.copy_from_slice(&bytes[..16]);
        Uuid::from_bytes(raw)
    }
    #[inline]
    fn put<W: Out + ?Sized>(self, buf: &mut W) {
        buf.write_slice(self.as_bytes());
    }
}

#[derive(Clone)]
enum Repr<T: Scalar> {
    Inline {
        len: u8,
        items: [T; INLINE_CAPACITY],
    },
    Heap(Vec<T>),
}

/// A list of fixed-width values: up to [`INLINE_CAPACITY`] stored inline, more on the
/// heap. It dereferences to a slice and converts from `Vec`, arrays and iterators.
///
/// ```
/// use kafka_sansio::wire::ScalarList;
/// let replicas: ScalarList<i32> = vec![1, 2, 3].into();
/// assert_eq!(&replicas[..], &[1, 2, 3]);
/// assert_eq!(replicas, ScalarList::from([1, 2, 3]));
/// let many: ScalarList<i64> = (0..10).collect();
/// assert_eq!(many.len(), 10);
/// ```
#[derive(Clone)]
pub struct ScalarList<T: Scalar>(Repr<T>);

impl<T: Scalar> ScalarList<T> {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        ScalarList(Repr::Inline {
            len: 0,
            items: [T::default(); INLINE_CAPACITY],
        })
    }

    /// Appends a value.
    pub fn push(&mut self, value: T) {
        match &mut self.0 {
            Repr::Inline { len, items } if usize::from(*len) < INLINE_CAPACITY => {
                items[usize::from(*len)] = value;
                *len += 1;
            }
            Repr::Inline { len, items } => {
                let mut v = Vec::with_capacity(INLINE_CAPACITY * 2);
                v.extend_from_slice(&items[..usize::from(*len)]);
                v.push(value);
                self.0 = Repr::Heap(v);
            }
            Repr::Heap(v) => v.push(value),
        }
    }

    /// The values as a slice.
    #[must_use]
    pub fn as_slice(&self) -> &[T] {
        match &self.0 {
            Repr::Inline { len, items } => &items[..usize::from(*len)],
            Repr::Heap(v) => v,
        }
    }

    /// Whether the list is held inline (at most [`INLINE_CAPACITY`] values; encoders
    /// write such a list with one fixed-size write).
    #[must_use]
    pub(crate) fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }

    /// The values as a mutable slice.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.0 {
            Repr::Inline { len, items } => &mut items[..usize::from(*len)],
            Repr::Heap(v) => v,
        }
    }
}

impl<T: Scalar> Default for ScalarList<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Scalar> Deref for ScalarList<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Scalar> DerefMut for ScalarList<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: Scalar> PartialEq for ScalarList<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Scalar + Eq> Eq for ScalarList<T> {}

impl<T: Scalar> PartialEq<Vec<T>> for ScalarList<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Scalar> PartialEq<[T]> for ScalarList<T> {
    fn eq(&self, other: &[T]) -> bool {
        self.as_slice() == other
    }
}

impl<T: Scalar> fmt::Debug for ScalarList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: Scalar> From<Vec<T>> for ScalarList<T> {
    fn from(v: Vec<T>) -> Self {
        if v.len() <= INLINE_CAPACITY {
            v.into_iter().collect()
        } else {
            ScalarList(Repr::Heap(v))
        }
    }
}

impl<T: Scalar> From<&[T]> for ScalarList<T> {
    fn from(v: &[T]) -> Self {
        v.iter().copied().collect()
    }
}

impl<T: Scalar, const N: usize> From<[T; N]> for ScalarList<T> {
    fn from(v: [T; N]) -> Self {
        v.into_iter().collect()
    }
}

impl<T: Scalar> From<ScalarList<T>> for Vec<T> {
    fn from(v: ScalarList<T>) -> Self {
        match v.0 {
            Repr::Inline { len, items } => items[..usize::from(len)].to_vec(),
            Repr::Heap(v) => v,
        }
    }
}

impl<T: Scalar> FromIterator<T> for ScalarList<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut out = ScalarList::new();
        for v in iter {
            out.push(v);
        }
        out
    }
}

impl<'a, T: Scalar> IntoIterator for &'a ScalarList<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

/// Reads a non-null ARRAY / COMPACT_ARRAY of fixed-width values: one bounds check for
/// the whole array, then no allocation for up to [`INLINE_CAPACITY`] values.
#[inline(always)]
pub fn read_scalar_array<T: Scalar>(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<ScalarList<T>, DecodeError> {
    match read_nullable_scalar_array(buf, compact, field)? {
        Some(list) => Ok(list),
        None => Err(DecodeError::new(
            field,
            super::DecodeErrorKind::UnexpectedNull,
        )),
    }
}

/// Reads a nullable ARRAY / COMPACT_ARRAY of fixed-width values.
#[inline(always)]
pub fn read_nullable_scalar_array<T: Scalar>(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<Option<ScalarList<T>>, DecodeError> {
    let Some(count) = super::read_array_len(buf, compact, T::SIZE, field)? else {
        return Ok(None);
    };
    if count > INLINE_CAPACITY {
        return Ok(Some(read_heap(buf, count)));
    }
    // read_array_len checked count * SIZE <= remaining.
    let mut items = [T::default(); INLINE_CAPACITY];
    for (slot, chunk) in items.iter_mut().zip(buf.chunks_exact(T::SIZE)).take(count) {
        *slot = T::read_be(chunk);
    }
    bytes::Buf::advance(buf, count * T::SIZE);
    Ok(Some(ScalarList(Repr::Inline {
        len: count as u8,
        items,
    })))
}

/// The part of [`read_nullable_scalar_array`] for lists too long to keep inline.
#[inline(never)]
fn read_heap<T: Scalar>(buf: &mut Bytes, count: usize) -> ScalarList<T> {
    // read_array_len checked count * SIZE <= remaining.
    let list = ScalarList(Repr::Heap(
        buf[..count * T::SIZE]
            .chunks_exact(T::SIZE)
            .map(T::read_be)
            .collect(),
    ));
    bytes::Buf::advance(buf, count * T::SIZE);
    list
}

/// Writes an ARRAY / COMPACT_ARRAY of fixed-width values.
#[inline]
pub fn put_scalar_array<T: Scalar, W: Out + ?Sized>(
    buf: &mut W,
    list: &[T],
    compact: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    super::put_array_len(buf, Some(list.len()), compact, field)?;
    for v in list {
        v.put(buf);
    }
    Ok(())
}

/// Writes a [`ScalarList`] as an ARRAY / COMPACT_ARRAY: the same bytes as
/// [`put_scalar_array`] of its slice, faster for the short lists kept inline (a whole
/// list, length prefix and all, is one write of fixed size).
///
/// ```
/// use kafka_sansio::wire::{self, ScalarList};
/// let replicas: ScalarList<i32> = vec![1, 2, 3].into();
/// let mut a = Vec::new();
/// wire::put_scalar_list(&mut a, &replicas, true, "replicas").unwrap();
/// let mut b = Vec::new();
/// wire::put_scalar_array(&mut b, &replicas, true, "replicas").unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a, [4, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
/// ```
#[inline(always)]
pub fn put_scalar_list<T: Scalar, W: Out + ?Sized>(
    buf: &mut W,
    list: &ScalarList<T>,
    compact: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    match &list.0 {
        Repr::Inline { len, items } if T::SIZE <= 8 => {
            // The buffer only as large as the list can be: a smaller fixed copy.
            match (compact, T::SIZE <= 4) {
                (true, true) => put_inline::<1, 20, T, W>(buf, *len, items),
                (true, false) => put_inline::<1, 36, T, W>(buf, *len, items),
                (false, true) => put_inline::<4, 20, T, W>(buf, *len, items),
                (false, false) => put_inline::<4, 36, T, W>(buf, *len, items),
            }
            Ok(())
        }
        _ => put_scalar_array(buf, list.as_slice(), compact, field),
    }
}

/// An inline list (at most [`INLINE_CAPACITY`] values of at most 8 bytes) behind an
/// `OFF`-byte length prefix (1: compact, 4: classic): every slot is written, the
/// sink keeps the `len` in use.
#[inline(always)]
fn put_inline<const OFF: usize, const N: usize, T: Scalar, W: Out + ?Sized>(
    buf: &mut W,
    len: u8,
    items: &[T; INLINE_CAPACITY],
) {
    let used = OFF + usize::from(len) * T::SIZE;
    let mut tmp = [0u8; N];
    if OFF == 1 {
        // At most 4 values: the compact length (count + 1) is one byte.
        tmp[0] = len + 1;
    } else {
        tmp[..4].copy_from_slice(&i32::from(len).to_be_bytes());
    }
    for (i, v) in items.iter().enumerate() {
        let at = OFF + i * T::SIZE;
        if let Some(slot) = tmp.get_mut(at..at + T::SIZE) {
            v.put(&mut SlotOut(slot));
        }
    }
    buf.write_padded(&tmp, used);
}

/// Writes one value into a slot of its exact size.
struct SlotOut<'a>(&'a mut [u8]);

impl Out for SlotOut<'_> {
    #[inline(always)]
    fn write_slice(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.0.get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
}
