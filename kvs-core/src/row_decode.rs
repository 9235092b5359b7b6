//! Reading a stored record (format 2, `row.rs`) into its Rust type: the hot path of every
//! read.
//!
//! The top-level array and the fields of the common kinds (integers, floats, `bool`,
//! strings, `Option`s of these) are read here, straight from the bytes; every other value
//! (a nested struct, a sequence, a map, an enum, bytes) is cut out with `row::skip` and read
//! by rmp-serde, which wrote it. A record of format 1 (a map), read by a read-only open before
//! its upgrade, goes to rmp-serde whole. The result is rmp-serde's for every input, with two
//! differences: fields after those the type reads are ignored (rmp-serde refuses them), and a
//! string is handed to the visitor owned (`visit_string`, as serde's `String` wants it)
//! rather than borrowed. Tests hold the two readers to the same answers otherwise.

use serde::de::{self, DeserializeSeed, Visitor};
use serde::Deserializer;

use crate::row::{length, skip, Counted};

/// rmp-serde's error, boxed: every field's read returns a `Result`, which stays two words
/// wide this way rather than carrying rmp-serde's error inline.
#[derive(Debug)]
pub(crate) struct Error(Box<rmp_serde::decode::Error>);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<M: std::fmt::Display>(message: M) -> Self {
        Error(Box::new(<rmp_serde::decode::Error as de::Error>::custom(
            message,
        )))
    }
}

impl From<rmp_serde::decode::Error> for Error {
    fn from(e: rmp_serde::decode::Error) -> Self {
        Error(Box::new(e))
    }
}

/// Decodes a stored record as `T`.
#[inline]
pub(crate) fn decode<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Error> {
    let mut input = bytes;
    match array_len(&mut input) {
        Some(len) => T::deserialize(Top { input, len }),
        None => Ok(rmp_serde::from_slice(bytes)?),
    }
}

fn custom(message: impl std::fmt::Display) -> Error {
    <Error as de::Error>::custom(message)
}

/// The length of the array that starts `input`, moving past its header.
#[inline]
fn array_len(input: &mut &[u8]) -> Option<usize> {
    let (len, rest) = length(input, Counted::Array)?;
    *input = rest;
    Some(len)
}

/// The record: an array of `len` fields.
struct Top<'de> {
    input: &'de [u8],
    len: usize,
}

impl<'de> Top<'de> {
    #[inline]
    fn fields<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let mut fields = Fields {
            input: self.input,
            left: self.len,
        };
        // Fields after those the type reads are left unread: a record written by a newer
        // build of the program, which appended a field, reads in a process that opened the
        // table before (format 1 skipped an unknown name the same way). A table whose stored
        // fields outnumber the type's is refused at open (a field removed), so this is
        // reached only by such a process.
        visitor.visit_seq(&mut fields)
    }
}

impl<'de> Deserializer<'de> for Top<'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.fields(visitor)
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.fields(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The fields of a record, read in order.
struct Fields<'de> {
    input: &'de [u8],
    left: usize,
}

