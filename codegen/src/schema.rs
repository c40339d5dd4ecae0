//! Reading Apache Kafka's JSON message schemas into a model the emitter walks.

use serde_json::Value;
use std::path::Path;

/// An inclusive version range; `max == i16::MAX` stands for an open `N+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub min: i16,
    pub max: i16,
}

impl Range {
    pub const NONE: Range = Range { min: 0, max: -1 };

    pub fn parse(s: &str) -> Result<Range, String> {
        let s = s.trim();
        if s == "none" {
            return Ok(Range::NONE);
        }
        let num = |t: &str| {
            t.trim()
                .parse::<i16>()
                .map_err(|e| format!("bad version {s:?}: {e}"))
        };
        if let Some(min) = s.strip_suffix('+') {
            Ok(Range {
                min: num(min)?,
                max: i16::MAX,
            })
        } else if let Some((a, b)) = s.split_once('-') {
            Ok(Range {
                min: num(a)?,
                max: num(b)?,
            })
        } else {
            let v = num(s)?;
            Ok(Range { min: v, max: v })
        }
    }

    pub fn is_empty(&self) -> bool {
        self.max < self.min
    }

    pub fn intersect(&self, other: &Range) -> Range {
        let r = Range {
            min: self.min.max(other.min),
            max: self.max.min(other.max),
        };
        if r.is_empty() { Range::NONE } else { r }
    }

    /// Whether this range holds every version of `within`.
    pub fn covers(&self, within: &Range) -> bool {
        within.is_empty() || (self.min <= within.min && self.max >= within.max)
    }

