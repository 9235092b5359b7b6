//! Streams (Erlang `kvs_stream`): feeds of records in append order, a writer per feed and
//! readers that page through a feed and can be saved and resumed.
//!
//! Layout (docs/FORMAT.md has the bytes): a feed is the entries `feed ++ position → record key`
//! of [`FEED_TABLE`]; [`LINK_TABLE`] maps `table ++ record key ++ feed → position`, so that a
//! record finds its place in a feed (and every feed it is in) in O(log n); [`WRITER_TABLE`]
//! holds each feed's count, first and last positions and the highest position handed out;
//! [`READER_TABLE`] holds saved cursors. Positions start at 1, grow with every append and are
//! never reused, so a cursor (a position: everything at or below it is behind) stays valid
//! whatever is removed or appended later.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::backend::{ReadTx, WriteTx};
use crate::error::{Error, Result};
use crate::key::{encode_bytes, KeyType, KeyValue};
use crate::record;
use crate::table::Table;
use crate::write;

/// The schema of the stream tables; list it in a URL's `schemas` to open streams with it.
pub const STREAM_SCHEMA: &str = "kvs_stream";
/// The writers: feed name → its writer state.
pub const WRITER_TABLE: &str = "#writer";
/// The saved readers: id (big-endian `u64`) → reader state.
pub const READER_TABLE: &str = "#reader";
/// The feeds' elements: escaped feed name ++ position (big-endian `u64`) → record key.
pub const FEED_TABLE: &str = "#feed";
/// The links back: escaped table name ++ record key ++ escaped feed name → position.
pub const LINK_TABLE: &str = "#link";
/// The counter that numbers readers, in the sequence table.
pub const READER_SEQ: &str = "#reader";

/// Which way a [`Reader`] pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    /// From the oldest element toward the newest (the default).
    #[default]
    Forward,
    /// From the newest element toward the oldest.
    Backward,
}

/// What a feed holds, as [`Kvs::writer`](crate::Kvs::writer) reports it (Erlang's `#writer`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Writer {
    /// The feed's name.
    pub feed: String,
    /// The record table its elements live in; `None` for a feed never appended to.
    pub table: Option<String>,
    /// The number of elements.
    pub count: u64,
    /// The key of the oldest element.
    pub first: Option<KeyValue>,
    /// The key of the newest element.
    pub last: Option<KeyValue>,
    /// The highest position handed out so far (positions grow with every append and are
    /// never reused; 0 for a new feed).
    pub top: u64,
}

impl fmt::Display for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {} elements", self.feed, self.count)?;
        if let Some(table) = &self.table {
            write!(f, " of {table}")?;
        }
        if let (Some(first), Some(last)) = (&self.first, &self.last) {
            write!(f, ", oldest {first}, newest {last}")?;
        }
        Ok(())
    }
}

/// A cursor over a feed of `T` records (Erlang's `#reader`).
///
/// The cursor sits *between* elements, as a list iterator does: [`Kvs::next`](crate::Kvs::next)
/// returns the element after it and moves past it, [`Kvs::prev`](crate::Kvs::prev) the one
/// before it. Moving a reader changes only this value; [`Kvs::save_reader`](crate::Kvs::save_reader)
/// stores it, and [`Kvs::load_reader`](crate::Kvs::load_reader) brings it back by `id`.
pub struct Reader<T> {
    /// The reader's id, from a counter: unique in the database.
    pub id: u64,
    /// The feed it reads.
    pub feed: String,
    /// Which way [`Kvs::take`](crate::Kvs::take) and [`Kvs::skip`](crate::Kvs::skip) move.
    pub dir: Dir,
    pub(crate) pos: u64,
    /// Whether the feed is known to hold `T`'s table: a feed's table never changes once its
    /// writer exists, so a reader checks it until it has seen it once (in a committed state).
    pub(crate) bound: bool,
    pub(crate) record: PhantomData<fn() -> T>,
}

impl<T> Reader<T> {
    /// The cursor: the elements whose positions are at most this are behind it (toward the
    /// oldest end), the others ahead. 0 is before the oldest element.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        Reader {
            id: self.id,
            feed: self.feed.clone(),
            dir: self.dir,
            pos: self.pos,
            bound: self.bound,
            record: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("id", &self.id)
            .field("feed", &self.feed)
            .field("dir", &self.dir)
            .field("position", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<T> PartialEq for Reader<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.id, &self.feed, self.dir, self.pos) == (other.id, &other.feed, other.dir, other.pos)
    }
}

impl<T> Eq for Reader<T> {}

