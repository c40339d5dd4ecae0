//! What every fuzz target does: run its body from `kafka_sansio::fuzzing::targets`
//! under a counting allocator and turn any failed property, or an allocation past
//! the target's bound, into a crash libFuzzer records.

pub mod alloc;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// Runs the target `name` on `data`; panics on any failed check.
pub fn check(name: &str, data: &[u8]) {
    let target = kafka_sansio::fuzzing::targets::target(name)
        .unwrap_or_else(|| panic!("no fuzz target named {name}"));
    let (result, peak) = alloc::peak_during(|| (target.run)(data));
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let bound = target.alloc_bound(data.len());
    assert!(
        peak <= bound,
        "{name}: held {peak} heap bytes at once for a {}-byte input (bound {bound})",
        data.len()
    );
}
