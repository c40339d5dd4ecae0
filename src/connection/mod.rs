//! One broker connection as a sans-IO state machine.

pub mod frame;
pub mod sasl;
