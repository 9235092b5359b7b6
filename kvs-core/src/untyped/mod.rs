//! Any kvs database without its Rust types: the catalog says what the tables are, and records
//! are read and written as the self-describing `MessagePack` they are stored as, shown as JSON
//! values. The console is built on it; the typed [`Kvs`](crate::Kvs) wraps a [`Session`].
//!
//! Writes keep the invariants of the typed API: a record and its index entries change in one
//! transaction, unique indexes are enforced, a deleted record leaves no feed pointing at it,
//! and a record that the catalog says the application could not read is refused.
//!
//! ```
//! use kvs_core::untyped::{Access, Session};
//! # fn show(url: &str) -> kvs_core::Result<()> {
//! let session = Session::open(url, Access::Read)?;
//! for entry in session.dir()? {
//!     let count = session.read(|view| view.count(&entry.name))?;
//!     println!("{} ({count} records)", entry.name);
//! }
//! # Ok(())
//! # }
//! ```

use std::ops::Bound;

use serde_json::Value;

use crate::backend::{Backend, BackendInfo, Config, ReadTx, WriteTx};
use crate::catalog::{self, SEQ_TABLE};
use crate::error::{Error, Result};
use crate::key::KeyType;
use crate::report::{self, Dump};
use crate::stream::{self, Writer, FEED_TABLE, LINK_TABLE, READER_TABLE, WRITER_TABLE};
use crate::write;

mod check;
mod record;
pub use check::TableCheck;
pub use record::{check_fields, index_of, index_values, record_json, record_key};
use record::{stored_index_values, writable};

pub use crate::catalog::{CatalogColumn, CatalogEntry, CatalogIndex, Header};
pub use crate::json::{check_kind, decode_key, encode_json, json_to_key, key_to_json};

/// How a tool opens a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read-only: never creates or modifies anything ([`Error::Missing`] when there is no
    /// database).
    Read,
    /// Read and write an existing kvs database. A file whose writer died is recovered.
    Write,
    /// Read and write, creating the database if there is none.
    Create,
}

/// An open kvs database, seen through its catalog.
pub struct Session {
    backend: Box<dyn Backend>,
    location: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Opens the database at `url`. A read-only open, and a write open of an existing
    /// database, are checked to be a kvs database before anything is written: a write open
    /// probes read-only first, unless the file needs crash recovery, which only the
    /// read-write open does (and the header check after it still refuses a foreign file).
    pub fn open(url: &str, access: Access) -> Result<Session> {
        let mut config = Config::parse(url)?;
        config.read_only = access == Access::Read;
        let session = Session::open_config(&config, access != Access::Create)?;
        if access == Access::Create {
            // A new store gets its header (and empty catalog) before anything else is read.
            session.write(|edit| {
                if catalog::read_header(&*edit.w, edit.location)?.is_none() {
                    catalog::reconcile(edit.w, edit.location, &[])?;
                }
                Ok::<_, Error>(())
            })?;
        }
        Ok(session)
    }

    fn open_config(config: &Config, must_exist: bool) -> Result<Session> {
        let session = Session::attach(catalog::open_checked(config, must_exist)?);
        #[allow(clippy::redundant_closure_for_method_calls)] // a method path is not general enough
        let header = session.read(|view| view.header())?;
        if header.is_none() && must_exist {
            return Err(Error::NotKvs {
                location: session.location.clone(),
                reason: "it is empty: no kvs header".to_owned(),
            });
        }
        if !config.read_only && header.is_some_and(|h| h.format < catalog::FORMAT) {
            // Tools write records in the current format: an older database is upgraded
            // first, in one commit, as the application's open would.
            session.write(|edit| catalog::bring_to_format(edit.w, edit.location, &[]).map(drop))?;
        }
        Ok(session)
    }

    /// A session over a backend opened by the caller, which has checked (or will check) that
    /// it holds a kvs database.
    pub fn attach(backend: Box<dyn Backend>) -> Session {
        let location = backend.info().location;
        Session { backend, location }
    }

    /// The backend.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// What the backend is.
    pub fn info(&self) -> BackendInfo {
        self.backend.info()
    }

