//! Malformed input from the broker (as str0m's malformed-packet-injection tests do):
//! random bytes, random frame bodies during negotiation, SASL and normal operation.
//! The connection must never panic, must end every request exactly once, and may
//! only fail with a remote error.
#![allow(clippy::unwrap_used)]

#[path = "connection_util.rs"]
mod util;

use kafka_sansio::connection::sasl::{SaslConfig, SaslMechanism};
use kafka_sansio::connection::{Config, Connection, Event};
use kafka_sansio::messages::{MetadataRequest, SaslHandshakeResponse};
use proptest::prelude::*;
use util::*;

#[derive(Debug, Clone, Copy)]
enum Phase {
    Negotiating,
    Authenticating,
    Ready,
}

fn phase() -> impl Strategy<Value = Phase> {
    prop_oneof![
        Just(Phase::Negotiating),
        Just(Phase::Authenticating),
        Just(Phase::Ready)
    ]
}

/// A connection in `phase`, with its oldest outstanding request as the broker saw it.
fn in_phase(phase: Phase) -> (Connection, Seen, Ledger) {
    let now = t0();
    let mut config = Config::new("fuzz");
    let mut ledger = Ledger::default();
    if matches!(phase, Phase::Authenticating) {
        config.sasl = Some(SaslConfig {
            oauth: None,
            mechanism: SaslMechanism::ScramSha256,
            username: "u".into(),
            password: "p".into(),
            nonce: "abc".into(),
        });
    }
    let mut conn = Connection::new(config, now);
    ledger
        .sent
        .push(conn.send(now, MetadataRequest::default()).unwrap());
    let hello = take_one(&mut conn);
    let pending = match phase {
        Phase::Negotiating => hello,
        Phase::Authenticating => {
            conn.handle_input(now, &answer(&hello, &versions(&modern())));
            let hs = take_one(&mut conn);
            conn.handle_input(now, &answer(&hs, &SaslHandshakeResponse::default()));
            take_one(&mut conn)
        }
        Phase::Ready => {
            conn.handle_input(now, &answer(&hello, &versions(&modern())));
            take_one(&mut conn)
        }
    };
    let ev = events(&mut conn);
    ledger.record(&ev);
    (conn, pending, ledger)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Raw garbage on the stream.
    #[test]
    fn garbage_stream(phase in phase(), chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..6)) {
        let (mut conn, _pending, mut ledger) = in_phase(phase);
        let now = t0();
        for c in &chunks {
            conn.handle_input(now, c);
            let _ = take_requests(&mut conn);
            let ev = events(&mut conn);
            ledger.record(&ev);
        }
        conn.handle_eof(now);
        let ev = events(&mut conn);
        ledger.record(&ev);
        ledger.assert_all_ended();
        prop_assert_eq!(ledger.closed, 1);
    }

    /// A well-framed answer with the right correlation id and a random body: the
    /// decoders of ApiVersions, SASL and the response header face arbitrary bytes.
    #[test]
    fn random_body_for_the_pending_request(phase in phase(), body in proptest::collection::vec(any::<u8>(), 0..80), header_version in 0i16..2) {
        let (mut conn, pending, mut ledger) = in_phase(phase);
        let now = t0();
        conn.handle_input(now, &raw_frame(pending.id(), header_version, &body));
        let _ = take_requests(&mut conn);
        let ev = events(&mut conn);
        ledger.record(&ev);
        if let Some(Event::Closed(e)) = ev.last() {
            prop_assert!(e.is_remote(), "{}", e);
        }
        conn.handle_eof(now);
        let ev = events(&mut conn);
        ledger.record(&ev);
        ledger.assert_all_ended();
    }
}
