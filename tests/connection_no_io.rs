//! "Nothing in src/ reads a clock, opens a socket or sleeps", checked: every Rust file
//! under src/ is scanned (unit-test modules after `#[cfg(test)]` excepted) for the
//! calls and types that would do I/O. The runtime adapters live in runtimes/, outside
//! src/, and are the one visible exception.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests and tools own their clock and sockets

use std::path::{Path, PathBuf};

const FORBIDDEN: &[&str] = &[
    "Instant::now",
    "SystemTime::now",
    "thread::sleep",
    "thread::spawn",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "std::net::",
    "std::fs::",
    "tokio::",
    "async_io::",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn src_does_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "scanned too few files: {files:?}");
    let mut hits = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            let code = line.split("//").next().unwrap_or("");
            for f in FORBIDDEN {
                if code.contains(f) {
                    hits.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "I/O in the sans-IO core:\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_scan_would_catch_a_clock_read() {
    // guard against a scan that can never fail: the pattern list matches real code
    let sample = "let t = std::time::Instant::now();";
    assert!(FORBIDDEN.iter().any(|f| sample.contains(f)));
}
