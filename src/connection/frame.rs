//! Kafka's framing: every request and response is a 4-byte big-endian size followed by
//! that many bytes.
//!
//! [`FrameDecoder`] splits a byte stream into frames. It checks each size prefix
//! against a maximum *before* it keeps any byte of the body, so a hostile or broken
//! peer cannot make it buffer more than one maximum-sized frame plus the chunk it was
//! just handed, and it never reserves memory from an untrusted length alone: the room
//! for a frame grows with the bytes that arrived, unless the caller said it expects
//! a frame that large (see [`FrameDecoder::read_buffer`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The default largest frame accepted from a broker: 100 MiB, as rskafka and franz-go use.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// Room [`FrameDecoder::read_buffer`] offers when no large frame is under way.
const READ_CHUNK: usize = 64 * 1024;
/// Less spare room than this is topped up to [`READ_CHUNK`] before a read.
const MIN_READ: usize = 4 * 1024;

/// Why the byte stream cannot be split into frames. Either is fatal to a connection:
/// the stream position is lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The size prefix announces more than the configured maximum.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The announced size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The size prefix is negative.
    #[error("negative frame size {0}")]
    NegativeSize(i32),
}

/// Splits a byte stream into size-prefixed frames.
///
/// ```
/// use kafka_sansio::connection::frame::FrameDecoder;
///
/// let mut decoder = FrameDecoder::new(1024);
/// decoder.extend(&[0, 0, 0, 3, b'a']);
/// assert_eq!(decoder.next_frame().unwrap(), None); // body incomplete
/// decoder.extend(b"bc\0\0");
/// assert_eq!(decoder.next_frame().unwrap().unwrap().as_ref(), b"abc");
/// assert_eq!(decoder.next_frame().unwrap(), None); // half a size prefix buffered
/// assert_eq!(decoder.buffered(), 2);
/// ```
pub struct FrameDecoder {
    max_frame_size: usize,
    /// `buf[..filled]` holds bytes received; `buf[filled..]` is zeroed (or stale)
    /// room lent to the caller by [`read_buffer`](Self::read_buffer).
    buf: BytesMut,
    filled: usize,
    /// Size of the frame whose prefix was already consumed from `buf`.
    body_len: Option<usize>,
    /// `buf` is the allocation made for an expected frame (see `last_frames`).
    buf_is_frame: bool,
    /// The last two expected frames handed out, shared with the caller (two: a
    /// consumer holds the response it is polling while the next one arrives).
    /// Once the caller drops every slice of one, this is its only handle, and the
    /// next expected frame is read into the same allocation: no new allocation,
    /// and only bytes past the old frame's length need zeroing (its own bytes are
    /// initialized already; the reader overwrites them).
    last_frames: [Bytes; 2],
}

