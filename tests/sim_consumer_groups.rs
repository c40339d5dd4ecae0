//! The KIP-848 coordinator of the simulated cluster, driven by hand-made
//! ConsumerGroupHeartbeat frames in virtual time: epochs, the server-side assignor,
//! revoke-before-assign reconciliation, fencing, leaving, static members, member
//! epochs on OffsetCommit/OffsetFetch, and ConsumerGroupDescribe.
#![cfg(feature = "sim")]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests own their clock

use kafka_sansio::messages::{
    ApiKey, ApiVersionsRequest, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, CreatePartitionsRequest, ErrorCode, OffsetFetchRequest,
    consumer_group_heartbeat_request as cgh, create_partitions_request, offset_fetch_request,
};
use kafka_sansio::sim::{ConnectionId, GroupProtocol};
use kafka_sansio::wire::Uuid;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

mod sim_harness;
use sim_harness::*;

type Owned = BTreeSet<(Uuid, i32)>;

/// A consumer as the coordinator sees it: what it was last told to own.
struct Member {
    id: String,
    epoch: i32,
    owned: Owned,
    instance: Option<String>,
}

impl Member {
    fn new(id: &str) -> Self {
        Member {
            id: id.into(),
            epoch: 0,
            owned: Owned::new(),
            instance: None,
        }
    }
}

fn owned_list(owned: &Owned) -> Vec<cgh::TopicPartitions> {
    let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in owned {
        by_topic.entry(*t).or_default().push(*p);
    }
    by_topic
        .into_iter()
        .map(|(topic_id, ps)| cgh::TopicPartitions {
            topic_id,
            partitions: ps.into(),
            ..Default::default()
        })
        .collect()
}

/// A heartbeat as a KIP-848 consumer sends it: everything on a join (epoch 0), then
/// only the epoch and the partitions it owns.
fn beat(group: &str, m: &Member, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    let joining = m.epoch == 0;
    ConsumerGroupHeartbeatRequest {
        group_id: group.into(),
        member_id: m.id.as_str().into(),
        member_epoch: m.epoch,
        instance_id: m.instance.as_deref().map(Into::into),
        rebalance_timeout_ms: if joining { 30_000 } else { -1 },
        subscribed_topic_names: joining.then(|| topics.iter().map(|t| (*t).into()).collect()),
        topic_partitions: Some(owned_list(&m.owned)),
        ..Default::default()
    }
}

/// Sends `m`'s heartbeat and applies the answer as a consumer does: a new epoch,
/// and the assignment when one is given (revoking what is not in it).
fn heartbeat(
    h: &mut Harness,
    c: ConnectionId,
    group: &str,
    m: &mut Member,
    topics: &[&str],
) -> ConsumerGroupHeartbeatResponse {
    let r = h.call(c, &beat(group, m, topics), 1);
    if r.error_code == 0 {
        m.epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            m.owned = a
                .topic_partitions
                .iter()
                .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
                .collect();
        }
    }
    r
}

/// Every member's owned partitions are disjoint: no partition has two owners.
fn assert_disjoint(members: &[&Member]) {
    let mut seen = Owned::new();
    for m in members {
        for tp in &m.owned {
            assert!(seen.insert(*tp), "{tp:?} owned twice ({})", m.id);
        }
    }
}

fn code(r: &ConsumerGroupHeartbeatResponse) -> ErrorCode {
    ErrorCode::from(r.error_code)
}

fn setup(partitions: i32) -> (Harness, ConnectionId, Uuid) {
    let mut h = Harness::new(1);
    let t = h.cluster.create_topic("t", partitions, 1).unwrap();
    let c = h.cluster.connect(0, h.now).unwrap();
    (h, c, t)
}

#[test]
fn consumer_group_heartbeat_is_advertised_at_v0_and_v1() {
    let (mut h, c, _) = setup(1);
    let r = h.call(c, &ApiVersionsRequest::default(), 0);
    for (api, range) in [
        (ApiKey::ConsumerGroupHeartbeat, (0, 1)),
        (ApiKey::ConsumerGroupDescribe, (0, 1)),
    ] {
        let k = r
            .api_keys
            .iter()
            .find(|k| k.api_key == api.as_i16())
            .unwrap();
        assert_eq!((k.min_version, k.max_version), range, "{api:?}");
    }
}

