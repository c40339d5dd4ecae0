//! Where encoders write: [`Out`], implemented for `Vec<u8>`, [`BytesMut`] and
//! [`ChunkedOut`], plus the crate's own faster sinks behind [`Message`]'s encode
//! methods: `VecOut` (a cursor over zeroed room in a `Vec`), `SpillOut` (gathers small
//! writes for any other [`BufMut`]) and `SliceOut` (a struct gathered in lent room).
//!
//! Those three, and the room-lending protocol ([`Out::spare`], [`Out::commit`],
//! [`Out::write_padded`]) they use, are performance internals: they may change in any
//! release, and are hidden from the documentation.
//!
//! [`Message`]: super::Message

use super::{BufMut, Bytes, BytesMut};

/// A byte sink for the `put_*` encoders and [`Message::encode_into`].
///
/// Implemented for `Vec<u8>`, [`BytesMut`] and [`ChunkedOut`]. Encoding a message is
/// thousands of writes of 1 to 8 bytes, so a sink does as little as it can per write;
/// a sink of your own needs only [`Out::write_slice`]:
///
/// ```
/// use kafka_sansio::messages::ApiVersionsRequest;
/// use kafka_sansio::wire::{Message, Out};
///
/// /// Counts the bytes of a message without keeping them.
/// #[derive(Default)]
/// struct Counter(usize);
///
/// impl Out for Counter {
///     fn write_slice(&mut self, bytes: &[u8]) {
///         self.0 += bytes.len();
///     }
/// }
///
/// let request = ApiVersionsRequest {
///     client_software_name: "kafka-sansio".into(),
///     client_software_version: "0.1.0".into(),
///     ..Default::default()
/// };
/// let mut counter = Counter::default();
/// request.encode_into(&mut counter, 3)?;
/// assert_eq!(counter.0, 20);
/// # Ok::<(), kafka_sansio::wire::EncodeError>(())
/// ```
///
/// [`Message::encode_into`]: super::Message::encode_into
pub trait Out {
    /// Appends `bytes`.
    fn write_slice(&mut self, bytes: &[u8]);

    /// Appends one byte.
    #[inline]
    fn write_byte(&mut self, byte: u8) {
        self.write_slice(&[byte]);
    }

    /// Appends `padded[..len]`. A sink with room to spare may copy all of `padded` (a
    /// copy of fixed size, cheaper than one of `len` bytes) and keep only `len` of it;
    /// `len` past the end of `padded` writes all of it.
    ///
    /// An unstable performance internal (see the module documentation): the default
    /// is right for every sink.
    #[doc(hidden)]
    #[inline]
    fn write_padded(&mut self, padded: &[u8], len: usize) {
        self.write_slice(padded.get(..len).unwrap_or(padded));
    }

    /// Room to write up to `n` bytes in place, if the sink has it at hand (only
    /// `VecOut` does): exactly `n` bytes, which count as written only once
    /// [`Out::commit`] says how many of them. Callers fall back to the other writes
    /// when it is `None`, and generated encoders also when a write does not fit the
    /// room they got: a sink that lends less than `n` costs a rewrite, never bytes.
    ///
    /// An unstable performance internal (see the module documentation): the default,
    /// no room, is right for every sink outside this crate.
    #[doc(hidden)]
    #[inline]
    fn spare(&mut self, n: usize) -> Option<&mut [u8]> {
        let _ = n;
        None
    }

    /// Keeps the first `len` bytes of the room [`Out::spare`] gave (at most its `n`).
    ///
    /// An unstable performance internal, paired with [`Out::spare`].
    #[doc(hidden)]
    #[inline]
    fn commit(&mut self, len: usize) {
        let _ = len;
    }

    /// Appends bytes the caller holds as [`Bytes`]; a sink that can keep a reference
    /// instead of copying ([`ChunkedOut`]) does so.
    #[inline]
    fn write_shared(&mut self, bytes: &Bytes) {
        self.write_slice(bytes);
    }
}

