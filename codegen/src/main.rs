//! Generates `src/messages/` of kafka-sansio from Apache Kafka's JSON message schemas.
//!
//! ```text
//! cargo run -p kafka-sansio-codegen -- <spec-dir> <out-dir> [--check]
//! ```
//!
//! `<spec-dir>` holds `message/` (requests, responses, headers, data schemas),
//! optionally `group-coordinator/` (the `__consumer_offsets` record schemas) and
//! `error-codes.tsv`; a checkout of Apache Kafka works through the same layout.
//! With `--check` nothing is written: the command exits non-zero when the files in
//! `<out-dir>` differ from what it would write.

mod emit;
mod schema;
mod throttle;

use emit::{HEADER, is_generated};
use schema::{Kind, Schema, snake};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    if pos.len() != 2 {
        eprintln!("usage: kafka-sansio-codegen <spec-dir> <out-dir> [--check]");
        return ExitCode::from(2);
    }
    match run(Path::new(pos[0]), Path::new(pos[1]), check) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kafka-sansio-codegen: {e}");
            ExitCode::from(2)
        }
    }
}

fn load_dir(dir: &Path) -> Result<Vec<Schema>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| schema::load(p)).collect()
}

fn run(spec: &Path, out: &Path, check: bool) -> Result<bool, String> {
    let messages = load_dir(&spec.join("message"))?;
    let coordinator = if spec.join("group-coordinator").is_dir() {
        load_dir(&spec.join("group-coordinator"))?
    } else {
        Vec::new()
    };
    let errors_tsv = std::fs::read_to_string(spec.join("error-codes.tsv")).ok();

    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    for s in &messages {
        files.insert(
            PathBuf::from(format!("{}.rs", snake(&s.name))),
            emit::module_source(s, false),
        );
    }
    let top_names: Vec<&str> = messages.iter().map(|s| s.name.as_str()).collect();
    let coordinator: Vec<&Schema> = coordinator
        .iter()
        .filter(|s| !top_names.contains(&s.name.as_str()))
        .collect();
    for s in &coordinator {
        files.insert(
            PathBuf::from(format!("consumer_offsets/{}.rs", snake(&s.name))),
            emit::module_source(s, true),
        );
    }
    files.insert(PathBuf::from("api_key.rs"), api_key_source(&messages));
    if let Some(tsv) = &errors_tsv {
        files.insert(PathBuf::from("error_code.rs"), error_code_source(tsv)?);
    }
    if !coordinator.is_empty() {
        files.insert(
            PathBuf::from("consumer_offsets/mod.rs"),
            consumer_offsets_source(&coordinator),
        );
    }
    files.insert(
        PathBuf::from("mod.rs"),
        mod_source(&messages, !coordinator.is_empty(), errors_tsv.is_some()),
    );

    let files = rustfmt_all(files)?;

    // Files that carry our header but that we no longer write are stale.
    let mut existing = Vec::new();
    collect_generated(out, out, &mut existing);
    let mut ok = true;
    if check {
        for (rel, text) in &files {
            match std::fs::read_to_string(out.join(rel)) {
                Ok(cur) if cur == *text => {}
                Ok(_) => {
                    eprintln!("stale: {}", out.join(rel).display());
                    ok = false;
                }
                Err(_) => {
                    eprintln!("missing: {}", out.join(rel).display());
                    ok = false;
                }
            }
        }
        for rel in &existing {
            if !files.contains_key(rel) {
                eprintln!("no longer generated: {}", out.join(rel).display());
                ok = false;
            }
        }
        if ok {
            eprintln!("{} generated files are current", files.len());
        } else {
            eprintln!(
                "generated code is stale: run `cargo run -p kafka-sansio-codegen -- {} {}`",
                spec.display(),
                out.display()
            );
        }
        return Ok(ok);
    }
    for rel in &existing {
        if !files.contains_key(rel) {
            std::fs::remove_file(out.join(rel)).map_err(|e| e.to_string())?;
        }
    }
    for (rel, text) in &files {
        let path = out.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    eprintln!("wrote {} files to {}", files.len(), out.display());
    Ok(true)
}

fn collect_generated(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_generated(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "rs")
            && std::fs::read_to_string(&p).is_ok_and(|t| is_generated(&t))
            && let Ok(rel) = p.strip_prefix(root)
        {
            out.push(rel.to_path_buf());
        }
    }
}

