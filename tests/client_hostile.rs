//! The cluster [`Client`] driven by hand against scripted hostile brokers: metadata
//! naming a leader that is not among its brokers, a topic without partitions,
//! duplicate node ids, impossible ports, garbage bytes, a close in the middle of a
//! frame, an answer to the wrong correlation id, a broker that never answers, and
//! answers that do not answer what was asked. Whatever the broker does, every
//! operation ends exactly once, by its deadline, with a result, a retry that
//! succeeds, or a typed error; nothing panics and the client never asks to be woken
//! in the past. A read_committed fetch leaves out aborted transactions, owned and lent.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)] // tests own their clock

#[path = "../fuzz/src/alloc.rs"]
mod alloc;
#[path = "connection_util.rs"]
mod util;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_sansio::client::{
    Client, ClientConfig, ClientError, ConnId, Event, FetchOptions, OpId, OpOutput, ProduceOptions,
    Record,
};
use kafka_sansio::connection::frame::FrameDecoder;
use kafka_sansio::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_sansio::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_sansio::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataResponse, ProduceRequest, ProduceResponse,
    RequestHeader, fetch_response,
};
use kafka_sansio::records::{BatchBuilder, BatchConfig, NewRecord};
use kafka_sansio::wire::{BytesMut, Message};
use util::{Seen, answer, modern, raw_frame, versions};

const BASE_PORT: u16 = 9092;

/// When an operation ended, and how.
type Outcome = (Instant, Result<OpOutput, ClientError>);

/// What the scripted broker does with a request.
enum Act {
    /// Writes these bytes (a whole frame, part of one, garbage).
    Write(Vec<u8>),
    /// Closes the connection (the client sees end of stream).
    Eof,
    /// Resets the connection (the client sees a transport error).
    Reset,
}

/// One connection the client asked for.
struct Link {
    port: u16,
    from_client: FrameDecoder,
    open: bool,
}

/// A request as the scripted broker sees it, with where it arrived.
struct Request {
    seen: Seen,
    /// The port of the connection it came on (`9092 + node id`).
    port: u16,
    /// How many requests of this API the broker has seen before, on any connection.
    nth: usize,
}

/// The client, its connections, and a script that answers for every broker.
struct Harness {
    client: Client,
    start: Instant,
    now: Instant,
    links: BTreeMap<ConnId, Link>,
    seen_per_api: BTreeMap<ApiKey, usize>,
    /// Writes and closes to deliver, in order.
    deliveries: VecDeque<(ConnId, Act)>,
    done: BTreeMap<OpId, Vec<Outcome>>,
    /// Every other event, in order.
    events: Vec<Event>,
    /// Every Connect the client asked for: (node id, port).
    connects: Vec<(Option<i32>, u16)>,
    /// Ports that refuse connections.
    refuse: Vec<u16>,
    /// The versions every broker offers in its ApiVersions answer.
    offers: Vec<(ApiKey, i16, i16)>,
}

type Script<'a> = dyn FnMut(&Request) -> Vec<Act> + 'a;

impl Harness {
    fn new(config: impl FnOnce(&mut ClientConfig)) -> Self {
        let start = util::t0();
        let mut c = ClientConfig::new(&format!("127.0.0.1:{BASE_PORT}")).unwrap();
        c.operation_timeout = Duration::from_secs(5);
        c.connection.request_timeout = Duration::from_millis(500);
        c.connect_timeout = Duration::from_millis(500);
        config(&mut c);
        Harness {
            client: Client::new(c, start),
            start,
            now: start,
            links: BTreeMap::new(),
            seen_per_api: BTreeMap::new(),
            deliveries: VecDeque::new(),
            done: BTreeMap::new(),
            events: Vec::new(),
            connects: Vec::new(),
            refuse: Vec::new(),
            offers: modern(),
        }
    }