/// A writer as stored in [`WRITER_TABLE`] (a `MessagePack` map).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct WriterState {
    pub(crate) table: String,
    pub(crate) count: u64,
    /// The highest position handed out.
    pub(crate) top: u64,
    /// The oldest element's position (0: none).
    pub(crate) first: u64,
    /// The newest element's position (0: none).
    pub(crate) last: u64,
}

pub(crate) fn feed_prefix(feed: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(feed.len() + 10);
    encode_bytes(feed.as_bytes(), &mut out);
    out
}

pub(crate) fn element_key(prefix: &[u8], pos: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 8);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&pos.to_be_bytes());
    out
}

pub(crate) fn link_prefix(table: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(table.len() + key.len() + 4);
    encode_bytes(table.as_bytes(), &mut out);
    out.extend_from_slice(key);
    out
}

pub(crate) fn link_key(table: &str, key: &[u8], feed: &str) -> Vec<u8> {
    let mut out = link_prefix(table, key);
    encode_bytes(feed.as_bytes(), &mut out);
    out
}

pub(crate) fn corrupt(table: &str, reason: impl fmt::Display) -> Error {
    Error::corrupt(table, "", reason)
}

pub(crate) fn decode_pos(table: &str, bytes: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(table, format!("a position of {} bytes, not 8", bytes.len())))
}

pub(crate) fn read_writer(r: &dyn ReadTx, feed: &str) -> Result<Option<WriterState>> {
    r.get(WRITER_TABLE, feed.as_bytes())?
        .map(|bytes| {
            rmp_serde::from_slice(&bytes)
                .map_err(|e| corrupt(WRITER_TABLE, format!("unreadable writer of {feed:?}: {e}")))
        })
        .transpose()
}

pub(crate) fn write_writer(w: &mut dyn WriteTx, feed: &str, state: &WriterState) -> Result<()> {
    let bytes = rmp_serde::to_vec_named(state).map_err(|e| Error::Encode {
        table: WRITER_TABLE.to_owned(),
        reason: e.to_string(),
    })?;
    w.put(WRITER_TABLE, feed.as_bytes(), &bytes)
}

/// Fails unless the feed (if it exists) holds records of `T`'s table.
pub(crate) fn check_feed<T: Table>(feed: &str, state: Option<&WriterState>) -> Result<()> {
    match state {
        Some(state) if state.table != T::META.name => Err(Error::schema(
            T::META.name,
            format!(
                "feed {feed:?} holds records of table {}, not of {} ({})",
                state.table,
                T::META.name,
                T::META.rust_type
            ),
        )),
        _ => Ok(()),
    }
}

/// Stores `record` and links it at the newest end of `feed`, unless it is already there.
pub(crate) fn append<T: Table>(
    w: &mut dyn WriteTx,
    feed: &str,
    record: &record::Prepared<T>,
) -> Result<()> {
    let state = read_writer(&*w, feed)?;
    check_feed::<T>(feed, state.as_ref())?;
    let mut state = state.unwrap_or_else(|| WriterState {
        table: T::META.name.to_owned(),
        ..WriterState::default()
    });
    let key = &record.key;
    let link = link_key(T::META.name, key, feed);
    let linked = w.get(LINK_TABLE, &link)?.is_some();
    let pos = if linked {
        0
    } else {
        state
            .top
            .checked_add(1)
            .ok_or_else(|| corrupt(WRITER_TABLE, format!("feed {feed:?} is out of positions")))?
    };
    // Checked before the first write: a unique violation leaves nothing behind.
    record::put(w, record)?;
    if linked {
        return Ok(());
    }
    // A fresh position and a link just read as absent: written blind.
    w.put(FEED_TABLE, &element_key(&feed_prefix(feed), pos), key)?;
    w.put(LINK_TABLE, &link, &pos.to_be_bytes())?;
    state.top = pos;
    state.count += 1;
    state.last = pos;
    if state.first == 0 {
        state.first = pos;
    }
    write_writer(w, feed, &state)
}

