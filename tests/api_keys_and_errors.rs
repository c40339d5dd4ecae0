//! The API key table, header version rules, request/response bindings and error codes.

use kafka_sansio::messages::{
    ApiKey, ApiVersionsRequest, ErrorCode, FetchRequest, Message, MetadataRequest, ProduceRequest,
    Request, RequestBody, RequestHeader, ResponseBody, ResponseHeader,
};
use kafka_sansio::wire::{Bytes, BytesMut, VersionRange};

#[test]
fn all_88_api_keys_round_trip_through_their_number() {
    assert_eq!(ApiKey::ALL.len(), 88);
    for (i, key) in ApiKey::ALL.iter().enumerate() {
        assert_eq!(key.as_i16(), i as i16);
        assert_eq!(ApiKey::try_from(i as i16), Ok(*key));
        assert!(!key.valid_versions().is_empty(), "{key}");
    }
    assert!(ApiKey::try_from(88).is_err());
    assert!(ApiKey::try_from(-1).is_err());
    assert_eq!(ApiKey::Produce.name(), "Produce");
    assert_eq!(ApiKey::try_from(18).unwrap(), ApiKey::ApiVersions);
}

#[test]
fn version_ranges_match_the_schemas() {
    // Spot checks against api-versions.tsv of the spec this was generated from.
    assert_eq!(
        ApiKey::Produce.valid_versions(),
        VersionRange { min: 0, max: 11 }
    );
    assert_eq!(
        ApiKey::Produce.flexible_versions(),
        VersionRange { min: 9, max: 11 }
    );
    assert_eq!(
        ApiKey::Produce.deprecated_versions(),
        VersionRange { min: 0, max: 6 }
    );
    assert_eq!(
        ApiKey::Fetch.valid_versions(),
        VersionRange { min: 0, max: 17 }
    );
    assert_eq!(
        ApiKey::SaslHandshake.flexible_versions(),
        VersionRange::EMPTY
    );
    assert_eq!(
        ApiKey::OffsetDelete.flexible_versions(),
        VersionRange::EMPTY
    );
    assert!(ApiKey::ShareFetch.latest_version_unstable());
    assert!(!ApiKey::Metadata.latest_version_unstable());
    assert_eq!(
        ApiKey::ApiVersions.valid_versions(),
        ApiVersionsRequest::VALID_VERSIONS
    );
    // Generated message constants agree with the API table for every key.
    assert_eq!(FetchRequest::VALID_VERSIONS, ApiKey::Fetch.valid_versions());
    assert_eq!(
        FetchRequest::FLEXIBLE_VERSIONS,
        ApiKey::Fetch.flexible_versions()
    );
}

#[test]
fn header_versions_follow_the_protocol_rules() {
    assert_eq!(ApiKey::Produce.request_header_version(8), 1);
    assert_eq!(ApiKey::Produce.request_header_version(9), 2);
    assert_eq!(ApiKey::Produce.response_header_version(8), 0);
    assert_eq!(ApiKey::Produce.response_header_version(9), 1);
    assert_eq!(ApiKey::ControlledShutdown.request_header_version(0), 0);
    assert_eq!(ApiKey::ControlledShutdown.request_header_version(1), 1);
    // ApiVersions responses always use header v0, even at flexible versions.
    assert_eq!(ApiKey::ApiVersions.request_header_version(3), 2);
    assert_eq!(ApiKey::ApiVersions.response_header_version(3), 0);
    assert_eq!(ApiKey::SaslHandshake.request_header_version(1), 1);
}

#[test]
fn requests_name_their_key_and_response() {
    fn response_name<R: Request>() -> &'static str {
        <R::Response as Message>::NAME
    }
    assert_eq!(ProduceRequest::API_KEY, ApiKey::Produce);
    assert_eq!(response_name::<ProduceRequest>(), "ProduceResponse");
    assert_eq!(MetadataRequest::API_KEY, ApiKey::Metadata);
    assert_eq!(response_name::<MetadataRequest>(), "MetadataResponse");
}