/// Formats every file with rustfmt (edition 2024) in a scratch folder.
fn rustfmt_all(files: BTreeMap<PathBuf, String>) -> Result<BTreeMap<PathBuf, String>, String> {
    let dir = std::env::temp_dir().join(format!("kafka-sansio-codegen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (rel, text) in &files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(&dir)).map_err(|e| e.to_string())?;
        std::fs::write(&p, text).map_err(|e| e.to_string())?;
    }
    let paths: Vec<PathBuf> = files.keys().map(|r| dir.join(r)).collect();
    for chunk in paths.chunks(64) {
        let status = Command::new("rustfmt")
            .args(["--edition", "2024"])
            .args(chunk)
            .status()
            .map_err(|e| format!("running rustfmt: {e}"))?;
        if !status.success() {
            return Err(format!(
                "rustfmt failed on generated code in {}",
                dir.display()
            ));
        }
    }
    let mut out = BTreeMap::new();
    for rel in files.keys() {
        out.insert(
            rel.clone(),
            std::fs::read_to_string(dir.join(rel)).map_err(|e| e.to_string())?,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

fn api_name(s: &Schema) -> &str {
    s.name
        .trim_end_matches("Request")
        .trim_end_matches("Response")
}

fn range_lit(r: &schema::Range, cap: i16) -> String {
    if r.is_empty() {
        "VersionRange::EMPTY".into()
    } else {
        format!("VersionRange {{ min: {}, max: {} }}", r.min, r.max.min(cap))
    }
}

fn api_key_source(messages: &[Schema]) -> String {
    let mut reqs: Vec<&Schema> = messages
        .iter()
        .filter(|s| s.kind == Kind::Request)
        .collect();
    reqs.sort_by_key(|s| s.api_key);
    let mut o = String::new();
    o.push_str(HEADER);
    o.push_str("\n//! API keys, their version ranges and header rules, and enums over every request and response body.\n\n");
    o.push_str("#![allow(clippy::large_enum_variant)]\n\n");
    o.push_str("use crate::wire::{Bytes, BufMut, DecodeError, DecodeErrorKind, EncodeError, Message, VersionRange};\n\n");
    o.push_str("/// A Kafka API, by its numeric key.\n///\n/// Each variant's documentation gives its valid, flexible and deprecated versions.\n#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\n#[repr(i16)]\n#[non_exhaustive]\npub enum ApiKey {\n");
    for s in &reqs {
        let _ = writeln!(
            o,
            "    /// {} (key {}): versions {}, flexible {}{}{}.\n    {} = {},",
            api_name(s),
            s.api_key.unwrap_or(-1),
            s.valid.describe(),
            s.flexible.describe(),
            s.deprecated
                .map(|d| format!(", deprecated {}", d.describe()))
                .unwrap_or_default(),
            if s.latest_unstable {
                ", latest version unstable"
            } else {
                ""
            },
            api_name(s),
            s.api_key.unwrap_or(-1)
        );
    }
    o.push_str("}\n\n");
    o.push_str("/// An API key number this crate does not know.\n#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]\n#[error(\"unknown API key {0}\")]\npub struct UnknownApiKey(pub i16);\n\n");
    o.push_str("impl TryFrom<i16> for ApiKey {\n    type Error = UnknownApiKey;\n    fn try_from(key: i16) -> Result<Self, UnknownApiKey> {\n        Ok(match key {\n");
    for s in &reqs {
        let _ = writeln!(
            o,
            "            {} => ApiKey::{},",
            s.api_key.unwrap_or(-1),
            api_name(s)
        );
    }
    o.push_str("            other => return Err(UnknownApiKey(other)),\n        })\n    }\n}\n\n");
    o.push_str("impl std::fmt::Display for ApiKey {\n    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {\n        f.write_str(self.name())\n    }\n}\n\n");
    o.push_str("impl ApiKey {\n    /// Every API key, in key order.\n    pub const ALL: &'static [ApiKey] = &[\n");
    for s in &reqs {
        let _ = writeln!(o, "        ApiKey::{},", api_name(s));
    }
    o.push_str("    ];\n\n    /// The numeric key.\n    #[must_use]\n    pub const fn as_i16(self) -> i16 {\n        self as i16\n    }\n\n");
    let table = |o: &mut String, doc: &str, sig: &str, f: &dyn Fn(&Schema) -> String| {
        let _ = writeln!(
            o,
            "    /// {doc}\n    #[must_use]\n    pub const fn {sig} {{\n        match self {{"
        );
        for s in &reqs {
            let _ = writeln!(o, "            ApiKey::{} => {},", api_name(s), f(s));
        }
        o.push_str("        }\n    }\n\n");
    };
    table(
        &mut o,
        "The API's name, as the schema gives it (`Produce`, `Fetch`, ...).",
        "name(self) -> &'static str",
        &|s| format!("{:?}", api_name(s)),
    );
    table(
        &mut o,
        "Every version the schema defines.",
        "valid_versions(self) -> VersionRange",
        &|s| range_lit(&s.valid, s.valid.max),
    );
    table(
        &mut o,
        "The versions that use the flexible (compact, tagged-field) encoding.",
        "flexible_versions(self) -> VersionRange",
        &|s| range_lit(&s.flexible, s.valid.max),
    );
    table(
        &mut o,
        "Versions the schema marks deprecated.",
        "deprecated_versions(self) -> VersionRange",
        &|s| {
            range_lit(
                &s.deprecated
                    .unwrap_or(schema::Range::NONE)
                    .intersect(&s.valid),
                s.valid.max,
            )
        },
    );
    table(
        &mut o,
        "Whether the highest valid version is still unstable (brokers advertise it only when asked to).",
        "latest_version_unstable(self) -> bool",
        &|s| s.latest_unstable.to_string(),
    );
    table(
        &mut o,
        "Which Kafka listeners accept this API (`broker`, `controller`, `zkBroker`).",
        "listeners(self) -> &'static [&'static str]",
        &|s| format!("&{:?}", s.listeners),
    );
    o.push_str(
        "    /// The request header version a request of this API at `version` uses: 2 for
    /// flexible versions, 1 otherwise, and 0 only for ControlledShutdown v0.
    #[must_use]
    pub const fn request_header_version(self, version: i16) -> i16 {
        if self.flexible_versions().contains(version) {
            2
        } else if matches!(self, ApiKey::ControlledShutdown) && version == 0 {
            0
        } else {
            1
        }
    }

    /// The response header version a response of this API at `version` uses: 1 for
    /// flexible versions, 0 otherwise, and always 0 for ApiVersions (a client must
    /// read it before it knows which versions the broker speaks).
    #[must_use]
    pub const fn response_header_version(self, version: i16) -> i16 {
        if matches!(self, ApiKey::ApiVersions) {
            0
        } else if self.flexible_versions().contains(version) {
            1
        } else {
            0
        }
    }
}

/// A request message: binds the body type to its API key and its response type.
pub trait Request: Message {
    /// The API this request belongs to.
    const API_KEY: ApiKey;
    /// The response type the broker answers with.
    type Response: Message;

    /// Whether the broker answers this request. Every request is answered except a
    /// Produce with `acks = 0`, which the broker only appends.
    ///
    /// ```
    /// use kafka_sansio::messages::{MetadataRequest, ProduceRequest, Request};
    ///
    /// assert!(MetadataRequest::default().expects_response());
    /// assert!(ProduceRequest { acks: -1, ..Default::default() }.expects_response());
    /// assert!(!ProduceRequest { acks: 0, ..Default::default() }.expects_response());
    /// ```
    #[must_use]
    fn expects_response(&self) -> bool {
        true
    }
}

",
    );
    o.push_str(&throttle::source(messages));
    for (enum_name, suffix, what) in [
        ("RequestBody", "Request", "request"),
        ("ResponseBody", "Response", "response"),
    ] {
        let _ = writeln!(
            o,
            "/// Any {what} body, for code that handles every API (a broker, a proxy, a fuzzer).\n#[derive(Debug, Clone, PartialEq)]\n#[non_exhaustive]\npub enum {enum_name} {{"
        );
        for s in &reqs {
            let _ = writeln!(
                o,
                "    /// A [`super::{}{suffix}`].\n    {}(super::{}{suffix}),",
                api_name(s),
                api_name(s),
                api_name(s)
            );
        }
        o.push_str("}\n\n");
        for s in &reqs {
            let _ = writeln!(
                o,
                "impl From<super::{n}{suffix}> for {enum_name} {{\n    fn from(v: super::{n}{suffix}) -> Self {{\n        {enum_name}::{n}(v)\n    }}\n}}\n",
                n = api_name(s)
            );
        }
        let _ = writeln!(
            o,
            "impl {enum_name} {{\n    /// The API this body belongs to.\n    #[must_use]\n    pub fn api_key(&self) -> ApiKey {{\n        match self {{"
        );
        for s in &reqs {
            let _ = writeln!(
                o,
                "            {enum_name}::{n}(_) => ApiKey::{n},",
                n = api_name(s)
            );
        }
        o.push_str("        }\n    }\n\n");
        if enum_name == "RequestBody" {
            o.push_str("    /// Whether the broker answers this request (see [`Request::expects_response`]).\n    #[must_use]\n    pub fn expects_response(&self) -> bool {\n        match self {\n");
            for s in &reqs {
                let _ = writeln!(
                    o,
                    "            RequestBody::{n}(m) => m.expects_response(),",
                    n = api_name(s)
                );
            }
            o.push_str("        }\n    }\n\n");
        }
        let _ = writeln!(
            o,
            "    /// Decodes the body of a {what} of `api_key` at `version`.\n    pub fn decode(api_key: ApiKey, buf: &mut Bytes, version: i16) -> Result<Self, DecodeError> {{\n        Ok(match api_key {{"
        );
        for s in &reqs {
            let _ = writeln!(
                o,
                "            ApiKey::{n} => {enum_name}::{n}(super::{n}{suffix}::decode(buf, version)?),",
                n = api_name(s)
            );
        }
        o.push_str("        })\n    }\n\n");
        let _ = writeln!(
            o,
            "    /// Decodes the body of a {what} whose API key is a raw number.\n    pub fn decode_raw(api_key: i16, buf: &mut Bytes, version: i16) -> Result<Self, DecodeError> {{\n        let key = ApiKey::try_from(api_key).map_err(|_| DecodeError::new(\"{enum_name}\", DecodeErrorKind::UnknownApiKey(api_key)))?;\n        Self::decode(key, buf, version)\n    }}\n"
        );
        let _ = writeln!(
            o,
            "    /// Encodes the body at `version`.\n    pub fn encode<B: BufMut>(&self, buf: &mut B, version: i16) -> Result<(), EncodeError> {{\n        match self {{"
        );
        for s in &reqs {
            let _ = writeln!(
                o,
                "            {enum_name}::{n}(m) => m.encode(buf, version),",
                n = api_name(s)
            );
        }
        o.push_str("        }\n    }\n}\n\n");
    }
    o
}

fn error_code_source(tsv: &str) -> Result<String, String> {
    struct Row {
        code: i16,
        name: String,
        retriable: bool,
        message: String,
    }
    let mut rows = Vec::new();
    for (i, line) in tsv.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 3 {
            return Err(format!("error-codes.tsv line {}: {line:?}", i + 1));
        }
        rows.push(Row {
            code: cols[0]
                .parse()
                .map_err(|e| format!("error-codes.tsv line {}: {e}", i + 1))?,
            name: cols[1].to_string(),
            retriable: cols[2] == "true",
            message: cols.get(3).copied().unwrap_or("").to_string(),
        });
    }
    let mut o = String::new();
    o.push_str(HEADER);
    o.push_str("\n//! Kafka's protocol error codes, from `error-codes.tsv`.\n\n");
    o.push_str(
        "/// A Kafka protocol error code.
///
/// Every code Kafka defines has a constant with its name, message and whether Kafka's
/// Java client retries it. Codes this crate does not know stay as their number.
///
/// ```
/// use kafka_sansio::messages::ErrorCode;
/// let e = ErrorCode::from(6);
/// assert_eq!(e, ErrorCode::NOT_LEADER_OR_FOLLOWER);
/// assert_eq!(e.name(), Some(\"NOT_LEADER_OR_FOLLOWER\"));
/// assert!(e.is_retriable());
/// assert!(ErrorCode::NONE.is_ok());
/// assert_eq!(ErrorCode::from(-200).name(), None);
/// assert_eq!(ErrorCode::from(-200).code(), -200);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ErrorCode(pub i16);

impl ErrorCode {
",
    );
    for r in &rows {
        let doc = if r.message.is_empty() {
            format!("Code {}.", r.code)
        } else {
            format!("Code {}: {}", r.code, r.message)
        };
        let _ = writeln!(
            o,
            "    /// {}\n    pub const {}: ErrorCode = ErrorCode({});",
            doc.replace('[', "\\[")
                .replace(']', "\\]")
                .replace('<', "\\<"),
            r.name,
            r.code
        );
    }
    o.push_str("\n    /// The numeric code.\n    #[must_use]\n    pub const fn code(self) -> i16 {\n        self.0\n    }\n\n    /// Whether this is `NONE` (no error).\n    #[must_use]\n    pub const fn is_ok(self) -> bool {\n        self.0 == 0\n    }\n\n");
    o.push_str("    /// Kafka's name for the code, or `None` for a code this crate does not know.\n    #[must_use]\n    pub const fn name(self) -> Option<&'static str> {\n        Some(match self.0 {\n");
    for r in &rows {
        let _ = writeln!(o, "            {} => {:?},", r.code, r.name);
    }
    o.push_str("            _ => return None,\n        })\n    }\n\n");
    o.push_str("    /// Kafka's default message for the code, or `None` for a code this crate does not know.\n    #[must_use]\n    pub const fn message(self) -> Option<&'static str> {\n        Some(match self.0 {\n");
    for r in &rows {
        let _ = writeln!(o, "            {} => {:?},", r.code, r.message);
    }
    o.push_str("            _ => return None,\n        })\n    }\n\n");
    o.push_str("    /// Whether Kafka's Java client treats the error as retriable (unknown codes are not).\n    #[must_use]\n    pub const fn is_retriable(self) -> bool {\n        matches!(self.0, ");
    let retriable: Vec<String> = rows
        .iter()
        .filter(|r| r.retriable)
        .map(|r| r.code.to_string())
        .collect();
    o.push_str(&retriable.join(" | "));
    o.push_str(")\n    }\n\n");
    o.push_str("    /// `Ok(())` for `NONE`, the error otherwise.\n    pub const fn into_result(self) -> Result<(), ErrorCode> {\n        if self.is_ok() { Ok(()) } else { Err(self) }\n    }\n}\n\n");
    o.push_str(
        "impl From<i16> for ErrorCode {
    fn from(code: i16) -> Self {
        ErrorCode(code)
    }
}

impl From<ErrorCode> for i16 {
    fn from(code: ErrorCode) -> Self {
        code.0
    }
}

impl std::fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, \"{name}({})\", self.0),
            None => write!(f, \"ErrorCode({})\", self.0),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.name(), self.message()) {
            (Some(name), Some(msg)) if !msg.is_empty() => write!(f, \"{name} ({}): {msg}\", self.0),
            (Some(name), _) => write!(f, \"{name} ({})\", self.0),
            _ => write!(f, \"unknown error code {}\", self.0),
        }
    }
}

impl std::error::Error for ErrorCode {}
",
    );
    Ok(o)
}

fn mod_source(messages: &[Schema], coordinator: bool, errors: bool) -> String {
    let mut o = String::new();
    o.push_str(HEADER);
    o.push_str(
        "
//! Every Kafka request and response, generated from Apache Kafka's JSON message schemas.
//!
//! One module per schema file (`produce_request`, `fetch_response`, ...), each holding
//! the message struct and the nested structures it uses; the message types are also
//! re-exported here. Every message implements [`Message`] (encode and decode at any
//! valid version) and every request [`Request`], which names its [`ApiKey`] and
//! response type. [`RequestBody`] and [`ResponseBody`] hold any body by API key.
//!
//! Field documentation gives the versions each field exists in. Encoding a field that
//! does not exist at the chosen version with a non-default value is an error (unless
//! the schema marks it ignorable), as is a null where the version does not allow one.
//! Unknown tagged fields are kept and written back.
//!
//! ```
//! use kafka_sansio::messages::{ApiKey, MetadataRequest, Request, metadata_request::MetadataRequestTopic};
//! use kafka_sansio::wire::{Bytes, BytesMut, Message};
//!
//! let request = MetadataRequest {
//!     topics: Some(vec![MetadataRequestTopic { name: Some(\"orders\".into()), ..Default::default() }]),
//!     ..Default::default()
//! };
//! assert_eq!(MetadataRequest::API_KEY, ApiKey::Metadata);
//! let mut buf = BytesMut::new();
//! request.encode(&mut buf, 12).unwrap();
//! let decoded = MetadataRequest::decode(&mut buf.freeze(), 12).unwrap();
//! assert_eq!(decoded, request);
//! ```

",
    );
    for s in messages {
        let _ = writeln!(o, "pub mod {};", snake(&s.name));
    }
    o.push_str("\nmod api_key;\npub use api_key::{ApiKey, Request, RequestBody, ResponseBody, ThrottleTimeField, UnknownApiKey};\n");
    if errors {
        o.push_str("mod error_code;\npub use error_code::ErrorCode;\n");
    }
    if coordinator {
        o.push_str("pub mod consumer_offsets;\n");
    }
    o.push_str("\npub use crate::wire::Message;\n\n");
    for s in messages {
        let _ = writeln!(o, "pub use {}::{};", snake(&s.name), s.name);
    }
    // The list of every message, for code that instantiates something per message
    // (the property checks and fuzz targets in `crate::fuzzing`, which build their
    // table from it). A macro, so this module needs nothing from the code that uses it.
    o.push_str("\n/// Calls the macro `$callback` with every message type of this module and its kind,\n/// as `Name: \"kind\",` items (`request`, `response`, `header` or `data`): for code\n/// that instantiates something per message, as `crate::fuzzing` builds its table of\n/// property checks.\n#[cfg(feature = \"arbitrary\")]\nmacro_rules! for_each_message {\n    ($callback:ident) => {\n        $callback! {\n");
    for s in messages {
        let _ = writeln!(
            o,
            "            {}: {:?},",
            s.name,
            match s.kind {
                Kind::Request => "request",
                Kind::Response => "response",
                Kind::Header => "header",
                Kind::Data => "data",
            }
        );
    }
    o.push_str(
        "        }\n    };\n}\n#[cfg(feature = \"arbitrary\")]\npub(crate) use for_each_message;\n",
    );
    o
}

fn consumer_offsets_source(schemas: &[&Schema]) -> String {
    let mut o = String::new();
    o.push_str(HEADER);
    o.push_str(
        "
//! The records of Kafka's `__consumer_offsets` topic (the group coordinator's log).
//!
//! A record's key starts with an `int16` version that says which kind of record it
//! is (0 and 1: a committed offset; 2: classic group metadata; 3 and up: consumer and
//! share group records); its value starts with an `int16` version of the value
//! schema, and a null value is a tombstone. [`parse_record`] reads both into a
//! [`ConsumerOffsetsRecord`].
//!
//! ```
//! use kafka_sansio::messages::consumer_offsets::{parse_record, ConsumerOffsetsRecord, OffsetCommitKey, OffsetCommitValue};
//! use kafka_sansio::wire::{Bytes, BytesMut, BufMut, Message};
//!
//! let mut key = BytesMut::new();
//! key.put_i16(1);
//! OffsetCommitKey { group: \"g\".into(), topic: \"t\".into(), partition: 3 }.encode(&mut key, 1).unwrap();
//! let mut value = BytesMut::new();
//! value.put_i16(3);
//! OffsetCommitValue { offset: 42, leader_epoch: 7, metadata: \"\".into(), commit_timestamp: 1, ..Default::default() }
//!     .encode(&mut value, 3)
//!     .unwrap();
//! match parse_record(&key.freeze(), Some(&value.freeze())).unwrap() {
//!     ConsumerOffsetsRecord::OffsetCommit(entry) => {
//!         assert_eq!(entry.key.partition, 3);
//!         assert_eq!(entry.value.unwrap().data.offset, 42);
//!     }
//!     other => panic!(\"{other:?}\"),
//! }
//! ```

",
    );
    for s in schemas {
        let _ = writeln!(o, "pub mod {};", snake(&s.name));
    }
    o.push('\n');
    for s in schemas {
        let _ = writeln!(o, "pub use {}::{};", snake(&s.name), s.name);
    }
    o.push_str("\nuse crate::wire::{self, Bytes, DecodeError, Message, Versioned};\n\n");
    o.push_str(
        "/// One `__consumer_offsets` record: its key, and its value unless it is a tombstone.
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinatorEntry<K, V> {
    /// The key's version, which names the record kind.
    pub key_version: i16,
    /// The decoded key.
    pub key: K,
    /// The decoded value with its version; `None` for a tombstone.
    pub value: Option<Versioned<V>>,
}

",
    );
    let mut kinds = Vec::new();
    for s in schemas.iter().filter(|s| s.name.ends_with("Key")) {
        let base = s.name.trim_end_matches("Key").to_string();
        let value = format!("{base}Value");
        if schemas.iter().any(|v| v.name == value) {
            kinds.push((base, s.name.clone(), value, s.valid));
        }
    }
    o.push_str("/// A decoded `__consumer_offsets` record, by kind.\n#[derive(Debug, Clone, PartialEq)]\n#[non_exhaustive]\npub enum ConsumerOffsetsRecord {\n");
    for (base, key, value, r) in &kinds {
        let _ = writeln!(
            o,
            "    /// Key version(s) {}: [`{key}`] and [`{value}`].\n    {base}(CoordinatorEntry<{key}, {value}>),",
            r.describe()
        );
    }
    o.push_str("    /// A key version this crate does not know, kept as raw bytes.\n    Unknown {\n        /// The key's version.\n        key_version: i16,\n        /// The key after its version.\n        key: Bytes,\n        /// The raw value, `None` for a tombstone.\n        value: Option<Bytes>,\n    },\n}\n\n");
    o.push_str("/// Parses one record of the `__consumer_offsets` topic from its key and value.\n///\n/// Unknown key versions give [`ConsumerOffsetsRecord::Unknown`]; a known key with a\n/// value version its schema does not define is an error.\npub fn parse_record(key: &Bytes, value: Option<&Bytes>) -> Result<ConsumerOffsetsRecord, DecodeError> {\n    let mut k = key.clone();\n    let key_version = wire::read_i16(&mut k, \"ConsumerOffsetsRecord.key_version\")?;\n    Ok(match key_version {\n");
    for (base, key, value, r) in &kinds {
        let pat = if r.min == r.max {
            r.min.to_string()
        } else {
            format!("{}..={}", r.min, r.max)
        };
        let _ = writeln!(
            o,
            "        {pat} => ConsumerOffsetsRecord::{base}(CoordinatorEntry {{\n            key_version,\n            key: {key}::decode(&mut k, key_version)?,\n            value: value.map(|v| wire::decode_versioned::<{value}>(&mut v.clone())).transpose()?,\n        }}),"
        );
    }
    o.push_str("        _ => ConsumerOffsetsRecord::Unknown { key_version, key: k, value: value.cloned() },\n    })\n}\n");
    o
}