/// A second member gets a partition only after the first revoked it, and its epoch
/// goes up before that (UnreleasedPartitions); at every step no partition has two
/// owners, and in the end each holds half.
#[test]
fn partitions_move_only_after_their_owner_revokes_them() {
    let (mut h, c, t) = setup(4);
    let mut a = Member::new("a");
    let r = heartbeat(&mut h, c, "g", &mut a, &["t"]);
    assert_eq!(code(&r), ErrorCode::NONE);
    assert_eq!(r.member_id.as_deref(), Some("a"));
    assert_eq!((r.member_epoch, r.heartbeat_interval_ms), (1, 5000));
    assert_eq!(a.owned, (0..4).map(|p| (t, p)).collect());

    let mut b = Member::new("b");
    let r = heartbeat(&mut h, c, "g", &mut b, &["t"]);
    assert_eq!(r.member_epoch, 2, "the group epoch went up with the join");
    assert!(b.owned.is_empty(), "a still owns them: {r:?}");
    assert_disjoint(&[&a, &b]);
    let g = h.cluster.group("g").unwrap();
    assert_eq!(
        (g.protocol, g.state.as_str(), g.epoch),
        (GroupProtocol::Consumer, "Reconciling", 2)
    );

    // a is told to give up two; its epoch stays until it has.
    let r = heartbeat(&mut h, c, "g", &mut a, &["t"]);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(a.owned.len(), 2);
    let kept = a.owned.clone();
    // b asks before a acknowledged: still nothing.
    let r = heartbeat(&mut h, c, "g", &mut b, &["t"]);
    assert!(r.assignment.is_none() && b.owned.is_empty(), "{r:?}");
    assert_disjoint(&[&a, &b]);
    // a acknowledges (its heartbeat lists only what it kept) and gets the new epoch.
    let r = heartbeat(&mut h, c, "g", &mut a, &["t"]);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(a.owned, kept);
    // Now b gets the other two.
    let r = heartbeat(&mut h, c, "g", &mut b, &["t"]);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(b.owned.len(), 2);
    assert_disjoint(&[&a, &b]);
    let g = h.cluster.group("g").unwrap();
    assert_eq!(g.state, "Stable");
    let all: BTreeSet<(String, i32)> = g
        .members
        .iter()
        .flat_map(|m| m.assigned.iter().cloned())
        .collect();
    assert_eq!(all, (0..4).map(|p| ("t".to_owned(), p)).collect());
}

#[test]
fn wrong_epochs_unknown_members_and_bad_requests_are_refused() {
    let (mut h, c, _) = setup(2);
    let mut a = Member::new("a");
    heartbeat(&mut h, c, "g", &mut a, &["t"]);
    let mut b = Member::new("b");
    heartbeat(&mut h, c, "g", &mut b, &["t"]);
    heartbeat(&mut h, c, "g", &mut a, &["t"]);
    heartbeat(&mut h, c, "g", &mut a, &["t"]);
    heartbeat(&mut h, c, "g", &mut b, &["t"]);
    assert_eq!((a.epoch, a.owned.len(), b.owned.len()), (2, 1, 1));

    // An epoch the coordinator never gave is fenced.
    let mut future = Member::new("a");
    future.epoch = 9;
    future.owned = a.owned.clone();
    let r = heartbeat(&mut h, c, "g", &mut future, &["t"]);
    assert_eq!(code(&r), ErrorCode::FENCED_MEMBER_EPOCH);
    // The previous epoch is accepted from a member that owns no more than it was
    // given (it missed the answer that bumped it)...
    let mut late = Member::new("a");
    late.epoch = 1;
    late.owned = a.owned.clone();
    let r = heartbeat(&mut h, c, "g", &mut late, &["t"]);
    assert_eq!((code(&r), r.member_epoch), (ErrorCode::NONE, 2));
    // ...but not from one claiming more.
    let mut greedy = Member::new("a");
    greedy.epoch = 1;
    greedy.owned = a.owned.union(&b.owned).cloned().collect();
    let r = heartbeat(&mut h, c, "g", &mut greedy, &["t"]);
    assert_eq!(code(&r), ErrorCode::FENCED_MEMBER_EPOCH);
    let mut stranger = Member::new("z");
    stranger.epoch = 3;
    let r = heartbeat(&mut h, c, "g", &mut stranger, &["t"]);
    assert_eq!(code(&r), ErrorCode::UNKNOWN_MEMBER_ID);
    let r = heartbeat(&mut h, c, "nothing-here", &mut stranger, &["t"]);
    assert_eq!(code(&r), ErrorCode::UNKNOWN_MEMBER_ID);

    // Requests Kafka refuses before looking at the group.
    let join = |member: &str| beat("g", &Member::new(member), &["t"]);
    let mut r = join("");
    assert_eq!(
        code(&h.call(c, &r, 1)),
        ErrorCode::INVALID_REQUEST,
        "v1: the client makes the member id"
    );
    let v0 = h.call(c, &r, 0);
    assert_eq!(code(&v0), ErrorCode::NONE, "v0: the coordinator makes it");
    assert!(!v0.member_id.as_deref().unwrap_or("").is_empty());
    r = join("x");
    r.rebalance_timeout_ms = -1;
    assert_eq!(code(&h.call(c, &r, 1)), ErrorCode::INVALID_REQUEST);
    r = join("x");
    r.subscribed_topic_names = None;
    assert_eq!(code(&h.call(c, &r, 1)), ErrorCode::INVALID_REQUEST);
    r = join("x");
    r.server_assignor = Some("sticky-ish".into());
    assert_eq!(code(&h.call(c, &r, 1)), ErrorCode::UNSUPPORTED_ASSIGNOR);
    r = join("x");
    r.subscribed_topic_regex = Some("t.*".into());
    let resp = h.call(c, &r, 1);
    assert_eq!(code(&resp), ErrorCode::INVALID_REGULAR_EXPRESSION);
    assert!(resp.error_message.is_some());
    r = join("x");
    r.group_id = "".into();
    assert_eq!(code(&h.call(c, &r, 1)), ErrorCode::INVALID_GROUP_ID);
}

