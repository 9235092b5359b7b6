//! The systems under test, behind one trait so that every one runs the same workloads.

use std::path::Path;
use std::time::Duration;

use crate::data::{Inputs, Msg, User};

mod kvs;
mod native;
mod raw;
mod sqlite;

pub use native::Native;
pub use raw::Raw;
pub use sqlite::Sqlite;

/// Any error of any system.
pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The names of the systems, in report order (also the names in the JSON output).
pub const SYSTEMS: [&str; 5] = ["kvs", "kvs-mem", "redb", "native_db", "sqlite"];

/// Opens a fresh, empty database of the system `name` in the directory `dir`.
pub fn open(name: &str, dir: &Path) -> Res<Box<dyn System>> {
    Ok(match name {
        "kvs" => Box::new(kvs::KvsSystem::open(&format!(
            "redb:{}",
            dir.join("kvs.redb").display()
        ))?),
        "kvs-mem" => Box::new(kvs::KvsSystem::open("mem:")?),
        "redb" => Box::new(raw::Raw::open(&dir.join("raw.redb"))?),
        "native_db" => Box::new(native::Native::open(&dir.join("native.redb"))?),
        "sqlite" => Box::new(sqlite::Sqlite::open(&dir.join("bench.sqlite"))?),
        other => return Err(format!("unknown system {other}").into()),
    })
}

/// The workloads, as each system does them in the way its users would. Every call that
/// reads returns what it found, which the runner checks against the expected answer.
pub trait System {
    /// Prepares, before any clock starts, whatever the system needs of the inputs (`native_db`
    /// takes its own type by value).
    fn prepare(&mut self, _inputs: &Inputs) {}
    /// Inserts all of `users` in one durable transaction.
    fn bulk_insert(&mut self, users: &[User]) -> Res<()>;
    /// Inserts each of `users` in its own durable transaction.
    fn durable_insert(&mut self, users: &[User]) -> Res<()>;
    /// Reads each key, each in its own read transaction; returns the sum of the keys found.
    fn get(&mut self, ids: &[u64]) -> Res<u64>;
    /// Looks each email up in the unique index, each in its own read transaction; returns the
    /// number of records found whose email matches.
    fn unique_lookup(&mut self, emails: &[String]) -> Res<u64>;
    /// Reads the records of each city through the non-unique index, each in its own read
    /// transaction; returns the number of records found whose city matches.
    fn index_lookup(&mut self, cities: &[String]) -> Res<u64>;
    /// Reads the records whose score lies in each half-open range `lo..hi`, in (score, key)
    /// order, each range in its own read transaction; returns the number of records found and
    /// the sum of their keys (a record outside its range, or out of order, is an error).
    fn index_range(&mut self, ranges: &[(u64, u64)]) -> Res<(u64, u64)>;
    /// Reads the newest `page` records by key, newest first, `times` times, each in its own
    /// read transaction; returns the sum of the keys read (a page out of order is an error).
    fn iter_page(&mut self, times: usize, page: usize) -> Res<u64>;
    /// Reads every record once, in key order, lazily (never the whole table in memory);
    /// returns the number of records and the sum of their keys (out of order is an error).
    fn scan_all(&mut self) -> Res<(u64, u64)>;
    /// Replaces each record (whose city changed) in one durable transaction.
    fn indexed_update(&mut self, users: &[User]) -> Res<()>;
    /// Deletes each key in one durable transaction; returns the number deleted.
    fn delete(&mut self, ids: &[u64]) -> Res<u64>;
    /// Counts the records `times` times, each in its own read transaction; returns the count.
    fn count(&mut self, times: usize) -> Res<u64>;
    /// Increments a counter `n` times in one durable transaction; returns its value.
    fn seq(&mut self, n: usize) -> Res<u64>;
    /// Increments a counter `n` times, one durable transaction each; returns its value.
    fn seq_durable(&mut self, n: usize) -> Res<u64>;
    /// The size of the database file, if there is one.
    fn file_size(&self) -> Option<u64>;
    /// The stream workloads, for the systems that have them.
    fn streams(&mut self) -> Option<&mut dyn Streams> {
        None
    }
}

/// Feeds: ordered lists of records in append order, paged by a cursor.
pub trait Streams {
    /// Appends every message to `feed`, in one durable transaction.
    fn append(&mut self, feed: &str, msgs: &[Msg]) -> Res<()>;
    /// Skips `skip` elements of `feed`, then takes `pages` pages of `page` elements, each
    /// page in its own read transaction; returns the sum of the keys read and the time the
    /// pages took (without the skip and the cursor's creation).
    fn take_pages(
        &mut self,
        feed: &str,
        skip: u64,
        page: usize,
        pages: usize,
    ) -> Res<(u64, Duration)>;
    /// Removes each key from `feed` (the records stay), in one durable transaction; returns
    /// the number removed.
    fn remove(&mut self, feed: &str, ids: &[u64]) -> Res<u64>;
    /// The number of elements of `feed`.
    fn len(&mut self, feed: &str) -> Res<u64>;
}

/// The size of the file at `path`, if it exists.
fn file_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// The number of records a lookup of `value` found, or an error if one of them holds
/// another value: a wrong answer must not count as a fast one.
fn hits<'a>(found: impl IntoIterator<Item = &'a str>, value: &str) -> Res<u64> {
    let mut n = 0;
    for v in found {
        if v != value {
            return Err(format!("a lookup of {value:?} returned a record holding {v:?}").into());
        }
        n += 1;
    }
    Ok(n)
}

/// Records met in the order a read returned them, each checked to come strictly after the
/// previous one by `(sort value, key)`, or strictly before it with `descending`.
#[derive(Default)]
pub struct Walk {
    /// Records met.
    pub n: u64,
    /// The sum of their keys.
    pub key_sum: u64,
    last: Option<(u64, u64)>,
    descending: bool,
}

impl Walk {
    /// A walk in ascending order.
    pub fn ascending() -> Walk {
        Walk::default()
    }

    /// A walk in descending order.
    pub fn descending() -> Walk {
        Walk {
            descending: true,
            ..Walk::default()
        }
    }

    /// Counts a record whose sort value is `sort` and key `key`; an error if it is out of
    /// order.
    pub fn step(&mut self, sort: u64, key: u64) -> Res<()> {
        let at = (sort, key);
        if let Some(last) = self.last {
            if (at > last) == self.descending || at == last {
                return Err(format!("{at:?} came after {last:?}: out of order").into());
            }
        }
        self.last = Some(at);
        self.n += 1;
        self.key_sum += key;
        Ok(())
    }
}

/// The records of one `index_range` read, as `(score, key)` in the order returned: their
/// number and key sum, or an error if one lies outside `lo..hi` or is out of order.
fn range_hits(found: impl IntoIterator<Item = (u64, u64)>, lo: u64, hi: u64) -> Res<(u64, u64)> {
    let mut walk = Walk::ascending();
    for (score, key) in found {
        if !(lo..hi).contains(&score) {
            return Err(format!("a range read of {lo}..{hi} returned score {score}").into());
        }
        walk.step(score, key)?;
    }
    Ok((walk.n, walk.key_sum))
}

/// The keys of one `iter_page` read, in the order returned: their sum, or an error unless
/// there are `page` of them, newest first.
fn page_sum(keys: impl IntoIterator<Item = u64>, page: usize) -> Res<u64> {
    let mut walk = Walk::descending();
    for key in keys {
        walk.step(0, key)?;
    }
    if walk.n != page as u64 {
        return Err(format!("a page of {page} held {} records", walk.n).into());
    }
    Ok(walk.key_sum)
}
