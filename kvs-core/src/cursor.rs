//! Readers of feeds: cursors that page through a feed both ways, and are saved, loaded and
//! removed by id. The feed layout they walk is in [`stream`](crate::stream).

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::backend::{ReadTx, WriteTx};
use crate::error::{Error, Result};
use crate::record;
use crate::stream::{
    check_feed, corrupt, feed_prefix, read_writer, walk, Dir, Reader, READER_SEQ, READER_TABLE,
};
use crate::table::Table;
use crate::write;

/// A reader as stored in [`READER_TABLE`] (a `MessagePack` map).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ReaderState {
    feed: String,
    table: String,
    pos: u64,
    dir: Dir,
}

/// The records a feed links to, in the order of `keys`, in one batched read.
fn linked_records<T: Table>(r: &dyn ReadTx, feed: &str, keys: &[Vec<u8>]) -> Result<Vec<T>> {
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let mut records = Vec::with_capacity(keys.len());
    r.get_many(T::META.name, &keys, &mut |i, bytes| match bytes {
        Some(bytes) => {
            records.push(record::decode(bytes, keys[i])?);
            Ok(())
        }
        None => Err(corrupt(
            T::META.name,
            format!(
                "feed {feed:?} links the missing record {}",
                (T::META.key_type)().render(keys[i])
            ),
        )),
    })?;
    Ok(records)
}

/// Reads up to `n` records from the reader's cursor in `dir` and moves the cursor past them.
///
/// `committed` says that `r` reads committed data (not a transaction that may roll back), so
/// that the reader may remember its feed's table.
pub(crate) fn take<T: Table>(
    r: &dyn ReadTx,
    reader: &mut Reader<T>,
    n: usize,
    dir: Dir,
    committed: bool,
) -> Result<Vec<T>> {
    let (keys, pos) = step(r, reader, n, dir, committed)?;
    let records = linked_records(r, &reader.feed, &keys)?;
    reader.pos = pos;
    Ok(records)
}

/// Moves the reader's cursor by up to `n` elements in `dir` without reading them; returns how
/// many it passed.
pub(crate) fn skip<T: Table>(
    r: &dyn ReadTx,
    reader: &mut Reader<T>,
    n: usize,
    dir: Dir,
) -> Result<usize> {
    let (keys, pos) = step(r, reader, n, dir, true)?;
    reader.pos = pos;
    Ok(keys.len())
}

/// The keys of up to `n` elements from the reader's cursor in `dir`, and the cursor after them.
fn step<T: Table>(
    r: &dyn ReadTx,
    reader: &mut Reader<T>,
    n: usize,
    dir: Dir,
    committed: bool,
) -> Result<(Vec<Vec<u8>>, u64)> {
    if !reader.bound {
        let state = read_writer(r, &reader.feed)?;
        check_feed::<T>(&reader.feed, state.as_ref())?;
        reader.bound = committed && state.is_some();
    }
    let mut keys = Vec::with_capacity(n.min(1024));
    let mut pos = reader.pos;
    walk(
        r,
        &feed_prefix(&reader.feed),
        reader.pos,
        dir,
        n,
        &mut |p, key| {
            keys.push(key.to_vec());
            // Forward, the cursor moves past the element; backward, to just before it.
            pos = match dir {
                Dir::Forward => p,
                Dir::Backward => p.saturating_sub(1),
            };
            Ok(())
        },
    )?;
    Ok((keys, pos))
}

/// Moves the cursor after the newest element.
pub(crate) fn top<T: Table>(r: &dyn ReadTx, reader: &mut Reader<T>) -> Result<()> {
    let state = read_writer(r, &reader.feed)?;
    check_feed::<T>(&reader.feed, state.as_ref())?;
    reader.pos = state.map_or(0, |s| s.top);
    Ok(())
}

/// Moves the cursor before the oldest element.
pub(crate) fn bot<T: Table>(r: &dyn ReadTx, reader: &mut Reader<T>) -> Result<()> {
    check_feed::<T>(&reader.feed, read_writer(r, &reader.feed)?.as_ref())?;
    reader.pos = 0;
    Ok(())
}

/// Every record of `feed`, oldest first.
pub(crate) fn feed<T: Table>(r: &dyn ReadTx, feed: &str) -> Result<Vec<T>> {
    check_feed::<T>(feed, read_writer(r, feed)?.as_ref())?;
    let mut keys = Vec::new();
    walk(
        r,
        &feed_prefix(feed),
        0,
        Dir::Forward,
        usize::MAX,
        &mut |_, key| {
            keys.push(key.to_vec());
            Ok(())
        },
    )?;
    linked_records(r, feed, &keys)
}

/// A new reader of `feed` at its oldest end, saved under a fresh id.
pub(crate) fn new_reader<T: Table>(w: &mut dyn WriteTx, feed: &str) -> Result<Reader<T>> {
    check_feed::<T>(feed, read_writer(&*w, feed)?.as_ref())?;
    let id = write::seq(w, READER_SEQ, 1)?;
    let reader = Reader {
        id,
        feed: feed.to_owned(),
        dir: Dir::Forward,
        pos: 0,
        bound: false,
        record: PhantomData,
    };
    save_reader(w, &reader)?;
    Ok(reader)
}

/// Stores the reader under its id.
pub(crate) fn save_reader<T: Table>(w: &mut dyn WriteTx, reader: &Reader<T>) -> Result<()> {
    let state = ReaderState {
        feed: reader.feed.clone(),
        table: T::META.name.to_owned(),
        pos: reader.pos,
        dir: reader.dir,
    };
    let bytes = rmp_serde::to_vec_named(&state).map_err(|e| Error::Encode {
        table: READER_TABLE.to_owned(),
        reason: e.to_string(),
    })?;
    // Blind: nothing needs the state it replaces (on a remote engine, no read round trip,
    // and a new reader's key could not be declared ahead for a batch to fetch).
    w.put(READER_TABLE, &reader.id.to_be_bytes(), &bytes)
}

/// The reader saved under `id`.
pub(crate) fn load_reader<T: Table>(r: &dyn ReadTx, id: u64) -> Result<Reader<T>> {
    let Some(bytes) = r.get(READER_TABLE, &id.to_be_bytes())? else {
        return Err(Error::NotFound {
            table: READER_TABLE.to_owned(),
            key: id.to_string(),
        });
    };
    let state: ReaderState = rmp_serde::from_slice(&bytes)
        .map_err(|e| corrupt(READER_TABLE, format!("unreadable reader {id}: {e}")))?;
    if state.table != T::META.name {
        return Err(Error::schema(
            T::META.name,
            format!(
                "reader {id} reads feed {:?} of table {}, not of {} ({})",
                state.feed,
                state.table,
                T::META.name,
                T::META.rust_type
            ),
        ));
    }
    Ok(Reader {
        id,
        feed: state.feed,
        dir: state.dir,
        pos: state.pos,
        bound: false,
        record: PhantomData,
    })
}

/// Deletes the reader saved under `id`; returns whether it existed.
pub(crate) fn remove_reader(w: &mut dyn WriteTx, id: u64) -> Result<bool> {
    Ok(w.remove(READER_TABLE, &id.to_be_bytes())?.is_some())
}