/// A member that stops heartbeating is fenced after the session timeout; one that
/// leaves (epoch -1) goes at once. Either way the others get its partitions.
#[test]
fn silent_members_are_fenced_and_leaving_members_go_at_once() {
    let (mut h, c, _) = setup(4);
    let (mut a, mut b, mut d) = (Member::new("a"), Member::new("b"), Member::new("d"));
    for _ in 0..3 {
        for m in [&mut a, &mut b, &mut d] {
            heartbeat(&mut h, c, "g", m, &["t"]);
        }
    }
    assert_disjoint(&[&a, &b, &d]);
    assert_eq!(a.owned.len() + b.owned.len() + d.owned.len(), 4);
    let epoch = h.cluster.group("g").unwrap().epoch;

    // d leaves: -1 comes back, and the group epoch goes up.
    d.epoch = -1;
    let r = heartbeat(&mut h, c, "g", &mut d, &["t"]);
    assert_eq!((code(&r), r.member_epoch), (ErrorCode::NONE, -1));
    assert_eq!(h.cluster.group("g").unwrap().epoch, epoch + 1);

    // b goes silent; a keeps heartbeating every 5 s.
    for _ in 0..9 {
        h.advance(Duration::from_secs(5));
        heartbeat(&mut h, c, "g", &mut a, &["t"]);
    }
    h.advance(Duration::from_secs(1));
    heartbeat(&mut h, c, "g", &mut a, &["t"]);
    assert_eq!(
        a.owned.len(),
        4,
        "a has every partition after b's session ended"
    );
    let r = heartbeat(&mut h, c, "g", &mut b, &["t"]);
    assert_eq!(code(&r), ErrorCode::UNKNOWN_MEMBER_ID);
    let g = h.cluster.group("g").unwrap();
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.state, "Stable");
}

/// A member asked to revoke that never does is fenced after its rebalance timeout,
/// and only then does the partition move.
#[test]
fn a_member_that_never_revokes_is_fenced_after_its_rebalance_timeout() {
    let (mut h, c, _) = setup(2);
    let mut a = Member::new("a");
    heartbeat(&mut h, c, "g", &mut a, &["t"]);
    let mut b = Member::new("b");
    heartbeat(&mut h, c, "g", &mut b, &["t"]);
    // a hears it must revoke, but keeps claiming both partitions.
    let claimed = a.owned.clone();
    heartbeat(&mut h, c, "g", &mut a, &["t"]);
    for _ in 0..5 {
        h.advance(Duration::from_secs(5));
        a.owned = claimed.clone();
        let r = heartbeat(&mut h, c, "g", &mut a, &["t"]);
        assert_eq!(code(&r), ErrorCode::NONE);
        heartbeat(&mut h, c, "g", &mut b, &["t"]);
        assert!(b.owned.is_empty(), "a still holds both");
    }
    h.advance(Duration::from_secs(6));
    a.owned = claimed.clone();
    let r = heartbeat(&mut h, c, "g", &mut a, &["t"]);
    assert_eq!(code(&r), ErrorCode::UNKNOWN_MEMBER_ID, "fenced after 30 s");
    heartbeat(&mut h, c, "g", &mut b, &["t"]);
    heartbeat(&mut h, c, "g", &mut b, &["t"]);
    assert_eq!(b.owned.len(), 2);
}

