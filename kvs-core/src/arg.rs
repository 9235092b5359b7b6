//! What the typed calls take as arguments: keys in borrowed forms ([`KeyArg`]), values to look
//! up in an index ([`IndexArg`]), encoded as the catalog's type of the field (integers of any
//! type, clamped as range bounds), and the kinds checked at compile time ([`ValueKind`]).

use crate::key::{encode_bytes, kind, Key, KeyType};

/// The kind of value a lookup passes, for the compile-time check against the field's (see
/// `KindCheck`): an index value's own kind, or a range's values' kind.
#[doc(hidden)]
pub trait ValueKind {
    /// The kind; [`ANY`] passes every field.
    const KIND: u64;
}

/// The kind of `..`, which every field takes.
#[doc(hidden)]
pub const ANY: u64 = 0;

impl<V: IndexArg + ?Sized> ValueKind for V {
    const KIND: u64 = <V as IndexArg>::KIND;
}

/// A key passed to `get`, `delete` or `remove` for a table whose key type is `K`: `&K`, or a
/// borrowed form (`&str` for a `String` key, `&[u8]` for a `Vec<u8>` key), as `index` takes
/// borrowed values.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a key of type `{K}`",
    label = "expected a key of type `&{K}`",
    note = "pass a reference to the table's key type (`&{K}`), or `&str` for a String key, `&[u8]` for a Vec<u8> key"
)]
pub trait KeyArg<K: Key> {
    /// The key's encoding.
    fn key_bytes(self) -> Vec<u8>;

    /// Runs `f` on the key's encoding, kept on the stack for an integer key.
    #[doc(hidden)]
    #[inline]
    fn with_key_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R
    where
        Self: Sized,
    {
        f(&self.key_bytes())
    }
}

impl<K: Key> KeyArg<K> for &K {
    fn key_bytes(self) -> Vec<u8> {
        self.to_key_bytes()
    }
    #[inline]
    fn with_key_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        K::with_key_bytes(self, f)
    }
}

impl KeyArg<String> for &str {
    fn key_bytes(self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_bytes(self.as_bytes(), &mut out);
        out
    }
}

impl KeyArg<Vec<u8>> for &[u8] {
    fn key_bytes(self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_bytes(self, &mut out);
        out
    }
}

/// A value to look up in an index: `&str` or `String` for a `String` field, `&[u8]`,
/// `[u8; N]` or `Vec<u8>` for bytes, any integer for an integer field (a value out of the
/// field's range matches nothing), the field's own type otherwise, tuples of these, and
/// `Option`s of these (`None` matches nothing).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be looked up in a kvs index",
    label = "not an index value",
    note = "pass &str for a String field, an integer for an integer field, or the field's own type"
)]
pub trait IndexArg {
    /// The compile-time kind (see `kind`); `Kvs::index` checks it against the field's.
    #[doc(hidden)]
    const KIND: u64;

    /// Appends the encoding of `self` as a value of type `ty`; returns `false` when no value of
    /// that type equals `self` (an integer out of range), so that nothing can match.
    fn encode_as(&self, ty: &KeyType, out: &mut Vec<u8>) -> bool;

    /// `self` as a range bound of values of type `ty`: [`Fit::Exact`] with its encoding in
    /// `out`, or, for a value out of the type's range, whether it lies above or below every
    /// value of the type that starts with what was appended to `out` (the parts of a tuple
    /// before the one out of range), so that the bound clamps.
    #[doc(hidden)]
    fn encode_bound(&self, ty: &KeyType, out: &mut Vec<u8>) -> Fit {
        if self.encode_as(ty, out) {
            Fit::Exact
        } else {
            Fit::Below
        }
    }
}

/// How a range bound fits the indexed value's type (see [`IndexArg::encode_bound`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Encoded exactly.
    Exact,
    /// Above every value that starts with the encoded prefix.
    Above,
    /// Below every value that starts with the encoded prefix.
    Below,
}

impl<T: IndexArg + ?Sized> IndexArg for &T {
    const KIND: u64 = T::KIND;
    fn encode_as(&self, ty: &KeyType, out: &mut Vec<u8>) -> bool {
        (**self).encode_as(ty, out)
    }
    fn encode_bound(&self, ty: &KeyType, out: &mut Vec<u8>) -> Fit {
        (**self).encode_bound(ty, out)
    }
}

/// [`IndexArg::encode_bound`] for an integer: out of the type's range, a non-negative value
/// lies above it and a negative one below.
fn int_bound(value: Int, ty: &KeyType, out: &mut Vec<u8>) -> Fit {
    if encode_int(value, ty, out) {
        Fit::Exact
    } else {
        match value {
            Int::I(v) if v < 0 => Fit::Below,
            _ => Fit::Above,
        }
    }
}

/// An integer widened to 128 bits.
#[derive(Clone, Copy)]
enum Int {
    U(u128),
    I(i128),
}

fn encode_int(value: Int, ty: &KeyType, out: &mut Vec<u8>) -> bool {
    macro_rules! to {
        ($t:ty) => {
            match value {
                Int::U(v) => <$t>::try_from(v).ok(),
                Int::I(v) => <$t>::try_from(v).ok(),
            }
            .map(|v| v.encode_key(out))
            .is_some()
        };
    }
    match ty {
        KeyType::U8 => to!(u8),
        KeyType::U16 => to!(u16),
        KeyType::U32 => to!(u32),
        KeyType::U64 => to!(u64),
        KeyType::U128 => to!(u128),
        KeyType::I8 => to!(i8),
        KeyType::I16 => to!(i16),
        KeyType::I32 => to!(i32),
        KeyType::I64 => to!(i64),
        KeyType::I128 => to!(i128),
        _ => false,
    }
}

