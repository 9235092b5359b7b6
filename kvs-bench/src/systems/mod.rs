//! The systems under test, behind one trait so that every one runs the same workloads.

use std::path::Path;
use std::time::Duration;

use crate::data::{Inputs, Msg, User};

mod kvs;
mod native;
mod raw;
mod sqlite;

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