/// A group of `t` (4 partitions) with a static member `a1` (instance `inst-a`)
/// and a dynamic one `b`, settled: two partitions each.
fn static_a_and_dynamic_b() -> (Harness, ConnectionId, Member, Member) {
    let (mut h, c, _) = setup(4);
    let mut a = Member::new("a1");
    a.instance = Some("inst-a".into());
    let mut b = Member::new("b");
    for _ in 0..3 {
        heartbeat(&mut h, c, "g", &mut a, &["t"]);
        heartbeat(&mut h, c, "g", &mut b, &["t"]);
    }
    (h, c, a, b)
}

/// `a` (static) leaves for a while: epoch -2, listing what it owns.
fn leave_static(h: &mut Harness, c: ConnectionId, a: &Member) -> ConsumerGroupHeartbeatResponse {
    let mut leaving = Member::new(&a.id);
    leaving.instance = a.instance.clone();
    leaving.epoch = -2;
    leaving.owned = a.owned.clone();
    heartbeat(h, c, "g", &mut leaving, &["t"])
}

/// KIP-848 static membership: a member leaving with -2 keeps its partitions; a
/// restart with the same instance id (a new member id) takes them over without a
/// new group epoch; the old member id is fenced; an instance still in use cannot be
/// taken.
#[test]
fn a_static_member_restarts_into_its_old_assignment() {
    let (mut h, c, mut a, mut b) = static_a_and_dynamic_b();
    let had = a.owned.clone();
    assert_eq!(had.len(), 2);
    let epoch = h.cluster.group("g").unwrap().epoch;

    // Another process with the same instance id while a is alive.
    let mut usurper = Member::new("a2");
    usurper.instance = Some("inst-a".into());
    let r = heartbeat(&mut h, c, "g", &mut usurper, &["t"]);
    assert_eq!(code(&r), ErrorCode::UNRELEASED_INSTANCE_ID);

    // a leaves for a while.
    assert_eq!(a.owned, had);
    let r = leave_static(&mut h, c, &a);
    assert_eq!((code(&r), r.member_epoch), (ErrorCode::NONE, -2));
    // b does not get a's partitions meanwhile.
    heartbeat(&mut h, c, "g", &mut b, &["t"]);
    assert_eq!(b.owned.len(), 2);

    // The restart: a new member id, the same instance id.
    let mut restarted = Member::new("a2");
    restarted.instance = Some("inst-a".into());
    let r = heartbeat(&mut h, c, "g", &mut restarted, &["t"]);
    assert_eq!(code(&r), ErrorCode::NONE);
    assert_eq!(restarted.owned, had, "its old assignment, no rebalance");
    assert_eq!(r.member_epoch, epoch);
    assert_eq!(
        h.cluster.group("g").unwrap().epoch,
        epoch,
        "no new group epoch"
    );
    // The old member id is fenced.
    a.epoch = epoch;
    let r = heartbeat(&mut h, c, "g", &mut a, &["t"]);
    assert_eq!(code(&r), ErrorCode::FENCED_INSTANCE_ID);
    let g = h.cluster.group("g").unwrap();
    let ids: BTreeSet<&str> = g.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, ["a2", "b"].into());
}

/// A static member that left with -2 and never came back goes when its session
/// ends, and the group rebalances without it.
#[test]
fn a_static_member_that_does_not_come_back_expires() {
    let (mut h, c, _) = setup(2);
    let mut a = Member::new("a");
    a.instance = Some("i".into());
    let mut b = Member::new("b");
    for _ in 0..3 {
        heartbeat(&mut h, c, "g", &mut a, &["t"]);
        heartbeat(&mut h, c, "g", &mut b, &["t"]);
    }
    a.epoch = -2;
    assert_eq!(heartbeat(&mut h, c, "g", &mut a, &["t"]).member_epoch, -2);
    for _ in 0..10 {
        h.advance(Duration::from_secs(5));
        heartbeat(&mut h, c, "g", &mut b, &["t"]);
    }
    heartbeat(&mut h, c, "g", &mut b, &["t"]);
    assert_eq!(b.owned.len(), 2);
    assert_eq!(h.cluster.group("g").unwrap().members.len(), 1);
}

