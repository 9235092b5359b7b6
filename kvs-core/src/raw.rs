//! Untyped access, for tools that work on any kvs database without its Rust types (the
//! console, export and check tools). Records are the stored bytes; keys are encoded with the
//! [`KeyType`]s of the catalog ([`catalog::entries`](crate::catalog::entries)).
//! Applications use [`Kvs`](crate::Kvs) instead.

use crate::backend::{ReadTx, WriteTx};
use crate::error::Result;
use crate::key::KeyType;
use crate::stream;
pub use crate::stream::Writer;

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