/// Sizes only: the buffers hold whole responses.
impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("max_frame_size", &self.max_frame_size)
            .field("filled", &self.filled)
            .field("room", &(self.buf.len() - self.filled))
            .field("body_len", &self.body_len)
            .field(
                "last_frames_len",
                &[self.last_frames[0].len(), self.last_frames[1].len()],
            )
            .finish()
    }
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max_frame_size` bytes (the prefix excluded).
    #[must_use]
    pub fn new(max_frame_size: usize) -> Self {
        Self {
            max_frame_size,
            buf: BytesMut::new(),
            filled: 0,
            body_len: None,
            buf_is_frame: false,
            last_frames: [Bytes::new(), Bytes::new()],
        }
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.filled..self.filled + bytes.len()) {
            Some(room) => room.copy_from_slice(bytes),
            None => {
                self.buf.truncate(self.filled);
                self.buf.extend_from_slice(bytes);
            }
        }
        self.filled += bytes.len();
    }

    /// Room to read the next bytes of the stream into, without a copy: write them at
    /// its start and report how many with [`filled`](Self::filled). Returns at least
    /// one byte of room.
    ///
    /// While a frame larger than the room at hand is under way, the room grows with
    /// the bytes that arrived (doubling), never from the size prefix alone, unless
    /// the frame is at most `expected` bytes: the caller asked for a response that
    /// large (a Fetch's max bytes), so its room is made at once, exactly, and can be
    /// filled in one read. Pass 0 to expect nothing in particular.
    ///
    /// ```
    /// use kafka_sansio::connection::frame::FrameDecoder;
    ///
    /// let mut decoder = FrameDecoder::new(1 << 20);
    /// let room = decoder.read_buffer(0);
    /// room[..4].copy_from_slice(&200_000u32.to_be_bytes());
    /// decoder.filled(4);
    /// assert_eq!(decoder.next_frame().unwrap(), None);
    /// // Without the caller expecting it, a 200 kB frame's room grows as bytes come.
    /// assert!(decoder.read_buffer(0).len() < 200_000);
    /// // Expected: room for the whole body at once.
    /// assert_eq!(decoder.read_buffer(1 << 20).len(), 200_000);
    /// ```
    pub fn read_buffer(&mut self, expected: usize) -> &mut [u8] {
        let spare = self.buf.len() - self.filled;
        let missing = self
            .body_len
            .map_or(0, |len| len.saturating_sub(self.filled));
        if missing > spare {
            let len = self.filled + missing;
            if len <= expected {
                self.room_for_frame(missing, expected);
            } else {
                let room = missing.min(self.filled.max(READ_CHUNK));
                if room > spare {
                    self.regrow(room);
                }
            }
        } else if spare < MIN_READ && missing == 0 {
            self.regrow(READ_CHUNK);
        }
        &mut self.buf[self.filled..]
    }

    /// Moves the bytes received into a new zeroed buffer with `room` bytes after
    /// them, of exactly that size (`BytesMut::reserve` could double it). Dropping
    /// the old buffer lets go of the last expected frame's allocation when it was
    /// its remainder.
    fn regrow(&mut self, room: usize) {
        let mut buf = BytesMut::zeroed(self.filled + room);
        buf[..self.filled].copy_from_slice(&self.buf[..self.filled]);
        self.buf = buf;
        self.buf_is_frame = false;
    }

    /// Room for exactly the rest of an expected frame, in the allocation of a
    /// previous one whose frame the caller dropped (else in a new one, with
    /// capacity for any frame up to `expected` bytes, so that the next ones fit it:
    /// only the bytes of the frame are written, so the rest costs no memory).
    fn room_for_frame(&mut self, room: usize, expected: usize) {
        let len = self.filled + room;
        let mut reused = None;
        for slot in &mut self.last_frames {
            if reused.is_some() {
                break;
            }
            match std::mem::take(slot).try_into_mut() {
                // Ours alone again: its bytes are initialized, so only room past
                // them is zeroed.
                Ok(old) if old.capacity() >= len => reused = Some(old),
                // Too small: growing it would copy its stale bytes; let it go.
                Ok(_) => {}
                Err(held) => *slot = held,
            }
        }
        let mut buf = reused.unwrap_or_else(|| BytesMut::with_capacity(expected.max(len)));
        buf.truncate(len);
        buf.resize(len, 0);
        buf[..self.filled].copy_from_slice(&self.buf[..self.filled]);
        self.buf = buf;
        self.buf_is_frame = true;
    }

    /// The first `n` bytes of the room [`read_buffer`](Self::read_buffer) gave now
    /// hold bytes read from the stream (more than the room counts as all of it).
    pub fn filled(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// Bytes held that are not yet part of a returned frame.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.filled
    }

    /// How many more bytes end the frame being read: the rest of its size prefix
    /// (4 when nothing is held), or the rest of its body once the prefix is read. A
    /// reader that takes no more than this from the stream never holds a byte of the
    /// next frame (a server reading one request at a time, as Kafka's does).
    ///
    /// ```
    /// use kafka_sansio::connection::frame::FrameDecoder;
    ///
    /// let mut decoder = FrameDecoder::new(1024);
    /// assert_eq!(decoder.needed(), 4);
    /// decoder.extend(&[0, 0, 0, 3, b'a']);
    /// assert_eq!(decoder.next_frame().unwrap(), None);
    /// assert_eq!(decoder.needed(), 2);
    /// ```
    #[must_use]
    pub fn needed(&self) -> usize {
        match self.body_len {
            Some(len) => len.saturating_sub(self.filled),
            None => 4usize.saturating_sub(self.filled),
        }
    }

    /// Whether a frame has started (prefix or body bytes held) but not yet ended.
    #[must_use]
    pub fn is_mid_frame(&self) -> bool {
        self.body_len.is_some() || self.filled > 0
    }

    /// The next complete frame's body, `None` if more bytes are needed.
    ///
    /// # Errors
    /// A size prefix that is negative or above the maximum; the decoder must then be
    /// dropped, since the stream position is lost.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        let len = match self.body_len {
            Some(len) => len,
            None => {
                if self.filled < 4 {
                    return Ok(None);
                }
                let raw = self.buf.get_i32();
                self.filled -= 4;
                let len = usize::try_from(raw).map_err(|_| FrameError::NegativeSize(raw))?;
                if len > self.max_frame_size {
                    return Err(FrameError::TooLarge {
                        size: len,
                        max: self.max_frame_size,
                    });
                }
                self.body_len = Some(len);
                len
            }
        };
        if self.filled < len {
            return Ok(None);
        }
        self.body_len = None;
        self.filled -= len;
        let frame = self.buf.split_to(len).freeze();
        // The buffer was made for exactly this frame: keep a handle to read the
        // next expected frame into it once the caller is done with this one.
        if std::mem::take(&mut self.buf_is_frame) {
            // Newest first; with both slots taken, the older is forgotten.
            let [newer, older] = &mut self.last_frames;
            if older.is_empty() {
                *older = std::mem::replace(newer, frame.clone());
            } else if newer.is_empty() {
                *newer = frame.clone();
            } else {
                *older = std::mem::replace(newer, frame.clone());
            }
        }
        Ok(Some(frame))
    }
}

