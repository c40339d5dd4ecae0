//! Connection setup: ApiVersions negotiation (with the version fallback of KIP-511)
//! and SASL authentication (PLAIN and SCRAM, re-authenticated as KIP-368 asks).
//!
//! These requests run outside the caller's queue and the in-flight limit: they are
//! written as soon as the connection exists, and user requests wait until
//! [`Event::Ready`](super::Event::Ready).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::inflight::Entry;
use super::sasl::{SaslConfig, SaslSession, SaslStep};
use super::{Connection, ConnectionErrorKind, Event, HandshakeErrorKind, Purpose, Sent, State};
use crate::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ErrorCode, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use crate::wire::{ByteString, Message, VersionRange};

impl Connection {
    /// Writes a setup request outside the queue and the in-flight limit.
    pub(super) fn send_setup<M: Message>(
        &mut self,
        now: Instant,
        api_key: ApiKey,
        version: i16,
        purpose: Purpose,
        message: &M,
    ) {
        let id = self.next_id();
        match self.encode_frame(api_key, version, id, &|b, v| message.encode_into(b, v)) {
            Ok(()) => self.in_flight.push(Entry {
                correlation_id: id,
                expects_response: true,
                abandoned: false,
                deadline: Some(now + self.config.request_timeout),
                data: Sent {
                    api_key,
                    api_version: version,
                    purpose,
                    timeout: self.config.request_timeout,
                    expected_response_bytes: 0,
                },
            }),
            Err(e) => self.fail(ConnectionErrorKind::Handshake {
                api: api_key,
                version,
                kind: HandshakeErrorKind::Encode(e),
            }),
        }
    }

    pub(super) fn send_api_versions(&mut self, now: Instant, version: i16) {
        let request = ApiVersionsRequest {
            client_software_name: ByteString::from(self.config.client_software_name.as_str()),
            client_software_version: ByteString::from(self.config.client_software_version.as_str()),
            ..Default::default()
        };
        self.send_setup(
            now,
            ApiKey::ApiVersions,
            version,
            Purpose::ApiVersions,
            &request,
        );
    }

    pub(super) fn handle_api_versions(&mut self, now: Instant, version: i16, body: Bytes) {
        let error = match body.get(..2) {
            Some(b) => ErrorCode(i16::from_be_bytes([b[0], b[1]])),
            None => {
                self.fail(ConnectionErrorKind::ApiVersionsDecode {
                    version,
                    source: crate::wire::DecodeError::new(
                        "ApiVersionsResponse.error_code",
                        crate::wire::DecodeErrorKind::UnexpectedEof {
                            needed: 2,
                            remaining: body.len(),
                        },
                    ),
                });
                return;
            }
        };
        if error == ErrorCode::UNSUPPORTED_VERSION {
            // The broker answers in v0 and may list its ApiVersions range (KIP-511);
            // some brokers send a body that does not parse: then only the error code
            // counts and we fall back to v0.
            let theirs = ApiVersionsResponse::decode(&mut body.clone(), 0)
                .ok()
                .and_then(|r| {
                    r.api_keys
                        .iter()
                        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                        .map(|k| k.max_version)
                });
            let next = theirs.unwrap_or(0).min(version - 1);
            if version == 0 || next < 0 {
                self.fail(ConnectionErrorKind::VersionFallbackLoop { from: version });
            } else {
                self.send_api_versions(now, next);
            }
            return;
        }
        if error != ErrorCode::NONE {
            self.fail(ConnectionErrorKind::ApiVersions { version, error });
            return;
        }
        let response = match ApiVersionsResponse::decode(&mut body.clone(), version) {
            Ok(r) => r,
            Err(source) => {
                self.fail(ConnectionErrorKind::ApiVersionsDecode { version, source });
                return;
            }
        };
        let mut versions = BTreeMap::new();
        for k in &response.api_keys {
            versions.insert(
                k.api_key,
                VersionRange {
                    min: k.min_version,
                    max: k.max_version,
                },
            );
        }
        self.broker_versions = Some(versions);
        match self.config.sasl.clone() {
            None => self.become_ready(now),
            Some(sasl) => self.start_sasl(now, &sasl),
        }
    }