#[test]
fn request_header_v2_keeps_the_client_id_non_compact() {
    // KIP-482: the client id stays a classic nullable string so old brokers can read
    // any ApiVersions request; only the tagged fields are added in v2.
    let header = RequestHeader {
        request_api_key: 18,
        request_api_version: 3,
        correlation_id: 7,
        client_id: Some("me".into()),
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    header.encode(&mut buf, 2).unwrap();
    assert_eq!(&buf[..], b"\x00\x12\x00\x03\x00\x00\x00\x07\x00\x02me\x00");
    assert_eq!(RequestHeader::decode(&mut buf.freeze(), 2).unwrap(), header);

    let mut buf = BytesMut::new();
    ResponseHeader {
        correlation_id: 7,
        ..Default::default()
    }
    .encode(&mut buf, 1)
    .unwrap();
    assert_eq!(&buf[..], b"\x00\x00\x00\x07\x00");
}

#[test]
fn bodies_decode_by_api_key() {
    let request = MetadataRequest {
        topics: None,
        allow_auto_topic_creation: false,
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    RequestBody::from(request.clone())
        .encode(&mut buf, 9)
        .unwrap();
    let body = RequestBody::decode(ApiKey::Metadata, &mut buf.freeze(), 9).unwrap();
    assert_eq!(body.api_key(), ApiKey::Metadata);
    assert_eq!(body, RequestBody::Metadata(request));
    let err = ResponseBody::decode_raw(999, &mut Bytes::new(), 0).unwrap_err();
    assert!(err.to_string().contains("unknown API key 999"), "{err}");
}

#[test]
fn every_error_code_has_a_name_and_unknown_codes_keep_their_number() {
    for code in -1..=129i16 {
        let e = ErrorCode::from(code);
        assert!(e.name().is_some(), "code {code} has no name");
        assert_eq!(i16::from(e), code);
    }
    assert_eq!(ErrorCode::NONE.into_result(), Ok(()));
    assert_eq!(
        ErrorCode::from(3).into_result(),
        Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert!(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.is_retriable());
    assert!(ErrorCode::NOT_LEADER_OR_FOLLOWER.is_retriable());
    assert!(!ErrorCode::TOPIC_AUTHORIZATION_FAILED.is_retriable());
    assert!(!ErrorCode::UNSUPPORTED_VERSION.is_retriable());
    assert_eq!(
        ErrorCode::UNSUPPORTED_VERSION.to_string(),
        "UNSUPPORTED_VERSION (35): The version of API is not supported."
    );
    let unknown = ErrorCode::from(4242);
    assert_eq!(unknown.name(), None);
    assert!(!unknown.is_retriable());
    assert_eq!(format!("{unknown:?}"), "ErrorCode(4242)");
    assert_eq!(unknown.to_string(), "unknown error code 4242");
}

#[test]
fn defaults_are_the_schemas() {
    use kafka_sansio::messages::{FetchRequest, JoinGroupRequest};
    assert!(
        MetadataRequest::default().allow_auto_topic_creation,
        "default true"
    );
    let fetch = FetchRequest::default();
    assert_eq!(fetch.replica_id, -1);
    assert_eq!(fetch.replica_state.replica_epoch, -1);
    assert_eq!(fetch.cluster_id, None, "default null");
    let join = JoinGroupRequest::default();
    assert_eq!(join.rebalance_timeout_ms, -1);
    assert_eq!(join.group_instance_id, None);
    assert_eq!(
        RequestHeader::default().client_id.as_deref(),
        Some(""),
        "a nullable string with no default is empty, as in Kafka's Java classes"
    );
}

#[test]
fn unknown_tagged_fields_survive_a_round_trip_byte_for_byte() {
    // ApiVersionsRequest v3 with an extra tagged field (tag 7, two bytes) that this
    // schema does not know.
    let wire = b"\x04abc\x041.0\x01\x07\x02\xbe\xef";
    let mut input = Bytes::from_static(wire);
    let request = ApiVersionsRequest::decode(&mut input, 3).unwrap();
    assert!(input.is_empty());
    assert_eq!(request.unknown_tagged_fields.len(), 1);
    assert_eq!(request.unknown_tagged_fields[0].tag, 7);
    assert_eq!(&request.unknown_tagged_fields[0].data[..], b"\xbe\xef");
    let mut out = BytesMut::new();
    request.encode(&mut out, 3).unwrap();
    assert_eq!(&out[..], wire);
    // At a non-flexible version there is nowhere to put it: an error, not a loss.
    assert!(request.encode(&mut BytesMut::new(), 2).is_err());
}
