//! kvs: a typed record store. A plain serde struct becomes a table with one derive; records,
//! secondary indexes and counters live in an embedded [redb] database by default, or on any
//! backend a URL names.
//!
//! ```
//! use kvs::{Kvs, Table};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
//! #[kvs(name = "users")]
//! struct User {
//!     #[kvs(key)]
//!     id: u64,
//!     #[kvs(index, unique)]
//!     email: String,
//!     #[kvs(index)]
//!     city: String,
//!     name: String,
//! }
//!
//! let kvs = Kvs::open("mem:")?; // or "redb:app.redb"; Kvs::from_env() reads KVS_URL
//! let id = kvs.seq("users", 1)?;
//! kvs.put(&User { id, email: "ann@x.io".into(), city: "Oslo".into(), name: "Ann".into() })?;
//! assert_eq!(kvs.get::<User>(&id)?.map(|u| u.name), Some("Ann".to_string()));
//! assert_eq!(kvs.index::<User>(UserField::City, "Oslo")?.len(), 1);
//! assert_eq!(kvs.count::<User>()?, 1);
//! # Ok::<(), kvs::Error>(())
//! ```
//!
//! Streams keep records in feeds, in append order, with cursors that page through them
//! (Erlang's `kvs_stream`):
//!
//! ```
//! use kvs::{Dir, Kvs, Reader, Table};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Table, Serialize, Deserialize)]
//! #[kvs(name = "msgs")]
//! struct Msg {
//!     #[kvs(key)]
//!     id: u64,
//!     text: String,
//! }
//!
//! let kvs = Kvs::open("mem:")?;
//! for id in 1..=5 {
//!     kvs.append("chat/general", &Msg { id, text: format!("message {id}") })?;
//! }
//! assert_eq!(kvs.writer("chat/general")?.count, 5);
//!
//! let mut r: Reader<Msg> = kvs.reader("chat/general")?;
//! r.dir = Dir::Backward;
//! kvs.top(&mut r)?; // after the newest element
//! let page: Vec<u64> = kvs.take(&mut r, 2)?.iter().map(|m| m.id).collect();
//! assert_eq!(page, [5, 4]);
//! assert_eq!(kvs.next(&mut r)?.map(|m| m.id), Some(4)); // the cursor sits between elements
//! kvs.save_reader(&r)?; // resume later with kvs.load_reader(r.id)
//! # Ok::<(), kvs::Error>(())
//! ```
//!
//! In async code (feature `tokio`, on by default), [`AsyncKvs`] has the same calls as
//! `async fn`s, whose futures are `Send`:
//!
//! ```
//! # #[derive(kvs::Table, serde::Serialize, serde::Deserialize)]
//! # #[kvs(name = "users")]
//! # struct User { #[kvs(key)] id: u64, #[kvs(index)] city: String }
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let kvs = kvs::AsyncKvs::open("mem:").await?;
//! let id = kvs.seq("users", 1).await?;
//! kvs.put(&User { id, city: "Oslo".into() }).await?;
//! assert_eq!(kvs.index::<User>(UserField::City, "Oslo").await?.len(), 1);
//! # Ok::<(), kvs::Error>(())
//! # }).unwrap();
//! ```
//!
//! This crate is the one applications depend on: it re-exports the API of `kvs-core`, the
//! `Table` derive (trait and macro under one name, as serde does) and links the redb backend,
//! which serves the `redb:` and `mem:` URLs.
//!
//! [redb]: https://docs.rs/redb
#![forbid(unsafe_code)]

// The application's API, listed (as redb's lib.rs lists its own) rather than globbed: a reader
// of this file knows what kvs offers, and nothing that can break an invariant leaks out.
pub use kvs_core::{
    registered_tables, ColumnMeta, Config, Dir, Dump, DumpRow, Durability, Error, FieldKind,
    FieldType, IndexArg, IndexField, IndexInfo, IndexIter, IndexMeta, IndexRange, IndexValue, Iter,
    Key, KeyArg, KeyEnum, KeyType, KeyValue, Kvs, Reader, Reindex, Result, Snapshot, Table,
    TableInfo, TableMeta, Tx, Upgrade, Version, Writer, DEFAULT_URL, KVS_URL, STREAM_SCHEMA,
};

/// Async services (feature `tokio`, on by default): [`AsyncKvs`] has every call of [`Kvs`] as
/// an `async fn`, and [`RecordStream`] is what its `stream` returns.
#[cfg(feature = "tokio")]
pub use kvs_core::{AsyncKvs, RecordStream};

/// For backend authors: the storage seam a backend implements ([`backend::Backend`], its
/// transactions, and the [`backend::BackendFactory`] that registers a URL scheme). The redb
/// and etcd backends are written against it alone.
pub mod backend {
    pub use kvs_core::backend::*;
}

/// For tools without the application's Rust types (the `kvs` console is one): any kvs
/// database through its catalog, records as JSON, writes that keep every invariant.
pub use kvs_core::untyped;

/// The catalog every kvs database stores: its entries, header and format version (reading it;
/// writing it is `Kvs::open`'s and `untyped::Edit`'s).
pub use kvs_core::catalog;

// For generated code: the derive's registration and compile-time checks.
#[doc(hidden)]
pub use kvs_core::{__private, kind, ValueKind};

#[cfg(feature = "derive")]
pub use kvs_derive::{KeyEnum, Table};

/// The redb backend (`redb:` and `mem:` URLs), linked into every program that uses kvs.
pub use kvs_redb as redb;

/// The etcd backend (`etcd://HOST:PORT[,HOST:PORT...]/PREFIX`), linked with the `etcd`
/// feature (on by default).
#[cfg(feature = "etcd")]
pub use kvs_etcd as etcd;
