//! `load`: a traffic generator on ksunami's model. A cycle is four phases: `min`
//! (steady at the low rate), `up` (a transition to the high rate along a curve),
//! `max` (steady at the high rate), `down` (back along a curve); cycles repeat.
//! The rate function, its integral and the generators are plain functions, tested
//! here; the runner sends what the integral owes every few milliseconds.

use std::time::Duration;

/// How a transition moves from one rate to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// Jumps to the new rate at the start of the transition.
    None,
    /// A straight line.
    Linear,
    /// Slow start, fast end (quadratic).
    EaseIn,
    /// Fast start, slow end (quadratic).
    EaseOut,
    /// Slow at both ends (smoothstep).
    EaseInOut,
    /// Almost flat, then a sharp rise at the end (exponential).
    SpikeIn,
    /// A sharp rise at the start, then almost flat (exponential).
    SpikeOut,
}

impl Curve {
    /// Parses a curve name.
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "none" => Self::None,
            "linear" => Self::Linear,
            "ease-in" => Self::EaseIn,
            "ease-out" => Self::EaseOut,
            "ease-in-out" => Self::EaseInOut,
            "spike-in" => Self::SpikeIn,
            "spike-out" => Self::SpikeOut,
            _ => {
                return Err(format!(
                    "curve {text:?}: expected none, linear, ease-in, ease-out, ease-in-out, spike-in or spike-out"
                ));
            }
        })
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Linear => "linear",
            Self::EaseIn => "ease-in",
            Self::EaseOut => "ease-out",
            Self::EaseInOut => "ease-in-out",
            Self::SpikeIn => "spike-in",
            Self::SpikeOut => "spike-out",
        }
    }

    /// How far along the change is (0 to 1) at progress `p` (0 to 1) of the
    /// transition.
    pub fn at(self, p: f64) -> f64 {
        let p = p.clamp(0.0, 1.0);
        match self {
            Self::None => 1.0,
            Self::Linear => p,
            Self::EaseIn => p * p,
            Self::EaseOut => 1.0 - (1.0 - p) * (1.0 - p),
            Self::EaseInOut => p * p * (3.0 - 2.0 * p),
            // 2^(10(p-1)), shifted so it starts at exactly 0 and ends at 1.
            Self::SpikeIn => {
                let floor = 2f64.powf(-10.0);
                (2f64.powf(10.0 * (p - 1.0)) - floor) / (1.0 - floor)
            }
            Self::SpikeOut => 1.0 - Self::SpikeIn.at(1.0 - p),
        }
    }
}

/// One cycle's phases: rates in records per second, durations, curves.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The low rate.
    pub min: f64,
    /// How long the low rate holds.
    pub min_for: Duration,
    /// The high rate.
    pub max: f64,
    /// How long the high rate holds.
    pub max_for: Duration,
    /// The transition from low to high.
    pub up: Curve,
    /// How long it takes.
    pub up_for: Duration,
    /// The transition from high to low.
    pub down: Curve,
    /// How long it takes.
    pub down_for: Duration,
}

/// Which phase a moment falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Steady low.
    Min,
    /// Rising.
    Up,
    /// Steady high.
    Max,
    /// Falling.
    Down,
}

impl Phase {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Min => "min",
            Self::Up => "up",
            Self::Max => "max",
            Self::Down => "down",
        }
    }
}

impl Profile {
    /// One cycle's length.
    pub fn cycle(&self) -> Duration {
        self.min_for + self.up_for + self.max_for + self.down_for
    }

    /// The target rate (records per second) and phase at `t` since the start.
    pub fn rate_at(&self, t: Duration) -> (f64, Phase) {
        let cycle = self.cycle().as_secs_f64();
        if cycle <= 0.0 {
            return (self.max, Phase::Max);
        }
        let mut t = t.as_secs_f64() % cycle;
        let span = |d: Duration| d.as_secs_f64();
        if t < span(self.min_for) {
            return (self.min, Phase::Min);
        }
        t -= span(self.min_for);
        if t < span(self.up_for) {
            let f = self.up.at(t / span(self.up_for));
            return (self.min + (self.max - self.min) * f, Phase::Up);
        }
        t -= span(self.up_for);
        if t < span(self.max_for) {
            return (self.max, Phase::Max);
        }
        t -= span(self.max_for);
        let f = self.down.at(t / span(self.down_for));
        (self.max + (self.min - self.max) * f, Phase::Down)
    }

