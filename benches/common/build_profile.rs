//! Which Cargo profile a bench binary was built with, for the tables' titles.
//!
//! `cargo bench` builds into `target/release/` with profile `bench` (no LTO, 16 codegen
//! units); `cargo bench --profile bench-lto` into `target/bench-lto/` (fat LTO, one
//! codegen unit; see Cargo.toml). The binary itself lives in `deps/` below that.

#![allow(dead_code)]

/// The name of the directory the binary was built into: `release` for `cargo bench`,
/// `bench-lto` for `cargo bench --profile bench-lto`.
pub fn dir_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.file_name()?.to_str()?.to_string()))
        .unwrap_or_else(|| "unknown".to_string())
}

/// The profile as `cargo bench --profile` names it, with how Cargo.toml has it compile.
pub fn describe() -> String {
    match dir_name().as_str() {
        "release" => "bench (no LTO, 16 codegen units)".to_string(),
        "bench-lto" => "bench-lto (fat LTO, 1 codegen unit)".to_string(),
        other => format!("the one built into target/{other}/"),
    }
}
