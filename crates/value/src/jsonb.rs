//! `jsonb` input and normalisation, matching PostgreSQL's JSON lexer and `jsonb_out`.
//!
//! A hand-written parser rather than serde_json: jsonb keeps numbers as exact `numeric` values
//! (`1.0` stays `1.0`, `1e400` is exact) and PostgreSQL's lexer accepts and rejects specific
//! inputs (`\u0000`, lone surrogates) that serde_json treats differently.

use crate::error::ValueError;
use crate::numeric::Numeric;
use crate::types::LogicalType;

/// Nesting deeper than this is refused instead of risking the stack.
const MAX_DEPTH: usize = 1000;

enum Json {
    Null,
    Bool(bool),
    Number(Numeric),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

fn syntax(hint: &'static str) -> ValueError {
    ValueError::InvalidTextRepresentation {
        ty: LogicalType::Jsonb,
        hint,
    }
}

/// Parses JSON text and returns the text `jsonb_out` prints for it.
pub(crate) fn normalise(text: &str) -> Result<String, ValueError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(syntax("unexpected data after the JSON value"));
    }
    let mut out = String::with_capacity(text.len());
    write(&value, &mut out);
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Json, ValueError> {
        if depth > MAX_DEPTH {
            return Err(syntax(
                "JSON nested more than 1000 levels deep is not supported",
            ));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(c) if c.is_ascii_alphabetic() => self.word(),
            _ => Err(syntax("expected a JSON value")),
        }
    }

    fn word(&mut self) -> Result<Json, ValueError> {
        let start = self.i;
        // PostgreSQL's lexer takes the whole alphanumeric run as one token.
        while self.i < self.s.len() && is_word_byte(self.s[self.i]) {
            self.i += 1;
        }
        match &self.s[start..self.i] {
            b"true" => Ok(Json::Bool(true)),
            b"false" => Ok(Json::Bool(false)),
            b"null" => Ok(Json::Null),
            _ => Err(syntax("expected a JSON value")),
        }
    }

    fn number(&mut self) -> Result<Json, ValueError> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.i < p.s.len() && p.s[p.i].is_ascii_digit() {
                p.i += 1;
            }
            p.i - s
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(syntax("invalid JSON number")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(syntax("invalid JSON number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(syntax("invalid JSON number"));
            }
        }
        if self.peek().is_some_and(is_word_byte) {
            return Err(syntax("invalid JSON number"));
        }
        let text = std::str::from_utf8(&self.s[start..self.i])
            .map_err(|_| syntax("invalid JSON number"))?;
        text.parse::<Numeric>()
            .map(Json::Number)
            .map_err(|e| match e {
                ValueError::OutOfRange { .. } => ValueError::OutOfRange {
                    ty: LogicalType::Jsonb,
                },
                _ => syntax("invalid JSON number"),
            })
    }

    fn hex4(&mut self) -> Result<u32, ValueError> {
        let bad = || syntax("\\u must be followed by four hexadecimal digits");
        let chunk = self.s.get(self.i..self.i + 4).ok_or_else(bad)?;
        let text = std::str::from_utf8(chunk).map_err(|_| bad())?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        self.i += 4;
        u32::from_str_radix(text, 16).map_err(|_| bad())
    }

    fn string(&mut self) -> Result<String, ValueError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.s.len() && !matches!(self.s[self.i], b'"' | b'\\' | 0..=0x1f) {
                self.i += 1;
            }
            // The input is a &str and we stop only at ASCII bytes, so this slice is UTF-8.
            out.push_str(
                std::str::from_utf8(&self.s[start..self.i])
                    .map_err(|_| syntax("invalid UTF-8 in JSON string"))?,
            );
            match self.peek() {
                None => return Err(syntax("unterminated JSON string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let esc = self
                        .peek()
                        .ok_or_else(|| syntax("unterminated JSON string"))?;
                    self.i += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return Err(syntax("invalid escape sequence in JSON string")),
                    }
                }
                Some(_) => {
                    return Err(syntax("control characters in JSON strings must be escaped"))
                }
            }
        }
    }

    fn unicode_escape(&mut self) -> Result<char, ValueError> {
        let first = self.hex4()?;
        let surrogate_err = || syntax("Unicode low surrogate must follow a high surrogate");
        let code = match first {
            0 => return Err(ValueError::UntranslatableCharacter),
            0xD800..=0xDBFF => {
                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                    return Err(surrogate_err());
                }
                self.i += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(surrogate_err());
                }
                0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(surrogate_err()),
            c => c,
        };
        char::from_u32(code).ok_or_else(surrogate_err)
    }

    fn array(&mut self, depth: usize) -> Result<Json, ValueError> {
        self.i += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(syntax("expected \",\" or \"]\" in JSON array")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, ValueError> {
        self.i += 1;
        let mut pairs: Vec<(String, Json)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Json::Object(pairs));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(syntax("expected a string key in JSON object"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(syntax("expected \":\" after a JSON object key"));
            }
            self.i += 1;
            self.skip_ws();
            let value = self.value(depth + 1)?;
            pairs.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(syntax("expected \",\" or \"}\" in JSON object")),
            }
        }
        // jsonb keeps the last value of a duplicated key and orders keys by length, then bytes.
        let mut unique: Vec<(String, Json)> = Vec::with_capacity(pairs.len());
        let mut index = std::collections::HashMap::with_capacity(pairs.len());
        for (key, value) in pairs {
            match index.get(&key) {
                Some(&pos) => {
                    let slot: &mut (String, Json) = &mut unique[pos];
                    slot.1 = value;
                }
                None => {
                    index.insert(key.clone(), unique.len());
                    unique.push((key, value));
                }
            }
        }
        unique.sort_by(|a, b| {
            a.0.len()
                .cmp(&b.0.len())
                .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
        });
        Ok(Json::Object(unique))
    }
}

