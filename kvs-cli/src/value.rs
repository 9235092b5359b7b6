//! Keys and values without the Rust types: command-line text and JSON to the catalog's key
//! types, and back.

use kvs::untyped::encode_json;
use kvs::{KeyType, KeyValue};
use serde_json::Value;

use crate::Fail;

/// Parses command-line `text` as a value of `ty` and encodes it.
///
/// Integers are decimal (negative ones too), `bool` is `true` or `false`, a `char` is one
/// character, a `String` is the text as given, bytes are `0x` and hex digits (or the text's
/// UTF-8 bytes), and a tuple is a JSON array (`'["Oslo", 3]'`).
pub fn encode_text(text: &str, ty: &KeyType, what: &str) -> Result<Vec<u8>, Fail> {
    let bad = |why: String| Fail::new(format!("bad {what} {text:?}: {why}"));
    let value = match ty {
        KeyType::U8 | KeyType::U16 | KeyType::U32 | KeyType::U64 | KeyType::U128 => {
            KeyValue::Unsigned(
                text.trim()
                    .parse()
                    .map_err(|_| bad(format!("expected {ty}")))?,
            )
        }
        KeyType::I8 | KeyType::I16 | KeyType::I32 | KeyType::I64 | KeyType::I128 => {
            KeyValue::Signed(
                text.trim()
                    .parse()
                    .map_err(|_| bad(format!("expected {ty}")))?,
            )
        }
        KeyType::Bool => match text.trim() {
            "true" => KeyValue::Bool(true),
            "false" => KeyValue::Bool(false),
            _ => return Err(bad("expected bool (true or false)".to_owned())),
        },
        KeyType::Char => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => KeyValue::Char(c),
                _ => return Err(bad("expected char (one character)".to_owned())),
            }
        }
        KeyType::String => KeyValue::String(text.to_owned()),
        KeyType::Bytes => KeyValue::Bytes(match text.strip_prefix("0x") {
            Some(hex) => {
                parse_hex(hex).ok_or_else(|| bad("expected 0x and hex digits".to_owned()))?
            }
            None => text.as_bytes().to_vec(),
        }),
        KeyType::Tuple(_) => {
            let json: Value = serde_json::from_str(text)
                .map_err(|_| bad(format!("expected {ty} as a JSON array, as in '[\"a\", 1]'")))?;
            return encode_json(&json, ty).ok_or_else(|| bad(format!("expected {ty}")));
        }
        KeyType::Enum(_) => KeyValue::String(text.trim().to_owned()),
        other => return Err(bad(format!("the console cannot parse {other} values"))),
    };
    let mut out = Vec::new();
    if ty.encode(&value, &mut out) {
        Ok(out)
    } else if let KeyType::Enum(names) = ty {
        Err(bad(format!("expected one of {}", names.join(", "))))
    } else {
        Err(bad(format!("out of range for {ty}")))
    }
}

fn parse_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvs::Key;

    #[test]
    fn text_encodes_as_the_typed_key() {
        assert_eq!(
            encode_text("-5", &KeyType::I64, "key").unwrap(),
            (-5i64).to_key_bytes()
        );
        assert_eq!(
            encode_text("7", &KeyType::U8, "key").unwrap(),
            7u8.to_key_bytes()
        );
        assert_eq!(
            encode_text(
                "[\"Oslo\", 3]",
                &KeyType::Tuple(vec![KeyType::String, KeyType::U8]),
                "key"
            )
            .unwrap(),
            ("Oslo".to_owned(), 3u8).to_key_bytes()
        );
        assert_eq!(
            encode_text("0x00ff", &KeyType::Bytes, "key").unwrap(),
            vec![0u8, 255].to_key_bytes()
        );
        let status = KeyType::Enum(vec!["active".to_owned(), "on-hold".to_owned()]);
        assert_eq!(
            encode_text("on-hold", &status, "value").unwrap(),
            1u32.to_be_bytes()
        );
        for (text, ty) in [
            ("closed", status),
            ("300", KeyType::U8),
            ("-1", KeyType::U64),
            ("x", KeyType::I32),
            ("yes", KeyType::Bool),
            ("ab", KeyType::Char),
            ("0xf", KeyType::Bytes),
            ("[1]", KeyType::Tuple(vec![KeyType::U8, KeyType::U8])),
        ] {
            let err = encode_text(text, &ty, "key").unwrap_err().to_string();
            assert!(err.contains(text), "{err}");
        }
    }
}
