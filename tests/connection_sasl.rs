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
        oauth: None,
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

/// KIP-368: a broker granting a session lifetime gets a fresh authentication on the
/// same connection before it expires; in-flight requests drain first, new ones wait,
/// and the caller sees no second Ready.
#[test]
fn reauthenticates_before_the_session_expires() {
    let t = t0();
    let mut config = config(
        SaslMechanism::ScramSha256,
        "user",
        "pencil",
        "rOprNGfwEbeRWgbNEkqO",
    );
    config.request_timeout = ms(60_000);
    let mut conn = Connection::new(config, t);
    let mut ledger = Ledger::default();
    let fin = scram_to_final(&mut conn, t);
    conn.handle_input(
        t,
        &answer(
            &fin,
            &SaslAuthenticateResponse {
                auth_bytes: Bytes::from_static(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
                session_lifetime_ms: 10_000,
                ..Default::default()
            },
        ),
    );
    assert_eq!(events(&mut conn), vec![Event::Ready]);
    // one request in flight when the re-authentication falls due
    ledger
        .sent
        .push(conn.send(t + ms(8000), MetadataRequest::default()).unwrap());
    let md = take_one(&mut conn);
    assert_eq!(conn.poll_timeout(), Some(t + ms(8500)));
    conn.handle_timeout(t + ms(8500));
    assert!(
        take_requests(&mut conn).is_empty(),
        "waits for the in-flight request"
    );
    ledger
        .sent
        .push(conn.send(t + ms(8600), MetadataRequest::default()).unwrap());
    assert!(take_requests(&mut conn).is_empty(), "new requests wait");
    conn.handle_input(
        t + ms(8700),
        &answer(&md, &kafka_sansio::messages::MetadataResponse::default()),
    );
    let hs = take_one(&mut conn);
    assert_eq!(hs.api_key, ApiKey::SaslHandshake);
    conn.handle_input(
        t + ms(8700),
        &answer(&hs, &SaslHandshakeResponse::default()),
    );
    let first = take_one(&mut conn);
    // a fresh client nonce
    assert_eq!(
        first
            .decode::<SaslAuthenticateRequest>()
            .auth_bytes
            .as_ref(),
        b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO1"
    );
    assert!(!conn.is_ready());
    conn.handle_input(
        t + ms(8700),
        &answer(
            &first,
            &auth_ok(b"r=rOprNGfwEbeRWgbNEkqO1srv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
        ),
    );
    let _fin2 = take_one(&mut conn);
    // the server signature for this exchange differs; a wrong one must fail the
    // connection exactly as the first login would
    conn.handle_input(
        t + ms(8800),
        &answer(
            &_fin2,
            &auth_ok(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
        ),
    );
    let ev = events(&mut conn);
    ledger.record(&ev);
    ledger.assert_all_ended();
    assert!(
        matches!(ev.last(), Some(Event::Closed(e)) if matches!(e.kind, ConnectionErrorKind::Sasl(_))),
        "{ev:?}"
    );
    assert_eq!(ev.iter().filter(|e| **e == Event::Ready).count(), 0);
}

#[test]
fn plain_reauthentication_releases_waiting_requests() {
    let t = t0();
    let mut conn = Connection::new(config(SaslMechanism::Plain, "alice", "s3cret", ""), t);
    let hs = to_handshake(&mut conn, t);
    conn.handle_input(t, &answer(&hs, &SaslHandshakeResponse::default()));
    let auth = take_one(&mut conn);
    let granted = SaslAuthenticateResponse {
        session_lifetime_ms: 1000,
        ..Default::default()
    };
    conn.handle_input(t, &answer(&auth, &granted));
    assert_eq!(events(&mut conn), vec![Event::Ready]);
    assert_eq!(conn.poll_timeout(), Some(t + ms(850)));
    conn.handle_timeout(t + ms(850));
    let hs = take_one(&mut conn);
    assert_eq!(hs.api_key, ApiKey::SaslHandshake);
    let waiting = conn.send(t + ms(860), MetadataRequest::default()).unwrap();
    conn.handle_input(t + ms(870), &answer(&hs, &SaslHandshakeResponse::default()));
    let auth = take_one(&mut conn);
    assert_eq!(
        auth.decode::<SaslAuthenticateRequest>().auth_bytes.as_ref(),
        b"\0alice\0s3cret"
    );
    conn.handle_input(t + ms(880), &answer(&auth, &granted));
    let md = take_one(&mut conn);
    assert_eq!((md.api_key, md.id()), (ApiKey::Metadata, waiting));
    assert!(events(&mut conn).is_empty(), "no second Ready");
    assert_eq!(
        conn.poll_timeout(),
        Some(t + ms(880 + 850)).min(Some(t + ms(860) + ms(30_000)))
    );
}