/// New partitions, and a topic created after the subscription, are a new group
/// epoch and get assigned.
#[test]
fn topics_created_or_grown_later_are_assigned() {
    let (mut h, c, t) = setup(1);
    let mut a = Member::new("a");
    heartbeat(&mut h, c, "g", &mut a, &["t", "later"]);
    assert_eq!(a.owned, [(t, 0)].into());
    let r = h.call(
        c,
        &CreatePartitionsRequest {
            topics: vec![create_partitions_request::CreatePartitionsTopic {
                name: "t".into(),
                count: 3,
                ..Default::default()
            }],
            timeout_ms: 1000,
            ..Default::default()
        },
        3,
    );
    assert_eq!(r.results[0].error_code, 0);
    let later = h.cluster.create_topic("later", 2, 1).unwrap();
    let before = a.epoch;
    heartbeat(&mut h, c, "g", &mut a, &["t", "later"]);
    assert!(a.epoch > before);
    let want: Owned = [(t, 0), (t, 1), (t, 2), (later, 0), (later, 1)].into();
    assert_eq!(a.owned, want);
}

/// OffsetCommit v9 carries the member epoch: the member's own commits go through,
/// a stale epoch is STALE_MEMBER_EPOCH, an unknown member UNKNOWN_MEMBER_ID, and an
/// older OffsetCommit from a member UNSUPPORTED_VERSION. OffsetFetch v9 checks the
/// same, and epoch -1 (admin) reads regardless.
#[test]
fn offset_commits_and_fetches_carry_member_epochs() {
    let (mut h, c, _) = setup(1);
    let mut a = Member::new("a");
    heartbeat(&mut h, c, "g", &mut a, &["t"]);
    let codes =
        |r: &kafka_sansio::messages::OffsetCommitResponse| r.topics[0].partitions[0].error_code;
    assert_eq!(codes(&h.call(c, &commit("g", "a", a.epoch, 5), 9)), 0);
    assert_eq!(h.cluster.committed_offset("g", "t", 0), Some(5));
    assert_eq!(
        ErrorCode::from(codes(&h.call(c, &commit("g", "a", a.epoch + 1, 6), 9))),
        ErrorCode::STALE_MEMBER_EPOCH
    );
    assert_eq!(
        ErrorCode::from(codes(&h.call(c, &commit("g", "zz", a.epoch, 6), 9))),
        ErrorCode::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        ErrorCode::from(codes(&h.call(c, &commit("g", "a", a.epoch, 6), 8))),
        ErrorCode::UNSUPPORTED_VERSION
    );
    assert_eq!(h.cluster.committed_offset("g", "t", 0), Some(5));

    let fetch = |member: Option<&str>, epoch: i32| OffsetFetchRequest {
        groups: vec![offset_fetch_request::OffsetFetchRequestGroup {
            group_id: "g".into(),
            member_id: member.map(Into::into),
            member_epoch: epoch,
            topics: None,
            ..Default::default()
        }],
        ..Default::default()
    };
    let r = h.call(c, &fetch(Some("a"), a.epoch), 9);
    assert_eq!(r.groups[0].error_code, 0);
    assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 5);
    let r = h.call(c, &fetch(Some("a"), a.epoch + 3), 9);
    assert_eq!(
        ErrorCode::from(r.groups[0].error_code),
        ErrorCode::STALE_MEMBER_EPOCH
    );
    let r = h.call(c, &fetch(None, -1), 9);
    assert_eq!(r.groups[0].error_code, 0);

    // Once the group is empty, a commit without a member (admin) is allowed.
    a.epoch = -1;
    heartbeat(&mut h, c, "g", &mut a, &["t"]);
    assert_eq!(codes(&h.call(c, &commit("g", "", -1, 7), 9)), 0);
}

