//! A tour of the codec layers with bytes no one here wrote: encode a real request,
//! then decode a Fetch response that the tansu broker sent to confluent-kafka
//! (recorded in tests/data/snapshots/), down to its records.
//!
//! ```text
//! cargo run --example codec_tour
//! ```

use kafka_sansio::messages::{
    ApiKey, ApiVersionsRequest, FetchResponse, Message, RequestHeader, ResponseHeader,
};
use kafka_sansio::records::{BatchReader, DecodeOptions};
use kafka_sansio::wire::{BufMut, Bytes, BytesMut};

const FETCH_V16_FROM_TANSU: &[u8] = include_bytes!(
    "../tests/data/snapshots/tansu-0.6.0/confluent-kafka-2.16.1/013_Fetch_v16_response.bin"
);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A request frame: size prefix, request header, body.
    let version = 3;
    let header = RequestHeader {
        request_api_key: ApiKey::ApiVersions.as_i16(),
        request_api_version: version,
        correlation_id: 1,
        client_id: Some("codec-tour".into()),
        ..Default::default()
    };
    let body = ApiVersionsRequest {
        client_software_name: "kafka-sansio".into(),
        client_software_version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    let mut frame = BytesMut::new();
    frame.put_i32(0); // patched below
    header.encode(
        &mut frame,
        ApiKey::ApiVersions.request_header_version(version),
    )?;
    body.encode(&mut frame, version)?;
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    println!(
        "ApiVersions v{version} request, {} bytes on the wire:",
        frame.len()
    );
    println!("  {}", hex(&frame));

    // 2. A response a real broker sent: header, then the body at the request's version.
    let mut input = Bytes::from_static(FETCH_V16_FROM_TANSU);
    let response_header =
        ResponseHeader::decode(&mut input, ApiKey::Fetch.response_header_version(16))?;
    let fetch = FetchResponse::decode(&mut input, 16)?;
    println!(
        "\nFetch v16 response from tansu (correlation id {}): error {}, {} topic(s)",
        response_header.correlation_id,
        fetch.error_code,
        fetch.responses.len()
    );
    for topic in &fetch.responses {
        for partition in &topic.partitions {
            println!(
                "  topic id {} partition {}: high watermark {}, log start {}",
                topic.topic_id,
                partition.partition_index,
                partition.high_watermark,
                partition.log_start_offset
            );
            // 3. The records field is raw bytes here; the record layer decodes it lazily.
            let opts = DecodeOptions::default();
            let Some(records) = partition.records.clone() else {
                continue;
            };
            for batch in BatchReader::new(records, opts) {
                for record in batch?.records(&opts)? {
                    let r = record?;
                    let key = r.key().map(String::from_utf8_lossy);
                    let value = r.value().map(String::from_utf8_lossy);
                    let headers: Vec<String> = r
                        .headers()
                        .map(|h| {
                            format!(
                                "{}={}",
                                String::from_utf8_lossy(h.key),
                                h.value.map(String::from_utf8_lossy).unwrap_or_default()
                            )
                        })
                        .collect();
                    println!(
                        "    offset {}: key {key:?} value {value:?} headers {headers:?}",
                        r.offset
                    );
                }
            }
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