/// `padded[..len]` appended to `vec`: with room to spare, as a copy of all of
/// `padded` (of a size known where it is inlined, so no call to `memcpy`) and a cut
/// back to `len`; without, as a copy of `len` bytes, so the `Vec` never grows for the
/// padding. (A `BytesMut` used as the sink itself keeps the plain copy; the
/// crate's own `encode` reaches one through `SpillOut`, whose scratch is a `Vec`.)
#[inline(always)]
fn vec_write_padded(vec: &mut Vec<u8>, padded: &[u8], len: usize) {
    let keep = vec.len() + len.min(padded.len());
    if vec.capacity() - vec.len() >= padded.len() {
        vec.extend_from_slice(padded);
        vec.truncate(keep);
    } else {
        vec.extend_from_slice(padded.get(..len).unwrap_or(padded));
    }
}

impl Out for Vec<u8> {
    #[inline]
    fn write_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    #[inline]
    fn write_padded(&mut self, padded: &[u8], len: usize) {
        vec_write_padded(self, padded, len);
    }

    #[inline]
    fn write_byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

impl Out for BytesMut {
    #[inline]
    fn write_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl<T: Out + ?Sized> Out for &mut T {
    #[inline]
    fn write_slice(&mut self, bytes: &[u8]) {
        (**self).write_slice(bytes);
    }

    #[inline]
    fn write_shared(&mut self, bytes: &Bytes) {
        (**self).write_shared(bytes);
    }

    #[inline]
    fn write_padded(&mut self, padded: &[u8], len: usize) {
        (**self).write_padded(padded, len);
    }

    #[inline]
    fn spare(&mut self, n: usize) -> Option<&mut [u8]> {
        (**self).spare(n)
    }

    #[inline]
    fn commit(&mut self, len: usize) {
        (**self).commit(len);
    }

    #[inline]
    fn write_byte(&mut self, byte: u8) {
        (**self).write_byte(byte);
    }
}

/// Writes of at least this many bytes (record batches, large byte fields) go straight
/// to the destination instead of through the scratch buffer, so they are copied once.
pub(crate) const SPILL_THRESHOLD: usize = 512;

/// Gathers small writes in a `Vec<u8>` and hands them to a [`BufMut`] in large pieces;
/// writes of [`SPILL_THRESHOLD`] bytes or more go straight through. Call
/// [`SpillOut::finish`] at the end (dropping it without finishing loses the tail).
/// [`Message::encode`](super::Message::encode) writes through one.
pub(crate) struct SpillOut<'a, B: BufMut> {
    scratch: Vec<u8>,
    dest: &'a mut B,
}

impl<'a, B: BufMut> SpillOut<'a, B> {
    /// A sink writing into `dest`.
    pub(crate) fn new(dest: &'a mut B) -> Self {
        SpillOut {
            scratch: Vec::with_capacity(256),
            dest,
        }
    }

    fn flush(&mut self) {
        if !self.scratch.is_empty() {
            self.dest.put_slice(&self.scratch);
            self.scratch.clear();
        }
    }

    /// Writes what is still gathered to the destination.
    pub(crate) fn finish(mut self) {
        self.flush();
    }
}

impl<B: BufMut> Out for SpillOut<'_, B> {
    #[inline]
    fn write_slice(&mut self, bytes: &[u8]) {
        if bytes.len() >= SPILL_THRESHOLD {
            self.flush();
            self.dest.put_slice(bytes);
        } else {
            self.scratch.extend_from_slice(bytes);
        }
    }

    #[inline]
    fn write_byte(&mut self, byte: u8) {
        self.scratch.push(byte);
    }

    #[inline]
    fn write_padded(&mut self, padded: &[u8], len: usize) {
        vec_write_padded(&mut self.scratch, padded, len);
    }
}