fn is_word_byte(b: u8) -> bool {
    // PostgreSQL's JSON lexer treats any byte that is not whitespace or punctuation as part of
    // a word, including non-ASCII bytes.
    !matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\r' | b'{' | b'}' | b'[' | b']' | b',' | b':' | b'"'
    )
}

fn write(v: &Json, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Number(n) => out.push_str(&n.to_string()),
        Json::String(s) => escape(s, out),
        Json::Array(items) => {
            out.push('[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                write(item, out);
            }
            out.push(']');
        }
        Json::Object(pairs) => {
            out.push('{');
            for (k, (key, value)) in pairs.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                escape(key, out);
                out.push_str(": ");
                write(value, out);
            }
            out.push('}');
        }
    }
}

/// PostgreSQL's `escape_json`.
fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<String, &'static str> {
        normalise(s).map_err(|e| e.sqlstate())
    }

    #[test]
    fn normalises_like_jsonb_out() {
        assert_eq!(
            n(r#"{"bb": [1,2], "a":1}"#),
            Ok(r#"{"a": 1, "bb": [1, 2]}"#.into())
        );
        assert_eq!(n(r#"{"a":1,"a":2}"#), Ok(r#"{"a": 2}"#.into()));
        assert_eq!(
            n("[1.0, 1e2, 1E-2, -0, 1.50]"),
            Ok("[1.0, 100, 0.01, 0, 1.50]".into())
        );
        assert_eq!(n(" \"x\" "), Ok("\"x\"".into()));
        assert_eq!(
            n(r#""\u00e9\ud83d\ude00\/\u001f\b""#),
            Ok("\"é😀/\\u001f\\b\"".into())
        );
        assert_eq!(n("{}"), Ok("{}".into()));
        assert_eq!(n("[ ]"), Ok("[]".into()));
        assert_eq!(
            n(r#"{"b":1,"aa":2,"c":3}"#),
            Ok(r#"{"b": 1, "c": 3, "aa": 2}"#.into())
        );
    }

    #[test]
    fn rejects_what_postgres_rejects() {
        for bad in [
            "",
            "01",
            "1.",
            ".5",
            "+1",
            "tru",
            "truex",
            "[1,]",
            "{\"a\"}",
            "\"\t\"",
            "'a'",
            "NaN",
            "1 2",
            "\"\\x\"",
            "\"\\ud800\"",
        ] {
            assert_eq!(n(bad).err(), Some("22P02"), "{bad:?}");
        }
        assert_eq!(n("\"\\u0000\"").err(), Some("22P05"));
        let deep = "[".repeat(2000) + &"]".repeat(2000);
        assert!(n(&deep).is_err());
    }
}
