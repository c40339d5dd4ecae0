//! Kafka's framing: every request and response is a 4-byte big-endian size followed by
//! that many bytes.
//!
//! [`FrameDecoder`] splits a byte stream into frames. It checks each size prefix
//! against a maximum *before* it keeps any byte of the body, so a hostile or broken
//! peer cannot make it buffer more than one maximum-sized frame plus the chunk it was
//! just handed, and it never reserves memory from an untrusted length.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The default largest frame accepted from a broker: 100 MiB, as rskafka and franz-go use.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

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
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_size: usize,
    buf: BytesMut,
    /// Size of the frame whose prefix was already consumed from `buf`.
    body_len: Option<usize>,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max_frame_size` bytes (the prefix excluded).
    #[must_use]
    pub fn new(max_frame_size: usize) -> Self {
        Self {
            max_frame_size,
            buf: BytesMut::new(),
            body_len: None,
        }
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet part of a returned frame.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
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
            Some(len) => len.saturating_sub(self.buf.len()),
            None => 4usize.saturating_sub(self.buf.len()),
        }
    }

    /// Whether a frame has started (prefix or body bytes held) but not yet ended.
    #[must_use]
    pub fn is_mid_frame(&self) -> bool {
        self.body_len.is_some() || !self.buf.is_empty()
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
                if self.buf.len() < 4 {
                    return Ok(None);
                }
                let raw = self.buf.get_i32();
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
        if self.buf.len() < len {
            return Ok(None);
        }
        self.body_len = None;
        Ok(Some(self.buf.split_to(len).freeze()))
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

    proptest! {
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