/// Encodes without copying large byte fields: small writes are gathered into chunks,
/// and every [`Bytes`] field of 512 bytes or more (record batches) is kept as a
/// reference to the caller's buffer. [`ChunkedOut::finish`] returns the
/// chunks in order, ready for a vectored write (`writev`) or `Buf::chain`.
///
/// ```
/// use kafka_sansio::wire::{self, Bytes, ChunkedOut};
/// let records = Bytes::from(vec![7u8; 4096]);
/// let mut out = ChunkedOut::new();
/// wire::put_i32(&mut out, 1);
/// wire::put_shared_bytes(&mut out, &records, true, "records").unwrap();
/// wire::put_i8(&mut out, 0);
/// let chunks = out.finish();
/// assert_eq!(chunks.len(), 3);
/// assert_eq!(chunks[1].as_ptr(), records.as_ptr(), "the records were not copied");
/// ```
#[derive(Debug, Default)]
pub struct ChunkedOut {
    scratch: Vec<u8>,
    chunks: Vec<Bytes>,
}

impl ChunkedOut {
    /// An empty sink.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn flush(&mut self) {
        if !self.scratch.is_empty() {
            self.chunks
                .push(Bytes::from(std::mem::take(&mut self.scratch)));
        }
    }

    /// The encoded message as chunks, in order.
    #[must_use]
    pub fn finish(mut self) -> Vec<Bytes> {
        self.flush();
        self.chunks
    }
}

impl Out for ChunkedOut {
    #[inline]
    fn write_slice(&mut self, bytes: &[u8]) {
        self.scratch.extend_from_slice(bytes);
    }

    #[inline]
    fn write_padded(&mut self, padded: &[u8], len: usize) {
        vec_write_padded(&mut self.scratch, padded, len);
    }

    #[inline]
    fn write_byte(&mut self, byte: u8) {
        self.scratch.push(byte);
    }

    fn write_shared(&mut self, bytes: &Bytes) {
        if bytes.len() >= SPILL_THRESHOLD {
            self.flush();
            self.chunks.push(bytes.clone());
        } else {
            self.scratch.extend_from_slice(bytes);
        }
    }
}

/// The `n` bytes of `buf` from `pos`, if it holds them: where [`VecOut`] and
/// [`SliceOut`] write.
#[inline(always)]
fn room(buf: &mut [u8], pos: usize, n: usize) -> Option<&mut [u8]> {
    buf.get_mut(pos..)?.get_mut(..n)
}

/// The smallest run of zeroed room [`VecOut`] keeps ahead of what it wrote.
const VEC_WINDOW_MIN: usize = 256;
/// The zeroed room [`VecOut`] keeps after a large write.
const VEC_ROOM_AFTER_LARGE: usize = 64;
/// The largest run of zeroed room [`VecOut`] adds at once.
const VEC_WINDOW_MAX: usize = 64 * 1024;

/// Appends to a `Vec<u8>` through a cursor: the fastest [`Out`], behind
/// [`Message::encode_to_vec`](super::Message::encode_to_vec).
///
/// Writing straight into a `Vec` costs a capacity check and a length update per field,
/// through memory. `VecOut` instead keeps a run of zeroed bytes ahead of what it wrote
/// (grown in doubling steps, at most 64 KiB at a time) and overwrites them, so a field
/// costs one bounds check on a cursor held in registers. Writes of [`SPILL_THRESHOLD`]
/// bytes or more that do not fit are copied straight in. Dropping it cuts the `Vec`
/// back to what was written; it is never left holding padding.
#[derive(Debug)]
pub(crate) struct VecOut<'a> {
    /// The caller's `Vec`, put back on drop.
    dest: &'a mut Vec<u8>,
    /// The `Vec` while writing: `vec[..pos]` is written, `vec[pos..]` is zeroed room.
    vec: Vec<u8>,
    pos: usize,
    /// How much room the next small write that does not fit adds.
    window: usize,
}

