//! Round trips and known encodings for every primitive type of the Kafka protocol.

use kafka_sansio::wire::{
    self, ByteString, Bytes, BytesMut, DecodeErrorKind, RawTaggedField, Uuid,
};
use proptest::prelude::*;

fn encoded(f: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::new();
    f(&mut b);
    b.freeze()
}

proptest! {
    #[test]
    fn fixed_width_integers(a: i8, b: i16, c: u16, d: i32, e: u32, f: i64, g: bool) {
        let mut buf = encoded(|o| {
            wire::put_i8(o, a); wire::put_i16(o, b); wire::put_u16(o, c); wire::put_i32(o, d);
            wire::put_u32(o, e); wire::put_i64(o, f); wire::put_bool(o, g);
        });
        prop_assert_eq!(buf.len(), 1 + 2 + 2 + 4 + 4 + 8 + 1);
        prop_assert_eq!(wire::read_i8(&mut buf, "a").unwrap(), a);
        prop_assert_eq!(wire::read_i16(&mut buf, "b").unwrap(), b);
        prop_assert_eq!(wire::read_u16(&mut buf, "c").unwrap(), c);
        prop_assert_eq!(wire::read_i32(&mut buf, "d").unwrap(), d);
        prop_assert_eq!(wire::read_u32(&mut buf, "e").unwrap(), e);
        prop_assert_eq!(wire::read_i64(&mut buf, "f").unwrap(), f);
        prop_assert_eq!(wire::read_bool(&mut buf, "g").unwrap(), g);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn float64_keeps_its_bits(bits: u64) {
        let v = f64::from_bits(bits);
        let mut buf = encoded(|o| wire::put_f64(o, v));
        prop_assert_eq!(wire::read_f64(&mut buf, "f").unwrap().to_bits(), bits);
    }

    #[test]
    fn varints(a: i32, b: i64, c: u32, d: u64) {
        let mut buf = encoded(|o| {
            wire::put_varint(o, a); wire::put_varlong(o, b);
            wire::put_unsigned_varint(o, c); wire::put_unsigned_varlong(o, d);
        });
        prop_assert_eq!(
            buf.len(),
            wire::varint_len(a) + wire::varlong_len(b)
                + wire::unsigned_varint_len(u64::from(c)) + wire::unsigned_varint_len(d)
        );
        prop_assert_eq!(wire::read_varint(&mut buf, "a").unwrap(), a);
        prop_assert_eq!(wire::read_varlong(&mut buf, "b").unwrap(), b);
        prop_assert_eq!(wire::read_unsigned_varint(&mut buf, "c").unwrap(), c);
        prop_assert_eq!(wire::read_unsigned_varlong(&mut buf, "d").unwrap(), d);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn uuids(v: u128) {
        let id = Uuid::from_u128(v);
        let mut buf = encoded(|o| wire::put_uuid(o, &id));
        prop_assert_eq!(wire::read_uuid(&mut buf, "id").unwrap(), id);
    }

    #[test]
    fn strings_in_both_encodings(s in ".{0,64}", compact: bool, null: bool) {
        let value = (!null).then(|| s.clone());
        let mut buf = encoded(|o| {
            wire::put_string(o, &s, compact, "s").unwrap();
            wire::put_nullable_string(o, value.as_deref(), compact, "n").unwrap();
        });
        prop_assert_eq!(wire::read_string(&mut buf, compact, "s").unwrap(), s.as_str());
        let back = wire::read_nullable_string(&mut buf, compact, "n").unwrap();
        prop_assert_eq!(back.as_deref(), value.as_deref());
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn bytes_in_both_encodings(b in proptest::collection::vec(any::<u8>(), 0..300), compact: bool, null: bool) {
        let value = (!null).then(|| b.clone());
        let mut buf = encoded(|o| {
            wire::put_bytes(o, &b, compact, "b").unwrap();
            wire::put_nullable_bytes(o, value.as_deref(), compact, "n").unwrap();
        });
        prop_assert_eq!(&wire::read_bytes(&mut buf, compact, "b").unwrap()[..], &b[..]);
        let back = wire::read_nullable_bytes(&mut buf, compact, "n").unwrap();
        prop_assert_eq!(back.as_deref(), value.as_deref());
    }

    #[test]
    fn arrays_in_both_encodings(items in proptest::collection::vec(any::<i32>(), 0..200), compact: bool, null: bool) {
        let mut buf = encoded(|o| {
            wire::put_array_len(o, Some(items.len()), compact, "a").unwrap();
            for i in &items { wire::put_i32(o, *i); }
            wire::put_array_len(o, if null { None } else { Some(0) }, compact, "n").unwrap();
        });
        let back = wire::read_array(&mut buf, compact, 4, "a", |b| wire::read_i32(b, "a")).unwrap();
        prop_assert_eq!(back, items);
        let n = wire::read_nullable_array(&mut buf, compact, 4, "n", |b| wire::read_i32(b, "n")).unwrap();
        prop_assert_eq!(n, if null { None } else { Some(vec![]) });
    }

    #[test]
    fn raw_tagged_fields(tags in proptest::collection::btree_set(any::<u32>(), 0..6), data in proptest::collection::vec(any::<u8>(), 0..40)) {
        let fields: Vec<RawTaggedField> = tags.iter().map(|&tag| RawTaggedField { tag, data: Bytes::from(data.clone()) }).collect();
        let mut buf = encoded(|o| wire::put_raw_tagged_fields(o, &fields, "t").unwrap());
        prop_assert_eq!(wire::read_raw_tagged_fields(&mut buf, "t").unwrap(), fields);
        prop_assert!(buf.is_empty());
    }
}

/// A length prefix as the wire may carry it: a compact varint of `len + 1` (padded
/// to `width` bytes with continuation bits, as a peer may legally do), or a fixed
/// INT32 / INT16 (a negative `len` is written as is).
fn length_prefix(len: i64, compact: bool, wide: bool, width: usize) -> Vec<u8> {
    if compact {
        let mut v = (len + 1) as u64;
        let mut out = Vec::new();
        loop {
            let last = v < 0x80 && out.len() + 1 >= width;
            out.push((v & 0x7f) as u8 | if last { 0 } else { 0x80 });
            v >>= 7;
            if last {
                return out;
            }
        }
    } else if wide {
        (len as i32).to_be_bytes().to_vec()
    } else {
        (len as i16).to_be_bytes().to_vec()
    }
}

proptest! {
    /// The readers take a fast path for the usual prefixes and a general one for the
    /// rest; whichever runs, a value is exactly the bytes after its prefix, and an
    /// error consumes nothing.
    #[test]
    fn length_prefixed_values_are_exact_or_consume_nothing(
        len in -2i64..300,
        width in 1usize..7,
        compact: bool,
        avail in 0usize..310,
        seed: u8,
    ) {
        let payload: Vec<u8> = (0..avail).map(|i| b'a' + ((i + usize::from(seed)) % 26) as u8).collect();
        for wide in [false, true] {
            let prefix = length_prefix(len, compact, wide, width);
            let input: Vec<u8> = prefix.iter().chain(&payload).copied().collect();
            let fits = len >= 0 && len as usize <= avail;
            let consumed = |rest: &Bytes| input.len() - rest.len();
            let expect = |value: &[u8], rest: &Bytes| {
                consumed(rest) == prefix.len() + value.len() && value == &payload[..value.len()]
            };

            let mut b = Bytes::from(input.clone());
            let r = if wide { wire::read_nullable_bytes(&mut b, compact, "f") } else {
                wire::read_nullable_string(&mut b, compact, "f").map(|s| s.map(|s| s.into_bytes()))
            };
            match r {
                Ok(Some(v)) => prop_assert!(fits && expect(&v, &b)),
                Ok(None) => prop_assert!(len == -1 && consumed(&b) == prefix.len()),
                Err(_) => prop_assert_eq!(b.len(), input.len()),
            }

            let mut b = Bytes::from(input.clone());
            let r = if wide { wire::read_bytes(&mut b, compact, "f") } else {
                wire::read_string(&mut b, compact, "f").map(|s| s.into_bytes())
            };
            match r {
                Ok(v) => prop_assert!(fits && expect(&v, &b)),
                Err(_) => prop_assert_eq!(b.len(), input.len()),
            }

            if wide {
                let mut b = Bytes::from(input.clone());
                match wire::read_array_len(&mut b, compact, 2, "f") {
                    Ok(Some(n)) => prop_assert!(len >= 0 && n == len as usize && 2 * n <= avail
                        && consumed(&b) == prefix.len()),
                    Ok(None) => prop_assert!(len == -1 && consumed(&b) == prefix.len()),
                    Err(_) => prop_assert_eq!(b.len(), input.len()),
                }
            }
        }
    }
}

/// Encodings written down from the protocol guide, checked in both directions.
#[test]
fn known_encodings() {
    // Zig-zag varints: 0, -1, 1, -2, 63, -64, 64, i32::MIN.
    let cases: &[(i32, &[u8])] = &[
        (0, &[0x00]),
        (-1, &[0x01]),
        (1, &[0x02]),
        (-2, &[0x03]),
        (63, &[0x7e]),
        (-64, &[0x7f]),
        (64, &[0x80, 0x01]),
        (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];
    for (v, bytes) in cases {
        assert_eq!(&encoded(|o| wire::put_varint(o, *v))[..], *bytes, "{v}");
        assert_eq!(
            wire::read_varint(&mut Bytes::from_static(bytes), "v").unwrap(),
            *v
        );
    }
    assert_eq!(
        &encoded(|o| wire::put_unsigned_varint(o, 300))[..],
        &[0xac, 0x02]
    );
    // STRING "hi": int16 length then bytes; COMPACT_STRING: length + 1 as a varint.
    assert_eq!(
        &encoded(|o| wire::put_string(o, "hi", false, "s").unwrap())[..],
        b"\x00\x02hi"
    );
    assert_eq!(
        &encoded(|o| wire::put_string(o, "hi", true, "s").unwrap())[..],
        b"\x03hi"
    );
    // Null markers: -1 as int16 / int32, 0 as a compact length.
    assert_eq!(
        &encoded(|o| wire::put_nullable_string(o, None, false, "s").unwrap())[..],
        b"\xff\xff"
    );
    assert_eq!(
        &encoded(|o| wire::put_nullable_bytes(o, None, false, "b").unwrap())[..],
        b"\xff\xff\xff\xff"
    );
    assert_eq!(
        &encoded(|o| wire::put_nullable_string(o, None, true, "s").unwrap())[..],
        b"\x00"
    );
    // Any non-zero byte reads as true, as Kafka's Java reader does.
    assert!(wire::read_bool(&mut Bytes::from_static(&[2]), "b").unwrap());
}

#[test]
fn decoded_strings_and_bytes_share_the_input_buffer() {
    let input = encoded(|o| {
        wire::put_string(o, "zero-copy", true, "s").unwrap();
        wire::put_bytes(o, b"payload", true, "b").unwrap();
    });
    let base = input.as_ptr() as usize;
    let mut buf = input.clone();
    let s: ByteString = wire::read_string(&mut buf, true, "s").unwrap();
    let b = wire::read_bytes(&mut buf, true, "b").unwrap();
    assert_eq!(s.as_ptr() as usize, base + 1);
    assert_eq!(b.as_ptr() as usize, base + 1 + 9 + 1);
}

#[test]
fn uuid_text_forms() {
    let id = Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
    assert_eq!(id.to_hyphenated(), "01234567-89ab-cdef-fedc-ba9876543210");
    assert_eq!(id.to_string().len(), 22);
    assert_eq!(Uuid::ZERO.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
}

#[test]
fn too_long_for_the_length_prefix_is_an_encode_error() {
    let long = "x".repeat(i16::MAX as usize + 1);
    let err = wire::put_string(&mut BytesMut::new(), &long, false, "T.name").unwrap_err();
    assert!(err.to_string().contains("T.name"), "{err}");
    // The compact form has room for it.
    wire::put_string(&mut BytesMut::new(), &long, true, "T.name").unwrap();
}

#[test]
fn unordered_unknown_tags_are_refused_on_encode() {
    let fields = [
        RawTaggedField {
            tag: 5,
            data: Bytes::new(),
        },
        RawTaggedField {
            tag: 2,
            data: Bytes::new(),
        },
    ];
    assert!(wire::put_raw_tagged_fields(&mut BytesMut::new(), &fields, "t").is_err());
    // And on decode: tags must ascend (KIP-482).
    let mut buf = Bytes::from_static(&[2, 5, 0, 2, 0]);
    let err = wire::read_raw_tagged_fields(&mut buf, "t").unwrap_err();
    assert!(matches!(
        err.kind,
        DecodeErrorKind::TaggedFieldOrder {
            previous: 5,
            tag: 2
        }
    ));
}

/// A sink that lends room through `Out::spare`, `short` bytes less than asked for
/// (breaking the trait's promise of exactly `n` when `short > 0`), and counts the
/// lends that were committed.
struct LendingSink {
    bytes: Vec<u8>,
    room: Vec<u8>,
    short: usize,
    lent: usize,
    commits: usize,
}

impl kafka_sansio::wire::Out for LendingSink {
    fn write_slice(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    fn spare(&mut self, n: usize) -> Option<&mut [u8]> {
        self.lent = n.saturating_sub(self.short);
        self.room.clear();
        self.room.resize(self.lent, 0xee);
        Some(&mut self.room)
    }

    fn commit(&mut self, len: usize) {
        assert!(len <= self.lent, "commit {len} of {} lent", self.lent);
        self.bytes.extend_from_slice(&self.room[..len]);
        self.commits += 1;
    }
}

/// Generated encoders gather a struct of fixed-width fields and short lists (a
/// Metadata partition) in room the sink lends. When the room is short, whether a
/// sink lends less than asked or the generator sized it wrong, the struct is written
/// again the plain way: the bytes are exactly a `Vec`'s, never cut short.
#[test]
fn a_sink_lending_short_room_still_gets_every_byte() {
    use kafka_sansio::messages::metadata_response::{
        MetadataResponse, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_sansio::wire::Message;
    let partitions = (0..40)
        .map(|p: i32| MetadataResponsePartition {
            partition_index: p,
            leader_id: p % 3,
            leader_epoch: p * 1000,
            replica_nodes: vec![p % 3, (p + 1) % 3, (p + 2) % 3].into(),
            isr_nodes: vec![p % 3; (p % 4) as usize].into(),
            ..Default::default()
        })
        .collect();
    let response = MetadataResponse {
        topics: vec![MetadataResponseTopic {
            name: Some("events".into()),
            partitions,
            ..Default::default()
        }],
        ..Default::default()
    };
    for version in [1i16, 8, 9, 12] {
        let mut plain = Vec::new();
        response.encode_into(&mut plain, version).expect("encode");
        for short in [0usize, 1, 7, 40, 1000] {
            let mut sink = LendingSink {
                bytes: Vec::new(),
                room: Vec::new(),
                short,
                lent: 0,
                commits: 0,
            };
            response.encode_into(&mut sink, version).expect("encode");
            assert!(sink.bytes == plain, "v{version}, room {short} bytes short");
            match short {
                // Room lent in full is used: one gathered write per partition.
                0 => assert_eq!(sink.commits, 40, "v{version}"),
                // No room at all: every partition was written the plain way.
                1000 => assert_eq!(sink.commits, 0, "v{version}"),
                _ => {}
            }
        }
    }
}