    /// Carries out the client's outputs and the broker's answers until both are
    /// quiet; collects events.
    fn pump(&mut self, script: &mut Script<'_>) {
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some(out) = self.client.poll_output() {
                moved = true;
                match out {
                    kafka_sansio::client::Output::Connect {
                        conn, broker, port, ..
                    } => {
                        self.connects.push((broker, port));
                        if self.refuse.contains(&port) {
                            self.client
                                .handle_connect_failed(conn, self.now, "connection refused");
                            continue;
                        }
                        self.links.insert(
                            conn,
                            Link {
                                port,
                                from_client: FrameDecoder::new(usize::MAX),
                                open: true,
                            },
                        );
                        self.client.handle_connected(conn, self.now);
                    }
                    kafka_sansio::client::Output::Transmit { conn, bytes } => {
                        self.transmit(conn, &bytes, script);
                    }
                    kafka_sansio::client::Output::Close { conn } => {
                        if let Some(link) = self.links.get_mut(&conn) {
                            link.open = false;
                        }
                    }
                }
            }
            while let Some(event) = self.client.poll_event() {
                moved = true;
                match event {
                    Event::Done { op, result } => {
                        self.done.entry(op).or_default().push((self.now, result));
                    }
                    other => self.events.push(other),
                }
            }
            if let Some((conn, act)) = self.deliveries.pop_front() {
                moved = true;
                if self.links.get(&conn).is_some_and(|l| l.open) {
                    match act {
                        Act::Write(bytes) => self.client.handle_input(conn, self.now, &bytes),
                        Act::Eof => {
                            self.links.get_mut(&conn).unwrap().open = false;
                            self.client.handle_eof(conn, self.now);
                        }
                        Act::Reset => {
                            self.links.get_mut(&conn).unwrap().open = false;
                            self.client
                                .handle_transport_error(conn, self.now, "connection reset");
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the client and the broker talk forever at one instant");
    }

    fn transmit(&mut self, conn: ConnId, bytes: &[u8], script: &mut Script<'_>) {
        let Some(link) = self.links.get_mut(&conn) else {
            panic!("a transmit on {conn:?}, which the client never asked to connect");
        };
        assert!(link.open, "a transmit on closed {conn:?}");
        link.from_client.extend(bytes);
        let port = link.port;
        let mut requests = Vec::new();
        while let Some(mut frame) = link.from_client.next_frame().unwrap() {
            let key = i16::from_be_bytes([frame[0], frame[1]]);
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            let api_key = ApiKey::try_from(key).unwrap();
            let header =
                RequestHeader::decode(&mut frame, api_key.request_header_version(version)).unwrap();
            requests.push(Seen {
                header,
                api_key,
                body: frame,
            });
        }
        for seen in requests {
            let nth = self.seen_per_api.entry(seen.api_key).or_default();
            let request = Request {
                seen,
                port,
                nth: *nth,
            };
            *nth += 1;
            let acts = if request.seen.api_key == ApiKey::ApiVersions {
                vec![Act::Write(answer(&request.seen, &versions(&self.offers)))]
            } else {
                script(&request)
            };
            for act in acts {
                self.deliveries.push_back((conn, act));
            }
        }
    }

    /// Starts an operation with `start`, then runs until it ends or `limit` of
    /// virtual time passes, moving time to each deadline the client asks for.
    fn run(
        &mut self,
        start: impl FnOnce(&mut Client, Instant) -> OpId,
        limit: Duration,
        script: &mut Script<'_>,
    ) -> (OpId, Duration, Result<OpOutput, ClientError>) {
        let started = self.now;
        let op = start(&mut self.client, started);
        let until = started + limit;
        for _ in 0..100_000 {
            self.pump(script);
            if self.done.contains_key(&op) {
                break;
            }
            let Some(next) = self.client.poll_timeout() else {
                panic!(
                    "{op:?} is pending but the client asks for no deadline: it would hang ({:?} in)",
                    self.now - self.start
                );
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            self.client.handle_timeout(self.now);
            if let Some(t) = self.client.poll_timeout() {
                assert!(
                    t > self.now,
                    "after handle_timeout the client asks to be woken {:?} in the past",
                    self.now - t
                );
            }
        }
        let ends = self.done.get(&op).expect("the operation never ended");
        assert_eq!(ends.len(), 1, "{op:?} ended {} times", ends.len());
        let (at, result) = ends[0].clone();
        (op, at - started, result)
    }
}

fn broker(id: i32, port: i32) -> MetadataResponseBroker {
    MetadataResponseBroker {
        node_id: id,
        host: "127.0.0.1".into(),
        port,
        ..Default::default()
    }
}

/// Brokers `0..n` at ports `9092 + id`.
fn brokers(n: i32) -> Vec<MetadataResponseBroker> {
    (0..n)
        .map(|i| broker(i, i32::from(BASE_PORT) + i))
        .collect()
}

/// A topic whose partition `i` is led by `leaders[i]`.
fn topic(name: &str, leaders: &[i32]) -> MetadataResponseTopic {
    MetadataResponseTopic {
        name: Some(name.into()),
        partitions: leaders
            .iter()
            .enumerate()
            .map(|(i, leader)| MetadataResponsePartition {
                partition_index: i as i32,
                leader_id: *leader,
                leader_epoch: 1,
                replica_nodes: vec![*leader].into(),
                isr_nodes: vec![*leader].into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn metadata(
    brokers: Vec<MetadataResponseBroker>,
    topics: Vec<MetadataResponseTopic>,
) -> MetadataResponse {
    MetadataResponse {
        brokers,
        topics,
        controller_id: 0,
        cluster_id: Some("hostile".into()),
        ..Default::default()
    }
}

/// A correct answer to a Produce request: `base_offset` for every partition.
fn produced(req: &Seen, base_offset: i64) -> Vec<u8> {
    let r: ProduceRequest = req.decode();
    let response = ProduceResponse {
        responses: r
            .topic_data
            .iter()
            .map(|t| TopicProduceResponse {
                name: t.name.clone(),
                partition_responses: t
                    .partition_data
                    .iter()
                    .map(|p| PartitionProduceResponse {
                        index: p.index,
                        base_offset,
                        log_append_time_ms: -1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    answer(req, &response)
}

/// An answer to a Fetch request: `partition`'s data, under the topic it asked for.
fn fetched(req: &Seen, partition: fetch_response::PartitionData) -> Vec<u8> {
    let request: FetchRequest = req.decode();
    let t = &request.topics[0];
    let response = FetchResponse {
        responses: vec![fetch_response::FetchableTopicResponse {
            topic: t.topic.clone(),
            topic_id: t.topic_id,
            partitions: vec![partition],
            ..Default::default()
        }],
        ..Default::default()
    };
    answer(req, &response)
}

fn produce(
    h: &mut Harness,
    timeout: Duration,
    script: &mut Script<'_>,
) -> (Duration, Result<OpOutput, ClientError>) {
    let options = ProduceOptions::default().timeout(timeout);
    let (_, took, result) = h.run(
        |c, now| c.produce(now, "t", 0, vec![Record::new("v")], options),
        timeout + Duration::from_secs(5),
        script,
    );
    assert!(
        took <= timeout,
        "ended {:?} after its {timeout:?} deadline",
        took - timeout
    );
    (took, result)
}

fn is_timeout(result: &Result<OpOutput, ClientError>) -> bool {
    matches!(result, Err(ClientError::Timeout { .. }))
}

#[test]
fn a_leader_missing_from_the_broker_list_is_no_leader_until_metadata_names_one() {
    let mut h = Harness::new(|_| {});
    let mut script = |r: &Request| match r.seen.api_key {
        // Twice a leader (7) that is not among the brokers, then the truth.
        ApiKey::Metadata if r.nth < 3 => {
            vec![Act::Write(answer(
                &r.seen,
                &metadata(brokers(2), vec![topic("t", &[7])]),
            ))]
        }
        ApiKey::Metadata => vec![Act::Write(answer(
            &r.seen,
            &metadata(brokers(2), vec![topic("t", &[1])]),
        ))],
        ApiKey::Produce => {
            assert_eq!(r.port, BASE_PORT + 1, "produce goes to the leader only");
            vec![Act::Write(produced(&r.seen, 41))]
        }
        api => panic!("unexpected {api:?}"),
    };
    let (_, result) = produce(&mut h, Duration::from_secs(5), &mut script);
    let Ok(OpOutput::Produced(p)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(p.base_offset, Some(41));
    assert!(
        h.connects.iter().all(|(b, _)| *b != Some(7)),
        "never dials broker 7"
    );
}

#[test]
fn a_leader_that_never_appears_ends_the_operation_by_its_deadline() {
    let mut h = Harness::new(|_| {});
    let mut metadata_requests = 0;
    let mut script = |r: &Request| match r.seen.api_key {
        ApiKey::Metadata => {
            metadata_requests += 1;
            vec![Act::Write(answer(
                &r.seen,
                &metadata(brokers(1), vec![topic("t", &[7])]),
            ))]
        }
        api => panic!("unexpected {api:?}"),
    };
    let timeout = Duration::from_secs(3);
    let (took, result) = produce(&mut h, timeout, &mut script);
    assert!(is_timeout(&result), "{result:?}");
    assert_eq!(took, timeout);
    // Refreshes are debounced (100 ms apart), not a busy loop.
    assert!(
        (3..=40).contains(&metadata_requests),
        "{metadata_requests} refreshes"
    );
}

#[test]
fn a_topic_without_partitions_is_a_typed_error() {
    let mut h = Harness::new(|_| {});
    let mut script = |r: &Request| match r.seen.api_key {
        ApiKey::Metadata => vec![Act::Write(answer(
            &r.seen,
            &metadata(brokers(1), vec![topic("t", &[])]),
        ))],
        api => panic!("unexpected {api:?}"),
    };
    let (took, result) = produce(&mut h, Duration::from_secs(5), &mut script);
    assert!(
        matches!(
            result,
            Err(ClientError::UnknownPartition {
                partition: 0,
                count: 0,
                ..
            })
        ),
        "{result:?}"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn duplicate_node_ids_keep_the_first_and_impossible_ports_are_dropped() {
    let mut h = Harness::new(|_| {});
    let mut script = |r: &Request| match r.seen.api_key {
        ApiKey::Metadata => {
            let list = vec![
                broker(1, 9093),
                broker(1, 9500),
                broker(2, -1),
                broker(3, 70_000),
                broker(4, 0),
                broker(0, 9092),
            ];
            // Partition 0 led by 1 (duplicated), 1 by 2, 2 by 3 (both dropped).
            vec![Act::Write(answer(
                &r.seen,
                &metadata(list, vec![topic("t", &[1, 2, 3])]),
            ))]
        }
        ApiKey::Produce => {
            assert_eq!(r.port, 9093, "the first entry for node 1 wins");
            vec![Act::Write(produced(&r.seen, 0))]
        }
        api => panic!("unexpected {api:?}"),
    };
    let (_, result) = produce(&mut h, Duration::from_secs(5), &mut script);
    assert!(result.is_ok(), "{result:?}");
    // Partitions led by a dropped broker have no leader: they wait, then time out.
    let timeout = Duration::from_secs(2);
    for partition in [1, 2] {
        let options = ProduceOptions::default().timeout(timeout);
        let (_, took, result) = h.run(
            |c, now| c.produce(now, "t", partition, vec![Record::new("v")], options),
            Duration::from_secs(10),
            &mut script,
        );
        assert!(is_timeout(&result), "{result:?}");
        assert_eq!(took, timeout);
    }
    assert!(
        h.connects
            .iter()
            .all(|(_, port)| [9092, 9093].contains(port)),
        "{:?}",
        h.connects
    );
}

#[test]
fn garbage_bodies_are_typed_errors_or_retries_within_the_deadline() {
    // A Metadata answer whose body is garbage: the refresh fails and is retried.
    let mut h = Harness::new(|_| {});
    let mut garbage = |r: &Request| match r.seen.api_key {
        ApiKey::Metadata if r.nth.is_multiple_of(2) => vec![Act::Write(raw_frame(
            r.seen.id(),
            ApiKey::Metadata.response_header_version(r.seen.version()),
            &[0xff; 7],
        ))],
        ApiKey::Metadata => vec![Act::Write(answer(
            &r.seen,
            &metadata(brokers(1), vec![topic("t", &[0])]),
        ))],
        // A Produce answer that is not a ProduceResponse at all.
        ApiKey::Produce => vec![Act::Write(raw_frame(
            r.seen.id(),
            ApiKey::Produce.response_header_version(r.seen.version()),
            b"definitely not kafka",
        ))],
        api => panic!("unexpected {api:?}"),
    };
    let (took, result) = produce(&mut h, Duration::from_secs(5), &mut garbage);
    assert!(
        matches!(result, Err(ClientError::Response(_))),
        "a body that does not decode is a typed error: {result:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn garbage_frames_close_the_connection_and_the_request_is_retried() {
    for (name, bytes) in [
        (
            "a negative frame size",
            vec![0xff, 0xff, 0xff, 0xf0, 1, 2, 3],
        ),
        (
            "a frame larger than the limit",
            vec![0x7f, 0xff, 0xff, 0xff],
        ),
        ("a frame too short for a header", vec![0, 0, 0, 1, 9]),
    ] {
        let mut h = Harness::new(|_| {});
        let mut script = |r: &Request| match r.seen.api_key {
            ApiKey::Metadata => vec![Act::Write(answer(
                &r.seen,
                &metadata(brokers(1), vec![topic("t", &[0])]),
            ))],
            ApiKey::Produce if r.nth == 0 => vec![Act::Write(bytes.clone())],
            ApiKey::Produce => vec![Act::Write(produced(&r.seen, 5))],
            api => panic!("unexpected {api:?}"),
        };
        let (_, result) = produce(&mut h, Duration::from_secs(5), &mut script);
        let Ok(OpOutput::Produced(p)) = result else {
            panic!("{name}: {result:?}")
        };
        assert_eq!(p.base_offset, Some(5), "{name}");
        let produce_conns = h.connects.iter().filter(|(b, _)| *b == Some(0)).count();
        assert!(
            produce_conns >= 2,
            "{name}: a new connection after the bad one"
        );
    }
}

#[test]
fn a_close_in_the_middle_of_a_frame_fails_the_request_and_it_is_retried() {
    for reset in [false, true] {
        let mut h = Harness::new(|_| {});
        let mut script = |r: &Request| match r.seen.api_key {
            ApiKey::Metadata => vec![Act::Write(answer(
                &r.seen,
                &metadata(brokers(1), vec![topic("t", &[0])]),
            ))],
            ApiKey::Produce if r.nth == 0 => {
                let whole = produced(&r.seen, 9);
                vec![
                    Act::Write(whole[..whole.len() / 2].to_vec()),
                    if reset { Act::Reset } else { Act::Eof },
                ]
            }
            ApiKey::Produce => vec![Act::Write(produced(&r.seen, 9))],
            api => panic!("unexpected {api:?}"),
        };
        let (_, result) = produce(&mut h, Duration::from_secs(5), &mut script);
        assert!(matches!(result, Ok(OpOutput::Produced(_))), "{result:?}");
    }
}

#[test]
fn an_answer_to_the_wrong_correlation_id_closes_the_connection_and_is_retried() {
    let mut h = Harness::new(|_| {});
    let mut script = |r: &Request| match r.seen.api_key {
        ApiKey::Metadata => vec![Act::Write(answer(
            &r.seen,
            &metadata(brokers(1), vec![topic("t", &[0])]),
        ))],
        ApiKey::Produce if r.nth == 0 => {
            let mut wrong = r.seen.clone();
            wrong.header.correlation_id = r.seen.id().wrapping_add(1000);
            vec![Act::Write(produced(&wrong, 1))]
        }
        ApiKey::Produce => vec![Act::Write(produced(&r.seen, 2))],
        api => panic!("unexpected {api:?}"),
    };
    let (_, result) = produce(&mut h, Duration::from_secs(5), &mut script);
    let Ok(OpOutput::Produced(p)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(
        p.base_offset,
        Some(2),
        "the answer to the wrong id is not believed"
    );
}

#[test]
fn a_broker_that_never_answers_ends_every_operation_by_its_deadline() {
    let mut h = Harness::new(|_| {});
    let mut script = |r: &Request| match r.seen.api_key {
        ApiKey::Metadata => vec![Act::Write(answer(
            &r.seen,
            &metadata(brokers(1), vec![topic("t", &[0])]),
        ))],
        _ => Vec::new(), // silence
    };
    let timeout = Duration::from_secs(3);
    let (took, result) = produce(&mut h, timeout, &mut script);
    assert_eq!(took, timeout);
    let Err(ClientError::Timeout {
        last_error: Some(last),
        ..
    }) = result
    else {
        panic!("{result:?}")
    };
    assert!(matches!(*last, ClientError::Request(_)), "{last}");
    // A bootstrap broker that never answers Metadata: same.
    let mut h = Harness::new(|_| {});
    let mut mute = |_: &Request| Vec::new();
    let (took, result) = produce(&mut h, timeout, &mut mute);
    assert!(is_timeout(&result), "{result:?}");
    assert_eq!(took, timeout);
}

#[test]
fn a_bootstrap_list_that_refuses_every_connection_ends_by_the_deadline() {
    let mut h = Harness::new(|_| {});
    h.refuse.push(BASE_PORT);
    let mut script = |r: &Request| panic!("nothing connects, yet {:?} arrived", r.seen.api_key);
    let timeout = Duration::from_secs(3);
    let (took, result) = produce(&mut h, timeout, &mut script);
    assert_eq!(took, timeout);
    assert!(is_timeout(&result), "{result:?}");
    // Reconnects back off instead of hammering.
    assert!(
        h.connects.len() <= 20,
        "{} connects in {timeout:?}",
        h.connects.len()
    );
}

#[test]
fn answers_that_do_not_answer_the_question_are_typed_errors() {
    // A Produce response without our partition; a Fetch response with records
    // that do not decode.
    let mut h = Harness::new(|_| {});
    let mut script = |r: &Request| match r.seen.api_key {
        ApiKey::Metadata => vec![Act::Write(answer(
            &r.seen,
            &metadata(brokers(1), vec![topic("t", &[0])]),
        ))],
        ApiKey::Produce => {
            let mut other = r.seen.clone();
            let mut body: ProduceRequest = r.seen.decode();
            body.topic_data[0].partition_data[0].index = 5;
            let mut bytes = BytesMut::new();
            body.encode(&mut bytes, r.seen.version()).unwrap();
            other.body = bytes.freeze();
            vec![Act::Write(produced(&other, 0))]
        }
        ApiKey::Fetch => {
            let partition = fetch_response::PartitionData {
                partition_index: 0,
                high_watermark: 10,
                // A whole batch (length 20) with magic byte 7.
                records: Some(Bytes::from_static(&[
                    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                    10, 11, 12, 13, 14, 15,
                ])),
                ..Default::default()
            };
            vec![Act::Write(fetched(&r.seen, partition))]
        }
        api => panic!("unexpected {api:?}"),
    };
    let (_, result) = produce(&mut h, Duration::from_secs(5), &mut script);
    assert!(
        matches!(
            result,
            Err(ClientError::InvalidResponse {
                api: ApiKey::Produce,
                ..
            })
        ),
        "{result:?}"
    );
    let options = FetchOptions::default().timeout(Duration::from_secs(5));
    let (_, took, result) = h.run(
        |c, now| c.fetch(now, "t", 0, 0, options),
        Duration::from_secs(10),
        &mut script,
    );
    assert!(matches!(result, Err(ClientError::Records(_))), "{result:?}");
    assert!(took < Duration::from_secs(5));
}

#[test]
fn a_fetch_with_a_valid_batch_after_garbage_metadata_fields_still_reads() {
    // Leader epochs going backwards, negative partition indices and a controller
    // that is not a broker do not stop a fetch from reading.
    let mut batch = BytesMut::new();
    let mut builder = BatchBuilder::new(&mut batch, &BatchConfig::default());
    builder
        .append(&NewRecord::new(0).value(&b"hello"[..]))
        .unwrap();
    builder.finish().unwrap();
    let batch = batch.freeze();
    let mut h = Harness::new(|_| {});
    let mut script = |r: &Request| match r.seen.api_key {
        ApiKey::Metadata => {
            let mut t = topic("t", &[0]);
            t.partitions.push(MetadataResponsePartition {
                partition_index: -4,
                leader_id: 0,
                leader_epoch: i32::MIN,
                ..Default::default()
            });
            t.partitions[0].leader_epoch = 5 - r.nth as i32;
            let mut m = metadata(brokers(1), vec![t]);
            m.controller_id = 99;
            vec![Act::Write(answer(&r.seen, &m))]
        }
        ApiKey::Fetch => {
            let partition = fetch_response::PartitionData {
                partition_index: 0,
                high_watermark: 1,
                last_stable_offset: 1,
                records: Some(batch.clone()),
                ..Default::default()
            };
            vec![Act::Write(fetched(&r.seen, partition))]
        }
        api => panic!("unexpected {api:?}"),
    };
    let options = FetchOptions::default().timeout(Duration::from_secs(5));
    let (_, _, result) = h.run(
        |c, now| c.fetch(now, "t", 0, 0, options),
        Duration::from_secs(10),
        &mut script,
    );
    let Ok(OpOutput::Fetched(f)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(f.records.len(), 1);
    assert_eq!(f.records[0].value(), Some(&b"hello"[..]));
    // The metadata names no controller, so a controller-bound call goes to any broker
    // (as it would to a KRaft cluster's named broker); this one lacks CreateTopics,
    // which ends the call with that reason at once.
    let (_, took, result) = h.run(
        |c, now| {
            c.with_timeout(Duration::from_secs(2), |c| {
                c.create_topics(
                    now,
                    vec![kafka_sansio::client::NewTopic::new("x", 1, 1)],
                    Duration::from_secs(1),
                )
            })
        },
        Duration::from_secs(10),
        &mut script,
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    let Ok(OpOutput::TopicResults(r)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(
        r[0].result,
        Err(ClientError::Unsupported(ApiKey::CreateTopics))
    );
}

/// Found by the `client` fuzz target: a broker offering no usable Metadata version
/// made each refresh fail at once and be wanted again at the same instant, so the
/// client asked to be woken `now` after every `handle_timeout` (a busy loop until the
/// deadline; `Harness::run` checks every wake-up).
#[test]
fn a_broker_without_a_usable_metadata_version_is_not_asked_in_a_loop() {
    let mut h = Harness::new(|_| {});
    h.offers = modern()
        .into_iter()
        .map(|(k, min, max)| {
            if k == ApiKey::Metadata {
                (k, 0, 0)
            } else {
                (k, min, max)
            }
        })
        .collect();
    let mut script = |r: &Request| panic!("nothing to send, yet {:?} arrived", r.seen.api_key);
    let timeout = Duration::from_secs(2);
    let (took, result) = produce(&mut h, timeout, &mut script);
    // No broker can answer a Metadata request the client can read: the call fails
    // at once with that reason instead of retrying until its deadline.
    assert!(took < timeout, "{took:?}");
    assert_eq!(result, Err(ClientError::Unsupported(ApiKey::Metadata)));
}

/// Found by the `client` fuzz target's allocation bound: each produce operation kept
/// its encoded batch in the 64 KiB buffer the batch builder grows by, so a hundred
/// one-record produce calls waiting for a broker held 6.5 MB.
#[test]
fn a_pending_produce_holds_about_its_batch_not_a_buffer_step() {
    let start = util::t0();
    let mut client = Client::new(
        ClientConfig::new(&format!("127.0.0.1:{BASE_PORT}")).unwrap(),
        start,
    );
    let (_, held) = alloc::peak_during(|| {
        for i in 0..100 {
            let record = Record::new(format!("value-{i}")).key("k");
            let _ = client.produce(start, "t", 0, vec![record], ProduceOptions::default());
        }
    });
    assert_eq!(client.pending_operations(), 100);
    assert!(
        held < 100 * 4096,
        "{held} bytes held by 100 pending one-record produce operations"
    );
}

/// A log of one partition with an aborted and a committed transaction and their
/// markers: `a0 a1` (offsets 0-1, not transactional), `b2 b3` (producer 7, aborted
/// by the marker at 4), `c5` (producer 8, committed by the marker at 6), `d7`.
fn transactional_log() -> Bytes {
    use kafka_sansio::records::{ControlRecord, ControlRecordType, write_control_batch};
    fn config(base_offset: i64, producer_id: i64, transactional: bool) -> BatchConfig {
        BatchConfig {
            base_offset,
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            transactional,
            ..BatchConfig::default()
        }
    }
    fn data(log: &mut BytesMut, base: i64, producer_id: i64, transactional: bool, values: &[&str]) {
        let mut b = BatchBuilder::new(log, &config(base, producer_id, transactional));
        for v in values {
            b.append(&NewRecord::new(0).value(v.as_bytes())).unwrap();
        }
        b.finish().unwrap();
    }
    fn marker(log: &mut BytesMut, offset: i64, producer_id: i64, kind: ControlRecordType) {
        let marker = ControlRecord::marker(kind, 3);
        write_control_batch(log, &config(offset, producer_id, true), marker, 0).unwrap();
    }
    let mut log = BytesMut::new();
    data(&mut log, 0, -1, false, &["a0", "a1"]);
    data(&mut log, 2, 7, true, &["b2", "b3"]); // aborted by the marker at 4
    marker(&mut log, 4, 7, ControlRecordType::Abort);
    data(&mut log, 5, 8, true, &["c5"]); // committed by the marker at 6
    marker(&mut log, 6, 8, ControlRecordType::Commit);
    data(&mut log, 7, -1, false, &["d7"]);
    log.freeze()
}

/// A broker with topic `t` of one partition whose every Fetch answer is `log`
/// whole (with producer 7's transaction listed as aborted to read_committed
/// fetches). A fetch from the log's end is not answered (a broker would hold it
/// for its max wait; the client's request deadline ends it).
fn serve_log(log: Bytes) -> impl FnMut(&Request) -> Vec<Act> {
    move |r: &Request| match r.seen.api_key {
        ApiKey::Metadata => vec![Act::Write(answer(
            &r.seen,
            &metadata(brokers(1), vec![topic("t", &[0])]),
        ))],
        ApiKey::Fetch => {
            let request: FetchRequest = r.seen.decode();
            if request.topics[0].partitions[0].fetch_offset >= 8 {
                return Vec::new();
            }
            let partition = fetch_response::PartitionData {
                partition_index: 0,
                high_watermark: 8,
                last_stable_offset: 8,
                aborted_transactions: (request.isolation_level == 1).then(|| {
                    vec![fetch_response::AbortedTransaction {
                        producer_id: 7,
                        first_offset: 2,
                        ..Default::default()
                    }]
                }),
                records: Some(log.clone()),
                ..Default::default()
            };
            vec![Act::Write(fetched(&r.seen, partition))]
        }
        api => panic!("unexpected {api:?}"),
    }
}

/// Records as a test compares them: offset and value.
type OffsetValues = Vec<(i64, Vec<u8>)>;

/// What each isolation level delivers of [`transactional_log`] from offset 1.
fn transactional_expected() -> Vec<(kafka_sansio::client::IsolationLevel, OffsetValues)> {
    use kafka_sansio::client::IsolationLevel;
    [
        (
            IsolationLevel::ReadCommitted,
            vec![(1, "a1"), (5, "c5"), (7, "d7")],
        ),
        (
            IsolationLevel::ReadUncommitted,
            vec![(1, "a1"), (2, "b2"), (3, "b3"), (5, "c5"), (7, "d7")],
        ),
    ]
    .into_iter()
    .map(|(isolation, expected)| {
        let expected = expected
            .into_iter()
            .map(|(o, v)| (o, v.as_bytes().to_vec()))
            .collect();
        (isolation, expected)
    })
    .collect()
}

/// A read_committed fetch of a log with an aborted and a committed transaction
/// (markers included) gives the committed records only, owned and lent alike, and
/// moves past the markers; read_uncommitted gives every data record and hides the
/// markers.
#[test]
fn read_committed_fetches_leave_out_aborted_transactions_owned_and_lent() {
    let mut h = Harness::new(|_| {});
    let mut script = serve_log(transactional_log());
    for (isolation, expected) in transactional_expected() {
        let options = FetchOptions::default()
            .isolation(isolation)
            .timeout(Duration::from_secs(5));
        let (_, _, owned) = h.run(
            |c, now| c.fetch(now, "t", 0, 1, options.clone()),
            Duration::from_secs(10),
            &mut script,
        );
        let Ok(OpOutput::Fetched(owned)) = owned else {
            panic!("{owned:?}")
        };
        let got: OffsetValues = owned
            .records
            .iter()
            .map(|r| (r.offset, r.value().unwrap().to_vec()))
            .collect();
        assert_eq!(got, expected, "{isolation:?}, owned");
        assert_eq!(owned.next_offset, 8, "past the commit marker");
        let (_, _, lent) = h.run(
            |c, now| c.fetch_record_set(now, "t", 0, 1, options.clone()),
            Duration::from_secs(10),
            &mut script,
        );
        let Ok(OpOutput::FetchedSet(lent)) = lent else {
            panic!("{lent:?}")
        };
        let mut reader = lent.records.reader();
        let mut got = Vec::new();
        while let Some(r) = reader.next_ref() {
            let r = r.unwrap();
            got.push((r.offset, r.value().unwrap().to_vec()));
        }
        assert_eq!(got, expected, "{isolation:?}, lent");
        assert_eq!(lent.next_offset, 8);
    }
}

/// The consumer applies the same rule to the same log: read_committed hands out
/// the committed records only, read_uncommitted every data record, neither a
/// marker; nothing more comes once it has passed the last marker, and it reports
/// no error.
#[test]
fn the_consumer_leaves_out_markers_and_read_committed_aborted_records() {
    use kafka_sansio::client::{Offset, TopicPartition};
    for (isolation, expected) in transactional_expected() {
        let mut h = Harness::new(|c| c.consumer.isolation = isolation);
        let mut script = serve_log(transactional_log());
        let now = h.now;
        h.client
            .assign(now, vec![TopicPartition::new("t", 0)], Offset::At(1));
        let mut got = Vec::new();
        let until = h.now + Duration::from_secs(2);
        while h.now < until {
            h.pump(&mut script);
            let mut out = Vec::new();
            h.client.poll_records_into(h.now, 100, &mut out);
            got.extend(out.into_iter().map(|r| {
                assert_eq!((&*r.topic, r.partition), ("t", 0));
                (r.record.offset, r.record.value().unwrap().to_vec())
            }));
            let next = h
                .client
                .poll_timeout()
                .expect("a consumer always has a deadline");
            h.now = h.now.max(next).min(until);
            h.client.handle_timeout(h.now);
        }
        assert_eq!(got, expected, "{isolation:?}");
        let errors: Vec<_> = h
            .events
            .iter()
            .filter(|e| matches!(e, Event::ConsumerError { .. }))
            .collect();
        assert!(errors.is_empty(), "{isolation:?}: {errors:?}");
    }
}
