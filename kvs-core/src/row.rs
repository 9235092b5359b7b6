//! The stored form of a record (format 2): a `MessagePack` array of the record's fields in
//! declaration order, without their names, which the catalog keeps. The values inside a field
//! (a nested struct, a map) keep their names, encoded exactly as format 1 encoded them, so
//! that only the top level depends on the field order the catalog checks at open.
//!
//! Also here: a record as JSON with its names (the console), a JSON record stored
//! positionally (the console's writes), and a format-1 record (a map of named fields)
//! rewritten positionally (the upgrade at open).

use serde::ser::{self, Impossible, Serialize};
use serde_json::Value;

type EncodeError = rmp_serde::encode::Error;
type Named<'a> = rmp_serde::Serializer<
    &'a mut Vec<u8>,
    rmp_serde::config::StructMapConfig<rmp_serde::config::DefaultConfig>,
>;

/// Appends the stored form of `record`, a struct with named fields, to `out`.
pub(crate) fn encode<T: Serialize + ?Sized>(record: &T, out: &mut Vec<u8>) -> Result<(), String> {
    record.serialize(Top { out }).map_err(|e| e.to_string())
}

/// The serializer of a record's top level: a struct becomes an array of its fields, each
/// field is encoded by rmp-serde with names, as format 1 encoded it.
struct Top<'a> {
    out: &'a mut Vec<u8>,
}

/// The fields of a record as they are serialized, counted against the array's length.
struct Fields<'a> {
    ser: Named<'a>,
    left: usize,
}

fn custom(message: impl std::fmt::Display) -> EncodeError {
    <EncodeError as ser::Error>::custom(message)
}

fn not_a_record(what: &str) -> EncodeError {
    custom(format!(
        "a kvs record is a struct with named fields, and this type serializes as {what}"
    ))
}

impl ser::SerializeStruct for Fields<'_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.left = self.left.checked_sub(1).ok_or_else(|| {
            custom(format!(
                "field {key} is one more than the struct declared to serde"
            ))
        })?;
        value.serialize(&mut self.ser)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), EncodeError> {
        Err(custom(format!(
            "field {key} was skipped (skip_serializing_if): kvs stores fields by position, so every field is stored"
        )))
    }

    fn end(self) -> Result<(), EncodeError> {
        if self.left == 0 {
            Ok(())
        } else {
            Err(custom(
                "fewer fields were serialized than the struct declared to serde",
            ))
        }
    }
}

macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $ok:ty, $what:literal;)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ok, EncodeError> {
            Err(not_a_record($what))
        }
    )*};
}

impl<'a> ser::Serializer for Top<'a> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Impossible<(), EncodeError>;
    type SerializeTuple = Impossible<(), EncodeError>;
    type SerializeTupleStruct = Impossible<(), EncodeError>;
    type SerializeTupleVariant = Impossible<(), EncodeError>;
    type SerializeMap = Impossible<(), EncodeError>;
    type SerializeStruct = Fields<'a>;
    type SerializeStructVariant = Impossible<(), EncodeError>;

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Fields<'a>, EncodeError> {
        let len32 = u32::try_from(len).map_err(|_| custom("too many fields"))?;
        rmp::encode::write_array_len(self.out, len32).map_err(custom)?;
        Ok(Fields {
            ser: rmp_serde::Serializer::new(self.out).with_struct_map(),
            left: len,
        })
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), EncodeError> {
        Err(not_a_record("an Option"))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), EncodeError> {
        Err(not_a_record("a newtype"))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), EncodeError> {
        Err(not_a_record("an enum"))
    }

    refuse! {
        serialize_bool(bool) -> (), "a bool";
        serialize_i8(i8) -> (), "an integer";
        serialize_i16(i16) -> (), "an integer";
        serialize_i32(i32) -> (), "an integer";
        serialize_i64(i64) -> (), "an integer";
        serialize_u8(u8) -> (), "an integer";
        serialize_u16(u16) -> (), "an integer";
        serialize_u32(u32) -> (), "an integer";
        serialize_u64(u64) -> (), "an integer";
        serialize_f32(f32) -> (), "a number";
        serialize_f64(f64) -> (), "a number";
        serialize_char(char) -> (), "a char";
        serialize_str(&str) -> (), "a string";
        serialize_bytes(&[u8]) -> (), "bytes";
        serialize_none() -> (), "an Option";
        serialize_unit() -> (), "a unit";
        serialize_unit_struct(&'static str) -> (), "a unit struct";
        serialize_unit_variant(&'static str, u32, &'static str) -> (), "an enum";
        serialize_seq(Option<usize>) -> Self::SerializeSeq, "a sequence";
        serialize_tuple(usize) -> Self::SerializeTuple, "a tuple";
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct, "a tuple struct";
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant, "an enum";
        serialize_map(Option<usize>) -> Self::SerializeMap, "a map";
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant, "an enum";
    }
}