impl<'a> VecOut<'a> {
    /// A sink appending to `dest`.
    pub(crate) fn new(dest: &'a mut Vec<u8>) -> Self {
        let vec = std::mem::take(dest);
        let pos = vec.len();
        let mut out = VecOut {
            dest,
            vec,
            pos,
            window: VEC_WINDOW_MIN,
        };
        out.add_room(0);
        out
    }

    /// Zero-fills room for at least `need` more bytes after `pos` (and normally a
    /// window more), within the `Vec`'s capacity when that holds enough.
    fn add_room(&mut self, need: usize) {
        let mut target = self.pos.saturating_add(need.max(self.window));
        let capacity = self.vec.capacity();
        if target > capacity && capacity.saturating_sub(self.pos) >= need.max(VEC_WINDOW_MIN) {
            target = capacity;
        }
        if target > self.vec.len() {
            self.vec.resize(target, 0);
        }
        self.window = (self.window * 2).min(VEC_WINDOW_MAX);
    }

    /// A write of [`SPILL_THRESHOLD`] bytes or more: copied once, with no zero-fill
    /// under it, and a little room after it (what follows a record batch is a few
    /// fields), with one reservation.
    #[inline(always)]
    fn write_large(&mut self, bytes: &[u8]) {
        self.vec.truncate(self.pos);
        self.vec.reserve(bytes.len() + VEC_ROOM_AFTER_LARGE);
        self.vec.extend_from_slice(bytes);
        self.pos = self.vec.len();
        self.vec.resize(self.pos + VEC_ROOM_AFTER_LARGE, 0);
        self.window = VEC_WINDOW_MIN;
    }

    #[cold]
    #[inline(never)]
    fn write_slow(&mut self, bytes: &[u8]) {
        if bytes.len() >= SPILL_THRESHOLD {
            self.write_large(bytes);
            return;
        }
        self.add_room(bytes.len());
        let end = self.pos + bytes.len();
        if let Some(dst) = self.vec.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
            self.pos = end;
        }
    }
}

impl Drop for VecOut<'_> {
    fn drop(&mut self) {
        self.vec.truncate(self.pos);
        *self.dest = std::mem::take(&mut self.vec);
    }
}

impl Out for VecOut<'_> {
    #[inline]
    fn write_slice(&mut self, bytes: &[u8]) {
        let pos = self.pos;
        match room(&mut self.vec, pos, bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos = pos + bytes.len();
            }
            None => self.write_slow(bytes),
        }
    }

    #[inline]
    fn write_padded(&mut self, padded: &[u8], len: usize) {
        let pos = self.pos;
        match room(&mut self.vec, pos, padded.len()) {
            Some(dst) if len <= padded.len() => {
                dst.copy_from_slice(padded);
                self.pos = pos + len;
            }
            _ => self.write_slow(padded.get(..len).unwrap_or(padded)),
        }
    }

    #[inline]
    fn spare(&mut self, n: usize) -> Option<&mut [u8]> {
        // No growing here: a caller that gets `None` writes through `write_*`, which do.
        room(&mut self.vec, self.pos, n)
    }

    #[inline]
    fn commit(&mut self, len: usize) {
        self.pos = self.pos.wrapping_add(len).min(self.vec.len());
    }

    /// Record batches and other large byte fields are copied in without a call.
    #[inline]
    fn write_shared(&mut self, bytes: &Bytes) {
        if bytes.len() >= SPILL_THRESHOLD {
            self.write_large(bytes);
        } else {
            self.write_slice(bytes);
        }
    }

    #[inline]
    fn write_byte(&mut self, byte: u8) {
        match self.vec.get_mut(self.pos) {
            Some(dst) => {
                *dst = byte;
                self.pos += 1;
            }
            None => self.write_slow(&[byte]),
        }
    }
}

