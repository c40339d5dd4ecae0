//! Runs the seeds of a simulation suite on every core.

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
