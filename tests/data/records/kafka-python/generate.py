"""Writes record batches and legacy message sets with kafka-python's own encoders.

kafka-python is an independent, pure-Python Kafka client; these files let the Rust
tests decode bytes that another implementation wrote. Run with a Python that has
kafka-python 3.0.12, lz4, python-snappy and zstandard installed:

    python3 generate.py

Contents (the Rust test tests/records_interop.rs rebuilds these expectations):
- v2_<codec>.bin, codec in none/gzip/snappy/lz4/zstd: one RecordBatch v2, base
  offset 0, transactional, producer id 4242, epoch 3, base sequence 17, 20 records.
  Record i: timestamp 1600000000000 + 3*i; key b"key-<i>" except null when i % 5 == 4;
  value b"value-<i>-" repeated i+1 times except null when i == 7; headers
  [("h", b"<i>"), ("h", None)] (a duplicate key and a null value).
- legacy_v<m>_<codec>.bin, m in 0/1, codec in none/gzip/snappy/lz4: 10 messages,
  record i: key b"key-<i>" (null when i % 5 == 4), value b"value-<i>-" * (i+1),
  timestamp 1600000000000 + 3*i for magic 1. Absolute offsets 500..509.
  Uncompressed: ten messages with offsets 500..509. Compressed: one wrapper whose
  offset field is patched to 509 (a broker does that; the field is outside the CRC);
  magic 0 inner offsets are absolute 500..509, magic 1 inner offsets are relative
  0..9. Magic-0 lz4 uses kafka-python's "old kafka" framing with the wrong header
  checksum (KAFKA-1493).
"""
import struct

from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
TS = 1600000000000


def v2(codec):
    b = DefaultRecordBatchBuilder(2, CODECS[codec], True, 4242, 3, 17, 1 << 20)
    for i in range(20):
        key = None if i % 5 == 4 else b"key-%d" % i
        value = None if i == 7 else (b"value-%d-" % i) * (i + 1)
        b.append(i, TS + 3 * i, key, value, [("h", b"%d" % i), ("h", None)])
    return bytes(b.build())


def legacy(magic, codec):
    b = LegacyRecordBatchBuilder(magic, CODECS[codec], 1 << 20)
    for i in range(10):
        key = None if i % 5 == 4 else b"key-%d" % i
        value = (b"value-%d-" % i) * (i + 1)
        offset = 500 + i if (magic == 0 or codec == "none") else i
        b.append(offset, TS + 3 * i if magic == 1 else None, key, value)
    out = bytearray(b.build())
    if codec != "none":
        struct.pack_into(">q", out, 0, 509)
    return bytes(out)


for codec in CODECS:
    with open("v2_%s.bin" % codec, "wb") as f:
        f.write(v2(codec))
for magic in (0, 1):
    for codec in ("none", "gzip", "snappy", "lz4"):
        with open("legacy_v%d_%s.bin" % (magic, codec), "wb") as f:
            f.write(legacy(magic, codec))
