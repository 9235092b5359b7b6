//! The order-preserving key encoding.
//!
//! Keys and indexed values are stored as bytes whose lexicographic order is the natural order of
//! the values: unsigned integers big-endian, signed integers big-endian with the sign bit
//! flipped (so negatives sort first), `bool` as one byte, `char` as its `u32`, strings and byte
//! strings with every `0x00` escaped as `0x00 0xFF` and a `0x00 0x00` terminator, tuples as the
//! concatenation of their parts. Every encoding is prefix-free within its type, which is what
//! lets an index entry be the indexed value followed by the record's key.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The type of a key or indexed value, as stored in the catalog.
///
/// A program without the Rust types (the console, an export tool) decodes keys with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyType {
    /// `u8`
    U8,
    /// `u16`
    U16,
    /// `u32`
    U32,
    /// `u64` (and `usize`)
    U64,
    /// `u128`
    U128,
    /// `i8`
    I8,
    /// `i16`
    I16,
    /// `i32`
    I32,
    /// `i64` (and `isize`)
    I64,
    /// `i128`
    I128,
    /// `bool`
    Bool,
    /// `char`
    Char,
    /// `String`
    String,
    /// `Vec<u8>`
    Bytes,
    /// A tuple of up to four of the others.
    Tuple(Vec<KeyType>),
    /// A unit-only enum (`#[derive(KeyEnum)]`): stored as the variant's position, a
    /// big-endian `u32`, so values sort in declaration order; shown by these (serde) names.
    Enum(Vec<String>),
}

/// Writes `parts` as a tuple: `(a, b)`.
pub(crate) fn write_tuple(f: &mut fmt::Formatter<'_>, parts: &[impl fmt::Display]) -> fmt::Result {
    f.write_str("(")?;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{part}")?;
    }
    f.write_str(")")
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            KeyType::U8 => "u8",
            KeyType::U16 => "u16",
            KeyType::U32 => "u32",
            KeyType::U64 => "u64",
            KeyType::U128 => "u128",
            KeyType::I8 => "i8",
            KeyType::I16 => "i16",
            KeyType::I32 => "i32",
            KeyType::I64 => "i64",
            KeyType::I128 => "i128",
            KeyType::Bool => "bool",
            KeyType::Char => "char",
            KeyType::String => "String",
            KeyType::Bytes => "Vec<u8>",
            KeyType::Tuple(parts) => {
                return write_tuple(f, parts);
            }
            KeyType::Enum(names) => return write!(f, "enum {}", names.join("|")),
        };
        f.write_str(name)
    }
}

/// A decoded key or indexed value, for programs that have no Rust type for it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeyValue {
    /// Any unsigned integer.
    Unsigned(u128),
    /// Any signed integer.
    Signed(i128),
    /// A `bool`.
    Bool(bool),
    /// A `char`.
    Char(char),
    /// A `String`.
    String(String),
    /// A `Vec<u8>`.
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<KeyValue>),
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Unsigned(v) => write!(f, "{v}"),
            KeyValue::Signed(v) => write!(f, "{v}"),
            KeyValue::Bool(v) => write!(f, "{v}"),
            KeyValue::Char(v) => write!(f, "{v:?}"),
            KeyValue::String(v) => write!(f, "{v:?}"),
            KeyValue::Bytes(v) => write!(f, "{v:?}"),
            KeyValue::Tuple(parts) => write_tuple(f, parts),
        }
    }
}

