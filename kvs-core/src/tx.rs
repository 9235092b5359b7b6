//! [`Tx`]: the calls of [`Kvs`] inside one write transaction.

use std::sync::atomic::Ordering;

use crate::backend::{ReadTx, WriteTx};
use crate::cursor;
use crate::error::Result;
use crate::key::KeyArg;
use crate::kvs::Kvs;
use crate::query::Source;
use crate::reads::{read_calls, Reads};
use crate::record;
use crate::stream::{self, Reader};
use crate::table::Table;
use crate::write;

/// A write transaction, with the read and write calls of [`Kvs`].
///
/// Made by [`Kvs::transaction`]; what it writes commits when the closure returns `Ok`.
pub struct Tx<'a> {
    pub(crate) w: &'a mut dyn WriteTx,
    pub(crate) kvs: &'a Kvs,
}

impl Tx<'_> {
    /// [`Kvs::seq`] inside the transaction.
    pub fn seq(&mut self, name: &str, incr: u64) -> Result<u64> {
        write::seq(self.w, name, incr)
    }

    /// [`Kvs::put`] inside the transaction.
    pub fn put<T: Table>(&mut self, record: &T) -> Result<()> {
        self.kvs.check::<T>()?;
        record::put(self.w, record)
    }

    /// [`Kvs::delete`] inside the transaction.
    pub fn delete<T: Table>(&mut self, key: impl KeyArg<T::Key>) -> Result<bool> {
        self.kvs.check::<T>()?;
        self.delete_encoded::<T>(&key.key_bytes())
    }

    /// [`Kvs::append`] inside the transaction.
    pub fn append<T: Table>(&mut self, feed: &str, record: &T) -> Result<()> {
        self.kvs.check_stream::<T>()?;
        stream::append(self.w, feed, record)?;
        self.kvs.feeds_exist.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// [`Kvs::remove`] inside the transaction.
    pub fn remove<T: Table>(&mut self, feed: &str, key: impl KeyArg<T::Key>) -> Result<bool> {
        self.kvs.check_stream::<T>()?;
        stream::unlink(self.w, feed, T::META.name, &key.key_bytes())
    }

    /// [`Kvs::reader`] inside the transaction.
    pub fn reader<T: Table>(&mut self, feed: &str) -> Result<Reader<T>> {
        self.kvs.check_stream::<T>()?;
        cursor::new_reader(self.w, feed)
    }

    /// [`Kvs::save_reader`] inside the transaction.
    pub fn save_reader<T: Table>(&mut self, r: &Reader<T>) -> Result<()> {
        self.kvs.check_stream::<T>()?;
        cursor::save_reader(self.w, r)
    }

    /// [`Kvs::remove_reader`] inside the transaction.
    pub fn remove_reader(&mut self, id: u64) -> Result<bool> {
        self.kvs.check_streams()?;
        cursor::remove_reader(self.w, id)
    }

    /// Deletes the record under the encoded `key` with its index entries, and unlinks it from
    /// every feed where the database has feeds.
    pub(crate) fn delete_encoded<T: Table>(&mut self, key: &[u8]) -> Result<bool> {
        let deleted = record::delete::<T>(self.w, key)?;
        // Where this handle has streams open, or the database had feeds when it opened (or
        // this handle appended): a handle that left the stream schema out of its URL, on a
        // database with no feeds yet, pays nothing for them.
        if deleted && (self.kvs.streams || self.kvs.feeds_exist.load(Ordering::Relaxed)) {
            stream::unlink_all(self.w, T::META.name, key)?;
        }
        Ok(deleted)
    }
}

impl Tx<'_> {
    read_calls!();
}

impl Reads for Tx<'_> {
    fn handle(&self) -> &Kvs {
        self.kvs
    }
    fn with<R>(&self, f: impl FnOnce(&dyn ReadTx) -> Result<R>) -> Result<R> {
        f(&*self.w)
    }
    fn source(&self) -> Result<Source<'_>> {
        Ok(Source::Borrowed(&*self.w))
    }
    fn committed(&self) -> bool {
        false
    }
}