/// Unlinks the record `key` of `table` from `feed`; returns whether it was linked.
pub(crate) fn unlink(w: &mut dyn WriteTx, feed: &str, table: &str, key: &[u8]) -> Result<bool> {
    let link = link_key(table, key, feed);
    let Some(pos) = w.get(LINK_TABLE, &link)? else {
        return Ok(false);
    };
    let pos = decode_pos(LINK_TABLE, &pos)?;
    let mut state = read_writer(&*w, feed)?.ok_or_else(|| {
        corrupt(
            WRITER_TABLE,
            format!("feed {feed:?} has links but no writer"),
        )
    })?;
    state.count = state
        .count
        .checked_sub(1)
        .ok_or_else(|| corrupt(WRITER_TABLE, format!("feed {feed:?} counts no elements")))?;
    let prefix = feed_prefix(feed);
    let element = element_key(&prefix, pos);
    if state.first == pos {
        state.first = neighbour(&*w, &prefix, pos, Dir::Forward)?.unwrap_or(0);
    }
    if state.last == pos {
        state.last = neighbour(&*w, &prefix, pos, Dir::Backward)?.unwrap_or(0);
    }
    w.delete(LINK_TABLE, &link)?;
    w.delete(FEED_TABLE, &element)?;
    write_writer(w, feed, &state)?;
    Ok(true)
}

/// Unlinks the record `key` of `table` from every feed it is in (its delete).
pub(crate) fn unlink_all(w: &mut dyn WriteTx, table: &str, key: &[u8]) -> Result<()> {
    let prefix = link_prefix(table, key);
    let end = write::prefix_end(&prefix);
    let mut feeds = Vec::new();
    w.scan(
        LINK_TABLE,
        (
            Bound::Included(prefix.as_slice()),
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        ),
        false,
        &mut |link, _| {
            let mut rest = &link[prefix.len()..];
            match KeyType::String.decode(&mut rest) {
                Some(KeyValue::String(feed)) if rest.is_empty() => {
                    feeds.push(feed);
                    Ok(true)
                }
                _ => Err(corrupt(
                    LINK_TABLE,
                    "a link whose feed name does not decode",
                )),
            }
        },
    )?;
    for feed in feeds {
        unlink(w, &feed, table, key)?;
    }
    Ok(())
}

/// The writer of `feed`; `key_type` gives the key type of its table, when known.
pub(crate) fn writer(
    r: &dyn ReadTx,
    feed: &str,
    key_type: &dyn Fn(&str) -> Result<Option<KeyType>>,
) -> Result<Writer> {
    let Some(state) = read_writer(r, feed)? else {
        return Ok(Writer {
            feed: feed.to_owned(),
            table: None,
            count: 0,
            first: None,
            last: None,
            top: 0,
        });
    };
    let kt = key_type(&state.table)?;
    let prefix = feed_prefix(feed);
    let key_at = |pos: u64| -> Result<Option<KeyValue>> {
        if pos == 0 {
            return Ok(None);
        }
        let Some(key) = r.get(FEED_TABLE, &element_key(&prefix, pos))? else {
            return Err(corrupt(
                WRITER_TABLE,
                format!("feed {feed:?} names position {pos}, which it does not hold"),
            ));
        };
        let Some(kt) = &kt else { return Ok(None) };
        let mut rest = key.as_slice();
        match kt.decode(&mut rest) {
            Some(value) if rest.is_empty() => Ok(Some(value)),
            _ => Err(corrupt(
                &state.table,
                format!("feed {feed:?} holds a key that is not a {kt}"),
            )),
        }
    };
    Ok(Writer {
        feed: feed.to_owned(),
        first: key_at(state.first)?,
        last: key_at(state.last)?,
        table: Some(state.table),
        count: state.count,
        top: state.top,
    })
}

/// Up to `limit` record keys of `feed`, oldest first (newest first when `back`).
pub(crate) fn feed_keys(
    r: &dyn ReadTx,
    feed: &str,
    back: bool,
    limit: usize,
) -> Result<Vec<Vec<u8>>> {
    let (start, dir) = if back {
        (u64::MAX, Dir::Backward)
    } else {
        (0, Dir::Forward)
    };
    let mut keys = Vec::new();
    walk(r, &feed_prefix(feed), start, dir, limit, &mut |_, key| {
        keys.push(key.to_vec());
        Ok(())
    })?;
    Ok(keys)
}

