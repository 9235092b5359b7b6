//! Key values as JSON, for tools without the Rust types: a JSON value as a key or indexed
//! value of a catalog [`KeyType`] and back, and the check of a JSON value against a catalog
//! [`FieldKind`]. (A stored record as JSON is `row.rs`'s.)

use serde_json::Value;

use crate::field::FieldKind;
use crate::key::{KeyType, KeyValue};

/// The key value a JSON value stands for, as a `ty` (a record's field, as serde wrote it).
pub fn json_to_key(json: &Value, ty: &KeyType) -> Option<KeyValue> {
    Some(match ty {
        KeyType::U8 | KeyType::U16 | KeyType::U32 | KeyType::U64 | KeyType::U128 => {
            KeyValue::Unsigned(u128::from(json.as_u64()?))
        }
        KeyType::I8 | KeyType::I16 | KeyType::I32 | KeyType::I64 | KeyType::I128 => {
            KeyValue::Signed(match json.as_i64() {
                Some(i) => i128::from(i),
                None => i128::from(json.as_u64()?),
            })
        }
        KeyType::Bool => KeyValue::Bool(json.as_bool()?),
        KeyType::Char => {
            let text = json.as_str()?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => KeyValue::Char(c),
                _ => return None,
            }
        }
        KeyType::String | KeyType::Enum(_) => KeyValue::String(json.as_str()?.to_owned()),
        KeyType::Bytes => KeyValue::Bytes(
            json.as_array()?
                .iter()
                .map(|b| u8::try_from(b.as_u64()?).ok())
                .collect::<Option<_>>()?,
        ),
        KeyType::Tuple(types) => {
            let parts = json.as_array()?;
            if parts.len() != types.len() {
                return None;
            }
            KeyValue::Tuple(
                parts
                    .iter()
                    .zip(types)
                    .map(|(p, t)| json_to_key(p, t))
                    .collect::<Option<_>>()?,
            )
        }
    })
}

/// The encoding of a JSON value as a `ty`, if it is one.
pub fn encode_json(json: &Value, ty: &KeyType) -> Option<Vec<u8>> {
    let value = json_to_key(json, ty)?;
    let mut out = Vec::new();
    ty.encode(&value, &mut out).then_some(out)
}

/// A key value as JSON, the way serde writes the field.
pub fn key_to_json(value: &KeyValue) -> Value {
    match value {
        KeyValue::Unsigned(u) => {
            u64::try_from(*u).map_or_else(|_| Value::from(u.to_string()), Value::from)
        }
        KeyValue::Signed(i) => {
            i64::try_from(*i).map_or_else(|_| Value::from(i.to_string()), Value::from)
        }
        KeyValue::Bool(b) => Value::from(*b),
        KeyValue::Char(c) => Value::from(c.to_string()),
        KeyValue::String(s) => Value::from(s.as_str()),
        KeyValue::Bytes(b) => Value::from(b.clone()),
        KeyValue::Tuple(parts) => Value::Array(parts.iter().map(key_to_json).collect()),
    }
}

/// Decodes a stored key of type `ty` as JSON.
pub fn decode_key(ty: &KeyType, bytes: &[u8]) -> Option<Value> {
    let mut rest = bytes;
    let value = ty.decode(&mut rest)?;
    rest.is_empty().then(|| key_to_json(&value))
}

/// Checks that `json` has the stored form `kind`; the error says what was expected.
pub fn check_kind(json: &Value, kind: &FieldKind) -> Result<(), String> {
    let fits = match kind {
        FieldKind::Bool => json.is_boolean(),
        FieldKind::Unsigned(bits) => json
            .as_u64()
            .is_some_and(|v| *bits >= 64 || v < (1u64 << bits)),
        FieldKind::Signed(bits) => {
            json.as_i64().is_some_and(|v| {
                *bits >= 64 || (-(1i64 << (bits - 1))..(1i64 << (bits - 1))).contains(&v)
            }) || (*bits > 64 && json.as_u64().is_some())
        }
        FieldKind::Float => json.is_number(),
        FieldKind::Char => json.as_str().is_some_and(|s| s.chars().count() == 1),
        FieldKind::String => json.is_string(),
        FieldKind::Option(inner) => {
            return if json.is_null() {
                Ok(())
            } else {
                check_kind(json, inner)
            }
        }
        FieldKind::Seq(inner) => match json.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_kind(item, inner).map_err(|why| format!("item {i}: {why}"))?;
                }
                true
            }
            None => false,
        },
        FieldKind::Tuple(parts) => match json.as_array() {
            Some(items) if items.len() == parts.len() => {
                for (i, (item, part)) in items.iter().zip(parts).enumerate() {
                    check_kind(item, part).map_err(|why| format!("item {i}: {why}"))?;
                }
                true
            }
            _ => false,
        },
        FieldKind::Map(inner) => match json.as_object() {
            Some(map) => {
                for (k, v) in map {
                    check_kind(v, inner).map_err(|why| format!("entry {k:?}: {why}"))?;
                }
                true
            }
            None => false,
        },
        FieldKind::Enum(names) => json.as_str().is_some_and(|s| names.iter().any(|n| n == s)),
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(format!("{json} is not {}", kind_phrase(kind)))
    }
}

fn kind_phrase(kind: &FieldKind) -> String {
    match kind {
        FieldKind::Float | FieldKind::Enum(_) => kind.to_string(),
        FieldKind::Tuple(parts) => format!("a tuple of {}: {kind}", parts.len()),
        other => format!("a {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_keys() {
        let ty = KeyType::Tuple(vec![KeyType::I16, KeyType::String, KeyType::Bytes]);
        let json = serde_json::json!([-3, "a\u{0}b", [0, 1, 255]]);
        let bytes = encode_json(&json, &ty).unwrap();
        assert_eq!(decode_key(&ty, &bytes), Some(json));
    }
}
