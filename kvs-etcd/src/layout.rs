//! How kvs's tables and keys map to etcd keys. Everything of one database lies under its
//! prefix (`ROOT`, from the URL):
//!
//! - `ROOT \0d TABLE \0 KEY`: an entry of a table, so that a table is one etcd range;
//! - `ROOT \0t TABLE`: the marker of a table that exists even while empty;
//! - `ROOT \0f`: the fence, which every write transaction rewrites.

use std::ops::Bound;

use kvs_core::KeyRange;

use crate::Etcd;

/// The smallest key after every key that starts with `prefix`, or etcd's "to the end of the
/// keyspace" (`[0]`) when there is none.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    kvs_core::backend::prefix_end(prefix).unwrap_or_else(|| vec![0])
}

impl Etcd {
    /// The key prefix of `table`'s entries.
    pub(crate) fn table_base(&self, table: &str) -> Vec<u8> {
        let mut key = self.root.clone();
        key.extend_from_slice(b"\0d");
        key.extend_from_slice(table.as_bytes());
        key.push(0);
        key
    }

    pub(crate) fn data_key(&self, table: &str, key: &[u8]) -> Vec<u8> {
        let mut full = self.table_base(table);
        full.extend_from_slice(key);
        full
    }

    /// The key that marks that `table` exists even while empty.
    pub(crate) fn marker(&self, table: &str) -> Vec<u8> {
        let mut key = self.root.clone();
        key.extend_from_slice(b"\0t");
        key.extend_from_slice(table.as_bytes());
        key
    }

    /// The key every write transaction rewrites and compares.
    pub(crate) fn fence(&self) -> Vec<u8> {
        let mut key = self.root.clone();
        key.extend_from_slice(b"\0f");
        key
    }

    /// The etcd range of `range` within `table`.
    pub(crate) fn etcd_range(&self, table: &str, (start, end): KeyRange<'_>) -> (Vec<u8>, Vec<u8>) {
        let base = self.table_base(table);
        let from = match start {
            Bound::Included(k) => self.data_key(table, k),
            Bound::Excluded(k) => {
                let mut k = self.data_key(table, k);
                k.push(0);
                k
            }
            Bound::Unbounded => base.clone(),
        };
        let to = match end {
            Bound::Included(k) => {
                let mut k = self.data_key(table, k);
                k.push(0);
                k
            }
            Bound::Excluded(k) => self.data_key(table, k),
            Bound::Unbounded => prefix_end(&base),
        };
        (from, to)
    }
}