/// A stored record as a JSON object, its fields named by `names` (the catalog's, in stored
/// order). A format-1 record (a map) is its own JSON object.
pub(crate) fn to_json(bytes: &[u8], names: &[&str]) -> Result<Value, String> {
    match rmp_serde::from_slice::<Value>(bytes).map_err(|e| e.to_string())? {
        Value::Array(values) => {
            if values.len() > names.len() {
                return Err(format!(
                    "it holds {} fields, and the catalog names {}",
                    values.len(),
                    names.len()
                ));
            }
            Ok(Value::Object(
                names
                    .iter()
                    .zip(values)
                    .map(|(name, value)| ((*name).to_owned(), value))
                    .collect(),
            ))
        }
        map @ Value::Object(_) => Ok(map),
        other => Err(format!(
            "a stored record is an array of fields, not {other}"
        )),
    }
}

/// What the stored form of a record takes for each of the catalog's fields.
#[derive(Clone, Copy)]
pub(crate) struct Column<'a> {
    /// The stored name.
    pub(crate) name: &'a str,
    /// Whether a missing value may be stored as nil (an `Option`).
    pub(crate) nullable: bool,
    /// Whether serde reads a missing last field as its default (`#[serde(default)]`): only
    /// such fields may be left out of the end of an array.
    pub(crate) defaulted: bool,
}