#[test]
fn consumer_group_describe_reports_epochs_members_and_assignments() {
    let (mut h, c, _) = setup(3);
    let (mut a, mut b) = (Member::new("a"), Member::new("b"));
    a.instance = Some("ia".into());
    for _ in 0..3 {
        heartbeat(&mut h, c, "g", &mut a, &["t"]);
        heartbeat(&mut h, c, "g", &mut b, &["t"]);
    }
    // A classic group of the same cluster is not a consumer group.
    let r = h.call(c, &join("classic", "", 10_000), 5);
    assert_eq!(ErrorCode::from(r.error_code), ErrorCode::MEMBER_ID_REQUIRED);
    let r = h.call(c, &join("classic", &r.member_id, 10_000), 5);
    assert_eq!(r.error_code, 0);
    let r = h.call(
        c,
        &ConsumerGroupDescribeRequest {
            group_ids: vec!["g".into(), "missing".into(), "classic".into()],
            ..Default::default()
        },
        1,
    );
    let g = &r.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(
        (&*g.group_state, g.group_epoch, g.assignment_epoch),
        ("Stable", 2, 2)
    );
    assert_eq!(&*g.assignor_name, "uniform");
    assert_eq!(g.members.len(), 2);
    let ma = g.members.iter().find(|m| &*m.member_id == "a").unwrap();
    assert_eq!(ma.instance_id.as_deref(), Some("ia"));
    assert_eq!(ma.member_epoch, 2);
    assert_eq!(&*ma.client_id, "sim-test");
    assert_eq!(ma.subscribed_topic_names, vec!["t"]);
    let assigned: usize = g
        .members
        .iter()
        .flat_map(|m| &m.assignment.topic_partitions)
        .inspect(|tp| assert_eq!(&*tp.topic_name, "t"))
        .map(|tp| tp.partitions.len())
        .sum();
    assert_eq!(assigned, 3);
    for (i, want) in [
        (1, ErrorCode::GROUP_ID_NOT_FOUND),
        (2, ErrorCode::GROUP_ID_NOT_FOUND),
    ] {
        assert_eq!(ErrorCode::from(r.groups[i].error_code), want);
        assert!(r.groups[i].error_message.is_some());
    }
    // A consumer group with members refuses classic members, and the reverse.
    let r = h.call(c, &join("g", "", 10_000), 5);
    assert_eq!(
        ErrorCode::from(r.error_code),
        ErrorCode::INCONSISTENT_GROUP_PROTOCOL
    );
    let mut x = Member::new("x");
    let r = heartbeat(&mut h, c, "classic", &mut x, &["t"]);
    assert_eq!(code(&r), ErrorCode::GROUP_ID_NOT_FOUND);
}

/// The range assignor, when the members ask for it, gives contiguous ranges.
#[test]
fn members_may_ask_for_the_range_assignor() {
    let (mut h, c, t) = setup(5);
    let mut ms: Vec<Member> = ["a", "b"].into_iter().map(Member::new).collect();
    for _ in 0..3 {
        for m in &mut ms {
            let mut r = beat("g", m, &["t"]);
            r.server_assignor = Some("range".into());
            let resp = h.call(c, &r, 1);
            assert_eq!(resp.error_code, 0);
            m.epoch = resp.member_epoch;
            if let Some(a) = resp.assignment {
                m.owned = a
                    .topic_partitions
                    .iter()
                    .flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic_id, *p)))
                    .collect();
            }
        }
    }
    assert_eq!(ms[0].owned, (0..3).map(|p| (t, p)).collect());
    assert_eq!(ms[1].owned, (3..5).map(|p| (t, p)).collect());
}

