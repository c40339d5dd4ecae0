//! The seeds of a simulation suite: which to run (from the environment), and running
//! them on every core.

/// Shares `seeds` out over the machine's cores (up to 8 threads; thread `t` takes
/// every n-th seed from the `t`-th) and runs `run` on each thread with its share.
/// The seeds are independent runs, so the order they run in does not matter. What
/// each thread returned, in thread order; a panic on any thread is raised again
/// here, with its message.
pub fn on_every_core<T: Send>(
    seeds: &[u64],
    run: impl Fn(&mut dyn Iterator<Item = u64>) -> T + Sync,
) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let run = &run;
                scope.spawn(move || run(&mut seeds.iter().copied().skip(t).step_by(threads)))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The seeds to run: `SIM_SEEDS` of them (500 unless set) from `SIM_SEED_START` (1
/// unless set).
pub fn from_env() -> std::ops::Range<u64> {
    let start = std::env::var("SIM_SEED_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let count: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    start..start + count
}

/// The client's log on the test's output, filtered by `RUST_LOG`.
#[allow(dead_code)] // not every suite logs
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
