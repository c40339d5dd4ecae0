//! The operations the client runs, by area.

pub(crate) mod admin;
pub(crate) mod offsets;
pub(crate) mod partition;
pub(crate) mod transactions;
