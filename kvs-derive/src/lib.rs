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
mod parse;
mod symbol;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Declares a kvs table: see the crate documentation.
#[proc_macro_derive(Table, attributes(kvs))]
pub fn derive_table(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive_table(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
