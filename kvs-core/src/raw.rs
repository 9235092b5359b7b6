//! Untyped access, for tools that work on any kvs database without its Rust types (the
//! console, export and check tools). Records are the stored bytes; keys are encoded with the
//! [`KeyType`]s of the catalog ([`catalog::entries`](crate::catalog::entries)).
//! Applications use [`Kvs`](crate::Kvs) instead.

use crate::backend::{ReadTx, WriteTx};
use crate::catalog::CatalogEntry;
use crate::error::Result;
use crate::key::KeyType;
use crate::ops;
pub use crate::ops::{index_keys, prefix_end, read_seq, seq, IndexValues};
use crate::stream;
pub use crate::stream::Writer;

/// Stores the record `bytes` under `key` in `entry`'s table as `Kvs::put` does: indexes
/// moved from the replaced record's values to `new` (the encoded value of each of
/// `entry.indexes`, `None` where absent), a unique value held by another record refused with
/// `Error::Duplicate` and nothing left written. `old_values` computes the index values of the
/// stored record being replaced.
pub fn put(
    w: &mut dyn WriteTx,
    entry: &CatalogEntry,
    key: &[u8],
    bytes: &[u8],
    new: &[Option<Vec<u8>>],
    old_values: &dyn Fn(&[u8]) -> Result<IndexValues>,
) -> Result<()> {
    ops::put_entry(w, entry, key, bytes, new, old_values)
}

/// Deletes the record under `key` in `entry`'s table as `Kvs::delete` does: its index
/// entries (`old_values` computes them from its stored bytes) and its feed links with it.
/// Returns whether it existed.
pub fn delete(
    w: &mut dyn WriteTx,
    entry: &CatalogEntry,
    key: &[u8],
    old_values: &dyn Fn(&[u8]) -> Result<IndexValues>,
) -> Result<bool> {
    ops::delete_entry(w, entry, key, old_values)
}

/// Unlinks the record `key` of `table` from every feed that holds it, as a delete must.
pub fn unlink_all(w: &mut dyn WriteTx, table: &str, key: &[u8]) -> Result<()> {
    stream::unlink_all(w, table, key)
}

/// The writers of every feed. `key_type` gives a table's key type (to decode the first and
/// last keys), or `None` when unknown.
pub fn writers(
    r: &dyn ReadTx,
    key_type: &dyn Fn(&str) -> Result<Option<KeyType>>,
) -> Result<Vec<Writer>> {
    stream::feeds(r)?
        .iter()
        .map(|feed| stream::writer(r, feed, key_type))
        .collect()
}

/// The writer of `feed` (count 0 for an unknown feed).
pub fn writer(
    r: &dyn ReadTx,
    feed: &str,
    key_type: &dyn Fn(&str) -> Result<Option<KeyType>>,
) -> Result<Writer> {
    stream::writer(r, feed, key_type)
}

/// The encoded record keys of up to `limit` elements of `feed`, oldest first, or newest first
/// when `back`.
pub fn feed_keys(r: &dyn ReadTx, feed: &str, back: bool, limit: usize) -> Result<Vec<Vec<u8>>> {
    stream::feed_keys(r, feed, back, limit)
}

/// Checks that the stream tables agree: every element has its link and its record, every link
/// its element, and every writer's count and ends match its elements. Returns the problems
/// found, for people (empty when all is well).
pub fn check_feeds(r: &dyn ReadTx) -> Result<Vec<String>> {
    stream::check(r)
}
