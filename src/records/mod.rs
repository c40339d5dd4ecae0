//! Record batches: RecordBatch v2 encode/decode, legacy message sets and compression.