impl<'de> de::SeqAccess<'de> for &mut Fields<'de> {
    type Error = Error;

    #[inline]
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(Field {
            input: &mut self.input,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// One value, at the start of `input`, which reading it moves past.
struct Field<'a, 'de> {
    input: &'a mut &'de [u8],
}

impl<'de> Field<'_, 'de> {
    /// The next byte, not taken.
    #[inline]
    fn marker(&self) -> Result<u8, Error> {
        self.input
            .first()
            .copied()
            .ok_or_else(|| custom("the stored record ends before its last field"))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], Error> {
        if self.input.len() < n {
            return Err(custom("the stored record ends inside a field"));
        }
        let (taken, rest) = self.input.split_at(n);
        *self.input = rest;
        Ok(taken)
    }

    /// The whole value, for rmp-serde to read.
    fn cut(&mut self) -> Result<&'de [u8], Error> {
        let end = skip(self.input, 0)
            .ok_or_else(|| custom("a stored field is cut short or malformed"))?;
        self.take(end)
    }

    /// Reads the value with rmp-serde's `read`, as `rmp_serde::from_slice` would.
    fn delegate<V>(
        mut self,
        read: impl FnOnce(
            &mut rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'de, [u8]>>,
        ) -> Result<V, rmp_serde::decode::Error>,
    ) -> Result<V, Error> {
        let value = self.cut()?;
        let mut de = rmp_serde::Deserializer::from_read_ref(value);
        // The record's own array is one level of rmp-serde's default 1024, as in a whole read.
        de.set_max_depth(1023);
        Ok(read(&mut de)?)
    }

    /// A number or a bool, as rmp-serde's typed calls read one (its `any_num`): each marker
    /// to the visit of its own width, nil to `visit_unit`; any other value goes to rmp-serde's
    /// own call (`fallback`), whose answer (a type mismatch, for serde's types) is the answer.
    #[inline]
    fn number<V: Visitor<'de>>(
        self,
        visitor: V,
        fallback: impl FnOnce(
            &mut rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'de, [u8]>>,
            V,
        ) -> Result<V::Value, rmp_serde::decode::Error>,
    ) -> Result<V::Value, Error> {
        let input: &'de [u8] = self.input;
        let Some((&marker, rest)) = input.split_first() else {
            return Err(custom("the stored record ends before its last field"));
        };
        macro_rules! read {
            ($n:literal, $visit:ident, $from:expr) => {{
                let Some((bytes, rest)) = be::<$n>(rest) else {
                    return Err(custom("the stored record ends inside a field"));
                };
                *self.input = rest;
                visitor.$visit($from(bytes))
            }};
        }
        match marker {
            0x00..=0x7f => {
                *self.input = rest;
                visitor.visit_u8(marker)
            }
            0xe0..=0xff => {
                *self.input = rest;
                visitor.visit_i8(marker.cast_signed())
            }
            0xc0 => {
                *self.input = rest;
                visitor.visit_unit()
            }
            0xc2 | 0xc3 => {
                *self.input = rest;
                visitor.visit_bool(marker == 0xc3)
            }
            0xcc => read!(1, visit_u8, |b: [u8; 1]| b[0]),
            0xcd => read!(2, visit_u16, u16::from_be_bytes),
            0xce => read!(4, visit_u32, u32::from_be_bytes),
            0xcf => read!(8, visit_u64, u64::from_be_bytes),
            0xd0 => read!(1, visit_i8, i8::from_be_bytes),
            0xd1 => read!(2, visit_i16, i16::from_be_bytes),
            0xd2 => read!(4, visit_i32, i32::from_be_bytes),
            0xd3 => read!(8, visit_i64, i64::from_be_bytes),
            0xca => read!(4, visit_f32, f32::from_be_bytes),
            0xcb => read!(8, visit_f64, f64::from_be_bytes),
            _ => self.delegate(|de| fallback(de, visitor)),
        }
    }

    /// The string the value holds, if it is a string (`None` leaves `input` as it was).
    #[inline]
    fn str_bytes(&mut self) -> Option<&'de [u8]> {
        let input: &'de [u8] = self.input;
        let (len, rest) = length(input, Counted::Str)?;
        let text = rest.get(..len)?;
        *self.input = &rest[len..];
        Some(text)
    }

    /// A `String` field: copied out first, so that the UTF-8 check reads an aligned buffer
    /// (it runs a word at a time there, a byte at a time on a record's unaligned bytes).
    fn string<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        let before: &'de [u8] = self.input;
        if let Some(Ok(text)) = self
            .str_bytes()
            .map(|text| String::from_utf8(text.to_vec()))
        {
            return visitor.visit_string(text);
        }
        // Not a string, or not UTF-8 (rmp-serde then offers the bytes to the visitor):
        // rmp-serde's answer is the answer.
        *self.input = before;
        self.delegate(|de| de.deserialize_string(visitor))
    }

    fn str<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        let before: &'de [u8] = self.input;
        if let Some(Ok(text)) = self.str_bytes().map(std::str::from_utf8) {
            return visitor.visit_borrowed_str(text);
        }
        *self.input = before;
        self.delegate(|de| de.deserialize_str(visitor))
    }
}

/// The first `N` bytes of `rest`, and what follows them.
#[inline]
fn be<const N: usize>(rest: &[u8]) -> Option<([u8; N], &[u8])> {
    let (n, rest) = rest.split_first_chunk::<N>()?;
    Some((*n, rest))
}

macro_rules! delegated {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Error> {
            self.delegate(|de| de.$method($($arg,)* visitor))
        }
    )*};
}

macro_rules! numbers {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.number(visitor, |de, visitor| de.$method(visitor))
        }
    )*};
}

