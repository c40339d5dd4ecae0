//! SASL before readiness: PLAIN and SCRAM transcripts through the Connection, and
//! every way authentication can fail ending queued requests once.
#![allow(clippy::unwrap_used)]

#[path = "connection_util.rs"]
mod util;

use bytes::Bytes;
use kafka_sansio::connection::sasl::{SaslConfig, SaslMechanism};
use kafka_sansio::connection::{Config, Connection, ConnectionErrorKind, Event};
use kafka_sansio::messages::{
    ApiKey, ErrorCode, MetadataRequest, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_sansio::wire::ByteString;
use util::*;

fn config(mechanism: SaslMechanism, user: &str, password: &str, nonce: &str) -> Config {
    let mut c = Config::new("sasl-broker");
    c.sasl = Some(SaslConfig {
        mechanism,
        username: user.into(),
        password: password.into(),
        nonce: nonce.into(),
    });
    c
}

/// Answers ApiVersions and returns the SaslHandshake request.
fn to_handshake(conn: &mut Connection, now: std::time::Instant) -> Seen {
    let hello = take_one(conn);
    conn.handle_input(now, &answer(&hello, &versions(&modern())));
    let hs = take_one(conn);
    assert_eq!((hs.api_key, hs.version()), (ApiKey::SaslHandshake, 1));
    hs
}

fn auth_ok(bytes: &[u8]) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse {
        auth_bytes: Bytes::copy_from_slice(bytes),
        ..Default::default()
    }
}

#[test]
fn plain_authenticates_before_ready() {
    let now = t0();
    let mut conn = Connection::new(config(SaslMechanism::Plain, "alice", "s3cret", ""), now);
    let queued = conn.send(now, MetadataRequest::default()).unwrap();
    let hs = to_handshake(&mut conn, now);
    assert_eq!(hs.decode::<SaslHandshakeRequest>().mechanism, "PLAIN");
    assert!(events(&mut conn).is_empty(), "not ready during SASL");
    conn.handle_input(now, &answer(&hs, &SaslHandshakeResponse::default()));
    let auth = take_one(&mut conn);
    assert_eq!(
        (auth.api_key, auth.version()),
        (ApiKey::SaslAuthenticate, 2)
    );
    assert_eq!(
        auth.decode::<SaslAuthenticateRequest>().auth_bytes.as_ref(),
        b"\0alice\0s3cret"
    );
    conn.handle_input(now, &answer(&auth, &auth_ok(b"")));
    assert_eq!(events(&mut conn), vec![Event::Ready]);
    let md = take_one(&mut conn);
    assert_eq!((md.api_key, md.id()), (ApiKey::Metadata, queued));
}

/// The RFC 7677 SCRAM-SHA-256 transcript, carried in SaslAuthenticate requests.
#[test]
fn scram_sha256_rfc7677_transcript() {
    let now = t0();
    let mut conn = Connection::new(
        config(
            SaslMechanism::ScramSha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        ),
        now,
    );
    let hs = to_handshake(&mut conn, now);
    assert_eq!(
        hs.decode::<SaslHandshakeRequest>().mechanism,
        "SCRAM-SHA-256"
    );
    conn.handle_input(now, &answer(&hs, &SaslHandshakeResponse::default()));
    let first = take_one(&mut conn);
    assert_eq!(
        first
            .decode::<SaslAuthenticateRequest>()
            .auth_bytes
            .as_ref(),
        b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    );
    conn.handle_input(
        now,
        &answer(
            &first,
            &auth_ok(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
        ),
    );
    let fin = take_one(&mut conn);
    assert_eq!(
        fin.decode::<SaslAuthenticateRequest>().auth_bytes.as_ref(),
        &b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="[..]
    );
    assert!(!conn.is_ready());
    conn.handle_input(
        now,
        &answer(
            &fin,
            &auth_ok(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
        ),
    );
    assert_eq!(events(&mut conn), vec![Event::Ready]);
    assert!(conn.is_ready());
}

fn scram_to_final(conn: &mut Connection, now: std::time::Instant) -> Seen {
    let hs = to_handshake(conn, now);
    conn.handle_input(now, &answer(&hs, &SaslHandshakeResponse::default()));
    let first = take_one(conn);
    conn.handle_input(
        now,
        &answer(
            &first,
            &auth_ok(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
        ),
    );
    take_one(conn)
}

#[test]
fn impostor_server_signature_fails_the_connection_and_its_queue() {
    let now = t0();
    let mut conn = Connection::new(
        config(
            SaslMechanism::ScramSha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        ),
        now,
    );
    let mut ledger = Ledger::default();
    ledger
        .sent
        .push(conn.send(now, MetadataRequest::default()).unwrap());
    let fin = scram_to_final(&mut conn, now);
    conn.handle_input(
        now,
        &answer(
            &fin,
            &auth_ok(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ),
    );
    let ev = events(&mut conn);
    ledger.record(&ev);
    ledger.assert_all_ended();
    let Some(Event::Closed(e)) = ev.last() else {
        panic!("{ev:?}")
    };
    assert!(matches!(e.kind, ConnectionErrorKind::Sasl(_)), "{e}");
    assert!(!ev.contains(&Event::Ready));
}

#[test]
fn refused_mechanism_reports_what_the_broker_offers() {
    let now = t0();
    let mut conn = Connection::new(config(SaslMechanism::ScramSha512, "u", "p", "n"), now);
    let hs = to_handshake(&mut conn, now);
    conn.handle_input(
        now,
        &answer(
            &hs,
            &SaslHandshakeResponse {
                error_code: ErrorCode::UNSUPPORTED_SASL_MECHANISM.0,
                mechanisms: vec![ByteString::from("PLAIN")],
            },
        ),
    );
    let ev = events(&mut conn);
    let [Event::Closed(e)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        e.kind,
        ConnectionErrorKind::SaslMechanism {
            mechanism: "SCRAM-SHA-512",
            error: ErrorCode::UNSUPPORTED_SASL_MECHANISM,
            enabled: vec!["PLAIN".into()],
        }
    );
}

#[test]
fn authentication_error_carries_the_broker_message() {
    let now = t0();
    let mut conn = Connection::new(config(SaslMechanism::Plain, "u", "wrong", ""), now);
    let hs = to_handshake(&mut conn, now);
    conn.handle_input(now, &answer(&hs, &SaslHandshakeResponse::default()));
    let auth = take_one(&mut conn);
    conn.handle_input(
        now,
        &answer(
            &auth,
            &SaslAuthenticateResponse {
                error_code: ErrorCode::SASL_AUTHENTICATION_FAILED.0,
                error_message: Some("bad password".into()),
                ..Default::default()
            },
        ),
    );
    let ev = events(&mut conn);
    let [Event::Closed(e)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        e.kind,
        ConnectionErrorKind::SaslAuthentication {
            error: ErrorCode::SASL_AUTHENTICATION_FAILED,
            message: "bad password".into()
        }
    );
}

#[test]
fn broker_without_sasl_apis_fails_clearly() {
    let now = t0();
    let mut conn = Connection::new(config(SaslMechanism::Plain, "u", "p", ""), now);
    let hello = take_one(&mut conn);
    conn.handle_input(
        now,
        &answer(
            &hello,
            &versions(&[(ApiKey::ApiVersions, 0, 2), (ApiKey::Metadata, 0, 2)]),
        ),
    );
    let ev = events(&mut conn);
    let [Event::Closed(e)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(e.kind, ConnectionErrorKind::SaslUnsupported);
}
