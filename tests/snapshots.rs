//! Byte snapshots recorded between real clients and real brokers (see
//! tests/data/snapshots/README.md): every request and response decodes, nothing is
//! left over, and re-encoding gives the same bytes back.

use kafka_sansio::messages::{
    ApiKey, ApiVersionsResponse, ErrorCode, Message, RequestBody, RequestHeader, ResponseBody,
    ResponseHeader,
};
use kafka_sansio::wire::{Bytes, BytesMut};
use std::path::{Path, PathBuf};

struct Snapshot {
    file: PathBuf,
    name: String,
    request: bool,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    peer: String,
    client: String,
}

fn snapshots() -> Vec<Snapshot> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/snapshots");
    let manifest = std::fs::read_to_string(root.join("manifest.tsv")).expect("manifest.tsv");
    manifest
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let c: Vec<&str> = line.split('\t').collect();
            Snapshot {
                file: root.join(c[0]),
                name: c[0].to_string(),
                request: c[1] == "request",
                api_key: ApiKey::try_from(c[2].parse::<i16>().unwrap()).unwrap(),
                api_version: c[4].parse().unwrap(),
                correlation_id: c[5].parse().unwrap(),
                peer: c[6].to_string(),
                client: c[7].to_string(),
            }
        })
        .collect()
}

/// Bytes a peer appends after a complete message, as recorded (see the README's quirks):
/// librdkafka 2.0.2's mock writes an extra INT32 after each ListOffsets v5 partition
/// list, and 2.16's mock an extra byte after a Metadata v13 response. Kafka's own
/// readers ignore trailing bytes, and so does the test for these, and only these.
fn known_trailing_bytes(s: &Snapshot) -> usize {
    match (s.peer.as_str(), s.request, s.api_key, s.api_version) {
        ("mock-2.0.2", false, ApiKey::ListOffsets, 5) => 4,
        ("mock-2.16", false, ApiKey::Metadata, 13) => 1,
        _ => 0,
    }
}

/// Decodes one frame body (header + message) and re-encodes it.
fn decode_and_reencode(s: &Snapshot, bytes: &Bytes) -> Result<(Bytes, Decoded), String> {
    let mut buf = bytes.clone();
    let mut out = BytesMut::new();
    let decoded = if s.request {
        let hv = s.api_key.request_header_version(s.api_version);
        let header = RequestHeader::decode(&mut buf, hv).map_err(|e| e.to_string())?;
        if header.request_api_key != s.api_key.as_i16()
            || header.request_api_version != s.api_version
        {
            return Err(format!("header says {header:?}"));
        }
        let body =
            RequestBody::decode(s.api_key, &mut buf, s.api_version).map_err(|e| e.to_string())?;
        header.encode(&mut out, hv).map_err(|e| e.to_string())?;
        body.encode(&mut out, s.api_version)
            .map_err(|e| e.to_string())?;
        Decoded::Request(Box::new(header), Box::new(body))
    } else {
        let hv = s.api_key.response_header_version(s.api_version);
        let header = ResponseHeader::decode(&mut buf, hv).map_err(|e| e.to_string())?;
        let body =
            ResponseBody::decode(s.api_key, &mut buf, s.api_version).map_err(|e| e.to_string())?;
        header.encode(&mut out, hv).map_err(|e| e.to_string())?;
        body.encode(&mut out, s.api_version)
            .map_err(|e| e.to_string())?;
        Decoded::Response(Box::new(header), Box::new(body))
    };
    if buf.len() != known_trailing_bytes(s) {
        return Err(format!("{} bytes left over", buf.len()));
    }
    out.extend_from_slice(&buf);
    Ok((out.freeze(), decoded))
}

#[allow(dead_code)]
enum Decoded {
    Request(Box<RequestHeader>, Box<ResponseBodyOrRequest>),
    Response(Box<ResponseHeader>, Box<ResponseBody>),
}
type ResponseBodyOrRequest = RequestBody;

/// librdkafka's mock answers ApiVersions v3/v4 with a reply that is not valid at any
/// version (see the snapshot README); a client must read the error code alone.
fn is_mock_malformed_api_versions(s: &Snapshot) -> bool {
    !s.request
        && s.api_key == ApiKey::ApiVersions
        && s.api_version >= 3
        && s.peer.starts_with("mock-")
}

/// librdkafka's mock writes a null host (INT16 -1) in a FindCoordinator v2 error
/// response, where the schema's STRING is not nullable. Kafka's Java client refuses that
/// too; we report exactly which field broke, and where.
fn is_mock_null_coordinator_host(s: &Snapshot) -> bool {
    !s.request
        && s.api_key == ApiKey::FindCoordinator
        && s.peer.starts_with("mock-")
        && s.client.ends_with("-faults")
}

/// tansu writes tagged fields even when they hold their defaults (ApiVersions v3's
/// features, Fetch v16's empty NodeEndpoints); we keep the values but, like Kafka's own
/// encoder, leave default tagged fields out, so only the values can be compared.
fn writes_default_tagged_fields(s: &Snapshot) -> bool {
    !s.request
        && s.peer.starts_with("tansu")
        && s.api_key.flexible_versions().contains(s.api_version)
}