impl<'de> Deserializer<'de> for Field<'_, 'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    numbers!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_f32,
        deserialize_f64
    );

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.str(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.string(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        if self.marker()? == 0xc0 {
            self.take(1)?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    delegated! {
        deserialize_any();
        deserialize_i128();
        deserialize_u128();
        deserialize_char();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }
}

#[cfg(test)]
// The record under test holds every kind of field, `Option<Option<_>>` among them, filled
// from random `i64`s by truncating casts.
#[allow(
    clippy::option_option,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::decode;
    use crate::row::encode;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    enum Shape {
        Dot,
        Circle(f64),
        Rect { w: u16, h: u16 },
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Inner {
        tag: String,
        n: Option<i32>,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Every {
        a: u8,
        b: i8,
        c: u16,
        d: i16,
        e: u32,
        f: i32,
        g: u64,
        h: i64,
        i: f32,
        j: f64,
        k: bool,
        l: char,
        m: String,
        n: Option<String>,
        o: Option<Option<u8>>,
        p: Vec<u8>,
        q: Vec<String>,
        r: BTreeMap<String, u32>,
        s: Inner,
        t: Shape,
        u: (u8, String),
        v: i128,
        w: (),
        #[serde(with = "serde_bytes_like")]
        x: Vec<u8>,
    }

    /// Bytes stored as `MessagePack` bin, as `serde_bytes` would store them.
    mod serde_bytes_like {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            struct Bytes;
            impl serde::de::Visitor<'_> for Bytes {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                    Ok(v.to_vec())
                }
            }
            d.deserialize_bytes(Bytes)
        }
    }

    proptest::proptest! {
        /// Every value that a record's field may hold reads back as it was, and as
        /// rmp-serde reads it.
        #[test]
        fn reads_what_rmp_serde_reads(
            ints in proptest::array::uniform8(proptest::num::i64::ANY),
            floats in (proptest::num::f32::NORMAL, proptest::num::f64::NORMAL),
            text in ".{0,300}",
            k in proptest::bool::ANY,
            l in proptest::char::any(),
            opt in proptest::option::of(proptest::option::of(proptest::num::u8::ANY)),
            shape in 0..3u8,
        ) {
            let record = Every {
                a: ints[0] as u8, b: ints[1] as i8, c: ints[2] as u16, d: ints[3] as i16,
                e: ints[4] as u32, f: ints[5] as i32, g: ints[6] as u64, h: ints[7],
                i: floats.0, j: floats.1, k, l,
                m: text.clone(),
                n: k.then(|| text.clone()),
                // `Some(None)` is stored as nil, as `None` is: not a value that round trips.
                o: opt.filter(Option::is_some),
                p: text.as_bytes().to_vec(),
                q: vec![text.clone(), String::new()],
                r: [(text.clone(), 7)].into_iter().collect(),
                s: Inner { tag: text.clone(), n: opt.flatten().map(i32::from) },
                t: match shape { 0 => Shape::Dot, 1 => Shape::Circle(floats.1), _ => Shape::Rect { w: ints[2] as u16, h: 3 } },
                u: (ints[0] as u8, text.clone()),
                v: i128::from(ints[7]) * 3,
                w: (),
                x: text.into_bytes(),
            };
            let mut bytes = Vec::new();
            encode(&record, &mut bytes).unwrap();
            let ours: Every = decode(&bytes).unwrap();
            let theirs: Every = rmp_serde::from_slice(&bytes).unwrap();
            proptest::prop_assert_eq!(&ours, &record);
            proptest::prop_assert_eq!(&theirs, &record);
            // Format 1 (a map) reads too.
            let named = rmp_serde::to_vec_named(&record).unwrap();
            proptest::prop_assert_eq!(decode::<Every>(&named).unwrap(), record);
        }

        /// Any bytes at all, never a panic: what rmp-serde reads, this reads the same; what
        /// this reads and rmp-serde refuses is an array with fields after the type's.
        #[test]
        fn agrees_with_rmp_serde_on_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..48)) {
            let ours = decode::<Inner>(&bytes);
            let theirs = rmp_serde::from_slice::<Inner>(&bytes);
            match (ours, theirs) {
                (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                (ours, Ok(b)) => proptest::prop_assert!(false, "{:?} refused, rmp-serde read {:?}", ours, b),
                (Ok(_), Err(_)) => {
                    let mut rest = bytes.as_slice();
                    let len = super::array_len(&mut rest);
                    proptest::prop_assert!(len.is_some_and(|n| n > 2), "{:?}", bytes);
                }
            }
        }
    }

    #[test]
    fn extra_fields_are_ignored_and_missing_ones_refused() {
        #[derive(Deserialize, Debug)]
        struct Shorter {
            tag: String,
        }
        #[derive(Deserialize, Debug)]
        struct Longer {
            #[allow(dead_code)]
            tag: String,
            #[allow(dead_code)]
            n: Option<i32>,
            #[allow(dead_code)]
            more: u8,
        }
        let mut bytes = Vec::new();
        encode(
            &Inner {
                tag: "t".into(),
                n: Some(1),
            },
            &mut bytes,
        )
        .unwrap();
        // A type with fewer fields (a process that opened before a field was appended) reads
        // the ones it knows, where rmp-serde refuses the record.
        assert_eq!(decode::<Shorter>(&bytes).unwrap().tag, "t");
        assert!(rmp_serde::from_slice::<Shorter>(&bytes).is_err());
        assert!(decode::<Longer>(&bytes).is_err());
        assert!(rmp_serde::from_slice::<Longer>(&bytes).is_err());
    }
}
