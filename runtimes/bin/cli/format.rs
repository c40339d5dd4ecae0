//! kcat-style output format strings for `consume -f`: parsed once into pieces,
//! rendered per record into raw bytes (keys and values are written as they are,
//! byte for byte).
//!
//! | token | meaning |
//! |---|---|
//! | `%t` | topic |
//! | `%p` | partition |
//! | `%o` | offset |
//! | `%T` | timestamp (ms since the epoch) |
//! | `%k` / `%s` | key / value (empty when null) |
//! | `%K` / `%S` | key / value length in bytes (`-1` when null) |
//! | `%h` | headers, `k1=v1,k2=v2` |
//! | `%%` | a `%` |
//! | `\n` `\r` `\t` `\\` | newline, carriage return, tab, backslash |

use std::fmt;

/// One piece of a parsed format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes written as they are.
    Literal(Vec<u8>),
    /// `%t`.
    Topic,
    /// `%p`.
    Partition,
    /// `%o`.
    Offset,
    /// `%T`.
    Timestamp,
    /// `%k`.
    Key,
    /// `%K`.
    KeyLength,
    /// `%s`.
    Value,
    /// `%S`.
    ValueLength,
    /// `%h`.
    Headers,
}

/// Why a format string does not parse: what and where (a byte position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// Byte position of the bad token.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "format string: {} at position {}",
            self.message, self.position
        )
    }
}

/// A parsed format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pieces: Vec<Piece>,
}

/// What a format string renders: one record's fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in ms.
    pub timestamp: i64,
    /// Key, `None` when null.
    pub key: Option<&'a [u8]>,
    /// Value, `None` when null.
    pub value: Option<&'a [u8]>,
    /// Headers in order.
    pub headers: &'a [(String, Option<Vec<u8>>)],
}

impl Format {
    /// Parses a format string.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let bytes = text.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'%' => {
                    let Some(&d) = bytes.get(i + 1) else {
                        return Err(FormatError {
                            position: i,
                            message: "a lone % at the end (write %% for a percent sign)".into(),
                        });
                    };
                    let piece = match d {
                        b'%' => {
                            literal.push(b'%');
                            i += 2;
                            continue;
                        }
                        b't' => Piece::Topic,
                        b'p' => Piece::Partition,
                        b'o' => Piece::Offset,
                        b'T' => Piece::Timestamp,
                        b'k' => Piece::Key,
                        b'K' => Piece::KeyLength,
                        b's' => Piece::Value,
                        b'S' => Piece::ValueLength,
                        b'h' => Piece::Headers,
                        _ => {
                            let shown = text[i + 1..].chars().next().unwrap_or('?');
                            return Err(FormatError {
                                position: i,
                                message: format!(
                                    "unknown token %{shown} (known: %t %p %o %T %k %K %s %S %h %%)"
                                ),
                            });
                        }
                    };
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece);
                    i += 2;
                }
                b'\\' => {
                    let escaped = match bytes.get(i + 1) {
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        Some(b'\\') => b'\\',
                        Some(b'0') => 0,
                        _ => {
                            return Err(FormatError {
                                position: i,
                                message: "unknown escape (known: \\n \\r \\t \\\\ \\0)".into(),
                            });
                        }
                    };
                    literal.push(escaped);
                    i += 2;
                }
                _ => {
                    literal.push(b);
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Self { pieces })
    }

    /// Whether the format prints headers (`%h`): only then are they decoded.
    pub fn uses_headers(&self) -> bool {
        self.pieces.contains(&Piece::Headers)
    }

    /// The pieces, in order.
    #[cfg(test)]
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Appends one record rendered to `out`.
    pub fn render(&self, fields: &Fields<'_>, out: &mut Vec<u8>) {
        use std::io::Write;
        for piece in &self.pieces {
            // Writes into a Vec cannot fail.
            let _ = match piece {
                Piece::Literal(b) => {
                    out.extend_from_slice(b);
                    Ok(())
                }
                Piece::Topic => {
                    out.extend_from_slice(fields.topic.as_bytes());
                    Ok(())
                }
                Piece::Partition => write!(out, "{}", fields.partition),
                Piece::Offset => write!(out, "{}", fields.offset),
                Piece::Timestamp => write!(out, "{}", fields.timestamp),
                Piece::Key => {
                    out.extend_from_slice(fields.key.unwrap_or_default());
                    Ok(())
                }
                Piece::Value => {
                    out.extend_from_slice(fields.value.unwrap_or_default());
                    Ok(())
                }
                Piece::KeyLength => write!(out, "{}", length(fields.key)),
                Piece::ValueLength => write!(out, "{}", length(fields.value)),
                Piece::Headers => {
                    for (n, (k, v)) in fields.headers.iter().enumerate() {
                        if n > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(k.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(v.as_deref().unwrap_or_default());
                    }
                    Ok(())
                }
            };
        }
    }
}

fn length(b: Option<&[u8]>) -> i64 {
    b.map_or(-1, |b| i64::try_from(b.len()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(headers: &'a [(String, Option<Vec<u8>>)]) -> Fields<'a> {
        Fields {
            topic: "orders",
            partition: 3,
            offset: 42,
            timestamp: 1_700_000_000_000,
            key: Some(b"k1"),
            value: Some(b"v\x00\xff"),
            headers,
        }
    }

    fn render(f: &str, fields: &Fields<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        Format::parse(f).unwrap().render(fields, &mut out);
        out
    }

    #[test]
    fn every_token_renders_its_field() {
        let h = vec![
            ("a".to_owned(), Some(b"1".to_vec())),
            ("b".to_owned(), None),
        ];
        let f = fields(&h);
        assert_eq!(
            render("%t|%p|%o|%T|%k|%K|%S|%h|%%\\n", &f),
            b"orders|3|42|1700000000000|k1|2|3|a=1,b=|%\n"
        );
        // Values come out byte for byte, binary included.
        assert_eq!(render("%s", &f), b"v\x00\xff");
    }

    #[test]
    fn null_key_and_value_are_empty_with_length_minus_one() {
        let mut f = fields(&[]);
        f.key = None;
        f.value = None;
        assert_eq!(render("[%k][%s] %K %S", &f), b"[][] -1 -1");
    }

    #[test]
    fn escapes_and_literals_merge() {
        let parsed = Format::parse("key=%k\\tv=%s\\r\\n").unwrap();
        assert_eq!(
            parsed.pieces(),
            &[
                Piece::Literal(b"key=".to_vec()),
                Piece::Key,
                Piece::Literal(b"\tv=".to_vec()),
                Piece::Value,
                Piece::Literal(b"\r\n".to_vec()),
            ]
        );
    }

    #[test]
    fn malformed_strings_say_what_and_where() {
        let e = Format::parse("%s %x").unwrap_err();
        assert_eq!(e.position, 3);
        assert!(e.to_string().contains("unknown token %x"), "{e}");
        let e = Format::parse("abc%").unwrap_err();
        assert_eq!(e.position, 3);
        assert!(e.to_string().contains("lone %"), "{e}");
        let e = Format::parse("\\q").unwrap_err();
        assert_eq!(e.position, 0);
        // A multi-byte character after % is named whole, not cut.
        let e = Format::parse("%é").unwrap_err();
        assert!(e.to_string().contains("%é"), "{e}");
    }
}
