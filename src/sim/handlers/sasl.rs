//! Authentication: SaslHandshake and SaslAuthenticate over `sim/sasl.rs`, and the
//! rule that nothing else is answered before it succeeds.

use super::Call;
use crate::messages::{
    ApiKey, ErrorCode, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use crate::sim::sasl::{AuthState, MECHANISMS, mechanism, step};
use crate::sim::{Cluster, ConnectionId};
use crate::wire::{ByteString, Bytes};

/// Whether `conn` may call `api` now: before authentication (when the cluster
/// requires it) only ApiVersions and the SASL APIs are open.
pub(super) fn may_call(cluster: &Cluster, conn: ConnectionId, api: ApiKey) -> bool {
    cluster.config.sasl.is_none()
        || matches!(
            api,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        )
        || matches!(
            cluster.conns.map.get(&conn).map(|c| &c.auth),
            Some(AuthState::Authenticated)
        )
}

pub(super) fn handshake(call: &mut Call, r: &SaslHandshakeRequest) -> SaslHandshakeResponse {
    let chosen = mechanism(&r.mechanism);
    let state = call
        .cluster
        .conns
        .map
        .get_mut(&call.conn)
        .map(|c| &mut c.auth);
    let error = match (chosen, state) {
        (Some(m), Some(st @ AuthState::Start)) => {
            *st = AuthState::Mechanism(m);
            ErrorCode::NONE
        }
        (Some(_), _) => ErrorCode::ILLEGAL_SASL_STATE,
        (None, _) => ErrorCode::UNSUPPORTED_SASL_MECHANISM,
    };
    SaslHandshakeResponse {
        error_code: error.code(),
        mechanisms: MECHANISMS
            .iter()
            .map(|m| ByteString::from_static(m))
            .collect(),
    }
}

/// One SaslAuthenticate round; `None` closes the connection (SASL is not configured,
/// or the connection is gone).
pub(super) fn authenticate(
    call: &mut Call,
    r: &SaslAuthenticateRequest,
) -> Option<SaslAuthenticateResponse> {
    let cluster = &mut *call.cluster;
    let nonce = format!(
        "{:016x}{:016x}",
        cluster.next_random(),
        cluster.next_random()
    );
    let config = cluster.config.sasl.clone()?;
    let c = cluster.conns.map.get_mut(&call.conn)?;
    let mut resp = SaslAuthenticateResponse::default();
    match step(&mut c.auth, &config, &r.auth_bytes, &nonce) {
        Ok(bytes) => {
            resp.auth_bytes = Bytes::from(bytes);
            if matches!(c.auth, AuthState::Authenticated) {
                resp.session_lifetime_ms = config
                    .session_lifetime
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            }
        }
        Err(message) => {
            resp.error_code = ErrorCode::SASL_AUTHENTICATION_FAILED.code();
            resp.error_message = Some(ByteString::from(message));
            c.auth = AuthState::Start;
        }
    }
    Some(resp)
}
