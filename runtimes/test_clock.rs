//! The clock for the core's unit tests. The sans-IO core reads no clock: its state
//! machines take time as an argument, and a unit test needs some instant to start
//! from, which only the clock can make. Reading it here keeps every clock read on
//! the runtime side of the crate.
#![allow(clippy::disallowed_methods)] // the one clock read of the unit tests

use std::time::Instant;

/// An instant for a unit test to start its own time from.
pub(crate) fn start() -> Instant {
    Instant::now()
}