impl KeyType {
    /// Decodes one value of this type from the front of `bytes`, advancing it.
    ///
    /// Returns `None` when the bytes are not a valid encoding of this type.
    pub fn decode(&self, bytes: &mut &[u8]) -> Option<KeyValue> {
        fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
            let (head, rest) = bytes.split_first_chunk::<N>()?;
            *bytes = rest;
            Some(*head)
        }
        fn signed<const N: usize>(bytes: &mut &[u8]) -> Option<i128> {
            let mut raw = take::<N>(bytes)?;
            raw[0] ^= 0x80;
            let mut wide = if raw[0] & 0x80 != 0 {
                [0xFF; 16]
            } else {
                [0; 16]
            };
            wide[16 - N..].copy_from_slice(&raw);
            Some(i128::from_be_bytes(wide))
        }
        fn unsigned<const N: usize>(bytes: &mut &[u8]) -> Option<u128> {
            let raw = take::<N>(bytes)?;
            let mut wide = [0; 16];
            wide[16 - N..].copy_from_slice(&raw);
            Some(u128::from_be_bytes(wide))
        }
        Some(match self {
            KeyType::U8 => KeyValue::Unsigned(unsigned::<1>(bytes)?),
            KeyType::U16 => KeyValue::Unsigned(unsigned::<2>(bytes)?),
            KeyType::U32 => KeyValue::Unsigned(unsigned::<4>(bytes)?),
            KeyType::U64 => KeyValue::Unsigned(unsigned::<8>(bytes)?),
            KeyType::U128 => KeyValue::Unsigned(unsigned::<16>(bytes)?),
            KeyType::I8 => KeyValue::Signed(signed::<1>(bytes)?),
            KeyType::I16 => KeyValue::Signed(signed::<2>(bytes)?),
            KeyType::I32 => KeyValue::Signed(signed::<4>(bytes)?),
            KeyType::I64 => KeyValue::Signed(signed::<8>(bytes)?),
            KeyType::I128 => KeyValue::Signed(signed::<16>(bytes)?),
            KeyType::Bool => match take::<1>(bytes)? {
                [0] => KeyValue::Bool(false),
                [1] => KeyValue::Bool(true),
                _ => return None,
            },
            KeyType::Char => KeyValue::Char(char::from_u32(u32::from_be_bytes(take(bytes)?))?),
            KeyType::String => KeyValue::String(String::from_utf8(decode_bytes(bytes)?).ok()?),
            KeyType::Bytes => KeyValue::Bytes(decode_bytes(bytes)?),
            KeyType::Tuple(parts) => KeyValue::Tuple(
                parts
                    .iter()
                    .map(|part| part.decode(bytes))
                    .collect::<Option<_>>()?,
            ),
            KeyType::Enum(names) => {
                let at = usize::try_from(u32::from_be_bytes(take(bytes)?)).ok()?;
                KeyValue::String(names.get(at)?.clone())
            }
        })
    }

    /// Appends the encoding of `value` as this type, the inverse of [`KeyType::decode`];
    /// returns `false` (leaving `out` as it was) when `value` is not of this type or out of
    /// its range. Tools without the Rust types (the console) encode keys with it.
    ///
    /// ```
    /// use kvs_core::{Key, KeyType, KeyValue};
    ///
    /// let mut out = Vec::new();
    /// assert!(KeyType::I16.encode(&KeyValue::Signed(-5), &mut out));
    /// assert_eq!(out, (-5i16).to_key_bytes());
    /// assert!(!KeyType::U8.encode(&KeyValue::Unsigned(300), &mut out));
    /// ```
    pub fn encode(&self, value: &KeyValue, out: &mut Vec<u8>) -> bool {
        let len = out.len();
        let ok = self.encode_inner(value, out);
        if !ok {
            out.truncate(len);
        }
        ok
    }

    fn encode_inner(&self, value: &KeyValue, out: &mut Vec<u8>) -> bool {
        fn int<T: Key + TryFrom<i128> + TryFrom<u128>>(v: &KeyValue, out: &mut Vec<u8>) -> bool {
            let parsed = match *v {
                KeyValue::Unsigned(u) => T::try_from(u).ok(),
                KeyValue::Signed(i) => T::try_from(i).ok(),
                _ => None,
            };
            parsed.map(|t| t.encode_key(out)).is_some()
        }
        match (self, value) {
            (KeyType::U8, v) => int::<u8>(v, out),
            (KeyType::U16, v) => int::<u16>(v, out),
            (KeyType::U32, v) => int::<u32>(v, out),
            (KeyType::U64, v) => int::<u64>(v, out),
            (KeyType::U128, v) => int::<u128>(v, out),
            (KeyType::I8, v) => int::<i8>(v, out),
            (KeyType::I16, v) => int::<i16>(v, out),
            (KeyType::I32, v) => int::<i32>(v, out),
            (KeyType::I64, v) => int::<i64>(v, out),
            (KeyType::I128, v) => int::<i128>(v, out),
            (KeyType::Bool, KeyValue::Bool(b)) => {
                b.encode_key(out);
                true
            }
            (KeyType::Char, KeyValue::Char(c)) => {
                c.encode_key(out);
                true
            }
            (KeyType::String, KeyValue::String(text)) => {
                encode_bytes(text.as_bytes(), out);
                true
            }
            (KeyType::Bytes, KeyValue::Bytes(bytes)) => {
                encode_bytes(bytes, out);
                true
            }
            (KeyType::Enum(names), KeyValue::String(name)) => {
                match names.iter().position(|n| n == name).map(u32::try_from) {
                    Some(Ok(at)) => {
                        out.extend_from_slice(&at.to_be_bytes());
                        true
                    }
                    _ => false,
                }
            }
            (KeyType::Tuple(types), KeyValue::Tuple(values)) => {
                types.len() == values.len()
                    && types
                        .iter()
                        .zip(values)
                        .all(|(t, v)| t.encode_inner(v, out))
            }
            _ => false,
        }
    }

    /// Advances `bytes` past one encoded value of this type without decoding it (an index
    /// entry is a value followed by a key); `None` when the bytes are not such a value.
    pub fn skip(&self, bytes: &mut &[u8]) -> Option<()> {
        let width = match self {
            KeyType::U8 | KeyType::I8 | KeyType::Bool => 1,
            KeyType::U16 | KeyType::I16 => 2,
            KeyType::U32 | KeyType::I32 | KeyType::Char | KeyType::Enum(_) => 4,
            KeyType::U64 | KeyType::I64 => 8,
            KeyType::U128 | KeyType::I128 => 16,
            KeyType::String | KeyType::Bytes => {
                let mut i = 0;
                loop {
                    match (*bytes.get(i)?, bytes.get(i + 1)) {
                        (0, Some(0)) => {
                            *bytes = &bytes[i + 2..];
                            return Some(());
                        }
                        (0, Some(0xFF)) => i += 2,
                        (0, _) => return None,
                        _ => i += 1,
                    }
                }
            }
            KeyType::Tuple(parts) => {
                for part in parts {
                    part.skip(bytes)?;
                }
                return Some(());
            }
        };
        *bytes = bytes.get(width..)?;
        Some(())
    }

    /// Renders an encoded value for people, or as hex when it does not decode.
    pub fn render(&self, bytes: &[u8]) -> String {
        let mut rest = bytes;
        match self.decode(&mut rest) {
            Some(value) if rest.is_empty() => value.to_string(),
            _ => format!("0x{}", hex(bytes)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Appends the escaped, terminated encoding of a byte string.
pub(crate) fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 2);
    // Most strings hold no zero byte: one search for it (a word at a time), one copy.
    if !bytes.contains(&0) {
        out.extend_from_slice(bytes);
        out.extend_from_slice(&[0, 0]);
        return;
    }
    // Runs without a zero byte are copied whole.
    let mut runs = bytes.split(|&b| b == 0);
    if let Some(first) = runs.next() {
        out.extend_from_slice(first);
    }
    for run in runs {
        out.extend_from_slice(&[0, 0xFF]);
        out.extend_from_slice(run);
    }
    out.extend_from_slice(&[0, 0]);
}

fn decode_bytes(bytes: &mut &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match *bytes.get(i)? {
            0 => match *bytes.get(i + 1)? {
                0 => {
                    *bytes = &bytes[i + 2..];
                    return Some(out);
                }
                0xFF => out.push(0),
                _ => return None,
            },
            b => {
                out.push(b);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
}

/// Kinds of value for the compile-time check of `index` arguments: every integer type shares
/// one kind (so an integer literal works for any integer field), and a tuple's kind mixes its
/// parts'.
#[doc(hidden)]
pub mod kind {
    /// Any integer.
    pub const INT: u64 = 1;
    /// `bool`.
    pub const BOOL: u64 = 2;
    /// `char`.
    pub const CHAR: u64 = 3;
    /// `String`, `&str`.
    pub const STRING: u64 = 4;
    /// `Vec<u8>`, `&[u8]`.
    pub const BYTES: u64 = 5;

    /// The kind of a tuple of the given kinds.
    pub const fn tuple(parts: &[u64]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ parts.len() as u64;
        let mut i = 0;
        while i < parts.len() {
            h = (h ^ parts[i]).wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        h
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, if any.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// A type that can be a table's key or an indexed value: integers, `String`, `Vec<u8>`,
/// `bool`, `char`, and tuples of these (up to four).
///
/// Implementations must keep `encode_key` order-preserving (`a < b` exactly when the encoding
/// of `a` sorts before that of `b`) and prefix-free, and `key_type` must describe that encoding.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a kvs key or indexed value",
    label = "not a supported key type",
    note = "kvs keys and indexed fields are integers, String, Vec<u8>, bool, char, or tuples of these (up to 4); indexed fields may also be Option of them; floats have no total order and are not supported"
)]
pub trait Key {
    /// The compile-time kind of this type (see `kind`).
    #[doc(hidden)]
    const KIND: u64;

    /// Appends the order-preserving encoding of `self` to `out`.
    fn encode_key(&self, out: &mut Vec<u8>);

    /// The type as recorded in the catalog.
    fn key_type() -> KeyType;

    /// The encoding as a new vector.
    fn to_key_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_key(&mut out);
        out
    }

    /// Runs `f` on the encoding: an integer key's is built on the stack, with no allocation
    /// (a point read's hot path); other keys' in a new vector.
    #[doc(hidden)]
    #[inline]
    fn with_key_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R
    where
        Self: Sized,
    {
        f(&self.to_key_bytes())
    }
}

macro_rules! unsigned_key {
    ($($t:ty => $kt:ident as $wide:ty),*) => {$(
        impl Key for $t {
            const KIND: u64 = kind::INT;
            fn encode_key(&self, out: &mut Vec<u8>) {
                self.with_key_bytes(|bytes| out.extend_from_slice(bytes));
            }
            #[inline]
            fn with_key_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                f(&(*self as $wide).to_be_bytes())
            }
            fn key_type() -> KeyType {
                KeyType::$kt
            }
        }
    )*};
}

macro_rules! signed_key {
    ($($t:ty => $kt:ident as $wide:ty, $bits:ty),*) => {$(
        impl Key for $t {
            const KIND: u64 = kind::INT;
            fn encode_key(&self, out: &mut Vec<u8>) {
                self.with_key_bytes(|bytes| out.extend_from_slice(bytes));
            }
            #[inline]
            fn with_key_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                // Reinterpret the two's complement bits, then flip the sign bit.
                let bits = <$bits>::from_be_bytes((*self as $wide).to_be_bytes());
                f(&(bits ^ (1 << (<$bits>::BITS - 1))).to_be_bytes())
            }
            fn key_type() -> KeyType {
                KeyType::$kt
            }
        }
    )*};
}

unsigned_key!(u8 => U8 as u8, u16 => U16 as u16, u32 => U32 as u32, u64 => U64 as u64,
    u128 => U128 as u128, usize => U64 as u64);
signed_key!(i8 => I8 as i8, u8, i16 => I16 as i16, u16, i32 => I32 as i32, u32,
    i64 => I64 as i64, u64, i128 => I128 as i128, u128, isize => I64 as i64, u64);

impl Key for bool {
    const KIND: u64 = kind::BOOL;
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn key_type() -> KeyType {
        KeyType::Bool
    }
}

impl Key for char {
    const KIND: u64 = kind::CHAR;
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&u32::from(*self).to_be_bytes());
    }
    fn key_type() -> KeyType {
        KeyType::Char
    }
}