    /// The text form the schema uses, with open ends kept open.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            "none".into()
        } else if self.max == i16::MAX {
            format!("{}+", self.min)
        } else if self.min == self.max {
            format!("{}", self.min)
        } else {
            format!("{}-{}", self.min, self.max)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prim {
    Bool,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    F64,
}

impl Prim {
    pub fn rust(&self) -> &'static str {
        match self {
            Prim::Bool => "bool",
            Prim::I8 => "i8",
            Prim::I16 => "i16",
            Prim::U16 => "u16",
            Prim::I32 => "i32",
            Prim::U32 => "u32",
            Prim::I64 => "i64",
            Prim::F64 => "f64",
        }
    }
    pub fn size(&self) -> usize {
        match self {
            Prim::Bool | Prim::I8 => 1,
            Prim::I16 | Prim::U16 => 2,
            Prim::I32 | Prim::U32 => 4,
            Prim::I64 | Prim::F64 => 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    Prim(Prim),
    Str,
    Bytes,
    Records,
    Uuid,
    Struct(String),
    Array(Box<Ty>),
}

impl Ty {
    fn parse(s: &str) -> Ty {
        if let Some(inner) = s.strip_prefix("[]") {
            return Ty::Array(Box::new(Ty::parse(inner)));
        }
        match s {
            "bool" => Ty::Prim(Prim::Bool),
            "int8" => Ty::Prim(Prim::I8),
            "int16" => Ty::Prim(Prim::I16),
            "uint16" => Ty::Prim(Prim::U16),
            "int32" => Ty::Prim(Prim::I32),
            "uint32" => Ty::Prim(Prim::U32),
            "int64" => Ty::Prim(Prim::I64),
            "float64" => Ty::Prim(Prim::F64),
            "string" => Ty::Str,
            "bytes" => Ty::Bytes,
            "records" => Ty::Records,
            "uuid" => Ty::Uuid,
            other => Ty::Struct(other.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub ty: Ty,
    pub versions: Range,
    pub nullable: Range,
    pub tag: Option<u32>,
    pub ignorable: bool,
    pub default: Option<String>,
    pub about: String,
    /// A field-level `flexibleVersions` override (only `RequestHeader.ClientId`).
    pub flexible_override: Option<Range>,
    pub entity_type: Option<String>,
    pub map_key: bool,
}

#[derive(Debug, Clone)]
pub struct StructDef {
    pub name: String,
    pub fields: Vec<Field>,
    /// Versions in which the struct is used: the union of its field's versions.
    pub versions: Range,
    pub about: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
    Header,
    Data,
}

#[derive(Debug, Clone)]
pub struct Schema {
    pub file: String,
    pub kind: Kind,
    pub name: String,
    pub api_key: Option<i16>,
    pub valid: Range,
    pub flexible: Range,
    pub deprecated: Option<Range>,
    pub latest_unstable: bool,
    pub listeners: Vec<String>,
    /// The top-level struct first, then every nested and common struct.
    pub structs: Vec<StructDef>,
    /// Header comments of the file (the `// Version N ...` history), without the license.
    pub history: Vec<String>,
}

/// Removes `//` comments outside string literals; returns the JSON text and the comment
/// lines that follow the license header.
pub fn strip_comments(src: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(src.len());
    let mut comments = Vec::new();
    for line in src.lines() {
        let mut in_str = false;
        let mut escaped = false;
        let mut cut = None;
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if in_str {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    in_str = false;
                }
            } else if c == b'"' {
                in_str = true;
            } else if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
                cut = Some(i);
                break;
            }
            i += 1;
        }
        match cut {
            Some(at) => {
                out.push_str(&line[..at]);
                comments.push(line[at + 2..].trim().to_string());
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    // Drop the Apache license block: everything up to its last line.
    if let Some(end) = comments
        .iter()
        .position(|c| c.contains("limitations under the License"))
    {
        comments.drain(..=end);
    }
    (out, comments)
}

fn str_attr(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        _ => None,
    }
}

pub fn load(path: &Path) -> Result<Schema, String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (json, history) = strip_comments(&src);
    let v: Value = serde_json::from_str(&json).map_err(|e| format!("{}: {e}", path.display()))?;
    let kind = match str_attr(&v, "type").as_deref() {
        Some("request") => Kind::Request,
        Some("response") => Kind::Response,
        Some("header") => Kind::Header,
        Some("data") => Kind::Data,
        other => return Err(format!("{}: unknown type {other:?}", path.display())),
    };
    let name = str_attr(&v, "name").ok_or("no name")?;
    let valid = Range::parse(&str_attr(&v, "validVersions").ok_or("no validVersions")?)?;
    let flexible =
        Range::parse(&str_attr(&v, "flexibleVersions").unwrap_or_else(|| "none".into()))?
            .intersect(&valid);
    let mut structs = Vec::new();
    let fields = parse_fields(v.get("fields"), &valid, &mut structs)?;
    let top = StructDef {
        name: name.clone(),
        fields,
        versions: valid,
        about: String::new(),
    };
    structs.insert(0, top);
    if let Some(Value::Array(common)) = v.get("commonStructs") {
        for c in common {
            let cname = str_attr(c, "name").ok_or("common struct without name")?;
            let versions = Range::parse(&str_attr(c, "versions").unwrap_or_else(|| "0+".into()))?;
            let fields = parse_fields(c.get("fields"), &valid, &mut structs)?;
            structs.push(StructDef {
                name: cname,
                fields,
                versions: versions.intersect(&valid),
                about: String::new(),
            });
        }
    }
    let listeners = match v.get("listeners") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Schema {
        file: path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        kind,
        name,
        api_key: v.get("apiKey").and_then(|k| k.as_i64()).map(|k| k as i16),
        valid,
        flexible,
        deprecated: str_attr(&v, "deprecatedVersions")
            .map(|d| Range::parse(&d))
            .transpose()?,
        latest_unstable: v
            .get("latestVersionUnstable")
            .and_then(|b| b.as_bool())
            .unwrap_or(false),
        listeners,
        structs,
        history,
    })
}

fn parse_fields(
    v: Option<&Value>,
    valid: &Range,
    structs: &mut Vec<StructDef>,
) -> Result<Vec<Field>, String> {
    let Some(Value::Array(items)) = v else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for f in items {
        let name = str_attr(f, "name").ok_or("field without name")?;
        let ty = Ty::parse(&str_attr(f, "type").ok_or("field without type")?);
        let versions =
            Range::parse(&str_attr(f, "versions").ok_or_else(|| format!("{name}: no versions"))?)?
                .intersect(valid);
        let nullable =
            Range::parse(&str_attr(f, "nullableVersions").unwrap_or_else(|| "none".into()))?
                .intersect(&versions);
        let tagged = Range::parse(&str_attr(f, "taggedVersions").unwrap_or_else(|| "none".into()))?;
        let tag = f.get("tag").and_then(|t| t.as_u64()).map(|t| t as u32);
        if tag.is_some() {
            let tv = tagged.intersect(valid);
            if tv != versions {
                return Err(format!(
                    "{name}: taggedVersions {} differ from versions {}",
                    tv.describe(),
                    versions.describe()
                ));
            }
        }
        let flexible_override = str_attr(f, "flexibleVersions")
            .map(|s| Range::parse(&s))
            .transpose()?;
        if let Some(Value::Array(_)) = f.get("fields") {
            let sname = match &ty {
                Ty::Struct(n) => n.clone(),
                Ty::Array(inner) => match inner.as_ref() {
                    Ty::Struct(n) => n.clone(),
                    other => return Err(format!("{name}: fields on non-struct array {other:?}")),
                },
                other => return Err(format!("{name}: fields on {other:?}")),
            };
            let sub = parse_fields(f.get("fields"), valid, structs)?;
            structs.push(StructDef {
                name: sname,
                fields: sub,
                versions,
                about: str_attr(f, "about").unwrap_or_default(),
            });
        }
        out.push(Field {
            name,
            ty,
            versions,
            nullable,
            tag,
            ignorable: f
                .get("ignorable")
                .and_then(|b| b.as_bool())
                .unwrap_or(false),
            default: str_attr(f, "default"),
            about: str_attr(f, "about").unwrap_or_default(),
            flexible_override,
            entity_type: str_attr(f, "entityType"),
            map_key: f.get("mapKey").and_then(|b| b.as_bool()).unwrap_or(false),
        });
    }
    Ok(out)
}

/// `ReplicaDirectoryId` -> `replica_directory_id`, `KRaftVersion` -> `k_raft_version`.
pub fn snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = if i > 0 { Some(chars[i - 1]) } else { None };
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A field name as a Rust identifier (raw where it is a keyword).
pub fn field_ident(name: &str) -> String {
    let s = snake(name);
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn",
        "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
        "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
        "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final",
        "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
    ];
    if KEYWORDS.contains(&s.as_str()) {
        format!("r#{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ranges_in_every_form() {
        assert_eq!(Range::parse("3").unwrap(), Range { min: 3, max: 3 });
        assert_eq!(Range::parse("0-7").unwrap(), Range { min: 0, max: 7 });
        assert_eq!(
            Range::parse("9+").unwrap(),
            Range {
                min: 9,
                max: i16::MAX
            }
        );
        assert!(Range::parse("none").unwrap().is_empty());
        assert!(Range::parse("x").is_err());
        let valid = Range { min: 0, max: 11 };
        assert_eq!(
            Range::parse("9+").unwrap().intersect(&valid),
            Range { min: 9, max: 11 }
        );
        assert!(
            Range {
                min: 0,
                max: i16::MAX
            }
            .covers(&valid)
        );
    }

    #[test]
    fn comments_are_stripped_outside_strings_only() {
        let src = "// Licensed ...\n// limitations under the License.\n\n// Version 1 adds X.\n{ \"about\": \"see http://x//y\", // trailing\n \"n\": 1 }\n";
        let (json, history) = strip_comments(src);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["about"], "see http://x//y");
        assert_eq!(history, vec!["Version 1 adds X.", "trailing"]);
    }

    #[test]
    fn names_become_rust_identifiers() {
        assert_eq!(snake("ReplicaDirectoryId"), "replica_directory_id");
        assert_eq!(snake("KRaftVersion"), "k_raft_version");
        assert_eq!(snake("leaderEpoch"), "leader_epoch");
        assert_eq!(snake("IsrNodes"), "isr_nodes");
        assert_eq!(field_ident("Type"), "r#type");
    }
}