/// Writes a frame: the 4-byte size of `body` then `body`.
///
/// # Errors
/// A body longer than `i32::MAX` bytes, which the size prefix cannot express.
pub fn put_frame(out: &mut BytesMut, body: &[u8]) -> Result<(), FrameError> {
    let size = i32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        size: body.len(),
        max: i32::MAX as usize,
    })?;
    out.reserve(4 + body.len());
    out.put_i32(size);
    out.put_slice(body);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn oversized_prefix_rejected_before_body_arrives() {
        let mut d = FrameDecoder::new(10);
        d.extend(&[0, 0, 0, 11]);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge { size: 11, max: 10 })
        );
    }

    #[test]
    fn max_sized_frame_accepted() {
        let mut d = FrameDecoder::new(3);
        d.extend(&[0, 0, 0, 3, 1, 2, 3]);
        assert_eq!(d.next_frame().unwrap().unwrap().as_ref(), &[1, 2, 3]);
        assert!(!d.is_mid_frame());
    }

    #[test]
    fn negative_prefix_rejected() {
        let mut d = FrameDecoder::new(10);
        d.extend(&[0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(d.next_frame(), Err(FrameError::NegativeSize(-2)));
    }

    #[test]
    fn empty_frame_is_a_frame() {
        let mut d = FrameDecoder::new(10);
        d.extend(&[0, 0, 0, 0]);
        assert_eq!(d.next_frame().unwrap().unwrap().len(), 0);
    }

    /// Reads `stream` through `read_buffer`/`filled` in reads of at most `step`
    /// bytes, expecting frames up to `expected`; returns the frames.
    fn read_all(stream: &[u8], max: usize, expected: usize, step: usize) -> Vec<Vec<u8>> {
        let mut d = FrameDecoder::new(max);
        let mut got = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let room = d.read_buffer(expected);
            assert!(!room.is_empty());
            let n = room.len().min(step).min(stream.len() - at);
            room[..n].copy_from_slice(&stream[at..at + n]);
            d.filled(n);
            at += n;
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f.to_vec());
            }
        }
        assert!(!d.is_mid_frame());
        got
    }

    #[test]
    fn a_size_prefix_alone_never_buys_a_large_buffer() {
        let mut d = FrameDecoder::new(usize::MAX);
        d.extend(&(100_000_000u32).to_be_bytes());
        assert_eq!(d.next_frame(), Ok(None));
        assert!(d.read_buffer(0).len() <= READ_CHUNK);
        // Expecting less than announced changes nothing.
        assert!(d.read_buffer(1_000_000).len() <= READ_CHUNK);
        // The room grows with what arrived: at most doubling it.
        let room = d.read_buffer(0);
        let n = room.len();
        d.filled(n);
        assert!(d.read_buffer(0).len() <= n.max(READ_CHUNK));
    }

    #[test]
    fn needed_counts_bytes_received_not_room_lent() {
        let mut d = FrameDecoder::new(1024);
        let room = d.read_buffer(0);
        room[..5].copy_from_slice(&[0, 0, 0, 3, b'a']);
        d.filled(5);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.needed(), 2);
        assert_eq!(d.buffered(), 1);
    }

    #[test]
    fn an_expected_frame_is_read_in_one_go() {
        let body = vec![7u8; 300_000];
        let mut stream = BytesMut::new();
        put_frame(&mut stream, &body).unwrap();
        let mut d = FrameDecoder::new(1 << 20);
        let room = d.read_buffer(400_000);
        room[..4].copy_from_slice(&stream[..4]);
        d.filled(4);
        assert_eq!(d.next_frame(), Ok(None));
        let room = d.read_buffer(400_000);
        assert_eq!(room.len(), body.len(), "room for exactly the body");
        room.copy_from_slice(&body);
        d.filled(body.len());
        assert_eq!(d.next_frame().unwrap().unwrap(), body);
    }

    /// Writes `body`'s frame through `read_buffer`/`filled`, expecting `expected`.
    fn read_frame(d: &mut FrameDecoder, body: &[u8], expected: usize) -> Bytes {
        let mut stream = BytesMut::new();
        put_frame(&mut stream, body).unwrap();
        let mut at = 0;
        loop {
            if let Some(f) = d.next_frame().unwrap() {
                return f;
            }
            let room = d.read_buffer(expected);
            let n = room.len().min(stream.len() - at);
            room[..n].copy_from_slice(&stream[at..at + n]);
            d.filled(n);
            at += n;
        }
    }

    #[test]
    fn an_expected_frame_reuses_the_last_once_it_is_dropped() {
        let mut d = FrameDecoder::new(1 << 20);
        let first = read_frame(&mut d, &[1u8; 200_000], 300_000);
        let at = first.as_ptr();
        drop(first);
        // Dropped: the next expected frame, larger or smaller, goes where it was.
        let second = read_frame(&mut d, &[2u8; 250_000], 300_000);
        assert_eq!(second.as_ptr(), at);
        assert!(second.iter().all(|&b| b == 2));
        drop(second);
        let third = read_frame(&mut d, &[3u8; 100_000], 300_000);
        assert_eq!(third.as_ptr(), at);
        assert!(third.iter().all(|&b| b == 3) && third.len() == 100_000);
        // Held (a slice of it is enough): the next one gets a buffer of its own,
        // and the held bytes stay as they were.
        let kept = third.slice(10..20);
        drop(third);
        let fourth = read_frame(&mut d, &[4u8; 100_000], 300_000);
        assert_ne!(fourth.as_ptr(), at);
        assert!(fourth.iter().all(|&b| b == 4));
        assert_eq!(kept, [3u8; 10][..]);
        // As a consumer reads: the frame being polled is held while the next
        // arrives; once dropped, the frame after that goes into its allocation.
        drop(kept);
        let fifth = read_frame(&mut d, &[5u8; 100_000], 300_000);
        let (fourth_at, fifth_at) = (fourth.as_ptr(), fifth.as_ptr());
        drop(fourth);
        let sixth = read_frame(&mut d, &[6u8; 100_000], 300_000);
        assert_eq!(sixth.as_ptr(), fourth_at);
        assert!(fifth.iter().all(|&b| b == 5) && sixth.iter().all(|&b| b == 6));
        drop(fifth);
        let seventh = read_frame(&mut d, &[7u8; 100_000], 300_000);
        assert_eq!(seventh.as_ptr(), fifth_at);
        assert!(sixth.iter().all(|&b| b == 6) && seventh.iter().all(|&b| b == 7));
    }

    proptest! {
        /// Reading in place, in reads of any size, with any expectation, yields
        /// exactly the frames, in order.
        #[test]
        fn reads_in_place_yield_the_frames(
            bodies in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..3000), 0..8),
            expected in 0usize..4000,
            step in 1usize..5000,
        ) {
            let mut stream = BytesMut::new();
            for b in &bodies {
                put_frame(&mut stream, b).unwrap();
            }
            prop_assert_eq!(read_all(&stream, 3000, expected, step), bodies);
        }

        /// Frames the caller holds while later ones are read into reused buffers
        /// keep their bytes.
        #[test]
        fn held_frames_keep_their_bytes(
            bodies in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..3000), any::<bool>()), 0..12),
            expected in 0usize..4000,
        ) {
            let mut d = FrameDecoder::new(3000);
            let mut held = Vec::new();
            for (body, hold) in &bodies {
                let f = read_frame(&mut d, body, expected);
                prop_assert_eq!(&f[..], &body[..]);
                if *hold {
                    held.push((f, body));
                }
            }
            for (f, body) in held {
                prop_assert_eq!(&f[..], &body[..]);
            }
        }

        /// Reads in place and copies through `extend` mix freely.
        #[test]
        fn reads_in_place_and_extend_mix(
            bodies in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..200), 0..8),
            steps in proptest::collection::vec((any::<bool>(), 1usize..300), 1..40),
        ) {
            let mut stream = BytesMut::new();
            for b in &bodies {
                put_frame(&mut stream, b).unwrap();
            }
            let mut d = FrameDecoder::new(200);
            let mut got = Vec::new();
            let mut at = 0;
            let mut i = 0;
            while at < stream.len() {
                let (in_place, step) = steps[i % steps.len()];
                i += 1;
                let n = step.min(stream.len() - at);
                if in_place {
                    let room = d.read_buffer(0);
                    let n = n.min(room.len());
                    room[..n].copy_from_slice(&stream[at..at + n]);
                    d.filled(n);
                    at += n;
                } else {
                    d.extend(&stream[at..at + n]);
                    at += n;
                }
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f.to_vec());
                }
            }
            prop_assert_eq!(got, bodies);
            prop_assert!(!d.is_mid_frame());
        }

        /// Any split of a stream of frames yields exactly the frames, in order.
        #[test]
        fn any_chunking_yields_the_frames(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
            cuts in proptest::collection::vec(0usize..400, 0..10),
        ) {
            let mut stream = BytesMut::new();
            for b in &bodies {
                put_frame(&mut stream, b).unwrap();
            }
            let stream = stream.freeze();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.push(stream.len());
            cuts.sort_unstable();
            let mut d = FrameDecoder::new(40);
            let mut got = Vec::new();
            let mut at = 0;
            for c in cuts {
                d.extend(&stream[at..c]);
                at = c;
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f.to_vec());
                }
            }
            prop_assert_eq!(got, bodies);
            prop_assert!(!d.is_mid_frame());
        }

        /// Arbitrary bytes never panic the decoder and never yield a frame over the cap.
        #[test]
        fn arbitrary_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut d = FrameDecoder::new(16);
            d.extend(&input);
            while let Ok(Some(f)) = d.next_frame() {
                prop_assert!(f.len() <= 16);
            }
        }
    }
}
