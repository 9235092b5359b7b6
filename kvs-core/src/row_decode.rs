//! Reading a stored record (format 2, `row.rs`) into its Rust type: the hot path of every
//! read.
//!
//! The top-level array and the fields of the common kinds (integers, floats, `bool`,
//! strings, `Option`s of these) are read here, straight from the bytes; every other value
//! (a nested struct, a sequence, a map, an enum, bytes) is cut out with `row::skip` and read
//! by rmp-serde, which wrote it. A record of format 1 (a map), read by a read-only open before
//! its upgrade, goes to rmp-serde whole. The result is rmp-serde's for every input: a test
//! holds the two readers to the same answers.

use serde::de::{self, DeserializeSeed, Visitor};
use serde::Deserializer;

use crate::row::skip;

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
    let (&marker, rest) = input.split_first()?;
    let (len, rest) = match marker {
        0x90..=0x9f => (usize::from(marker & 0x0f), rest),
        0xdc => {
            let (n, rest) = rest.split_first_chunk::<2>()?;
            (usize::from(u16::from_be_bytes(*n)), rest)
        }
        0xdd => {
            let (n, rest) = rest.split_first_chunk::<4>()?;
            (usize::try_from(u32::from_be_bytes(*n)).ok()?, rest)
        }
        _ => return None,
    };
    *input = rest;
    Some(len)
}

/// The record: an array of `len` fields.
struct Top<'de> {
    input: &'de [u8],
    len: usize,
}

impl<'de> Top<'de> {
    fn fields<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let mut fields = Fields {
            input: self.input,
            left: self.len,
        };
        let value = visitor.visit_seq(&mut fields)?;
        match fields.left {
            0 => Ok(value),
            more => Err(custom(format!(
                "the stored record holds {more} more fields than the type reads"
            ))),
        }
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
        Ok(read(&mut rmp_serde::Deserializer::from_read_ref(value))?)
    }

    /// An integer, if the value is one (`None` leaves `input` as it was).
    #[inline]
    fn int(&mut self) -> Option<Int> {
        let input: &'de [u8] = self.input;
        let (&marker, rest) = input.split_first()?;
        let (int, rest) = match marker {
            0x00..=0x7f => (Int::U(u64::from(marker)), rest),
            0xe0..=0xff => (Int::I(i64::from(marker.cast_signed())), rest),
            0xcc => be::<1>(rest).map(|(n, r)| (Int::U(u64::from(n[0])), r))?,
            0xcd => be::<2>(rest).map(|(n, r)| (Int::U(u64::from(u16::from_be_bytes(n))), r))?,
            0xce => be::<4>(rest).map(|(n, r)| (Int::U(u64::from(u32::from_be_bytes(n))), r))?,
            0xcf => be::<8>(rest).map(|(n, r)| (Int::U(u64::from_be_bytes(n)), r))?,
            0xd0 => be::<1>(rest).map(|(n, r)| (Int::I(i64::from(n[0].cast_signed())), r))?,
            0xd1 => be::<2>(rest).map(|(n, r)| (Int::I(i64::from(i16::from_be_bytes(n))), r))?,
            0xd2 => be::<4>(rest).map(|(n, r)| (Int::I(i64::from(i32::from_be_bytes(n))), r))?,
            0xd3 => be::<8>(rest).map(|(n, r)| (Int::I(i64::from_be_bytes(n)), r))?,
            _ => return None,
        };
        *self.input = rest;
        Some(int)
    }

    fn number<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.int() {
            Some(Int::U(n)) => visitor.visit_u64(n),
            Some(Int::I(n)) => visitor.visit_i64(n),
            None => match self.marker()? {
                0xca => {
                    let bytes = self.take(5)?;
                    visitor.visit_f32(f32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]))
                }
                0xcb => {
                    let bytes = self.take(9)?;
                    let mut raw = [0; 8];
                    raw.copy_from_slice(&bytes[1..]);
                    visitor.visit_f64(f64::from_be_bytes(raw))
                }
                0xc2 => {
                    self.take(1)?;
                    visitor.visit_bool(false)
                }
                0xc3 => {
                    self.take(1)?;
                    visitor.visit_bool(true)
                }
                _ => self.delegate(|de| de.deserialize_any(visitor)),
            },
        }
    }

    /// The string the value holds, if it is a string (`None` leaves `input` as it was).
    #[inline]
    fn str_bytes(&mut self) -> Option<&'de [u8]> {
        let input: &'de [u8] = self.input;
        let (&marker, rest) = input.split_first()?;
        let (len, rest) = match marker {
            0xa0..=0xbf => (usize::from(marker & 0x1f), rest),
            0xd9 => {
                let (&n, rest) = rest.split_first()?;
                (usize::from(n), rest)
            }
            0xda => {
                let (n, rest) = rest.split_first_chunk::<2>()?;
                (usize::from(u16::from_be_bytes(*n)), rest)
            }
            0xdb => {
                let (n, rest) = rest.split_first_chunk::<4>()?;
                (usize::try_from(u32::from_be_bytes(*n)).ok()?, rest)
            }
            _ => return None,
        };
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

/// An integer as `MessagePack` stored it.
enum Int {
    U(u64),
    I(i64),
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
            self.number(visitor)
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

        /// Any bytes at all: both readers accept the same inputs, never panicking.
        #[test]
        fn agrees_with_rmp_serde_on_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..48)) {
            let ours = decode::<Inner>(&bytes);
            let theirs = rmp_serde::from_slice::<Inner>(&bytes);
            proptest::prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?} {:?}", ours, theirs);
            if let (Ok(a), Ok(b)) = (ours, theirs) {
                proptest::prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn extra_and_missing_fields_are_errors_as_in_rmp_serde() {
        #[derive(Deserialize, Debug)]
        struct Shorter {
            #[allow(dead_code)]
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
        assert!(decode::<Shorter>(&bytes).is_err());
        assert!(rmp_serde::from_slice::<Shorter>(&bytes).is_err());
        assert!(decode::<Longer>(&bytes).is_err());
        assert!(rmp_serde::from_slice::<Longer>(&bytes).is_err());
    }
}
