//! Decoding hostile bytes never allocates more than the input or the configured
//! decompression limit justifies. A counting global allocator records the largest
//! single allocation; this file holds one test so nothing else runs beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use kafka_sansio::records::*;

struct Largest;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Largest = Largest;

fn sealed(codec: u8, count: i32, payload: &[u8]) -> Bytes {
    let mut raw = vec![0u8; 61];
    raw[16] = 2;
    raw[22] = codec;
    raw[57..61].copy_from_slice(&count.to_be_bytes());
    raw.extend_from_slice(payload);
    let len = (raw.len() - 12) as i32;
    raw[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(raw)
}

fn decode_all(buf: Bytes, opts: DecodeOptions) {
    for batch in BatchReader::new(buf, opts) {
        let Ok(batch) = batch else { return };
        if let Ok(records) = batch.records(&opts) {
            for r in records {
                let _ = r;
            }
        }
    }
}

#[test]
fn lying_lengths_and_counts_allocate_little() {
    let opts = DecodeOptions::default();
    let hostile: Vec<Bytes> = vec![
        // A batch that claims 2 GiB but is cut short: reported as partial.
        {
            let mut raw = sealed(0, 1, &[0; 20]).to_vec();
            raw[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
            Bytes::from(raw)
        },
        // Two billion records in 20 bytes.
        sealed(0, i32::MAX, &[0; 20]),
        // A record whose length and key length claim ~1 GiB.
        sealed(
            0,
            1,
            &[
                0xfe, 0xff, 0xff, 0xff, 0x07, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x07,
            ],
        ),
        // A header count of a billion.
        sealed(
            0,
            1,
            &[14, 0, 0, 0, 1, 1, 0xfe, 0xff, 0xff, 0xff, 0x07, 0, 0],
        ),
        // Raw snappy claiming 4 GiB, xerial-framed chunk claiming 4 GiB.
        sealed(2, 1, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]),
        sealed(
            2,
            1,
            &[
                0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5,
                0xff, 0xff, 0xff, 0xff, 0x0f,
            ],
        ),
        // LZ4 frame with 4 MiB blocks and a tiny block.
        sealed(
            3,
            1,
            &[
                0x04, 0x22, 0x4d, 0x18, 0x60, 0x70, 0x00, 4, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        // zstd frame header declaring a 1 TiB content size.
        sealed(
            4,
            1,
            &[
                0x28, 0xb5, 0x2f, 0xfd, 0xc4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
    ];
    LARGEST.store(0, Ordering::Relaxed);
    for buf in hostile {
        decode_all(buf, opts);
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    // Codec working state (zstd's context, inflate window) is allowed; nothing near
    // the lengths the input claims.
    assert!(
        largest < 1 << 20,
        "largest single allocation was {largest} bytes"
    );
}