    pub(super) fn start_sasl(&mut self, now: Instant, sasl: &SaslConfig) {
        let (Some(handshake), Some(authenticate)) = (
            self.version_for(ApiKey::SaslHandshake),
            self.version_for(ApiKey::SaslAuthenticate),
        ) else {
            self.fail(ConnectionErrorKind::SaslUnsupported);
            return;
        };
        if handshake < 1 {
            // v0 means raw SASL tokens outside Kafka framing; not supported.
            self.fail(ConnectionErrorKind::SaslUnsupported);
            return;
        }
        self.state = State::Authenticating {
            session: SaslSession::new(sasl, now),
            authenticate_version: authenticate,
        };
        let request = SaslHandshakeRequest {
            mechanism: ByteString::from(sasl.mechanism.name()),
        };
        self.send_setup(
            now,
            ApiKey::SaslHandshake,
            handshake,
            Purpose::SaslHandshake,
            &request,
        );
    }

    pub(super) fn handle_sasl_handshake(&mut self, now: Instant, version: i16, mut body: Bytes) {
        let response = match SaslHandshakeResponse::decode(&mut body, version) {
            Ok(r) => r,
            Err(e) => {
                self.fail(ConnectionErrorKind::Handshake {
                    api: ApiKey::SaslHandshake,
                    version,
                    kind: HandshakeErrorKind::Decode(e),
                });
                return;
            }
        };
        let mechanism = self.config.sasl.as_ref().map_or("", |s| s.mechanism.name());
        if ErrorCode(response.error_code) != ErrorCode::NONE {
            self.fail(ConnectionErrorKind::SaslMechanism {
                mechanism,
                error: ErrorCode(response.error_code),
                enabled: response.mechanisms.iter().map(|m| m.to_string()).collect(),
            });
            return;
        }
        let State::Authenticating {
            session,
            authenticate_version,
        } = &mut self.state
        else {
            return;
        };
        let version = *authenticate_version;
        match session.first() {
            Ok(bytes) => self.send_authenticate(now, version, bytes),
            Err(e) => self.fail(e.into()),
        }
    }

    pub(super) fn send_authenticate(&mut self, now: Instant, version: i16, auth_bytes: Vec<u8>) {
        let request = SaslAuthenticateRequest {
            auth_bytes: Bytes::from(auth_bytes),
            unknown_tagged_fields: Default::default(),
        };
        self.send_setup(
            now,
            ApiKey::SaslAuthenticate,
            version,
            Purpose::SaslAuthenticate,
            &request,
        );
    }

    pub(super) fn handle_sasl_authenticate(&mut self, now: Instant, version: i16, mut body: Bytes) {
        let response = match SaslAuthenticateResponse::decode(&mut body, version) {
            Ok(r) => r,
            Err(e) => {
                self.fail(ConnectionErrorKind::Handshake {
                    api: ApiKey::SaslAuthenticate,
                    version,
                    kind: HandshakeErrorKind::Decode(e),
                });
                return;
            }
        };
        if ErrorCode(response.error_code) != ErrorCode::NONE {
            self.fail(ConnectionErrorKind::SaslAuthentication {
                error: ErrorCode(response.error_code),
                message: response
                    .error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            });
            return;
        }
        let State::Authenticating { session, .. } = &mut self.state else {
            return;
        };
        match session.step(&response.auth_bytes) {
            Ok(SaslStep::Send(bytes)) => self.send_authenticate(now, version, bytes),
            Ok(SaslStep::Done) => {
                // KIP-368: re-authenticate at 85% of the session the broker granted
                // (fixed, not jittered: nothing here draws randomness).
                self.reauth_at = u64::try_from(response.session_lifetime_ms)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(|ms| now + Duration::from_millis(ms.saturating_mul(85) / 100));
                self.become_ready(now);
            }
            Err(e) => self.fail(e.into()),
        }
    }

    pub(super) fn reauthenticate(&mut self, now: Instant) {
        self.reauth_due = false;
        let Some(mut sasl) = self.config.sasl.clone() else {
            return;
        };
        // a fresh SCRAM client nonce for every exchange on this connection
        self.reauth_count += 1;
        sasl.nonce = format!("{}{}", sasl.nonce, self.reauth_count);
        self.start_sasl(now, &sasl);
    }

    pub(super) fn become_ready(&mut self, now: Instant) {
        self.state = State::Ready;
        if !self.became_ready {
            self.became_ready = true;
            self.events.push_back(Event::Ready);
        }
        self.flush(now);
    }
}
