//! The core of kvs: the user API ([`Kvs`], [`Tx`]), the [`Table`] trait that
//! `#[derive(Table)]` implements, the registry of tables, the order-preserving [`Key`]
//! encoding, the [`Backend`] seam and the [`Error`] type. There is no storage engine here.
//!
//! ```
//! use kvs_core::{Key, KeyType};
//!
//! // Keys are stored in an encoding whose byte order is the values' natural order,
//! // negatives and tuples included, so ranges and `all` come back in key order.
//! let (a, b) = ((-5i64, "b".to_string()), (3i64, "a".to_string()));
//! assert!(a.to_key_bytes() < b.to_key_bytes());
//! assert_eq!(<(i64, String)>::key_type().render(&a.to_key_bytes()), "(-5, \"b\")");
//! # let _ = KeyType::U64;
//! ```
//!
//! Applications depend on the `kvs` crate, which re-exports this API together with the derive
//! and the redb backend; backend authors implement [`backend::Backend`] and register a
//! [`backend::BackendFactory`] for their URL scheme; tools that work on any kvs database
//! without its Rust types (the console) use [`untyped::Session`]. The README's Layout section
//! maps the files of this crate.
#![forbid(unsafe_code)]

// First, so that its `read_calls!` reaches the files that expand it (kvs.rs, tx.rs).
#[macro_use]
mod reads;

mod arg;
#[cfg(feature = "tokio")]
mod async_group;
#[cfg(feature = "tokio")]
mod async_kvs;
pub mod backend;
pub mod catalog;
mod combine;
mod cursor;
mod error;
mod field;
mod group;
mod json;
mod key;
mod kvs;
mod query;
mod record;
mod replay;
mod report;
mod retry;
mod row;
mod row_decode;
mod scratch;
mod select;
mod stream;
mod streams;
mod table;
#[cfg(feature = "testing")]
pub mod testing;
mod tx;
mod undo;
pub mod untyped;
mod upgrade;
mod write;

// Backend crates name these at the root; applications reach them through `kvs::backend`.
#[doc(hidden)]
pub use crate::arg::ValueKind;
pub use crate::arg::{IndexArg, KeyArg};
#[cfg(feature = "tokio")]
pub use crate::async_kvs::{AsyncKvs, RecordStream};
pub use crate::backend::{
    open_backend, redact, Backend, BackendFactory, BackendInfo, Config, Cursor, Durability,
    KeyRange, ManyVisitor, ReadTx, Replay, SharedWrite, Visitor, WriteTx,
};
pub use crate::error::{Error, Result};
pub use crate::field::{FieldKind, FieldType};
pub use crate::key::{IndexValue, Key, KeyEnum, KeyType, KeyValue};
pub use crate::kvs::{Kvs, DEFAULT_URL, KVS_URL};
pub use crate::query::{IndexIter, IndexRange, Iter};
pub use crate::reads::Snapshot;
pub use crate::report::{Dump, DumpRow, IndexInfo, TableInfo, Version};
pub use crate::stream::{
    Dir, Reader, Writer, FEED_TABLE, LINK_TABLE, READER_TABLE, STREAM_SCHEMA, WRITER_TABLE,
};
pub use crate::table::{
    registered_tables, ColumnMeta, IndexField, IndexMeta, Reindex, Table, TableMeta, Upgrade,
};
pub use crate::tx::Tx;

#[doc(hidden)]
pub use crate::key::kind;
#[doc(hidden)]
pub use crate::table::__private;
