//! The kinds of stored fields, recorded in the catalog so that tools without the Rust types
//! (the console's `import` and `check`) can tell a record the application can read from one
//! it cannot.
//!
//! The derive finds each field's kind from its type through [`FieldType`]; a type it does not
//! know (a nested struct, an enum that is not a `KeyEnum`, a type alias of such) is
//! [`FieldKind::Any`], which every value passes.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// The stored form of a field, as far as kvs can know it without the Rust type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FieldKind {
    /// `bool`.
    Bool,
    /// An unsigned integer of this many bits (`usize` counts as 64).
    Unsigned(u8),
    /// A signed integer of this many bits (`isize` counts as 64).
    Signed(u8),
    /// `f32` or `f64`: any number.
    Float,
    /// `char`: a string of one character.
    Char,
    /// `String`.
    String,
    /// `Option<T>`: absent, null, or a `T`.
    Option(Box<FieldKind>),
    /// `Vec<T>` (and `Vec<u8>`, which serde stores as an array of numbers): an array of `T`.
    Seq(Box<FieldKind>),
    /// A tuple: an array of exactly these.
    Tuple(Vec<FieldKind>),
    /// A map with string keys (`HashMap<String, V>`, `BTreeMap<String, V>`).
    Map(Box<FieldKind>),
    /// A unit-only enum declared with `#[derive(KeyEnum)]`: one of these names.
    Enum(Vec<String>),
    /// A type kvs does not know: any value.
    Any,
}

impl FieldKind {
    /// Whether a record may lack the field (serde reads an absent `Option` as `None`).
    pub fn is_option(&self) -> bool {
        matches!(self, FieldKind::Option(_))
    }
}

impl std::fmt::Display for FieldKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldKind::Bool => f.write_str("bool"),
            FieldKind::Unsigned(bits) => write!(f, "u{bits}"),
            FieldKind::Signed(bits) => write!(f, "i{bits}"),
            FieldKind::Float => f.write_str("a number"),
            FieldKind::Char => f.write_str("char"),
            FieldKind::String => f.write_str("String"),
            FieldKind::Option(inner) => write!(f, "Option<{inner}>"),
            FieldKind::Seq(inner) => write!(f, "Vec<{inner}>"),
            FieldKind::Tuple(parts) => crate::key::write_tuple(f, parts),
            FieldKind::Map(inner) => write!(f, "map of String to {inner}"),
            FieldKind::Enum(names) => write!(f, "one of {}", names.join("|")),
            FieldKind::Any => f.write_str("any value"),
        }
    }
}

/// A Rust type whose stored form kvs knows, for the catalog's [`FieldKind`]s. Types without
/// an implementation are recorded as [`FieldKind::Any`].
pub trait FieldType {
    /// The kind recorded in the catalog.
    fn field_kind() -> FieldKind;
}

macro_rules! field_type {
    ($($t:ty => $kind:expr),* $(,)?) => {$(
        impl FieldType for $t {
            fn field_kind() -> FieldKind {
                $kind
            }
        }
    )*};
}

field_type! {
    bool => FieldKind::Bool,
    u8 => FieldKind::Unsigned(8),
    u16 => FieldKind::Unsigned(16),
    u32 => FieldKind::Unsigned(32),
    u64 => FieldKind::Unsigned(64),
    u128 => FieldKind::Unsigned(128),
    usize => FieldKind::Unsigned(64),
    i8 => FieldKind::Signed(8),
    i16 => FieldKind::Signed(16),
    i32 => FieldKind::Signed(32),
    i64 => FieldKind::Signed(64),
    i128 => FieldKind::Signed(128),
    isize => FieldKind::Signed(64),
    f32 => FieldKind::Float,
    f64 => FieldKind::Float,
    char => FieldKind::Char,
    String => FieldKind::String,
}

impl<T: FieldType> FieldType for Option<T> {
    fn field_kind() -> FieldKind {
        FieldKind::Option(Box::new(T::field_kind()))
    }
}

impl<T: FieldType> FieldType for Vec<T> {
    fn field_kind() -> FieldKind {
        FieldKind::Seq(Box::new(T::field_kind()))
    }
}

impl<T: FieldType> FieldType for Box<T> {
    fn field_kind() -> FieldKind {
        T::field_kind()
    }
}

impl<V: FieldType, S> FieldType for HashMap<String, V, S> {
    fn field_kind() -> FieldKind {
        FieldKind::Map(Box::new(V::field_kind()))
    }
}

impl<V: FieldType> FieldType for BTreeMap<String, V> {
    fn field_kind() -> FieldKind {
        FieldKind::Map(Box::new(V::field_kind()))
    }
}

macro_rules! tuple_field_type {
    ($(($($n:ident),+))*) => {$(
        impl<$($n: FieldType),+> FieldType for ($($n,)+) {
            fn field_kind() -> FieldKind {
                FieldKind::Tuple(vec![$($n::field_kind()),+])
            }
        }
    )*};
}

tuple_field_type! {
    (A)
    (A, B)
    (A, B, C)
    (A, B, C, D)
}

/// The derive's probe for a field's kind: `(&&Probe::<T>::new()).field_kind()` is
/// `T::field_kind()` where `T: FieldType`, and [`FieldKind::Any`] for any other type (method
/// resolution tries the `&Probe` impl first and falls back to the `Probe` one).
#[doc(hidden)]
pub struct Probe<T: ?Sized>(std::marker::PhantomData<T>);

impl<T: ?Sized> Probe<T> {
    /// A probe for `T`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Probe(std::marker::PhantomData)
    }
}

/// The probe's method where the type's kind is known.
#[doc(hidden)]
pub trait ProbeKnown {
    /// The kind.
    fn field_kind(&self) -> FieldKind;
}

impl<T: FieldType + ?Sized> ProbeKnown for &Probe<T> {
    fn field_kind(&self) -> FieldKind {
        T::field_kind()
    }
}

/// The probe's fallback: any other type.
#[doc(hidden)]
pub trait ProbeAny {
    /// [`FieldKind::Any`].
    fn field_kind(&self) -> FieldKind;
}

impl<T: ?Sized> ProbeAny for Probe<T> {
    fn field_kind(&self) -> FieldKind {
        FieldKind::Any
    }
}