impl Key for String {
    const KIND: u64 = kind::STRING;
    fn encode_key(&self, out: &mut Vec<u8>) {
        encode_bytes(self.as_bytes(), out);
    }
    fn key_type() -> KeyType {
        KeyType::String
    }
}

impl Key for Vec<u8> {
    const KIND: u64 = kind::BYTES;
    fn encode_key(&self, out: &mut Vec<u8>) {
        encode_bytes(self, out);
    }
    fn key_type() -> KeyType {
        KeyType::Bytes
    }
}

macro_rules! tuple_key {
    ($(($($n:ident $i:tt),+))*) => {$(
        impl<$($n: Key),+> Key for ($($n,)+) {
            const KIND: u64 = kind::tuple(&[$($n::KIND),+]);
            fn encode_key(&self, out: &mut Vec<u8>) {
                $(self.$i.encode_key(out);)+
            }
            fn key_type() -> KeyType {
                KeyType::Tuple(vec![$($n::key_type()),+])
            }
        }
    )*};
}

tuple_key! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
}

/// A unit-only enum that can be a key or an indexed value: implemented by
/// `#[derive(KeyEnum)]`, which also makes it a [`FieldType`](crate::FieldType) and an
/// [`IndexArg`](crate::IndexArg).
///
/// A value is stored as its variant's position in declaration order (a big-endian `u32`), so
/// an index orders by declaration order; the catalog records the variant names as serde
/// stores them, so tools without the Rust type show and parse names. Adding a variant
/// changes the catalog entry: an index over the enum is rebuilt at the next open, and a table
/// keyed by the enum is refused (its key type changed). A `KeyEnum` must be serialized by
/// serde's derive, as the name of its variant (not as a number, `serde_repr`-style), which is
/// what the catalog records.
pub trait KeyEnum: 'static {
    /// The variants' names as serde stores them, in declaration order.
    const VARIANTS: &'static [&'static str];
    /// The compile-time kind (see `kind`): one per enum type.
    #[doc(hidden)]
    const KIND: u64;
    /// The variant's position in [`KeyEnum::VARIANTS`].
    fn position(&self) -> u32;
}

