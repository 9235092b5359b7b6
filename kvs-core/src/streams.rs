//! The stream calls of [`Kvs`] (Erlang `kvs_stream`): feeds written with `append` and read with
//! `writer`, `feed` and readers. The feed layout is in `stream.rs`, the cursors in
//! `cursor.rs`.

use crate::arg::KeyArg;
use crate::backend::ReadTx;
use crate::catalog;
use crate::catalog::SEQ_TABLE;
use crate::cursor;
use crate::error::{Error, Result};
use crate::key::KeyType;
use crate::kvs::Kvs;
use crate::record::{Prepared, ReadKeys};
use crate::stream::{
    link_key, Dir, Reader, LINK_TABLE, READER_SEQ, READER_TABLE, STREAM_SCHEMA, WRITER_TABLE,
};
use crate::table::Table;
use crate::tx::Tx;

/// Streams (Erlang `kvs_stream`): feeds of records in append order, paged by readers.
///
/// A feed is named by any string and holds records of one table, in the order they were
/// appended (not key order); its first append creates it and binds it to that table. A record
/// may be in many feeds. Each call is one atomic commit (or one consistent read): the record,
/// its index entries, its link and the feed's counts change together. The `kvs` crate's
/// documentation has an example.
impl Kvs {
    /// Stores `record` in its table (indexes kept exact) and links it at the newest end of
    /// `feed`; a record already in the feed is updated in place, not linked twice. O(log n).
    ///
    /// A feed holds one table's records: appending a record of another table is
    /// [`Error::Schema`] and writes nothing.
    pub fn append<T: Table>(&self, feed: &str, record: &T) -> Result<()> {
        self.check_stream::<T>()?;
        self.append_prepared(feed.to_owned(), Prepared::new(record)?)
    }

    /// [`Kvs::append`] of a record encoded already.
    pub(crate) fn append_prepared<T: Table>(
        &self,
        feed: String,
        record: Prepared<T>,
    ) -> Result<()> {
        let reads = self.declared(|| append_reads(&feed, &record));
        self.write_call_reading(reads, append_write(feed, record))
    }

    /// A new reader of `feed`, positioned before the oldest element and paging
    /// [`Dir::Forward`]. Its id comes from a counter and it is saved at once, so
    /// [`Kvs::load_reader`] finds it. A feed of another table is [`Error::Schema`].
    pub fn reader<T: Table>(&self, feed: &str) -> Result<Reader<T>> {
        self.check_stream::<T>()?;
        let feed = feed.to_owned();
        let reads = self.declared(|| reader_reads(&feed));
        self.write_call_reading(reads, reader_write(feed))
    }

    /// The element after the cursor (toward the newest), moving past it; `None` at the end.
    pub fn next<T: Table>(&self, r: &mut Reader<T>) -> Result<Option<T>> {
        self.check_stream::<T>()?;
        self.read(|tx| Ok(cursor::take(tx, r, 1, Dir::Forward, true)?.pop()))
    }

    /// The element before the cursor (toward the oldest), moving before it; `None` at the end.
    /// `next` then `prev` return the same element.
    pub fn prev<T: Table>(&self, r: &mut Reader<T>) -> Result<Option<T>> {
        self.check_stream::<T>()?;
        self.read(|tx| Ok(cursor::take(tx, r, 1, Dir::Backward, true)?.pop()))
    }

    /// Moves the cursor past up to `n` elements in `r.dir` without reading the records
    /// (Erlang's `drop`); returns how many it passed.
    pub fn skip<T: Table>(&self, r: &mut Reader<T>, n: usize) -> Result<usize> {
        self.check_stream::<T>()?;
        self.read(|tx| cursor::skip(tx, r, n, r.dir))
    }

    /// Moves the cursor after the newest element; elements appended later are ahead of it.
    pub fn top<T: Table>(&self, r: &mut Reader<T>) -> Result<()> {
        self.check_stream::<T>()?;
        self.read(|tx| cursor::top(tx, r))
    }

    /// Moves the cursor before the oldest element.
    pub fn bot<T: Table>(&self, r: &mut Reader<T>) -> Result<()> {
        self.check_stream::<T>()?;
        self.read(|tx| cursor::bot(tx, r))
    }

    /// Stores the reader (its feed, cursor and direction) under its id.
    pub fn save_reader<T: Table>(&self, r: &Reader<T>) -> Result<()> {
        self.check_stream::<T>()?;
        self.write_call_reading(Vec::new(), save_reader_write(r.clone()))
    }

    /// The reader saved under `id`: [`Error::NotFound`] if there is none, [`Error::Schema`]
    /// if it reads another table than `T`'s.
    pub fn load_reader<T: Table>(&self, id: u64) -> Result<Reader<T>> {
        self.check_stream::<T>()?;
        self.read(|tx| cursor::load_reader(tx, id))
    }