/// An array of `columns.len()` fields or fewer, holding (by `write`) each of `values` the
/// record has, one for each column: a missing field (`None`) is stored as nil when it is an `Option`, left out when it and every
/// later missing field have serde defaults, and otherwise refused, its default not being
/// known without the Rust type.
fn lay_out<V>(
    columns: &[Column<'_>],
    values: Vec<Option<V>>,
    mut write: impl FnMut(V, &mut Vec<u8>) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    let len = columns
        .iter()
        .zip(&values)
        .rposition(|(c, v)| !(v.is_none() && c.defaulted))
        .map_or(0, |last| last + 1);
    let mut out = Vec::new();
    let len32 = u32::try_from(len).map_err(|_| "too many fields".to_owned())?;
    rmp::encode::write_array_len(&mut out, len32).map_err(|e| e.to_string())?;
    for (column, value) in columns.iter().zip(values).take(len) {
        match value {
            Some(value) => write(value, &mut out)?,
            None if column.nullable => out.push(NIL),
            None if column.defaulted => {
                return Err(format!(
                    "field {} is missing, and a later field is given: fields are stored by position, and its default is not known without the Rust type; give its value",
                    column.name
                ))
            }
            None => return Err(format!("field {} is missing", column.name)),
        }
    }
    Ok(out)
}

/// The stored form of a JSON `record` with fields `columns`: their values in that order, laid
/// out as [`lay_out`] says.
pub(crate) fn from_json(
    record: &serde_json::Map<String, Value>,
    columns: &[Column<'_>],
) -> Result<Vec<u8>, String> {
    lay_out(
        columns,
        columns.iter().map(|c| record.get(c.name)).collect(),
        |value, out| rmp_serde::encode::write_named(out, value).map_err(|e| e.to_string()),
    )
}

/// `MessagePack`'s nil.
const NIL: u8 = 0xc0;

/// The stored form of a format-1 record `bytes` (a map of named fields), with fields
/// `columns` in that order, its values copied byte for byte and laid out as [`lay_out`]
/// says. A name the map holds that `columns` does not is dropped (the application skipped it
/// on reading too). Fields are matched by their stored names only: for a table the program
/// declares, the upgrade reads records as the type instead (serde's aliases and defaults).
pub(crate) fn from_map(bytes: &[u8], columns: &[Column<'_>]) -> Result<Vec<u8>, String> {
    let broken = || "the stored record is not well-formed MessagePack".to_owned();
    let mut at = 0;
    let len = map_len(bytes, &mut at)
        .ok_or_else(|| "the stored record is not a map of named fields (format 1)".to_owned())?;
    let mut fields: Vec<(&[u8], &[u8])> = Vec::new();
    for _ in 0..len {
        let name_start = at;
        let name = str_at(bytes, &mut at).ok_or_else(|| {
            let end = skip(bytes, name_start).unwrap_or(bytes.len());
            format!(
                "a field name is not a string ({:?})",
                &bytes[name_start..end]
            )
        })?;
        let start = at;
        at = skip(bytes, at).ok_or_else(broken)?;
        fields.push((name, &bytes[start..at]));
    }
    if at != bytes.len() {
        return Err(broken());
    }
    let value_of = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| *v)
    };
    lay_out(
        columns,
        columns.iter().map(|c| value_of(c.name)).collect(),
        |value, out| {
            out.extend_from_slice(value);
            Ok(())
        },
    )
}

fn take<'b>(bytes: &'b [u8], at: &mut usize, n: usize) -> Option<&'b [u8]> {
    let end = at.checked_add(n)?;
    let out = bytes.get(*at..end)?;
    *at = end;
    Some(out)
}

fn uint(bytes: &[u8], at: &mut usize, width: usize) -> Option<usize> {
    let raw = take(bytes, at, width)?;
    let mut n: u64 = 0;
    for b in raw {
        n = (n << 8) | u64::from(*b);
    }
    usize::try_from(n).ok()
}

/// The kinds of `MessagePack` value whose header gives a length.
#[derive(Clone, Copy)]
pub(crate) enum Counted {
    Str,
    Array,
    Map,
}

/// The length the header at the start of `input` gives a value of `kind`, and what follows
/// the header; `None` for a value of another kind, or a header cut short.
#[inline]
pub(crate) fn length(input: &[u8], kind: Counted) -> Option<(usize, &[u8])> {
    let (&marker, rest) = input.split_first()?;
    // (fixed-length markers and the mask of their length, then the 8-, 16- and 32-bit ones)
    let (fixed, mask, m8, m16, m32) = match kind {
        Counted::Str => (0xa0, 0x1f, Some(0xd9), 0xda, 0xdb),
        Counted::Array => (0x90, 0x0f, None, 0xdc, 0xdd),
        Counted::Map => (0x80, 0x0f, None, 0xde, 0xdf),
    };
    if marker & !mask == fixed {
        Some((usize::from(marker & mask), rest))
    } else if Some(marker) == m8 {
        let (&n, rest) = rest.split_first()?;
        Some((usize::from(n), rest))
    } else if marker == m16 {
        let (n, rest) = rest.split_first_chunk::<2>()?;
        Some((usize::from(u16::from_be_bytes(*n)), rest))
    } else if marker == m32 {
        let (n, rest) = rest.split_first_chunk::<4>()?;
        Some((usize::try_from(u32::from_be_bytes(*n)).ok()?, rest))
    } else {
        None
    }
}

/// The length of the map that starts at `at`, moving past its header.
fn map_len(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let (len, rest) = length(bytes.get(*at..)?, Counted::Map)?;
    *at = bytes.len() - rest.len();
    Some(len)
}