/// The problems in the stream tables (see `untyped::View::check_feeds`).
pub(crate) fn check(r: &dyn ReadTx) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let all_feeds = feeds(r)?;
    for feed in &all_feeds {
        let Some(state) = read_writer(r, feed)? else {
            continue;
        };
        let prefix = feed_prefix(feed);
        let mut elements: Vec<(u64, Vec<u8>)> = Vec::new();
        walk(r, &prefix, 0, Dir::Forward, usize::MAX, &mut |p, key| {
            elements.push((p, key.to_vec()));
            Ok(())
        })?;
        if elements.len() as u64 != state.count {
            problems.push(format!(
                "feed {feed:?}: writer counts {}, the feed holds {}",
                state.count,
                elements.len()
            ));
        }
        let ends = (
            elements.first().map_or(0, |e| e.0),
            elements.last().map_or(0, |e| e.0),
        );
        if ends != (state.first, state.last) {
            problems.push(format!(
                "feed {feed:?}: writer's ends are positions {:?}, the feed's are {ends:?}",
                (state.first, state.last)
            ));
        }
        if ends.1 > state.top {
            problems.push(format!(
                "feed {feed:?}: position {} is above the writer's top {}",
                ends.1, state.top
            ));
        }
        for (p, key) in &elements {
            let link = r.get(LINK_TABLE, &link_key(&state.table, key, feed))?;
            if link.as_deref() != Some(&p.to_be_bytes()[..]) {
                problems.push(format!(
                    "feed {feed:?}: element at position {p} has no matching link"
                ));
            }
            if r.get(&state.table, key)?.is_none() {
                problems.push(format!(
                    "feed {feed:?}: element at position {p} links a missing record of {}",
                    state.table
                ));
            }
        }
    }
    let mut links = Vec::new();
    r.scan(
        LINK_TABLE,
        (Bound::Unbounded, Bound::Unbounded),
        false,
        &mut |link, pos| {
            links.push((link.to_vec(), pos.to_vec()));
            Ok(true)
        },
    )?;
    for (link, pos) in links {
        let pos = decode_pos(LINK_TABLE, &pos)?;
        // The link ends with the escaped feed name: find the feed whose element agrees.
        let found = all_feeds.iter().any(|feed| {
            let tail = feed_prefix(feed);
            link.ends_with(&tail)
                && r.get(FEED_TABLE, &element_key(&tail, pos))
                    .ok()
                    .flatten()
                    .is_some()
        });
        if !found {
            problems.push(format!("a link to position {pos} has no feed element"));
        }
    }
    Ok(problems)
}

/// The names of all feeds, in byte order.
pub(crate) fn feeds(r: &dyn ReadTx) -> Result<Vec<String>> {
    let mut names = Vec::new();
    r.scan(
        WRITER_TABLE,
        (Bound::Unbounded, Bound::Unbounded),
        false,
        &mut |name, _| {
            names.push(
                String::from_utf8(name.to_vec())
                    .map_err(|_| corrupt(WRITER_TABLE, "a feed name that is not UTF-8"))?,
            );
            Ok(true)
        },
    )?;
    Ok(names)
}

/// The position of the nearest element strictly after (`Forward`) or before (`Backward`)
/// `pos` in the feed with `prefix`.
pub(crate) fn neighbour(r: &dyn ReadTx, prefix: &[u8], pos: u64, dir: Dir) -> Result<Option<u64>> {
    // A cursor at `pos` has the element at `pos` behind it; before it is `pos - 1`.
    let cursor = match dir {
        Dir::Forward => pos,
        Dir::Backward => pos.saturating_sub(1),
    };
    let mut found = None;
    walk(r, prefix, cursor, dir, 1, &mut |p, _| {
        found = Some(p);
        Ok(())
    })?;
    Ok(found)
}

/// Visits up to `n` elements `(position, record key)` from the cursor `pos` in `dir`.
pub(crate) fn walk(
    r: &dyn ReadTx,
    prefix: &[u8],
    pos: u64,
    dir: Dir,
    n: usize,
    visit: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let cursor = element_key(prefix, pos);
    let end = write::prefix_end(prefix);
    let range = match dir {
        Dir::Forward => (
            Bound::Excluded(cursor.as_slice()),
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        ),
        Dir::Backward => (Bound::Excluded(prefix), Bound::Included(cursor.as_slice())),
    };
    let mut seen = 0;
    r.scan(
        FEED_TABLE,
        range,
        dir == Dir::Backward,
        &mut |element, key| {
            let p = decode_pos(FEED_TABLE, &element[prefix.len()..])?;
            visit(p, key)?;
            seen += 1;
            Ok(seen < n)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::{element_key, feed_prefix, link_key};

    #[test]
    fn feeds_do_not_share_prefixes() {
        // "a" and "a\0" (or "ab") must not interleave: the escaped name is prefix-free.
        let a = feed_prefix("a");
        let ab = feed_prefix("ab");
        assert!(!ab.starts_with(&a) && !a.starts_with(&ab));
        assert!(element_key(&a, u64::MAX) < ab);
        assert!(link_key("t", &[1], "f") != link_key("t", &[1, 0, 0], ""));
    }
}
