//! The promise, under random schedules: whatever the broker, the clock and the caller
//! do, every request ends exactly once, nothing ends after Closed, and nothing is
//! left behind.
#![allow(clippy::unwrap_used)]

#[path = "connection_util.rs"]
mod util;

use kafka_sansio::connection::{Config, Connection, Event, RequestOptions};
use kafka_sansio::messages::{MetadataRequest, MetadataResponse, ProduceRequest};
use proptest::prelude::*;
use util::*;

#[derive(Debug, Clone)]
enum Step {
    Send {
        acks0: bool,
        timeout_ms: u64,
    },
    /// Answer the oldest unanswered request the broker has seen, asking the client to
    /// hold off for this many milliseconds.
    Answer(i32),
    /// Answer a request out of turn (fatal).
    AnswerWrong,
    Advance(u64),
    Garbage(Vec<u8>),
    Eof,
    Close,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (any::<bool>(), 1u64..500).prop_map(|(acks0, timeout_ms)| Step::Send { acks0, timeout_ms }),
        6 => prop_oneof![4 => Just(0), 1 => 1i32..400].prop_map(Step::Answer),
        1 => Just(Step::AnswerWrong),
        4 => (0u64..300).prop_map(Step::Advance),
        1 => proptest::collection::vec(any::<u8>(), 1..12).prop_map(Step::Garbage),
        1 => Just(Step::Eof),
        1 => Just(Step::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn every_request_ends_exactly_once(steps in proptest::collection::vec(step(), 1..60), limit in 1usize..4) {
        let t = t0();
        let mut now = t;
        let mut config = Config::new("b");
        config.max_in_flight = limit;
        config.request_timeout = ms(400);
        let mut conn = Connection::new(config, now);
        let hello = take_one(&mut conn);
        let mut ledger = Ledger::default();
        let mut seen = vec![hello];
        let mut answered_hello = false;
        for s in steps {
            let held = !matches!(s, Step::Advance(_))
                && conn.throttled_until().is_some_and(|u| u > now);
            match s {
                Step::Send { acks0, timeout_ms } => {
                    let r = if acks0 {
                        conn.send_with(now, ProduceRequest { acks: 0, ..Default::default() }, RequestOptions::timeout(ms(timeout_ms)))
                    } else {
                        conn.send_with(now, MetadataRequest::default(), RequestOptions::timeout(ms(timeout_ms)))
                    };
                    match r {
                        Ok(id) => ledger.sent.push(id),
                        Err(_) => prop_assert!(conn.error().is_some()),
                    }
                }
                Step::Answer(throttle_time_ms) => {
                    if let Some(pos) = seen.iter().position(|r| r.api_key != kafka_sansio::messages::ApiKey::Produce) {
                        let req = seen.remove(pos);
                        if !answered_hello {
                            answered_hello = true;
                            conn.handle_input(now, &answer(&req, &versions(&modern())));
                        } else {
                            conn.handle_input(now, &answer(&req, &MetadataResponse { throttle_time_ms, ..Default::default() }));
                        }
                    }
                }
                Step::AnswerWrong => {
                    if let Some(req) = seen.last() {
                        conn.handle_input(now, &raw_frame(req.id().wrapping_add(1000), 0, &[]));
                    }
                }
                Step::Advance(d) => {
                    now += ms(d);
                    conn.handle_timeout(now);
                }
                Step::Garbage(bytes) => conn.handle_input(now, &bytes),
                Step::Eof => conn.handle_eof(now),
                Step::Close => conn.close(),
            }
            let written = take_requests(&mut conn);
            // nothing is written while a throttle holds and time stands still
            prop_assert!(!held || written.is_empty(), "wrote {} requests while throttled", written.len());
            seen.extend(written);
            let ev = events(&mut conn);
            ledger.record(&ev);
            // a deadline never lies in the past once its input was handled
            if let Some(deadline) = conn.poll_timeout() {
                prop_assert!(deadline > now, "poll_timeout {:?} not after now", deadline - t);
            }
        }
        // drain: time passes beyond every deadline, then the peer goes away
        now += ms(10_000);
        conn.handle_timeout(now);
        let _ = take_requests(&mut conn);
        conn.handle_eof(now);
        let ev = events(&mut conn);
        ledger.record(&ev);
        ledger.assert_all_ended();
        prop_assert_eq!(ledger.closed, 1);
        prop_assert_eq!(conn.in_flight(), 0);
        prop_assert_eq!(conn.queued(), 0);
        prop_assert!(conn.poll_timeout().is_none());
        prop_assert!(matches!(ev.last(), Some(Event::Closed(_))) || ev.is_empty());
    }
}