macro_rules! int_arg {
    ($($t:ty => $variant:ident),*) => {$(
        impl IndexArg for $t {
            const KIND: u64 = kind::INT;
            fn encode_as(&self, ty: &KeyType, out: &mut Vec<u8>) -> bool {
                encode_int(Int::$variant((*self).into()), ty, out)
            }
            fn encode_bound(&self, ty: &KeyType, out: &mut Vec<u8>) -> Fit {
                int_bound(Int::$variant((*self).into()), ty, out)
            }
        }
    )*};
}

int_arg!(u8 => U, u16 => U, u32 => U, u64 => U, u128 => U, i8 => I, i16 => I, i32 => I,
    i64 => I, i128 => I);

impl IndexArg for usize {
    const KIND: u64 = kind::INT;
    fn encode_as(&self, ty: &KeyType, out: &mut Vec<u8>) -> bool {
        u128::try_from(*self).is_ok_and(|v| encode_int(Int::U(v), ty, out))
    }
    fn encode_bound(&self, ty: &KeyType, out: &mut Vec<u8>) -> Fit {
        u128::try_from(*self).map_or(Fit::Above, |v| int_bound(Int::U(v), ty, out))
    }
}

impl IndexArg for isize {
    const KIND: u64 = kind::INT;
    fn encode_as(&self, ty: &KeyType, out: &mut Vec<u8>) -> bool {
        i128::try_from(*self).is_ok_and(|v| encode_int(Int::I(v), ty, out))
    }
    fn encode_bound(&self, ty: &KeyType, out: &mut Vec<u8>) -> Fit {
        i128::try_from(*self).map_or(Fit::Above, |v| int_bound(Int::I(v), ty, out))
    }
}

macro_rules! exact_arg {
    ($($t:ty => $kt:ident, $kind:ident, |$s:ident, $out:ident| $encode:expr;)*) => {$(
        impl IndexArg for $t {
            const KIND: u64 = kind::$kind;
            fn encode_as(&self, ty: &KeyType, $out: &mut Vec<u8>) -> bool {
                let $s = self;
                matches!(ty, KeyType::$kt) && {
                    $encode;
                    true
                }
            }
        }
    )*};
}

exact_arg! {
    bool => Bool, BOOL, |s, out| s.encode_key(out);
    char => Char, CHAR, |s, out| s.encode_key(out);
    str => String, STRING, |s, out| encode_bytes(s.as_bytes(), out);
    String => String, STRING, |s, out| encode_bytes(s.as_bytes(), out);
    [u8] => Bytes, BYTES, |s, out| encode_bytes(s, out);
    Vec<u8> => Bytes, BYTES, |s, out| encode_bytes(s, out);
}

impl<const N: usize> IndexArg for [u8; N] {
    const KIND: u64 = kind::BYTES;
    fn encode_as(&self, ty: &KeyType, out: &mut Vec<u8>) -> bool {
        self[..].encode_as(ty, out)
    }
}

/// `Some(v)` looks up `v`; `None` matches nothing, since `None` is not indexed. This lets an
/// `Option<T>` field be queried with its own type as well as with `T`.
impl<T: IndexArg> IndexArg for Option<T> {
    const KIND: u64 = T::KIND;
    fn encode_as(&self, ty: &KeyType, out: &mut Vec<u8>) -> bool {
        self.as_ref().is_some_and(|v| v.encode_as(ty, out))
    }
    fn encode_bound(&self, ty: &KeyType, out: &mut Vec<u8>) -> Fit {
        self.as_ref()
            .map_or(Fit::Below, |v| v.encode_bound(ty, out))
    }
}

macro_rules! tuple_arg {
    ($(($($n:ident $i:tt),+))*) => {$(
        impl<$($n: IndexArg),+> IndexArg for ($($n,)+) {
            const KIND: u64 = kind::tuple(&[$($n::KIND),+]);
            fn encode_as(&self, ty: &KeyType, out: &mut Vec<u8>) -> bool {
                let KeyType::Tuple(parts) = ty else { return false };
                let n = [$($i),+].len();
                parts.len() == n $(&& self.$i.encode_as(&parts[$i], out))+
            }
            fn encode_bound(&self, ty: &KeyType, out: &mut Vec<u8>) -> Fit {
                let KeyType::Tuple(parts) = ty else { return Fit::Below };
                if parts.len() != [$($i),+].len() {
                    return Fit::Below;
                }
                $(
                    let fit = self.$i.encode_bound(&parts[$i], out);
                    if fit != Fit::Exact {
                        return fit;
                    }
                )+
                Fit::Exact
            }
        }
    )*};
}

tuple_arg! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
}

/// A key encoded already, for a call that runs on another thread than its caller's
/// (`AsyncKvs`): the caller's borrowed key is encoded where it lives, and this owned form
/// crosses over. It is a key of every type; the caller encoded it as the table's.
#[cfg(feature = "tokio")]
#[derive(Clone)]
pub(crate) struct EncodedKey(pub(crate) Vec<u8>);

#[cfg(feature = "tokio")]
impl<K: Key> KeyArg<K> for EncodedKey {
    fn key_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// An index value encoded already as its field's type (`None`: outside that type's range,
/// matching nothing), for a call that runs on another thread than its caller's. Its kind is
/// [`ANY`]: the caller's own value was checked against the field at compile time.
#[cfg(feature = "tokio")]
#[derive(Clone)]
pub(crate) struct EncodedValue(pub(crate) Option<Vec<u8>>);

#[cfg(feature = "tokio")]
impl IndexArg for EncodedValue {
    const KIND: u64 = ANY;
    fn encode_as(&self, _ty: &KeyType, out: &mut Vec<u8>) -> bool {
        match &self.0 {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}