/// Writes into room a sink lent ([`Out::spare`]): generated encoders gather a struct
/// of fixed-width fields and short lists there, sized for every field at its largest.
///
/// A write that does not fit is dropped and marks the gathering failed; the
/// encoder then writes the struct again through the sink's plain writes, so a
/// sink that lends less than it was asked for (or a room sized wrong) costs time,
/// never bytes. A debug build asserts when the room was lent in full and still
/// overflowed: that is the generator's sizing at fault.
pub(crate) struct SliceOut<'a> {
    buf: &'a mut [u8],
    /// Bytes written; [`OVERFLOWED`] once a write did not fit, which also makes
    /// every later write miss.
    len: usize,
    #[cfg(debug_assertions)]
    lent_in_full: bool,
}

/// [`SliceOut`]'s length after a write that did not fit.
const OVERFLOWED: usize = usize::MAX;

impl<'a> SliceOut<'a> {
    /// Gathers into `buf`, the room a sink lent when asked for `asked` bytes.
    #[inline(always)]
    pub(crate) fn new(buf: &'a mut [u8], asked: usize) -> Self {
        #[cfg(not(debug_assertions))]
        let _ = asked;
        SliceOut {
            #[cfg(debug_assertions)]
            lent_in_full: buf.len() >= asked,
            buf,
            len: 0,
        }
    }

    /// How many bytes were written, or `None` if a write did not fit (and the
    /// struct must be written again the plain way).
    #[inline(always)]
    pub(crate) fn written(self) -> Option<usize> {
        (self.len != OVERFLOWED).then_some(self.len)
    }

    #[inline(always)]
    fn overflow(&mut self) {
        #[cfg(debug_assertions)]
        debug_assert!(
            !self.lent_in_full,
            "a generated encoder's gathered struct overflowed the room it sized"
        );
        self.len = OVERFLOWED;
    }
}