    /// Deletes the reader saved under `id`; returns whether it existed.
    pub fn remove_reader(&self, id: u64) -> Result<bool> {
        self.check_streams()?;
        let reads = self.declared(|| remove_reader_reads(id));
        self.write_call_reading(reads, remove_reader_write(id))
    }

    /// Unlinks the record with `key` from `feed`; the record stays in its table (and in other
    /// feeds). Returns whether it was in the feed. O(log n).
    pub fn remove<T: Table>(&self, feed: &str, key: impl KeyArg<T::Key>) -> Result<bool> {
        self.check_stream::<T>()?;
        let (feed, key) = (feed.to_owned(), key.key_bytes());
        let reads = self.declared(|| remove_reads::<T>(&feed, &key));
        self.write_call_reading(reads, remove_write::<T>(feed, key))
    }

    pub(crate) fn check_streams(&self) -> Result<()> {
        if self.streams {
            Ok(())
        } else {
            Err(Error::schema(
                STREAM_SCHEMA,
                format!(
                    "streams are not open in {}: add {STREAM_SCHEMA} to its schemas list",
                    self.config.url
                ),
            ))
        }
    }

    pub(crate) fn check_stream<T: Table>(&self) -> Result<()> {
        self.check_streams()?;
        self.check::<T>()
    }

    /// The key type of `table`: from the program when it is open, else from the catalog.
    pub(crate) fn key_type(&self, r: &dyn ReadTx, table: &str) -> Result<Option<KeyType>> {
        match self.tables.binary_search_by_key(&table, |m| m.name) {
            Ok(i) => Ok(Some((self.tables[i].key_type)())),
            Err(_) => Ok(catalog::read_entry(r, table)?.map(|entry| entry.key_type)),
        }
    }
}

// The stream writes as one-call writes (run again as a whole if their transaction is), shared
// by `Kvs` and `AsyncKvs`, each with the keys it reads: where the backend batches writes
// (etcd), a batch fetches those of all its writes in one round trip. Each call checks its
// table before it joins a batch: a write that fails in a batch makes the batch run again.

/// `append` of an encoded record.
pub(crate) fn append_write<T: Table>(
    feed: String,
    record: Prepared<T>,
) -> impl FnMut(&mut Tx<'_>) -> Result<()> + Send + 'static {
    move |tx| tx.append_prepared(&feed, &record)
}

/// What `append` reads: what `put` reads, the feed's writer and the record's link.
pub(crate) fn append_reads<T: Table>(feed: &str, record: &Prepared<T>) -> ReadKeys {
    let mut reads = record.reads();
    reads.push((WRITER_TABLE, feed.as_bytes().to_vec()));
    reads.push((LINK_TABLE, link_key(T::META.name, &record.key, feed)));
    reads
}

/// `remove` of an encoded key.
pub(crate) fn remove_write<T: Table>(
    feed: String,
    key: Vec<u8>,
) -> impl FnMut(&mut Tx<'_>) -> Result<bool> + Send + 'static {
    move |tx| tx.remove_encoded::<T>(&feed, &key)
}

/// What `remove` reads: the record's link and the feed's writer (and, when it unlinks an end
/// of the feed, the neighbour found by a scan).
pub(crate) fn remove_reads<T: Table>(feed: &str, key: &[u8]) -> ReadKeys {
    vec![
        (LINK_TABLE, link_key(T::META.name, key, feed)),
        (WRITER_TABLE, feed.as_bytes().to_vec()),
    ]
}

/// `reader`: a new reader, saved under a fresh id.
pub(crate) fn reader_write<T: Table>(
    feed: String,
) -> impl FnMut(&mut Tx<'_>) -> Result<Reader<T>> + Send + 'static {
    move |tx| tx.reader(&feed)
}

/// What `reader` reads: the feed's writer and the readers' counter.
pub(crate) fn reader_reads(feed: &str) -> ReadKeys {
    vec![
        (WRITER_TABLE, feed.as_bytes().to_vec()),
        (SEQ_TABLE, READER_SEQ.as_bytes().to_vec()),
    ]
}

/// `save_reader` of a copy of the reader: a blind write, which reads nothing.
pub(crate) fn save_reader_write<T: Table>(
    reader: Reader<T>,
) -> impl FnMut(&mut Tx<'_>) -> Result<()> + Send + 'static {
    move |tx| tx.save_reader(&reader)
}

/// `remove_reader`.
pub(crate) fn remove_reader_write(
    id: u64,
) -> impl FnMut(&mut Tx<'_>) -> Result<bool> + Send + 'static {
    move |tx| tx.remove_reader(id)
}

/// What `remove_reader` reads: the saved reader.
pub(crate) fn remove_reader_reads(id: u64) -> ReadKeys {
    vec![(READER_TABLE, id.to_be_bytes().to_vec())]
}
