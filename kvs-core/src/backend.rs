//! The storage seam: a small, byte-oriented, transactional interface that every engine
//! implements.
//!
//! kvs keeps records, index entries, counters and its catalog as ordered byte keys in named
//! tables. A backend gives it transactions over those tables and nothing else; every rule
//! about records and indexes lives above this line, identical for every engine.

use std::ops::Bound;

use crate::error::{Error, Result};

pub use crate::key::prefix_end;
pub use crate::replay::Replay;
pub use crate::retry::{retry_pause, RETRY_FOR};

/// A range of encoded keys.
pub type KeyRange<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// What [`ReadTx::scan`] calls for each entry, with its key and value; it returns whether to
/// go on.
pub type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// What [`ReadTx::get_many`] calls for each key, with its position and its value (`None`
/// when absent).
pub type ManyVisitor<'a> = dyn FnMut(usize, Option<&[u8]>) -> Result<()> + 'a;

/// An open walk over a range of one table: [`ReadTx::cursor`].
pub trait Cursor: Send {
    /// The next entry `(key, value)` from the front (from the back when `back`), lent until
    /// the next call; `None` once none is left. The two ends meet: no entry is lent twice.
    /// A lazy iterator decodes each record straight from the lent bytes, with no callback
    /// between the engine's step and the decode.
    fn next_entry(&mut self, back: bool) -> Result<Option<(&[u8], &[u8])>>;
}