    /// Records owed between `a` and `b` (the integral of the rate), summed over
    /// 1 ms steps at their midpoints.
    pub fn records_between(&self, a: Duration, b: Duration) -> f64 {
        const STEP: f64 = 0.001;
        let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
        let mut total = 0.0;
        let mut t = a;
        while t < b {
            let dt = STEP.min(b - t);
            total += self.rate_at(Duration::from_secs_f64(t + dt / 2.0)).0 * dt;
            t += dt;
        }
        total
    }
}

/// Where keys or values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generator {
    /// A null key or value.
    Null,
    /// The same bytes every time.
    Fixed(Vec<u8>),
    /// Random bytes of this length.
    Random(usize),
    /// Random letters and digits of this length.
    Alnum(usize),
    /// The lines of a file, in turn.
    Lines(Vec<Vec<u8>>),
}

impl Generator {
    /// Parses `none`, `fixed:TEXT`, `random:LEN`, `alnum:LEN` or `file:PATH`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let len = |n: &str| {
            n.parse::<usize>()
                .ok()
                .filter(|n| *n <= 16 << 20)
                .ok_or_else(|| format!("generator {text:?}: a length of 0 to 16777216"))
        };
        if text == "none" {
            Ok(Self::Null)
        } else if let Some(t) = text.strip_prefix("fixed:") {
            Ok(Self::Fixed(t.as_bytes().to_vec()))
        } else if let Some(n) = text.strip_prefix("random:") {
            Ok(Self::Random(len(n)?))
        } else if let Some(n) = text.strip_prefix("alnum:") {
            Ok(Self::Alnum(len(n)?))
        } else if let Some(path) = text.strip_prefix("file:") {
            let data = std::fs::read(path).map_err(|e| format!("generator file {path:?}: {e}"))?;
            let lines: Vec<Vec<u8>> = data
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            if lines.is_empty() {
                return Err(format!("generator file {path:?} has no lines"));
            }
            Ok(Self::Lines(lines))
        } else {
            Err(format!(
                "generator {text:?}: expected none, fixed:TEXT, random:LEN, alnum:LEN or file:PATH"
            ))
        }
    }

    /// The `n`th item.
    pub fn make(&self, n: u64, rng: &mut Rng) -> Option<Vec<u8>> {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        match self {
            Self::Null => None,
            Self::Fixed(b) => Some(b.clone()),
            Self::Random(len) => Some((0..*len).map(|_| rng.next() as u8).collect()),
            Self::Alnum(len) => Some(
                (0..*len)
                    .map(|_| ALNUM[(rng.next() % ALNUM.len() as u64) as usize])
                    .collect(),
            ),
            Self::Lines(lines) => {
                let i = usize::try_from(n % lines.len() as u64).unwrap_or(0);
                Some(lines[i].clone())
            }
        }
    }
}

/// xorshift64*: fast, good enough for payloads.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded (0 is replaced by a constant).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Latencies with about 1 % relative precision, in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const GROWTH: f64 = 1.01;

impl Histogram {
    fn index(us: u64) -> usize {
        // us + 1 so that 0 has a bucket; ln grows slowly: 1 hour is ~2260 buckets.
        ((us as f64 + 1.0).ln() / GROWTH.ln()) as usize
    }

    /// Records one latency.
    pub fn add(&mut self, us: u64) {
        let i = Self::index(us);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(us);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Self) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many latencies.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest latency.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The `q` quantile (0 to 1), within about 1 %; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // The bucket's upper bound, never above the true maximum.
                let upper = GROWTH.powi(i as i32 + 1) - 1.0;
                return (upper as u64).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(up: Curve, down: Curve) -> Profile {
        Profile {
            min: 100.0,
            min_for: Duration::from_secs(1),
            max: 1000.0,
            max_for: Duration::from_secs(1),
            up,
            up_for: Duration::from_secs(2),
            down,
            down_for: Duration::from_secs(2),
        }
    }

    #[test]
    fn curves_start_at_zero_end_at_one_and_keep_their_shape() {
        for c in [
            Curve::Linear,
            Curve::EaseIn,
            Curve::EaseOut,
            Curve::EaseInOut,
            Curve::SpikeIn,
            Curve::SpikeOut,
        ] {
            assert!(c.at(0.0).abs() < 1e-12, "{c:?} at 0");
            assert!((c.at(1.0) - 1.0).abs() < 1e-12, "{c:?} at 1");
            let mut last = 0.0;
            for i in 1..=100 {
                let v = c.at(f64::from(i) / 100.0);
                assert!(v >= last, "{c:?} is not monotonic");
                last = v;
            }
        }
        assert_eq!(Curve::None.at(0.0), 1.0);
        assert!((Curve::Linear.at(0.25) - 0.25).abs() < 1e-12);
        // ease-in lags the line, ease-out leads it; ease-in-out crosses at the middle.
        assert!(Curve::EaseIn.at(0.5) < 0.5 && Curve::EaseOut.at(0.5) > 0.5);
        assert!((Curve::EaseInOut.at(0.5) - 0.5).abs() < 1e-12);
        // Spikes: most of the change in the last (first) tenth.
        assert!(Curve::SpikeIn.at(0.9) < 0.5);
        assert!(Curve::SpikeOut.at(0.1) > 0.5);
    }

