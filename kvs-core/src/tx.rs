//! [`Tx`]: the calls of [`Kvs`] inside one write transaction.

use std::ops::RangeBounds;
use std::sync::atomic::Ordering;

use crate::backend::{ReadTx, WriteTx};
use crate::cursor;
use crate::error::Result;
use crate::key::{IndexArg, KeyArg};
use crate::kvs::Kvs;
use crate::record;
use crate::stream::{self, Reader, Writer};
use crate::table::{IndexField, KindCheck, Table};
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

    /// [`Kvs::count`] inside the transaction.
    pub fn count<T: Table>(&self) -> Result<u64> {
        self.kvs.check::<T>()?;
        record::count::<T>(&*self.w)
    }

    /// [`Kvs::put`] inside the transaction.
    pub fn put<T: Table>(&mut self, record: &T) -> Result<()> {
        self.kvs.check::<T>()?;
        record::put(self.w, record)
    }

    /// [`Kvs::get`] inside the transaction (sees the transaction's own writes).
    pub fn get<T: Table>(&self, key: impl KeyArg<T::Key>) -> Result<Option<T>> {
        self.kvs.check::<T>()?;
        record::get(&*self.w, &key.key_bytes())
    }

    /// [`Kvs::delete`] inside the transaction.
    pub fn delete<T: Table>(&mut self, key: impl KeyArg<T::Key>) -> Result<bool> {
        self.kvs.check::<T>()?;
        self.delete_encoded::<T>(&key.key_bytes())
    }

    /// [`Kvs::index`] inside the transaction.
    pub fn index<T: Table>(
        &self,
        field: impl IndexField<T>,
        value: impl IndexArg,
    ) -> Result<Vec<T>> {
        const { KindCheck::<T, _, _>::new() }.tie(&field, &value);
        self.kvs.check::<T>()?;
        record::index(&*self.w, field, &value)
    }

    /// [`Kvs::all`] inside the transaction.
    pub fn all<T: Table>(&self) -> Result<Vec<T>> {
        self.range::<T>(..)
    }

    /// [`Kvs::range`] inside the transaction.
    pub fn range<T: Table>(&self, range: impl RangeBounds<T::Key>) -> Result<Vec<T>> {
        self.kvs.check::<T>()?;
        record::range::<T>(&*self.w, &range)
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

    /// [`Kvs::writer`] inside the transaction.
    pub fn writer(&self, feed: &str) -> Result<Writer> {
        self.kvs.check_streams()?;
        let r: &dyn ReadTx = &*self.w;
        stream::writer(r, feed, &|table| self.kvs.key_type(r, table))
    }

    /// [`Kvs::feed`] inside the transaction.
    pub fn feed<T: Table>(&self, feed: &str) -> Result<Vec<T>> {
        self.kvs.check_stream::<T>()?;
        cursor::feed(&*self.w, feed)
    }

    /// [`Kvs::reader`] inside the transaction.
    pub fn reader<T: Table>(&mut self, feed: &str) -> Result<Reader<T>> {
        self.kvs.check_stream::<T>()?;
        cursor::new_reader(self.w, feed)
    }

    /// [`Kvs::take`] inside the transaction (sees the transaction's own appends).
    pub fn take<T: Table>(&self, r: &mut Reader<T>, n: usize) -> Result<Vec<T>> {
        self.kvs.check_stream::<T>()?;
        cursor::take(&*self.w, r, n, r.dir, false)
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
        if deleted && self.kvs.feeds_exist.load(Ordering::Relaxed) {
            stream::unlink_all(self.w, T::META.name, key)?;
        }
        Ok(deleted)
    }
}