/// The string that starts at `at`, moving past it.
fn str_at<'b>(bytes: &'b [u8], at: &mut usize) -> Option<&'b [u8]> {
    let (len, rest) = length(bytes.get(*at..)?, Counted::Str)?;
    let text = rest.get(..len)?;
    *at = bytes.len() - rest.len() + len;
    Some(text)
}

/// Where the `MessagePack` value that starts at `at` ends, or `None` when it is cut short or
/// malformed. Nesting is walked with a count of values still to skip, not by recursion, so a
/// deeply nested input cannot overflow the stack.
pub(crate) fn skip(bytes: &[u8], mut at: usize) -> Option<usize> {
    let mut pending: usize = 1;
    while pending > 0 {
        pending -= 1;
        let marker = *bytes.get(at)?;
        at += 1;
        let (payload, children) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * usize::from(marker & 0x0f)),
            0x90..=0x9f => (0, usize::from(marker & 0x0f)),
            0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (uint(bytes, &mut at, 1)?, 0),
            0xc5 | 0xda => (uint(bytes, &mut at, 2)?, 0),
            0xc6 | 0xdb => (uint(bytes, &mut at, 4)?, 0),
            0xc7 => (uint(bytes, &mut at, 1)? + 1, 0),
            0xc8 => (uint(bytes, &mut at, 2)? + 1, 0),
            0xc9 => (uint(bytes, &mut at, 4)? + 1, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 | 0xd4 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, uint(bytes, &mut at, 2)?),
            0xdd => (0, uint(bytes, &mut at, 4)?),
            0xde => (0, 2 * uint(bytes, &mut at, 2)?),
            0xdf => (0, 2usize.checked_mul(uint(bytes, &mut at, 4)?)?),
            0xc1 => return None,
        };
        take(bytes, &mut at, payload)?;
        // Every child takes at least one byte: more children than bytes left is malformed.
        if children > bytes.len() - at {
            return None;
        }
        pending = pending.checked_add(children)?;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Inner {
        a: u8,
        b: String,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Rec {
        id: u64,
        name: String,
        nick: Option<String>,
        inner: Inner,
        tags: Vec<String>,
        #[serde(default)]
        added: u32,
    }

    fn rec() -> Rec {
        Rec {
            id: 7,
            name: "Ann".into(),
            nick: None,
            inner: Inner {
                a: 1,
                b: "x".into(),
            },
            tags: vec!["t".into()],
            added: 3,
        }
    }

    const COLUMNS: &[Column<'static>] = &[
        Column {
            name: "id",
            nullable: false,
            defaulted: false,
        },
        Column {
            name: "name",
            nullable: false,
            defaulted: false,
        },
        Column {
            name: "nick",
            nullable: true,
            defaulted: false,
        },
        Column {
            name: "inner",
            nullable: false,
            defaulted: false,
        },
        Column {
            name: "tags",
            nullable: false,
            defaulted: false,
        },
        Column {
            name: "added",
            nullable: false,
            defaulted: true,
        },
    ];

    #[test]
    fn top_level_is_positional_and_nested_values_keep_names() {
        let mut out = Vec::new();
        encode(&rec(), &mut out).unwrap();
        assert_eq!(out[0], 0x96, "an array of six fields");
        assert!(!out.windows(4).any(|w| w == b"name"));
        assert!(out.windows(2).any(|w| w == b"\xa1b"), "nested names stay");
        assert_eq!(rmp_serde::from_slice::<Rec>(&out).unwrap(), rec());
        assert_eq!(skip(&out, 0), Some(out.len()));
    }

    #[test]
    fn format_1_maps_become_the_same_bytes() {
        let map = rmp_serde::to_vec_named(&rec()).unwrap();
        let mut direct = Vec::new();
        encode(&rec(), &mut direct).unwrap();
        assert_eq!(from_map(&map, COLUMNS).unwrap(), direct);
        // A record stored before `added` existed: left out at the end, its default applies.
        let short = &COLUMNS[..5];
        let mut old = rec();
        old.added = 0;
        let upgraded = from_map(&rmp_serde::to_vec_named(&old).unwrap(), short).unwrap();
        assert_eq!(rmp_serde::from_slice::<Rec>(&upgraded).unwrap(), old);
    }

    #[test]
    fn a_missing_option_is_nil_and_only_defaulted_fields_are_left_out() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Two {
            id: u64,
            nick: Option<String>,
        }
        let columns = &COLUMNS[..3];
        let map = rmp_serde::to_vec_named(&serde_json::json!({"id": 1, "name": "a"})).unwrap();
        let row = from_map(&map, columns).unwrap();
        assert_eq!(
            row[0], 0x93,
            "nick stored as nil: serde fills a missing Option only from a default"
        );
        let short = [COLUMNS[0], COLUMNS[2]];
        let row = from_map(
            &rmp_serde::to_vec_named(&serde_json::json!({"id": 1})).unwrap(),
            &short,
        )
        .unwrap();
        assert_eq!(
            rmp_serde::from_slice::<Two>(&row).unwrap(),
            Two { id: 1, nick: None }
        );
        let map = rmp_serde::to_vec_named(&serde_json::json!({"name": "a"})).unwrap();
        assert_eq!(from_map(&map, columns).unwrap_err(), "field id is missing");
    }

    #[test]
    fn json_round_trips_by_name() {
        let mut out = Vec::new();
        encode(&rec(), &mut out).unwrap();
        let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        let json = to_json(&out, &names).unwrap();
        assert_eq!(json["name"], "Ann");
        assert_eq!(json["inner"]["b"], "x");
        let back = from_json(json.as_object().unwrap(), COLUMNS).unwrap();
        assert_eq!(rmp_serde::from_slice::<Rec>(&back).unwrap(), rec());
        let mut missing = json.as_object().unwrap().clone();
        missing.remove("nick");
        missing.remove("added");
        let back = from_json(&missing, COLUMNS).unwrap();
        let mut want = rec();
        want.added = 0;
        assert_eq!(rmp_serde::from_slice::<Rec>(&back).unwrap(), want);
        missing.remove("name");
        assert!(from_json(&missing, COLUMNS)
            .unwrap_err()
            .contains("field name"));
    }

    proptest::proptest! {
        /// Any bytes at all, as a stored record: each reader gives an answer or an error,
        /// never a panic, and `skip` never ends past the input.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
            let _ = to_json(&bytes, &names);
            let _ = from_map(&bytes, COLUMNS);
            if let Some(end) = skip(&bytes, 0) {
                proptest::prop_assert!(end <= bytes.len());
            }
        }

        /// A record's encoding is one value to `skip`, and upgrading its map form gives it.
        #[test]
        fn records_skip_and_upgrade_whole(id in proptest::num::u64::ANY, name in ".{0,40}", added in proptest::num::u32::ANY, tags in proptest::collection::vec(".{0,8}", 0..4)) {
            let record = Rec { id, name, nick: None, inner: Inner { a: 1, b: String::new() }, tags, added };
            let mut direct = Vec::new();
            encode(&record, &mut direct).unwrap();
            proptest::prop_assert_eq!(skip(&direct, 0), Some(direct.len()));
            let map = rmp_serde::to_vec_named(&record).unwrap();
            proptest::prop_assert_eq!(from_map(&map, COLUMNS).unwrap(), direct);
        }
    }

    #[test]
    fn skip_refuses_truncated_and_hostile_input() {
        assert_eq!(skip(&[0xdd, 0xff, 0xff, 0xff, 0xff], 0), None);
        assert_eq!(skip(&[0xdb, 0, 0, 0, 9, b'a'], 0), None);
        assert_eq!(skip(&[0xc1], 0), None);
        let deep = vec![0x91; 100_000];
        assert_eq!(skip(&deep, 0), None);
    }
}
