//! Where each response carries its `ThrottleTimeMs` field, read from the schemas'
//! field lists, and the `ApiKey` methods that tell a client.
//!
//! Most responses put the field first; some put it after other fixed-width fields
//! (OffsetDelete after its error code) and a few after variable-length ones (Produce
//! after its topic responses, ApiVersions after its API list), where it can only be
//! found by decoding the body.

use crate::schema::{Field, Kind, Prim, Range, Schema, Ty};
use std::fmt::Write;

/// Where the field sits in one version of a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// An INT32 at this byte offset: only fixed-width fields come before it.
    AtOffset(usize),
    /// After a field of variable length.
    AfterVariableFields,
}

const FIELD: &str = "ThrottleTimeMs";

/// The versions of `response` that carry ThrottleTimeMs, as runs of consecutive
/// versions with the same place, in version order.
pub fn places(response: &Schema) -> Vec<(Range, Place)> {
    let fields = &response.structs[0].fields;
    let mut runs: Vec<(Range, Place)> = Vec::new();
    if response.valid.is_empty() {
        return runs;
    }
    for version in response.valid.min..=response.valid.max {
        let Some(place) = place_at(fields, version) else {
            continue;
        };
        match runs.last_mut() {
            Some((range, last)) if *last == place && range.max + 1 == version => {
                range.max = version;
            }
            _ => runs.push((
                Range {
                    min: version,
                    max: version,
                },
                place,
            )),
        }
    }
    runs
}

fn present(f: &Field, version: i16) -> bool {
    f.tag.is_none() && version >= f.versions.min && version <= f.versions.max
}

fn place_at(fields: &[Field], version: i16) -> Option<Place> {
    let at = fields
        .iter()
        .position(|f| f.name == FIELD && f.ty == Ty::Prim(Prim::I32) && present(f, version))?;
    let mut offset = 0;
    for f in fields[..at].iter().filter(|f| present(f, version)) {
        match &f.ty {
            Ty::Prim(p) => offset += p.size(),
            Ty::Uuid => offset += 16,
            _ => return Some(Place::AfterVariableFields),
        }
    }
    Some(Place::AtOffset(offset))
}

fn api_name(s: &Schema) -> &str {
    s.name.trim_end_matches("Response")
}

/// The `ThrottleTimeField` enum and the `ApiKey` methods (an `impl ApiKey` block),
/// for every response schema in `messages`.
pub fn source(messages: &[Schema]) -> String {
    let mut responses: Vec<&Schema> = messages
        .iter()
        .filter(|s| s.kind == Kind::Response && s.api_key.is_some())
        .collect();
    responses.sort_by_key(|s| s.api_key);
    let mut o = String::new();
    o.push_str(
        "/// Where a response body carries its ThrottleTimeMs field: see
/// [`ApiKey::response_throttle_time`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleTimeField {
    /// An INT32 at this byte offset of the body, after fixed-width fields only (0: the
    /// body's first field, as in most responses).
    AtOffset(usize),
    /// After fields of variable length (Produce after its topic responses, ApiVersions
    /// after its API list): found by decoding the body.
    AfterVariableFields,
}

impl ApiKey {
    /// Where a response of this API at `version` carries ThrottleTimeMs (the time the
    /// broker asks the client to wait before its next request), or `None` when that
    /// version has no such field. Generated from the response schemas' field lists.
    ///
    /// ```
    /// use kafka_sansio::messages::{ApiKey, ThrottleTimeField};
    ///
    /// assert_eq!(ApiKey::Fetch.response_throttle_time(0), None);
    /// assert_eq!(ApiKey::Fetch.response_throttle_time(1), Some(ThrottleTimeField::AtOffset(0)));
    /// assert_eq!(ApiKey::OffsetDelete.response_throttle_time(0), Some(ThrottleTimeField::AtOffset(2)));
    /// assert_eq!(ApiKey::Produce.response_throttle_time(0), None);
    /// assert_eq!(ApiKey::Produce.response_throttle_time(1), Some(ThrottleTimeField::AfterVariableFields));
    /// ```
    #[must_use]
    pub const fn response_throttle_time(self, version: i16) -> Option<ThrottleTimeField> {
        match self {
",
    );
    let mut after_variable = Vec::new();
    for s in &responses {
        let runs = places(s);
        if runs.is_empty() {
            continue;
        }
        let _ = writeln!(o, "            ApiKey::{} => match version {{", api_name(s));
        for (range, place) in &runs {
            let pattern = if range.min == range.max {
                range.min.to_string()
            } else {
                format!("{}..={}", range.min, range.max)
            };
            let value = match place {
                Place::AtOffset(offset) => format!("ThrottleTimeField::AtOffset({offset})"),
                Place::AfterVariableFields => {
                    if !after_variable.contains(&api_name(s)) {
                        after_variable.push(api_name(s));
                    }
                    "ThrottleTimeField::AfterVariableFields".to_string()
                }
            };
            let _ = writeln!(o, "                {pattern} => Some({value}),");
        }
        o.push_str("                _ => None,\n            },\n");
    }
    o.push_str(
        "            _ => None,
        }
    }

    /// The ThrottleTimeMs of `body`, a response of this API at `version` (without its
    /// response header): read in place where only fixed-width fields come before it,
    /// otherwise by decoding the body. `None` when that version has no such field, or
    /// when the body is too short or does not decode.
    ///
    /// ```
    /// use kafka_sansio::messages::{ApiKey, ProduceResponse};
    /// use kafka_sansio::wire::{Bytes, Message};
    ///
    /// let body = Bytes::from_static(&[0, 0, 0, 250, 0, 0]);
    /// assert_eq!(ApiKey::Metadata.response_throttle_time_ms(12, &body), Some(250));
    /// assert_eq!(ApiKey::Metadata.response_throttle_time_ms(2, &body), None);
    ///
    /// let mut produced = Vec::new();
    /// ProduceResponse { throttle_time_ms: 40, ..Default::default() }.encode_to_vec(&mut produced, 9)?;
    /// assert_eq!(ApiKey::Produce.response_throttle_time_ms(9, &Bytes::from(produced)), Some(40));
    /// # Ok::<(), kafka_sansio::wire::EncodeError>(())
    /// ```
    #[must_use]
    pub fn response_throttle_time_ms(self, version: i16, body: &Bytes) -> Option<i32> {
        match self.response_throttle_time(version)? {
            ThrottleTimeField::AtOffset(offset) => body
                .get(offset..)?
                .first_chunk::<4>()
                .map(|b| i32::from_be_bytes(*b)),
            ThrottleTimeField::AfterVariableFields => match self {
",
    );
    for api in &after_variable {
        let _ = writeln!(
            o,
            "                ApiKey::{api} => super::{api}Response::decode(&mut body.clone(), version)\n                    .ok()\n                    .map(|r| r.throttle_time_ms),"
        );
    }
    o.push_str("                _ => None,\n            },\n        }\n    }\n}\n\n");
    o
}