impl<E: KeyEnum> Key for E {
    const KIND: u64 = E::KIND;
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.position().to_be_bytes());
    }
    fn key_type() -> KeyType {
        KeyType::Enum(E::VARIANTS.iter().map(|&v| v.to_owned()).collect())
    }
}

impl<E: KeyEnum> IndexValue for E {
    const KIND: u64 = E::KIND;
    fn encode_index(&self, out: &mut Vec<u8>) -> bool {
        self.encode_key(out);
        true
    }
    fn value_type() -> KeyType {
        <E as Key>::key_type()
    }
}

impl<E: KeyEnum> IndexValue for Option<E> {
    const KIND: u64 = E::KIND;
    fn encode_index(&self, out: &mut Vec<u8>) -> bool {
        self.as_ref().is_some_and(|value| value.encode_index(out))
    }
    fn value_type() -> KeyType {
        <E as Key>::key_type()
    }
}

/// The type of an indexed field: any [`Key`] type, or an `Option` of one (`None` is not
/// indexed).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an indexed field",
    label = "not a supported index type",
    note = "indexed fields are integers, String, Vec<u8>, bool, char, tuples of these (up to 4), or Option of any of them; floats have no total order and are not supported"
)]
pub trait IndexValue {
    /// The compile-time kind of the indexed value (see `kind`).
    #[doc(hidden)]
    const KIND: u64;

