//! The operations the client runs, by area.

pub(crate) mod admin;
pub(crate) mod partition;