    #[test]
    fn curve_names() {
        assert_eq!(Curve::parse("ease-in-out"), Ok(Curve::EaseInOut));
        assert_eq!(Curve::parse("spike-out"), Ok(Curve::SpikeOut));
        assert!(Curve::parse("bounce").is_err());
        for c in [
            Curve::None,
            Curve::Linear,
            Curve::EaseIn,
            Curve::EaseOut,
            Curve::EaseInOut,
            Curve::SpikeIn,
            Curve::SpikeOut,
        ] {
            assert_eq!(Curve::parse(c.name()), Ok(c));
        }
    }

    #[test]
    fn the_rate_follows_the_phases_and_repeats() {
        let p = profile(Curve::Linear, Curve::Linear);
        let at = |s: f64| p.rate_at(Duration::from_secs_f64(s));
        assert_eq!(at(0.5), (100.0, Phase::Min));
        assert_eq!(at(2.0).1, Phase::Up);
        assert!((at(2.0).0 - 550.0).abs() < 1e-9);
        assert_eq!(at(3.5), (1000.0, Phase::Max));
        assert_eq!(at(5.0).1, Phase::Down);
        assert!((at(5.0).0 - 550.0).abs() < 1e-9);
        // The second cycle is the first again.
        assert_eq!(at(6.5), at(0.5));
        assert!((at(8.0).0 - at(2.0).0).abs() < 1e-9);
        // `none` jumps at the start of its transition.
        let step = profile(Curve::None, Curve::None);
        assert_eq!(step.rate_at(Duration::from_millis(1001)).0, 1000.0);
        assert_eq!(step.rate_at(Duration::from_millis(4001)).0, 100.0);
    }

    #[test]
    fn the_integral_is_the_area_under_the_rate() {
        let p = profile(Curve::Linear, Curve::Linear);
        let s = Duration::from_secs;
        assert!((p.records_between(s(0), s(1)) - 100.0).abs() < 1e-6);
        // A linear ramp from 100 to 1000 over 2 s: 1100 records.
        assert!((p.records_between(s(1), s(3)) - 1100.0).abs() < 1e-6);
        // Its first second: from 100 to 550, 325 records.
        assert!((p.records_between(s(1), s(2)) - 325.0).abs() < 1e-6);
        // A whole cycle: 100 + 1100 + 1000 + 1100.
        assert!((p.records_between(s(0), s(6)) - 3300.0).abs() < 1e-6);
    }

    #[test]
    fn generators() {
        let mut rng = Rng::new(7);
        assert_eq!(Generator::parse("none").unwrap().make(0, &mut rng), None);
        let fixed = Generator::parse("fixed:abc").unwrap();
        assert_eq!(fixed.make(5, &mut rng), Some(b"abc".to_vec()));
        let alnum = Generator::parse("alnum:32")
            .unwrap()
            .make(0, &mut rng)
            .unwrap();
        assert_eq!(alnum.len(), 32);
        assert!(alnum.iter().all(u8::is_ascii_alphanumeric));
        let random = Generator::parse("random:64").unwrap();
        let (a, b) = (random.make(0, &mut rng), random.make(1, &mut rng));
        assert_eq!(a.as_ref().map(Vec::len), Some(64));
        assert_ne!(a, b);
        let lines = Generator::Lines(vec![b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(lines.make(3, &mut rng), Some(b"y".to_vec()));
        for bad in ["random:x", "alnum:-1", "nope", "file:/nonexistent/file"] {
            assert!(Generator::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn histogram_quantiles_within_a_percent() {
        let mut h = Histogram::default();
        for us in 1..=10_000u64 {
            h.add(us);
        }
        let near = |got: u64, want: f64| (got as f64 - want).abs() <= want * 0.011 + 1.0;
        assert!(near(h.quantile(0.5), 5000.0), "{}", h.quantile(0.5));
        assert!(near(h.quantile(0.99), 9900.0), "{}", h.quantile(0.99));
        assert_eq!(h.max(), 10_000);
        assert_eq!(h.quantile(1.0), 10_000);
        let mut other = Histogram::default();
        other.add(50_000);
        h.merge(&other);
        assert_eq!((h.count(), h.max()), (10_001, 50_000));
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }
}