    /// Appends the encoding of the indexed value to `out`; returns `false` (and appends
    /// nothing) when there is no value to index.
    fn encode_index(&self, out: &mut Vec<u8>) -> bool;

    /// The type as recorded in the catalog.
    fn value_type() -> KeyType;
}

macro_rules! index_value {
    ($($t:ty),*) => {$(
        impl IndexValue for $t {
            const KIND: u64 = <$t as Key>::KIND;
            fn encode_index(&self, out: &mut Vec<u8>) -> bool {
                self.encode_key(out);
                true
            }
            fn value_type() -> KeyType {
                <$t as Key>::key_type()
            }
        }
        impl IndexValue for Option<$t> {
            const KIND: u64 = <$t as Key>::KIND;
            fn encode_index(&self, out: &mut Vec<u8>) -> bool {
                match self {
                    Some(value) => value.encode_index(out),
                    None => false,
                }
            }
            fn value_type() -> KeyType {
                <$t as Key>::key_type()
            }
        }
    )*};
}

index_value!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    bool,
    char,
    String,
    Vec<u8>
);

macro_rules! tuple_index_value {
    ($(($($n:ident),+))*) => {$(
        impl<$($n: Key),+> IndexValue for ($($n,)+) {
            const KIND: u64 = <($($n,)+) as Key>::KIND;
            fn encode_index(&self, out: &mut Vec<u8>) -> bool {
                self.encode_key(out);
                true
            }
            fn value_type() -> KeyType {
                <($($n,)+) as Key>::key_type()
            }
        }
        impl<$($n: Key),+> IndexValue for Option<($($n,)+)> {
            const KIND: u64 = <($($n,)+) as Key>::KIND;
            fn encode_index(&self, out: &mut Vec<u8>) -> bool {
                match self {
                    Some(value) => value.encode_index(out),
                    None => false,
                }
            }
            fn value_type() -> KeyType {
                <($($n,)+) as Key>::key_type()
            }
        }
    )*};
}