#[test]
fn every_snapshot_decodes_and_reencodes_byte_for_byte() {
    let all = snapshots();
    assert!(all.len() > 400, "only {} snapshots", all.len());
    let mut failures = Vec::new();
    let mut exact = 0;
    for s in &all {
        let bytes = Bytes::from(std::fs::read(&s.file).unwrap());
        if is_mock_malformed_api_versions(s) {
            continue;
        }
        if is_mock_null_coordinator_host(s) {
            let err = decode_and_reencode(s, &bytes).err().unwrap_or_default();
            assert!(
                err.contains("FindCoordinatorResponse.Host") && err.contains("null"),
                "{}: {err}",
                s.name
            );
            continue;
        }
        match decode_and_reencode(s, &bytes) {
            Ok((again, _)) if again == bytes => exact += 1,
            Ok((again, _)) if writes_default_tagged_fields(s) => {
                // Same values: decoding our shorter encoding gives what theirs gave.
                let (_, ours) = decode_and_reencode(s, &again).unwrap();
                let (_, theirs) = decode_and_reencode(s, &bytes).unwrap();
                match (ours, theirs) {
                    (Decoded::Response(_, a), Decoded::Response(_, b)) => {
                        assert_eq!(a, b, "{}", s.name)
                    }
                    _ => unreachable!(),
                }
            }
            Ok((again, _)) => failures.push(format!(
                "{}: re-encoded to different bytes\n ours:   {:02x?}\n theirs: {:02x?}",
                s.name,
                &again[..again.len().min(96)],
                &bytes[..bytes.len().min(96)]
            )),
            Err(e) => failures.push(format!("{}: {e}", s.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    assert!(exact > 380, "only {exact} exact");
}

#[test]
fn the_mock_rejects_api_versions_v3_with_an_error_code_a_client_can_read() {
    let mut seen = 0;
    for s in snapshots()
        .iter()
        .filter(|s| is_mock_malformed_api_versions(s))
    {
        let bytes = Bytes::from(std::fs::read(&s.file).unwrap());
        // At the requested version the reply does not decode to a whole message: its
        // one-byte count reads as an empty compact array and the rest is left over.
        let mut body = bytes.slice(4..);
        let whole =
            ApiVersionsResponse::decode(&mut body, s.api_version).is_ok() && body.is_empty();
        assert!(!whole, "{}", s.name);
        // The error code, right after the correlation id, says UNSUPPORTED_VERSION.
        let code = i16::from_be_bytes([bytes[4], bytes[5]]);
        assert_eq!(
            ErrorCode::from(code),
            ErrorCode::UNSUPPORTED_VERSION,
            "{}",
            s.name
        );
        seen += 1;
    }
    assert!(seen >= 4, "only {seen}");
}

#[test]
fn snapshots_carry_the_values_the_clients_sent() {
    use kafka_sansio::messages::{CreateTopicsRequest, MetadataResponse, ProduceRequest};
    let mut created = Vec::new();
    let mut checked = 0;
    for s in snapshots() {
        let bytes = Bytes::from(std::fs::read(&s.file).unwrap());
        if is_mock_malformed_api_versions(&s) || is_mock_null_coordinator_host(&s) {
            continue;
        }
        let (_, decoded) = decode_and_reencode(&s, &bytes).unwrap();
        match decoded {
            Decoded::Request(header, body) => {
                assert_eq!(header.correlation_id, s.correlation_id, "{}", s.name);
                if header.request_api_key != ApiKey::ControlledShutdown.as_i16() {
                    assert_eq!(
                        header.client_id.as_deref(),
                        Some("kafka-sansio-capture"),
                        "{}",
                        s.name
                    );
                }
                if let RequestBody::CreateTopics(CreateTopicsRequest { topics, .. }) = &*body {
                    created.extend(
                        topics
                            .iter()
                            .map(|t| (t.name.to_string(), t.num_partitions)),
                    );
                }
                if let RequestBody::Produce(ProduceRequest { topic_data, .. }) = *body {
                    assert!(!topic_data.is_empty(), "{}", s.name);
                    let records = topic_data[0].partition_data[0].records.as_ref().unwrap();
                    assert!(!records.is_empty(), "{}", s.name);
                    checked += 1;
                }
            }
            Decoded::Response(header, body) => {
                assert_eq!(header.correlation_id, s.correlation_id, "{}", s.name);
                if let ResponseBody::Metadata(MetadataResponse { brokers, .. }) = *body {
                    assert!(!brokers.is_empty(), "{}: no brokers", s.name);
                    for b in &brokers {
                        assert_eq!(b.host, "127.0.0.1", "{}", s.name);
                        assert!(b.port > 0);
                    }
                    // The plain kcat captures on the mock ran a 3-broker cluster.
                    let kcat = s.client == "kcat-2.0.2" || s.client == "kcat-2.16";
                    let expected = if s.peer.starts_with("mock") && kcat {
                        3
                    } else {
                        1
                    };
                    assert_eq!(brokers.len(), expected, "{}", s.name);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 18, "only {checked} checked");
    assert!(created.len() >= 4, "{created:?}");
    assert!(
        created
            .iter()
            .all(|(name, partitions)| !name.is_empty() && *partitions != 0),
        "{created:?}"
    );
}
