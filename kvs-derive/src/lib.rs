//! `#[derive(Table)]` for kvs. Use it through the `kvs` crate, which re-exports it beside the
//! `Table` trait:
//!
//! ```
//! use kvs::{Kvs, Table};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Table, Serialize, Deserialize, Debug, PartialEq)]
//! #[kvs(name = "cities")]
//! struct City {
//!     #[kvs(key)]
//!     name: String,
//!     #[kvs(index)]
//!     country: String,
//!     #[kvs(index, unique)]
//!     code: Option<u32>,
//!     population: u64,
//! }
//!
//! let kvs = Kvs::open("mem:")?;
//! kvs.put(&City { name: "Oslo".into(), country: "NO".into(), code: Some(47), population: 709_000 })?;
//! let norwegian: Vec<City> = kvs.index::<City>(CityField::Country, "NO")?;
//! assert_eq!(norwegian.len(), 1);
//! # Ok::<(), kvs::Error>(())
//! ```
//!
//! Attributes:
//! - on the struct: `#[kvs(name = "...")]` (the table name; default: the type name in
//!   snake case), `#[kvs(schema = "...")]` (default `default`), `#[kvs(crate = "path")]`
//!   (where the `kvs` crate is, if renamed);
//! - on fields: `#[kvs(key)]` on exactly one field, `#[kvs(index)]` or `#[kvs(index, unique)]`
//!   on any number of others.
//!
//! The derive implements `kvs::Table`, generates a `<Type>Field` namespace with one marker per
//! indexed field (`CityField::Country`) for `Kvs::index`, and registers the table so that
//! `Kvs::open` finds it. Every mistake is a compile error pointing at the offending token.
#![forbid(unsafe_code)]

mod expand;
mod key_enum;
mod parse;
mod serde_attr;
mod symbol;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// A unit-only enum as a key or indexed value: see `kvs::KeyEnum`.
///
/// ```
/// use kvs::{Kvs, KeyEnum, Table};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(KeyEnum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
/// #[serde(rename_all = "snake_case")]
/// enum Status { Active, OnHold, Closed }
///
/// #[derive(Table, Serialize, Deserialize, Debug, PartialEq)]
/// struct Order {
///     #[kvs(key)]
///     id: u64,
///     #[kvs(index)]
///     status: Status,
/// }
///
/// let kvs = Kvs::open("mem:")?;
/// kvs.put(&Order { id: 1, status: Status::OnHold })?;
/// assert_eq!(kvs.index::<Order>(OrderField::Status, Status::OnHold)?.len(), 1);
/// # Ok::<(), kvs::Error>(())
/// ```
#[proc_macro_derive(KeyEnum, attributes(kvs))]
pub fn derive_key_enum(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    key_enum::derive_key_enum(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Declares a kvs table: a plain serde struct becomes a table, with its key, its secondary
/// indexes and a `<Type>Field` namespace of index markers for the typed queries.
///
/// ```
/// use kvs::{Kvs, Table};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Table, Serialize, Deserialize, Debug, PartialEq)]
/// #[kvs(name = "orders", schema = "billing")]
/// struct Order {
///     #[kvs(key)]
///     id: (u32, u64),
///     #[kvs(index)]
///     customer: u64,
///     #[kvs(index, unique)]
///     invoice: Option<String>,
///     lines: Vec<String>,
/// }
///
/// let kvs = Kvs::open("mem:")?;
/// kvs.put(&Order { id: (1, 7), customer: 42, invoice: Some("F-1".into()), lines: vec![] })?;
/// assert_eq!(kvs.index::<Order>(OrderField::Customer, 42)?.len(), 1);
/// # Ok::<(), kvs::Error>(())
/// ```
///
/// # Attributes
///
/// On the struct, in `#[kvs(...)]`:
/// - `name = "..."`: the table name (default: the type name in snake case). Letters, digits,
///   `_`, `-`, `.` and `/`; `#` is kept for kvs's own tables.
/// - `schema = "..."`: the schema the table belongs to (default `default`); a URL's
///   `?schemas=` list opens only the tables of the schemas it names.
/// - `crate = "path"`: where the `kvs` crate is, if the dependency was renamed.
///
/// On fields:
/// - `#[kvs(key)]`: exactly one field, the primary key. Key types: `u8`…`u128`, `usize`,
///   `i8`…`i128`, `isize`, `String`, `Vec<u8>`, `bool`, `char`, a `#[derive(KeyEnum)]` enum,
///   and tuples of these up to four.
/// - `#[kvs(index)]`: a secondary index, any number of them; `Kvs::index` finds records by
///   the field's value. The same types as keys, or an `Option` of one (`None` is not indexed).
/// - `#[kvs(index, unique)]`: an index in which no two records hold one value; a `put` that
///   would break that is `Error::Duplicate` and writes nothing.
///
/// Unknown or duplicate words, a missing or second key, a generic struct, an enum or a
/// tuple struct are compile errors pointing at the offending token.
///
/// # serde attributes
///
/// Records store the fields serde writes, by position (an array in declaration order), and
/// the catalog names every field as it is stored, so that the console, `export`/`import` and
/// `check` see what the application wrote:
/// - `rename`, `rename_all` and `alias` work everywhere, keys and indexes included (the
///   catalog and index tables use the stored names: `#[serde(rename_all = "camelCase")]`
///   gives `homeCity`).
/// - `default` (on a field or the struct), and `skip` on a field that is neither the key nor
///   indexed, work; a field serde skips is not stored and not in the catalog. A field added
///   to a table that holds records must come last and have `default` (docs/SCHEMA.md).
/// - Refused with a compile error at the attribute: `flatten` and `skip_serializing_if`
///   anywhere, and `skip_serializing` or `skip_deserializing` without the other (each
///   leaves a hole in the positional record; `skip` leaves the field out whole); `skip`,
///   `with`, `serialize_with` and `deserialize_with` on the key or an indexed field; `tag`,
///   `untagged`, `transparent`, `from`, `try_from`, `into` and `remote` on the struct;
///   `rename(serialize = …, deserialize = …)` with two different names. Each would make the
///   stored record and what kvs reads or indexes disagree.
///
/// # What it generates
///
/// An implementation of `kvs::Table`, a module `<Type>Field` with one marker per indexed field
/// (`OrderField::Customer`, `OrderField::Invoice`; `Kvs::index` takes them, and a field that
/// is not indexed, or belongs to another table, does not compile), and a registration through
/// `inventory`, so that `Kvs::open` finds the table in every program that links the type.
#[proc_macro_derive(Table, attributes(kvs))]
pub fn derive_table(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive_table(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