/// Seeded runs of members joining, heartbeating, leaving and going silent, with
/// the coordinator's answers applied as consumers apply them: no partition ever has
/// two owners, and once everyone keeps heartbeating every partition has one owner
/// and the counts differ by at most one.
#[test]
fn seeded_churn_never_gives_a_partition_two_owners_and_settles_balanced() {
    for seed in 0..300u64 {
        let mut rng = kafka_sansio::sim::SimRng::new(seed);
        let partitions = 1 + rng.below(8) as i32;
        let (mut h, c, _) = setup(partitions);
        let mut members: Vec<Member> = Vec::new();
        let mut next = 0;
        for _ in 0..60 {
            match rng.below(10) {
                0 | 1 if members.len() < 5 => {
                    next += 1;
                    members.push(Member::new(&format!("m{next}")));
                }
                2 if !members.is_empty() => {
                    let i = rng.below(members.len() as u64) as usize;
                    let mut m = members.remove(i);
                    if m.epoch > 0 {
                        m.epoch = -1;
                        heartbeat(&mut h, c, "g", &mut m, &["t"]);
                    }
                }
                3 => h.advance(Duration::from_millis(rng.below(3000))),
                _ => {}
            }
            for i in 0..members.len() {
                if rng.chance(0.7) {
                    let r = heartbeat(&mut h, c, "g", &mut members[i], &["t"]);
                    if code(&r) == ErrorCode::UNKNOWN_MEMBER_ID
                        || code(&r) == ErrorCode::FENCED_MEMBER_EPOCH
                    {
                        // A fenced consumer drops what it owns and joins again.
                        members[i].owned.clear();
                        members[i].epoch = 0;
                    }
                }
                let all: Vec<&Member> = members.iter().collect();
                assert_disjoint(&all);
            }
        }
        for _ in 0..8 {
            for m in &mut members {
                heartbeat(&mut h, c, "g", m, &["t"]);
            }
        }
        let all: Vec<&Member> = members.iter().collect();
        assert_disjoint(&all);
        if !members.is_empty() {
            let owned: usize = members.iter().map(|m| m.owned.len()).sum();
            assert_eq!(
                owned, partitions as usize,
                "seed {seed}: every partition owned"
            );
            let counts: Vec<usize> = members.iter().map(|m| m.owned.len()).collect();
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "seed {seed}: unbalanced {counts:?}");
            assert_eq!(h.cluster.group("g").unwrap().state, "Stable", "seed {seed}");
        }
    }
}

#[test]
fn requests_at_another_broker_get_not_coordinator() {
    let mut h = Harness::new(3);
    h.cluster.create_topic("t", 1, 3).unwrap();
    let any = h.cluster.connect(0, h.now).unwrap();
    let mut a = Member::new("a");
    heartbeat(&mut h, any, "g", &mut a, &["t"]);
    let coordinator = h.cluster.coordinator("g").unwrap();
    let other = h.cluster.connect((coordinator + 1) % 3, h.now).unwrap();
    let at = h.cluster.connect(coordinator, h.now).unwrap();
    let mut b = Member::new("b");
    let r = heartbeat(&mut h, other, "g", &mut b, &["t"]);
    assert_eq!(code(&r), ErrorCode::NOT_COORDINATOR);
    let r = heartbeat(&mut h, at, "g", &mut b, &["t"]);
    assert_eq!(code(&r), ErrorCode::NONE);
}

/// A static member that left with -2 and rejoins under its own member id while
/// the group moved on (a member joined, so part of its old assignment is another
/// member's target now): it rejoins owning nothing, and the answer gives it the
/// new epoch at once with what is free of its target, as Kafka's
/// `ownsRevokedPartitions` lets a member that no longer owns what it must revoke
/// move on. Answering epoch 0 with partitions left it unable to heartbeat: a
/// heartbeat at epoch 0 may not list partitions.
#[test]
fn a_static_member_rejoining_while_its_partitions_moved_takes_the_new_epoch() {
    let (mut h, c, a, mut b) = static_a_and_dynamic_b();
    assert_eq!(a.owned.len(), 2);
    let r = leave_static(&mut h, c, &a);
    assert_eq!((code(&r), r.member_epoch), (ErrorCode::NONE, -2));
    // Two members join: the target leaves each of the four one partition.
    let mut d = Member::new("d");
    let mut e = Member::new("e");
    for _ in 0..3 {
        for m in [&mut d, &mut e, &mut b] {
            heartbeat(&mut h, c, "g", m, &["t"]);
        }
    }
    // a comes back under the same member id, owning nothing.
    let mut back = Member::new("a1");
    back.instance = Some("inst-a".into());
    let r = heartbeat(&mut h, c, "g", &mut back, &["t"]);
    assert_eq!(code(&r), ErrorCode::NONE);
    assert!(r.member_epoch > 0, "answered at epoch {}", r.member_epoch);
    // Everyone settles, at their epochs, with no partition owned twice.
    for _ in 0..4 {
        for m in [&mut back, &mut b, &mut d, &mut e] {
            let r = heartbeat(&mut h, c, "g", m, &["t"]);
            assert_eq!(code(&r), ErrorCode::NONE, "{}", m.id);
        }
        assert_disjoint(&[&back, &b, &d, &e]);
    }
    for m in [&back, &b, &d, &e] {
        assert_eq!(m.owned.len(), 1, "{}", m.id);
    }
}