impl Out for SliceOut<'_> {
    #[inline(always)]
    fn write_slice(&mut self, bytes: &[u8]) {
        let pos = self.len;
        if let Some(dst) = room(self.buf, pos, bytes.len()) {
            dst.copy_from_slice(bytes);
            self.len = pos + bytes.len();
        } else {
            self.overflow();
        }
    }

    #[inline(always)]
    fn write_padded(&mut self, padded: &[u8], len: usize) {
        let pos = self.len;
        // One copy of fixed size only: a second path copying `len` bytes would be
        // merged with it into a `memcpy` call. The room is sized for every padding.
        if let Some(dst) = room(self.buf, pos, padded.len()) {
            dst.copy_from_slice(padded);
            self.len = pos + len.min(padded.len());
        } else {
            self.overflow();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    #[test]
    fn vec_out_appends_after_what_the_vec_held() {
        let mut vec = vec![9u8];
        let mut out = VecOut::new(&mut vec);
        wire::put_i32(&mut out, 7);
        wire::put_bytes(&mut out, &[1u8; 600], false, "big").expect("encodes");
        drop(out);
        assert_eq!(vec.len(), 1 + 4 + 4 + 600);
        assert_eq!(&vec[..5], &[9, 0, 0, 0, 7]);
    }

    #[test]
    fn padded_writes_keep_only_their_length() {
        let mut vec = Vec::new();
        let mut out = VecOut::new(&mut vec);
        out.write_padded(&[1, 2, 3, 0, 0, 0, 0, 0], 3);
        out.write_byte(4);
        drop(out);
        assert_eq!(vec, [1, 2, 3, 4]);
    }

    /// A `Vec` or `BytesMut` sized for what is written is not grown for padding.
    #[test]
    fn padding_never_grows_an_exactly_sized_buffer() {
        let padded = [7u8; 36];
        let mut vec = Vec::with_capacity(9);
        vec.write_padded(&padded, 9);
        assert_eq!((vec.len(), vec.capacity()), (9, 9));
        let mut bytes = BytesMut::with_capacity(9);
        bytes.write_padded(&padded, 9);
        assert_eq!((bytes.len(), bytes.capacity()), (9, 9));
    }

    /// Every sink keeps exactly `padded[..len]` (all of it when `len` is longer).
    #[test]
    fn every_sink_writes_padded_bytes_as_a_slice() {
        let padded = [1u8, 2, 3, 4];
        for len in 0..=6 {
            let expected: Vec<u8> = [9].iter().chain(&padded[..len.min(4)]).copied().collect();
            let mut vec = vec![9u8];
            vec.write_padded(&padded, len);
            assert_eq!(vec, expected, "Vec, {len}");
            let mut bytes = BytesMut::from(&[9u8][..]);
            bytes.write_padded(&padded, len);
            assert_eq!(bytes[..], expected[..], "BytesMut, {len}");
            let mut chunked = ChunkedOut::new();
            chunked.write_byte(9);
            chunked.write_padded(&padded, len);
            assert_eq!(chunked.finish().concat(), expected, "ChunkedOut, {len}");
            let mut dest = BytesMut::new();
            let mut spill = SpillOut::new(&mut dest);
            spill.write_byte(9);
            spill.write_padded(&padded, len);
            spill.finish();
            assert_eq!(dest[..], expected[..], "SpillOut, {len}");
            let mut fast = Vec::new();
            let mut out = VecOut::new(&mut fast);
            out.write_byte(9);
            out.write_padded(&padded, len);
            drop(out);
            assert_eq!(fast, expected, "VecOut, {len}");
        }
    }

    #[test]
    fn only_vec_out_lends_room() {
        let mut vec = Vec::new();
        let mut out = VecOut::new(&mut vec);
        let room = out.spare(8).expect("VecOut lends room");
        room[..2].copy_from_slice(&[0, 7]);
        out.commit(2);
        drop(out);
        assert_eq!(vec, [0, 7]);
        assert!(Vec::<u8>::new().spare(8).is_none());
        assert!(BytesMut::new().spare(8).is_none());
    }

    #[test]
    fn spill_out_passes_large_writes_straight_through() {
        let mut dest = BytesMut::new();
        let mut out = SpillOut::new(&mut dest);
        wire::put_i32(&mut out, 7);
        wire::put_bytes(&mut out, &[1u8; 600], false, "big").expect("encodes");
        out.finish();
        assert_eq!(dest.len(), 4 + 4 + 600);
        assert_eq!(&dest[..8], &[0, 0, 0, 7, 0, 0, 2, 88]);
    }

    /// `VecOut` writes what a plain `Vec` does, whatever its starting length and
    /// capacity, through every kind of write (small, padded, large enough to bypass
    /// the zeroed room), and leaves no padding behind once dropped.
    #[test]
    fn vec_out_writes_what_a_vec_does() {
        for (start, capacity) in [(0, 0), (0, 10), (5, 5), (3, 300), (0, 1 << 16), (7, 70_000)] {
            let mut plain: Vec<u8> = Vec::with_capacity(capacity);
            plain.extend((0..start).map(|i| i as u8));
            let mut fast = plain.clone();
            fast.reserve(capacity.saturating_sub(fast.len()));
            {
                let mut out = VecOut::new(&mut fast);
                for i in 0..3_000usize {
                    let n = (i * 7) % 40;
                    let bytes: Vec<u8> = (0..n).map(|j| (i + j) as u8).collect();
                    for w in [&mut plain as &mut dyn Out, &mut out as &mut dyn Out] {
                        w.write_byte(i as u8);
                        w.write_slice(&bytes);
                        let mut padded = [0xeeu8; 24];
                        padded[..n.min(24)].copy_from_slice(&bytes[..n.min(24)]);
                        w.write_padded(&padded, n.min(24));
                        if i % 500 == 0 {
                            w.write_slice(&vec![i as u8; 600 + i]);
                        }
                    }
                }
                // Dropped here: cut back to what was written.
            }
            assert_eq!(
                fast.len(),
                plain.len(),
                "start {start}, capacity {capacity}"
            );
            assert!(fast == plain, "start {start}, capacity {capacity}");
        }
    }
}
