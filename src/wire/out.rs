//! Where encoders write: [`Out`], implemented for `Vec<u8>`, [`BytesMut`] and, for any
//! other [`BufMut`], a [`SpillOut`] that gathers small writes in a scratch buffer.

use super::{BufMut, Bytes, BytesMut};

/// A byte sink for the `put_*` encoders.
///
/// Encoding a message is thousands of writes of 1 to 8 bytes; through a generic
/// `BufMut` each is a call with its own capacity check. `Out` is implemented directly
/// for `Vec<u8>` and `BytesMut`, and [`SpillOut`] adapts any other `BufMut` while
/// keeping small writes cheap.
pub trait Out {
    /// Appends `bytes`.
    fn write_slice(&mut self, bytes: &[u8]);

    /// Appends one byte.
    #[inline]
    fn write_byte(&mut self, byte: u8) {
        self.write_slice(&[byte]);
    }

    /// Appends bytes the caller holds as [`Bytes`]; a sink that can keep a reference
    /// instead of copying ([`ChunkedOut`]) does so.
    #[inline]
    fn write_shared(&mut self, bytes: &Bytes) {
        self.write_slice(bytes);
    }
}

impl Out for Vec<u8> {
    #[inline]
    fn write_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
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
    fn write_byte(&mut self, byte: u8) {
        (**self).write_byte(byte);
    }
}

/// Writes of at least this many bytes (record batches, large byte fields) go straight
/// to the destination instead of through the scratch buffer, so they are copied once.
pub const SPILL_THRESHOLD: usize = 512;

/// Gathers small writes in a `Vec<u8>` and hands them to a [`BufMut`] in large pieces;
/// writes of [`SPILL_THRESHOLD`] bytes or more go straight through. Call
/// [`SpillOut::finish`] at the end (dropping it without finishing loses the tail).
///
/// ```
/// use kafka_sansio::wire::{self, BytesMut, SpillOut};
/// let mut dest = BytesMut::new();
/// let mut out = SpillOut::new(&mut dest);
/// wire::put_i32(&mut out, 7);
/// wire::put_bytes(&mut out, &[1u8; 600], false, "big").unwrap();
/// out.finish();
/// assert_eq!(dest.len(), 4 + 4 + 600);
/// ```
pub struct SpillOut<'a, B: BufMut> {
    scratch: Vec<u8>,
    dest: &'a mut B,
}

impl<'a, B: BufMut> SpillOut<'a, B> {
    /// A sink writing into `dest`.
    pub fn new(dest: &'a mut B) -> Self {
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
    pub fn finish(mut self) {
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
}

/// Encodes without copying large byte fields: small writes are gathered into chunks,
/// and every [`Bytes`] field of [`SPILL_THRESHOLD`] bytes or more (record batches) is
/// kept as a reference to the caller's buffer. [`ChunkedOut::finish`] returns the
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