tuple_index_value! {
    (A)
    (A, B)
    (A, B, C)
    (A, B, C, D)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arg::IndexArg;

    #[allow(clippy::needless_pass_by_value)] // reads best at the call sites
    fn enc<K: Key>(k: K) -> Vec<u8> {
        k.to_key_bytes()
    }

    #[test]
    fn signed_order_is_natural() {
        let values = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        let encoded: Vec<_> = values.iter().map(|v| enc(*v)).collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]));
        for (v, e) in values.iter().zip(&encoded) {
            assert_eq!(
                KeyType::I64.decode(&mut e.as_slice()),
                Some(KeyValue::Signed(i128::from(*v)))
            );
        }
    }

    #[test]
    fn strings_sort_and_round_trip_with_nul() {
        let values = ["", "\0", "\0\0", "a", "a\0", "a\0b", "ab", "b"];
        let encoded: Vec<_> = values.iter().map(|v| enc(v.to_string())).collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]), "{encoded:?}");
        // The stored bytes (docs/FORMAT.md): each NUL escaped as 00 FF, then 00 00.
        assert_eq!(enc("a\0b".to_string()), [b'a', 0, 0xFF, b'b', 0, 0]);
        assert_eq!(enc("\0\0".to_string()), [0, 0xFF, 0, 0xFF, 0, 0]);
        for (v, e) in values.iter().zip(&encoded) {
            let mut rest = e.as_slice();
            assert_eq!(
                KeyType::String.decode(&mut rest),
                Some(KeyValue::String(v.to_string()))
            );
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn tuples_sort_by_parts() {
        let a = enc((1u32, "b".to_string()));
        let b = enc((1u32, "ba".to_string()));
        let c = enc((2u32, String::new()));
        assert!(a < b && b < c);
        let ty = <(u32, String)>::key_type();
        assert_eq!(ty.render(&b), "(1, \"ba\")");
    }

    #[test]
    fn int_args_convert_to_the_field_type() {
        let mut out = Vec::new();
        assert!(30i32.encode_as(&KeyType::U8, &mut out));
        assert_eq!(out, enc(30u8));
        out.clear();
        assert!(!(-1i32).encode_as(&KeyType::U64, &mut out));
        assert!(!300i32.encode_as(&KeyType::U8, &mut out));
        assert!(!"x".encode_as(&KeyType::U8, &mut out));
        assert!(out.is_empty());
        assert!((1, "a").encode_as(&<(u16, String)>::key_type(), &mut out));
        assert_eq!(out, enc((1u16, "a".to_string())));
    }

    #[test]
    fn garbage_does_not_decode() {
        assert_eq!(KeyType::String.decode(&mut &[b'a', 0, 7][..]), None);
        assert_eq!(KeyType::U64.decode(&mut &[1, 2][..]), None);
        assert_eq!(KeyType::Bool.decode(&mut &[2][..]), None);
        assert_eq!(KeyType::U8.render(&[1, 2]), "0x0102");
    }
}