/// Reads inside a transaction.
///
/// Rules for implementers:
/// - A table that does not exist reads as empty (`get` is `None`, `len` is 0, `scan` visits
///   nothing): kvs never needs "no such table" from a read.
/// - Keys compare as byte strings (lexicographically, shorter prefix first).
/// - Within a [`WriteTx`], reads see the transaction's own writes.
/// - All reads of one transaction see one consistent state (a snapshot, or, for optimistic
///   engines, a state that commit validates).
pub trait ReadTx {
    /// The value stored under `key`.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Calls `visit` with the value stored under `key`, lent rather than copied, and returns
    /// whether there was one. The default goes through [`ReadTx::get`]; an engine that can
    /// lend its bytes overrides it, which spares the hot read paths a copy and an allocation.
    /// `visit` must not call back into the transaction; a backend may refuse that with an
    /// error.
    fn get_with(
        &self,
        table: &str,
        key: &[u8],
        visit: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        match self.get(table, key)? {
            Some(value) => {
                visit(&value)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Calls `visit` with the position in `keys` and the value (lent, `None` if absent) of
    /// each of `keys`, in order. The default calls [`ReadTx::get_with`] for each; a remote
    /// engine overrides it to fetch them in few round trips (an index lookup reads its `k`
    /// records with it). `visit` must not call back into the transaction.
    fn get_many(&self, table: &str, keys: &[&[u8]], visit: &mut ManyVisitor<'_>) -> Result<()> {
        for (i, key) in keys.iter().enumerate() {
            if !self.get_with(table, key, &mut |value| visit(i, Some(value)))? {
                visit(i, None)?;
            }
        }
        Ok(())
    }

    /// Visits the entries with keys in `range` in key order (descending if `reverse`), until
    /// `visit` returns `Ok(false)` or an error, which `scan` returns. A range whose start lies
    /// after its end is empty (never a panic). `visit` must not call back into the transaction;
    /// a backend may refuse that with an error.
    fn scan(
        &self,
        table: &str,
        range: KeyRange<'_>,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<()>;

    /// An ordered walk over the entries of `table` in `range` that stays open between steps,
    /// from either end, for a lazy iterator: each step costs one entry, not a seek. `None`
    /// (the default) when the engine has none, or none outliving the call; lazy iterators
    /// then read pages with [`ReadTx::scan`]. The walk sees this transaction's state.
    fn cursor(&self, table: &str, range: KeyRange<'_>) -> Result<Option<Box<dyn Cursor>>> {
        let _ = (table, range);
        Ok(None)
    }

    /// The number of entries in `table`. kvs calls it for `count` and expects it to be cheap
    /// (O(1) or close).
    fn len(&self, table: &str) -> Result<u64>;

    /// The names of all tables that exist.
    fn tables(&self) -> Result<Vec<String>>;

    /// The bytes `table` occupies in storage (for reports), or `None` where the engine keeps
    /// no size per table (etcd).
    fn stored_bytes(&self, table: &str) -> Result<Option<u64>>;
}

/// Reads and writes inside a write transaction.
///
/// Rules for implementers: the transaction is serializable (no two write transactions that
/// both commit may have read what the other wrote, or the later one fails with
/// [`Error::Conflict`]), and nothing it wrote is visible to anyone before the commit.
pub trait WriteTx: ReadTx {
    /// Stores `value` under `key`, creating the table if needed; returns the previous value.
    fn insert(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Removes `key`; returns the removed value.
    fn remove(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// [`WriteTx::insert`] for a caller that needs no previous value (an index entry): the
    /// default drops it; a remote engine overrides it to write without reading first.
    fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.insert(table, key, value).map(drop)
    }

    /// [`WriteTx::remove`] for a caller that needs no removed value (see [`WriteTx::put`]).
    fn delete(&mut self, table: &str, key: &[u8]) -> Result<()> {
        self.remove(table, key).map(drop)
    }

    /// A hint that the transaction is about to read (or write with [`WriteTx::insert`], which
    /// reads) each `(table, key)`: a remote engine fetches them together in one round trip
    /// rather than one each. The default does nothing.
    fn prefetch(&mut self, keys: &mut dyn Iterator<Item = (&str, &[u8])>) -> Result<()> {
        let _ = keys;
        Ok(())
    }

    /// Makes `table` exist (and be listed by [`ReadTx::tables`]) even while empty.
    fn create_table(&mut self, table: &str) -> Result<()>;

    /// Removes `table` and everything in it; returns whether it existed.
    fn drop_table(&mut self, table: &str) -> Result<bool>;

    /// Brings the engine's own form of every table up to date, in this transaction: called
    /// once when a database of an older kvs format is upgraded at open. The default does
    /// nothing (an engine whose tables have no form of their own to change).
    fn upgrade_tables(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A write transaction begun by [`Backend::begin_write`], owned, and sendable to another
/// thread. Dropping it uncommitted aborts it: nothing it wrote is ever visible.
pub trait SharedWrite: Send {
    /// Runs `f` in the transaction. What `f` writes stays uncommitted, and the next run sees
    /// it. An `Err` from `f` (or from the engine) is returned and undoes nothing: the caller
    /// undoes what it must, or drops the transaction.
    fn run(&mut self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()>;

    /// Commits everything the runs wrote, atomically, as durable as the configured
    /// [`Durability`] asks.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// A storage engine behind kvs.
///
/// Rules for implementers:
/// - [`Backend::write`] calls `f` exactly once. It commits everything `f` wrote, atomically,
///   if and only if `f` returns `Ok`; when `f` or the commit fails, nothing `f` wrote is ever
///   visible. A commit returns only once it is as durable as the configured
///   [`Durability`] asks.
/// - [`Backend::read`] runs `f` on a consistent snapshot.
/// - The backend is shared across threads (`Send + Sync`); concurrent write transactions may
///   be serialized.
pub trait Backend: Send + Sync + 'static {
    /// What the backend is, for `ver` and `dump`.
    fn info(&self) -> BackendInfo;

    /// Runs `f` in a read transaction.
    fn read(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<()>) -> Result<()>;

    /// A read transaction that outlives a call: every read on it sees one committed state,
    /// and it holds back no writer (a lazy iterator and `Kvs::snapshot` read through it).
    /// Dropping it releases whatever it holds.
    fn snapshot(&self) -> Result<Box<dyn ReadTx + Send + '_>>;

    /// Runs `f` in a write transaction and commits it if `f` returns `Ok`.
    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()>;

    /// Whether write transactions run one at a time, each paying its own commit (redb: one
    /// writer, an fsync per durable commit). Then `Kvs` groups concurrent writes (one-call
    /// writes and transactions) into shared transactions (group commit), begun with
    /// [`Backend::begin_write`]. A backend whose writes run concurrently says no: etcd
    /// batches concurrent proposals into Raft rounds itself, and a group would run its
    /// writes' reads one after another.
    fn serial_writes(&self) -> bool {
        false
    }

    /// For a backend whose writes run concurrently, each a network round trip or more (etcd):
    /// `Some(n)` lets `Kvs` group up to `n` concurrent one-call writes that declare the keys
    /// they read (`put`, `delete`, the stream writes) into one transaction, their reads fetched together with
    /// [`WriteTx::prefetch`], so that the group costs one read round trip and one commit
    /// instead of one each per write. `n` keeps a group within the engine's limit of
    /// operations per transaction. `None` (the default): no such grouping.
    fn batch_writes(&self) -> Option<usize> {
        None
    }

    /// With [`Backend::batch_writes`]: the most keys a batch's writes may declare they read,
    /// together (a batch takes fewer writes rather than pass it; a lone write is never held
    /// back). A backend whose commit guards reads by key up to a number, and beyond it by a
    /// coarser check that conflicts more, keeps batches under that number. Unbounded by
    /// default.
    fn batch_reads(&self) -> usize {
        usize::MAX
    }

    /// Begins a write transaction that the caller owns and may hand to another thread: a
    /// group commit lends it from caller to caller, so that each runs its own transaction
    /// closure, on its own thread, in the one transaction the group commits. `None` (the
    /// default) for a backend that cannot: each write of a group then runs alone, through
    /// [`Backend::write`]. What is committed is every run's writes (an `Err` from a run
    /// undoes nothing: see [`SharedWrite::run`]); durability is as for [`Backend::write`].
    fn begin_write(&self) -> Option<Result<Box<dyn SharedWrite>>> {
        None
    }

    /// A log in which `AsyncKvs` runs one call on the caller's task,
    /// awaiting each request instead of blocking a thread on it (see [`Replay`]), for a
    /// backend whose requests are network round trips. `None` (the default): each call runs
    /// on tokio's blocking pool, as redb's do.
    fn replay(&self) -> Option<Box<dyn Replay + '_>> {
        None
    }
}

/// A description of a backend.
#[derive(Clone, Debug)]
pub struct BackendInfo {
    /// The engine (`redb`, ...).
    pub engine: &'static str,
    /// The engine's version.
    pub version: &'static str,
    /// Where the data lives (`file`, `memory`, `cluster`).
    pub storage: &'static str,
    /// The file, or other location, of this database.
    pub location: String,
}

/// When a commit is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// A commit is on stable storage when it returns (fsync). The default.
    #[default]
    Immediate,
    /// A commit is visible at once but may be lost in a crash until a later immediate commit.
    None,
}

/// A parsed kvs URL, handed to a backend's opener.
///
/// The form is `SCHEME:LOCATION[?KEY=VALUE&...]`. kvs itself consumes `durability`, `read_only` and
/// `schemas`; the other parameters are the backend's, which must reject those it does not
/// know.
#[derive(Clone, Debug)]
pub struct Config {
    /// The whole URL as given.
    pub url: String,
    /// The part before the first `:`.
    pub scheme: String,
    /// The part between the `:` and the `?`.
    pub location: String,
    /// `?durability=immediate|none`.
    pub durability: Durability,
    /// `?schemas=a,b`: restrict the open tables to these schema or table names.
    pub schemas: Option<Vec<String>>,
    /// `?read_only=true`: open without the right to write, where the engine allows it
    /// alongside a writer (the console's read commands use it). Writes fail with
    /// [`Error::ReadOnly`].
    pub read_only: bool,
    /// The other parameters, in order.
    pub params: Vec<(String, String)>,
}

impl Config {
    /// Parses a kvs URL.
    ///
    /// A URL never holds a secret, since URLs show up in logs, in `ps` and in error
    /// messages: a password (in `//USER:PASSWORD@HOST` or as a `password`, `pass`, `pwd`,
    /// `secret` or `token` parameter) is refused with an [`Error::Url`] whose URL has the
    /// secret masked. Backends read passwords from their environment (etcd:
    /// `KVS_ETCD_PASSWORD`).
    pub fn parse(url: &str) -> Result<Config> {
        let shown = redact(url);
        if shown != url {
            return Err(Error::url(
                &shown,
                "a kvs URL never holds a password (URLs show up in logs and `ps`): name the \
                 user with ?user=NAME and give the password in the backend's environment \
                 variable (etcd: KVS_ETCD_PASSWORD)",
            ));
        }
        let (scheme, rest) = url.split_once(':').ok_or_else(|| {
            Error::url(
                url,
                "expected SCHEME:LOCATION, such as redb:app.redb or mem:",
            )
        })?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
        {
            return Err(Error::url(url, format!("bad scheme {scheme:?}")));
        }
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut config = Config {
            url: url.to_owned(),
            scheme: scheme.to_ascii_lowercase(),
            location: location.to_owned(),
            durability: Durability::default(),
            schemas: None,
            read_only: false,
            params: Vec::new(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| Error::url(url, format!("parameter {pair:?} has no value")))?;
            if query
                .split('&')
                .filter_map(|p| p.split_once('=').map(|(k, _)| k))
                .filter(|k| *k == key)
                .count()
                > 1
            {
                return Err(Error::url(
                    url,
                    format!("parameter {key:?} is given more than once"),
                ));
            }
            match key {
                "durability" => {
                    config.durability = match value {
                        "immediate" => Durability::Immediate,
                        "none" => Durability::None,
                        _ => {
                            return Err(Error::url(
                                url,
                                format!("durability must be immediate or none, not {value:?}"),
                            ))
                        }
                    }
                }
                "read_only" => {
                    config.read_only = match value {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(Error::url(
                                url,
                                format!("read_only must be true or false, not {value:?}"),
                            ))
                        }
                    }
                }
                "schemas" => {
                    let names: Vec<String> = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if names.is_empty() {
                        return Err(Error::url(url, "schemas lists no names"));
                    }
                    config.schemas = Some(names);
                }
                _ => config.params.push((key.to_owned(), value.to_owned())),
            }
        }
        Ok(config)
    }

    /// Fails with a clear error if a parameter other than `known` was given.
    pub fn expect_params(&self, known: &[&str]) -> Result<()> {
        match self
            .params
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((key, _)) => {
                let mut all = vec!["durability", "schemas", "read_only"];
                all.extend_from_slice(known);
                Err(Error::url(
                    &self.url,
                    format!(
                        "unknown parameter {key:?} for {}: (known: {})",
                        self.scheme,
                        all.join(", ")
                    ),
                ))
            }
            None => Ok(()),
        }
    }

    /// An [`Error::Url`] about this URL.
    pub fn error(&self, reason: impl std::fmt::Display) -> Error {
        Error::url(&self.url, reason)
    }
}

/// The parameter names whose values are secrets, masked by [`redact`].
const SECRET_PARAMS: &[&str] = &["password", "pass", "pwd", "secret", "token"];

/// `url` with every secret in it replaced by `***`: the user information of an authority
/// that carries a password (`//USER:PASSWORD@HOST` becomes `//***@HOST`) and the values of
/// secret parameters (`password`, `pass`, `pwd`, `secret`, `token`). Whatever prints a URL
/// that was not parsed (an error about it, a log line) prints this. [`Config::parse`] refuses
/// a URL that this changes, so a parsed URL is its own redaction.
pub fn redact(url: &str) -> String {
    // The user information runs from `//` to the last `@` of the whole URL: a password may
    // hold `/`, `?` or `@` itself. (A prefix or parameter holding `@` after a `:` is then
    // masked and refused too: the safe side.)
    let (mut shown, rest) = match url.split_once("://") {
        Some((scheme, rest)) => match rest.rfind('@') {
            Some(at) if rest[..at].contains(':') => (format!("{scheme}://***@"), &rest[at + 1..]),
            _ => (format!("{scheme}://"), rest),
        },
        None => (String::new(), url),
    };
    let (head, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest, None),
    };
    shown.push_str(head);
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if SECRET_PARAMS.contains(&key.to_ascii_lowercase().as_str()) => {
                    format!("{key}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown
}

/// A backend that kvs can open by URL scheme, registered with `inventory::submit!`.
pub struct BackendFactory {
    /// The URL scheme, lowercase (`redb`, `mem`).
    pub scheme: &'static str,
    /// Opens the backend.
    pub open: fn(&Config) -> Result<Box<dyn Backend>>,
}

inventory::collect!(BackendFactory);

/// Opens the backend that `config.scheme` names, among those linked into the program, without
/// reading or writing any kvs table (tools that work on any kvs database, such as the console,
/// start here; applications call [`Kvs::open`](crate::Kvs::open)).
pub fn open_backend(config: &Config) -> Result<Box<dyn Backend>> {
    let mut schemes: Vec<&str> = Vec::new();
    for factory in inventory::iter::<BackendFactory> {
        if factory.scheme == config.scheme {
            return (factory.open)(config);
        }
        schemes.push(factory.scheme);
    }
    schemes.sort_unstable();
    let hint = if config.scheme == "etcd" {
        " (the kvs crate links etcd with its `etcd` feature, on by default)"
    } else {
        ""
    };
    Err(config.error(format!(
        "no backend for scheme {:?} in this program (linked: {}){hint}",
        config.scheme,
        if schemes.is_empty() {
            "none".to_owned()
        } else {
            schemes.join(", ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parameters() {
        let c = Config::parse("redb:/tmp/a.redb?durability=none&schemas=a, b&cache=1").unwrap();
        assert_eq!(c.scheme, "redb");
        assert_eq!(c.location, "/tmp/a.redb");
        assert_eq!(c.durability, Durability::None);
        assert_eq!(c.schemas, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(c.params, vec![("cache".to_owned(), "1".to_owned())]);
        assert!(c.expect_params(&[]).is_err());
        assert!(c.expect_params(&["cache"]).is_ok());
    }

    #[test]
    fn rejects_malformed_urls() {
        for url in [
            "",
            "app.redb",
            ":x",
            "re db:x",
            "mem:?durability=sometimes",
            "mem:?x",
            "mem:?schemas=",
            "redb:a.redb?share=multi&share=single",
            "mem:?durability=none&durability=none",
        ] {
            assert!(
                matches!(Config::parse(url), Err(Error::Url { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn refuses_secrets_and_never_shows_them() {
        for (url, shown) in [
            ("etcds://kvs:hunter2@h:1/app", "etcds://***@h:1/app"),
            (
                "etcd://h:1/app?user=kvs&password=hunter2",
                "etcd://h:1/app?user=kvs&password=***",
            ),
            ("bad scheme://h?Token=hunter2", "bad scheme://h?Token=***"),
            // A password holding `/`, `?` or `@`.
            ("etcd://kvs:hun/ter2@h:1/app", "etcd://***@h:1/app"),
            ("etcd://kvs:hun?ter2@h:1/app", "etcd://***@h:1/app"),
            (
                "etcd://kvs:hun@ter2@h:1/app?user=x",
                "etcd://***@h:1/app?user=x",
            ),
        ] {
            match Config::parse(url) {
                Err(Error::Url { url: got, reason }) => {
                    assert_eq!(got, shown);
                    assert!(!reason.contains("hunter2"));
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        // A user name alone is no secret, and `@` in a path is no authority.
        for url in ["etcd://kvs@h:1/app?user=kvs", "redb:/tmp/a@b.redb", "mem:"] {
            assert_eq!(redact(url), url);
        }
    }
}