    /// Where the data lives.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs `f` on one consistent snapshot.
    pub fn read<R, E: From<Error>>(
        &self,
        f: impl FnOnce(&View<'_>) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        let mut f = Some(f);
        let mut out = None;
        let done = self.backend.read(&mut |r| {
            if let Some(f) = f.take() {
                let result = f(&View {
                    r,
                    location: &self.location,
                });
                let failed = result.is_err();
                out = Some(result);
                if failed {
                    return Err(Error::Aborted);
                }
            }
            Ok(())
        });
        finish(done, out)
    }

    /// Runs `f` in one write transaction, committed if it returns `Ok`.
    pub fn write<R, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut Edit<'_>) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        let mut f = Some(f);
        let mut out = None;
        let done = self.backend.write(&mut |w| {
            let f = f.take().ok_or(Error::Aborted)?;
            let result = f(&mut Edit {
                w,
                location: &self.location,
            });
            let failed = result.is_err();
            out = Some(result);
            if failed {
                Err(Error::Aborted)
            } else {
                Ok(())
            }
        });
        finish(done, out)
    }

    /// The tables: every catalog entry, then the stream tables that exist.
    pub fn dir(&self) -> Result<Vec<CatalogEntry>> {
        self.read(|view| {
            let mut dir = view.entries()?;
            let present = view.r.tables()?;
            dir.extend(
                report::stream_entries()
                    .into_iter()
                    .filter(|e| present.contains(&e.name)),
            );
            Ok(dir)
        })
    }

    /// Per table: name, storage, kind, size and element count.
    pub fn dump(&self) -> Result<Dump> {
        let info = self.backend.info();
        self.read(|view| {
            let entries = view.entries()?;
            let present = view.r.tables()?;
            let streams = present.iter().any(|t| t == WRITER_TABLE);
            report::dump(view.r, info, &entries, streams)
        })
    }
}

fn finish<R, E: From<Error>>(
    done: Result<()>,
    out: Option<std::result::Result<R, E>>,
) -> std::result::Result<R, E> {
    match (done, out) {
        (_, Some(Err(e))) => Err(e),
        (Err(e), _) => Err(e.into()),
        (Ok(()), Some(Ok(value))) => Ok(value),
        (Ok(()), None) => Err(Error::Aborted.into()),
    }
}

/// The read calls of a [`Session`], inside one snapshot (or write transaction).
pub struct View<'a> {
    r: &'a dyn ReadTx,
    location: &'a str,
}

/// The write calls of a [`Session`], inside one write transaction; its reads see its writes.
pub struct Edit<'a> {
    w: &'a mut dyn WriteTx,
    location: &'a str,
}

