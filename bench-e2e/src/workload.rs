//! The workload every client runs, and the checks on what comes back.

/// What to produce and how to read it back.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Records to produce (and to decode when fetching).
    pub records: u64,
    /// Records per produce call.
    pub batch: usize,
    /// The most bytes one fetch asks for.
    pub fetch_max_bytes: i32,
    /// How long the broker may wait for data.
    pub max_wait_ms: i32,
    /// The cluster keeps only the tail of the partition (librdkafka's mock): fetch
    /// reads the retained window, earliest offset to high watermark, again and again
    /// until `records` records were decoded.
    pub window: bool,
    /// The topic (one partition).
    pub topic: String,
    /// Which phases to run (`build`, `produce`, `fetch`, `consume`, `consume-group`, `send1`,
    /// `send4`, `paced`); all by default. `fetch` or `consume` alone read records an
    /// earlier run produced (for profiling one phase).
    pub phases: Vec<String>,
    /// The producers' linger (`send1`, `send4`, `paced`).
    pub linger_ms: u64,
    /// Records per second of the `paced` phase, and for how long.
    pub paced_rate: u64,
    pub paced_secs: u64,
    /// Deliveries a `send` phase lets be outstanding before it waits for the oldest
    /// (as a user does who keeps the delivery reports); [`SEND_WINDOW`] by default.
    pub send_window: usize,
    /// Bytes of each record's value in the send phases (`send1`, `send4`,
    /// `send1-buffer`, `send4-buffer`, `send1-tasks`); [`VALUE_LEN`] by default. The
    /// other phases always use [`VALUE_LEN`].
    pub send_value_len: usize,
    /// Tasks sending at once in `send1-tasks` ([`SENDER_TASKS`] by default), and
    /// the producer budget they share ([`SENDER_BUDGET`]).
    pub sender_tasks: usize,
    pub sender_budget: usize,
}

/// The topics of the producer phases: one partition, four, and the paced one.
pub const SEND1_TOPIC: &str = "send1";
pub const SEND4_TOPIC: &str = "send4";
pub const PACED_TOPIC: &str = "paced";

/// The defaults of [`Workload::sender_tasks`] and [`Workload::sender_budget`]: small,
/// so that the tasks wait for room most of the time.
pub const SENDER_TASKS: usize = 1000;
pub const SENDER_BUDGET: usize = 1 << 20;

/// The default of [`Workload::send_window`].
pub const SEND_WINDOW: usize = 50_000;

impl Workload {
    /// Whether to run this phase.
    pub fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
}

pub const KEY_LEN: usize = 16;
pub const VALUE_LEN: usize = 100;

/// The key of record `i`: its index, twice (big-endian, then inverted).
pub fn key(i: u64) -> [u8; KEY_LEN] {
    let mut k = [0; KEY_LEN];
    k[..8].copy_from_slice(&i.to_be_bytes());
    k[8..].copy_from_slice(&(!i).to_be_bytes());
    k
}

/// The value of record `i`: bytes counting up from `i`.
pub fn value(i: u64) -> [u8; VALUE_LEN] {
    let mut v = [0; VALUE_LEN];
    let start = i as u8;
    for (j, b) in v.iter_mut().enumerate() {
        *b = start.wrapping_add(j as u8);
    }
    v
}

/// The value of record `i` in the send phases, `len` bytes counting up from `i`
/// ([`value`] when `len` is [`VALUE_LEN`]), appended to `out`.
pub fn send_value_into(i: u64, len: usize, out: &mut Vec<u8>) {
    if len == VALUE_LEN {
        out.extend_from_slice(&value(i));
        return;
    }
    let start = i as u8;
    out.extend((0..len).map(|j| start.wrapping_add(j as u8)));
}

/// [`send_value_into`] a new `Vec`, as a user of an API taking owned values builds one.
pub fn send_value(i: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    send_value_into(i, len, &mut v);
    v
}

/// Checks that a fetched record at `offset` is the one produced as record `offset`
/// (every topic starts empty, so record `i` lands at offset `i`).
pub fn check(offset: u64, key: Option<&[u8]>, value: Option<&[u8]>) {
    let key = key.unwrap_or_else(|| panic!("offset {offset}: null key"));
    assert_eq!(key, &self::key(offset)[..], "offset {offset}: key");
    let value = value.unwrap_or_else(|| panic!("offset {offset}: null value"));
    assert_eq!(value.len(), VALUE_LEN, "offset {offset}: value length");
    assert_eq!(value[0], offset as u8, "offset {offset}: value");
    assert_eq!(
        value[VALUE_LEN - 1],
        (offset as u8).wrapping_add(VALUE_LEN as u8 - 1),
        "offset {offset}: value"
    );
}

/// Walks the fetch offsets: checks each record's offset and content, and in window
/// mode wraps back to the window's start at the high watermark.
pub struct Reader {
    pub next: i64,
    pub start: i64,
    pub decoded: u64,
    pub window: bool,
}

impl Reader {
    pub fn new(start: i64, window: bool) -> Self {
        Self {
            next: start,
            start,
            decoded: 0,
            window,
        }
    }

    /// One fetched record.
    pub fn record(&mut self, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        assert_eq!(offset, self.next, "records out of order or missing");
        check(offset as u64, key, value);
        self.next += 1;
        self.decoded += 1;
    }

    /// After a fetch answered with this high watermark: wrap around at the end of
    /// the window. Returns whether it wrapped.
    pub fn after_fetch(&mut self, high_watermark: i64) -> bool {
        if self.window && self.next >= high_watermark {
            self.next = self.start;
            return true;
        }
        false
    }
}