impl View<'_> {
    /// The database's header (`None` for an empty store).
    pub fn header(&self) -> Result<Option<Header>> {
        catalog::read_header(self.r, self.location)
    }

    /// Every catalog entry, by table name.
    pub fn entries(&self) -> Result<Vec<CatalogEntry>> {
        catalog::entries(self.r)
    }

    /// The catalog entry of `table`, or [`Error::Schema`] naming the tables there are.
    pub fn entry(&self, table: &str) -> Result<CatalogEntry> {
        if let Some(entry) = catalog::read_entry(self.r, table)? {
            return Ok(entry);
        }
        let names: Vec<String> = self.entries()?.into_iter().map(|e| e.name).collect();
        Err(Error::schema(
            table,
            format!(
                "no such table (tables: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ),
        ))
    }

    /// The number of entries in `table`: a record table, or one of the stream tables.
    pub fn count(&self, table: &str) -> Result<u64> {
        if ![WRITER_TABLE, READER_TABLE, FEED_TABLE, LINK_TABLE].contains(&table) {
            self.entry(table)?;
        }
        self.r.len(table)
    }

    /// The record with the encoded `key`, as JSON.
    pub fn get(&self, entry: &CatalogEntry, key: &[u8]) -> Result<Option<Value>> {
        let mut record = None;
        self.r.get_with(&entry.name, key, &mut |bytes| {
            record = Some(record_json(entry, key, bytes)?);
            Ok(())
        })?;
        Ok(record)
    }

    /// Visits the records with encoded keys in `range` in key order (descending if
    /// `reverse`), as JSON with their encoded keys, until `visit` returns `Ok(false)`.
    pub fn scan(
        &self,
        entry: &CatalogEntry,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], Value) -> Result<bool>,
    ) -> Result<()> {
        self.r.scan(&entry.name, range, reverse, &mut |key, bytes| {
            visit(key, record_json(entry, key, bytes)?)
        })
    }

    /// The records whose `ix` value is the encoded `value`, in key order.
    pub fn index(
        &self,
        entry: &CatalogEntry,
        ix: &CatalogIndex,
        value: &[u8],
    ) -> Result<Vec<Value>> {
        let mut keys = Vec::new();
        write::index_keys(self.r, &ix.table, ix.unique, value, &mut |key| {
            keys.push(key.to_vec());
            Ok(())
        })?;
        keys.iter()
            .map(|key| {
                self.get(entry, key)?.ok_or_else(|| Error::Corrupt {
                    table: ix.table.clone(),
                    key: entry.key_type.render(key),
                    reason: format!("the index on {} points at a missing record", ix.field),
                })
            })
            .collect()
    }

    /// Visits the records whose `ix` value lies between the encoded bounds `from` (inclusive)
    /// and `to` (exclusive), ordered by (value, key), or the reverse, until `visit` returns
    /// `Ok(false)`: one ordered scan of the index table, one read per record.
    pub fn index_range(
        &self,
        entry: &CatalogEntry,
        ix: &CatalogIndex,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(Value) -> Result<bool>,
    ) -> Result<()> {
        let exact = |v: &[u8]| (v.to_vec(), crate::arg::Fit::Exact);
        let start = from.map_or(Bound::Unbounded, |v| Bound::Included(exact(v)));
        let end = to.map_or(Bound::Unbounded, |v| Bound::Excluded(exact(v)));
        let range = crate::query::index_entries_range(ix.unique, start, end);
        // A page of index entries at a time (keys first: a backend's visitor must not call
        // back into it), then their records, so that a long listing starts at once.
        let mut pages = crate::query::Pages::new(&ix.table, range);
        loop {
            let keys = pages.take_page(self.r, reverse, &mut |_, k, v| {
                crate::query::record_key_of(&ix.table, &ix.field, ix.unique, &ix.value_type, k, v)
                    .map(<[u8]>::to_vec)
            })?;
            if keys.is_empty() {
                return Ok(());
            }
            for key in keys {
                let record = self.get(entry, &key)?.ok_or_else(|| Error::Corrupt {
                    table: ix.table.clone(),
                    key: entry.key_type.render(&key),
                    reason: format!("the index on {} points at a missing record", ix.field),
                })?;
                if !visit(record)? {
                    return Ok(());
                }
            }
        }
    }

    /// How many records hold the encoded `value` in `ix`: index keys only.
    pub fn index_count(&self, ix: &CatalogIndex, value: &[u8]) -> Result<u64> {
        let mut n = 0;
        write::index_keys(self.r, &ix.table, ix.unique, value, &mut |_| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// The value of counter `name` (0 if it was never used).
    pub fn seq(&self, name: &str) -> Result<u64> {
        write::read_seq(self.r, name)
    }

    /// Every counter, by name.
    pub fn seqs(&self) -> Result<Vec<(String, u64)>> {
        let mut names = Vec::new();
        self.r.scan(
            SEQ_TABLE,
            (Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |name, _| {
                names.push(String::from_utf8_lossy(name).into_owned());
                Ok(true)
            },
        )?;
        names
            .into_iter()
            .map(|name| Ok((name.clone(), self.seq(&name)?)))
            .collect()
    }

    /// The writers of every feed.
    pub fn writers(&self) -> Result<Vec<Writer>> {
        stream::feeds(self.r)?
            .iter()
            .map(|feed| stream::writer(self.r, feed, &|t| self.key_type(t)))
            .collect()
    }

    /// The table of `feed` and up to `limit` of its records, oldest first (newest first when
    /// `back`); `None` for a feed never appended to.
    pub fn feed(
        &self,
        feed: &str,
        back: bool,
        limit: usize,
    ) -> Result<Option<(CatalogEntry, Vec<Value>)>> {
        let writer = stream::writer(self.r, feed, &|t| self.key_type(t))?;
        let Some(table) = writer.table else {
            return Ok(None);
        };
        let entry = self.entry(&table)?;
        let records = stream::feed_keys(self.r, feed, back, limit)?
            .iter()
            .map(|key| {
                self.get(&entry, key)?.ok_or_else(|| Error::Corrupt {
                    table: FEED_TABLE.to_owned(),
                    key: entry.key_type.render(key),
                    reason: format!("feed {feed:?} links a missing record of {table}"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((entry, records)))
    }

    /// Checks every record of `entry` (its key, that it decodes, that its key field matches
    /// and that it fits the catalog's field kinds) and every index entry against the records.
    pub fn check_table(&self, entry: &CatalogEntry) -> Result<TableCheck> {
        check::check_table(self.r, entry)
    }

    /// Checks that the stream tables agree; the problems found, for people.
    pub fn check_feeds(&self) -> Result<Vec<String>> {
        stream::check(self.r)
    }

    fn key_type(&self, table: &str) -> Result<Option<KeyType>> {
        Ok(catalog::read_entry(self.r, table)?.map(|e| e.key_type))
    }
}

impl Edit<'_> {
    /// The read calls, seeing this transaction's writes.
    pub fn view(&self) -> View<'_> {
        View {
            r: &*self.w,
            location: self.location,
        }
    }

    /// Stores a record given as JSON, keeping its indexes exact and unique ones unique (the
    /// write path of `Kvs::put`). A record the application could not read (see
    /// [`check_fields`]) is [`Error::Invalid`], and nothing is written.
    pub fn put(&mut self, entry: &CatalogEntry, record: &Value) -> Result<()> {
        writable(entry)?;
        check_fields(entry, record, true).map_err(|reason| Error::Invalid {
            table: entry.name.clone(),
            reason,
        })?;
        let key = record_key(entry, record)?;
        let new = index_values(entry, record)?;
        let bytes = record::stored_form(entry, record)?;
        write::put_values(
            self.w,
            &entry.name,
            &entry.indexes,
            &key,
            &bytes,
            &new,
            &|old| stored_index_values(entry, &key, old),
        )
    }

    /// Deletes the record with the encoded `key`, its index entries and its feed links;
    /// returns whether it existed.
    pub fn delete(&mut self, entry: &CatalogEntry, key: &[u8]) -> Result<bool> {
        writable(entry)?;
        let deleted = write::delete_values(self.w, &entry.name, &entry.indexes, key, &|old| {
            stored_index_values(entry, key, old)
        })?;
        if deleted {
            stream::unlink_all(self.w, &entry.name, key)?;
        }
        Ok(deleted)
    }

    /// Adds `incr` to counter `name` and returns the new value.
    pub fn seq(&mut self, name: &str, incr: u64) -> Result<u64> {
        write::seq(self.w, name, incr)
    }

    /// Raises counter `name` to at least `value` (a restore never moves a counter back).
    pub fn raise_seq(&mut self, name: &str, value: u64) -> Result<()> {
        let current = write::read_seq(&*self.w, name)?;
        if current < value {
            write::seq(self.w, name, value - current)?;
        }
        Ok(())
    }

    /// Rebuilds every index of `entry` from its records.
    pub fn rebuild_indexes(&mut self, entry: &CatalogEntry) -> Result<()> {
        writable(entry)?;
        for (i, ix) in entry.indexes.iter().enumerate() {
            catalog::rebuild_index(
                self.w,
                &entry.name,
                &entry.key_type,
                ix,
                &mut |key, record| {
                    Ok(stored_index_values(entry, key, record)
                        .map(|mut values| values.swap_remove(i))
                        .map_err(|e| e.to_string()))
                },
            )?;
        }
        Ok(())
    }

    /// Makes `entry`'s table exist (with its header, for an empty store); returns the entry in
    /// effect, the stored one when there is one (which must have the same key type).
    pub fn ensure_table(&mut self, entry: &CatalogEntry) -> Result<CatalogEntry> {
        catalog::ensure_table(self.w, self.location, entry)
    }
}
