//! The redb backend of kvs: `redb:PATH` opens a file, `mem:` an in-memory database.
//!
//! Every kvs table is a redb table of kvs keys (bytes in kvs's order-preserving encoding,
//! compared inline: `key.rs`) and byte values. A write transaction keeps each
//! table it touches open until it commits, so a transaction that writes a record and three
//! index entries opens each table once.
//!
//! ```
//! use kvs_core::{Backend, Config};
//!
//! let backend = kvs_redb::open(&Config::parse("mem:")?)?;
//! backend.write(&mut |w| {
//!     w.insert("letters", b"b", b"2")?;
//!     w.insert("letters", b"a", b"1")?;
//!     Ok(())
//! })?;
//! backend.read(&mut |r| {
//!     assert_eq!(r.len("letters")?, 2);
//!     assert_eq!(r.get("letters", b"a")?, Some(b"1".to_vec()));
//!     Ok(())
//! })?;
//! # Ok::<(), kvs_core::Error>(())
//! ```
//!
//! Applications do not name this crate: the `kvs` facade links it, and `Kvs::open` finds it by
//! URL scheme.
#![forbid(unsafe_code)]

use std::path::Path;

use kvs_core::{
    Backend, BackendFactory, BackendInfo, Config, Error, ReadTx, Result, SharedWrite, WriteTx,
};
pub use redb::ConcurrencyMode;
use redb::{Database, ReadableDatabase};

mod file;
mod guard;
mod key;
mod open_tables;
mod read;
mod write;

use file::OpenFile;
use guard::{guard, guard_open};
pub use key::{table_definition, KvsKey};
use read::RedbRead;
use write::{RedbWrite, Shared};

/// The redb version this crate is built against (kept equal to the locked version by a test).
pub const REDB_VERSION: &str = "4.6.0";

type Bytes = &'static [u8];

fn storage(e: impl Into<redb::Error>) -> Error {
    Error::storage("redb", e.into())
}

/// A kvs backend on a redb database.
pub struct Redb {
    db: Db,
    durability: redb::Durability,
    info: BackendInfo,
    /// The file, while this process has it open for writing.
    _open: Option<OpenFile>,
}

impl std::fmt::Debug for Redb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redb")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The database, opened for writing or read-only.
enum Db {
    Write(Database),
    Read(redb::ReadOnlyDatabase),
    /// A read-only open of an empty (0-byte) file: a store that holds nothing, which kvs-core
    /// reads as "no database yet" (an empty redb database in memory stands in for it).
    Empty(Database),
}

/// Opens the backend a `redb:` or `mem:` URL names.
///
/// Besides kvs's own parameters, `redb:` takes `share=exclusive|single|multi`, redb's
/// concurrency mode: `exclusive` (the default) locks the file for one process; `single` lets
/// other processes open it read-only (`?read_only=true`, as the console does) and follow this
/// one's commits; `multi` lets several processes write, one transaction at a time. Every
/// process that opens the file at once must use the same mode; a read-only open without
/// `share` tries each mode in turn.
pub fn open(config: &Config) -> Result<Box<dyn Backend>> {
    config.expect_params(&["share"])?;
    let share = match config.params.iter().find(|(k, _)| k == "share") {
        None => None,
        Some((_, v)) => Some(match v.as_str() {
            "exclusive" => ConcurrencyMode::ExclusiveWriter,
            "single" => ConcurrencyMode::SingleWriter,
            "multi" => ConcurrencyMode::MultiWriter,
            other => {
                return Err(config.error(format!(
                    "share must be exclusive, single or multi, not {other:?}"
                )))
            }
        }),
    };
    let durability = match config.durability {
        kvs_core::Durability::None => redb::Durability::None,
        _ => redb::Durability::Immediate,
    };
    match config.scheme.as_str() {
        "mem" => {
            if !config.location.is_empty() {
                return Err(config.error("mem: takes no location"));
            }
            if share.is_some() {
                return Err(config.error("mem: is never shared: it takes no share parameter"));
            }
            Ok(Box::new(Redb::in_memory(durability)?))
        }
        "redb" => {
            let path = config
                .location
                .strip_prefix("//")
                .unwrap_or(&config.location);
            if path.is_empty() {
                return Err(config.error("redb: needs a file path, as in redb:app.redb"));
            }
            let path = Path::new(path);
            if config.read_only {
                Ok(Box::new(Redb::file_read_only(path, share)?))
            } else {
                Ok(Box::new(Redb::file_shared(
                    path,
                    durability,
                    share.unwrap_or_default(),
                )?))
            }
        }
        other => Err(config.error(format!("the redb backend does not serve {other}:"))),
    }
}

inventory::submit! { BackendFactory { scheme: "redb", open } }
inventory::submit! { BackendFactory { scheme: "mem", open } }

impl Redb {
    /// An empty database in memory.
    pub fn in_memory(durability: redb::Durability) -> Result<Redb> {
        let db = redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(storage)?;
        Ok(Redb {
            db: Db::Write(db),
            durability,
            info: BackendInfo {
                engine: "redb",
                version: REDB_VERSION,
                storage: "memory",
                location: "mem:".to_owned(),
            },
            _open: None,
        })
    }

    /// A database on any redb storage: a file opened in a special way, or a wrapper around
    /// another storage that injects faults or counts I/O. `location` names it in messages.
    ///
    /// Unlike [`Redb::file`], nothing checks the storage before redb opens it (and perhaps
    /// repairs it after a crash): kvs still refuses a foreign database at
    /// [`Kvs::with_backend`](kvs_core::Kvs::with_backend), but redb may have written to it by
    /// then.
    ///
    /// ```
    /// use kvs_core::{Config, Kvs};
    /// use kvs_redb::Redb;
    ///
    /// let store = redb::backends::InMemoryBackend::new();
    /// let backend = Redb::with_storage(store, redb::Durability::Immediate, "scratch")?;
    /// let kvs = Kvs::with_backend(Box::new(backend), Config::parse("scratch:")?)?;
    /// assert_eq!(kvs.seq("n", 1)?, 1);
    /// # Ok::<(), kvs_core::Error>(())
    /// ```
    pub fn with_storage(
        store: impl redb::StorageBackend,
        durability: redb::Durability,
        location: &str,
    ) -> Result<Redb> {
        let db = redb::Builder::new()
            .create_with_backend(store)
            .map_err(storage)?;
        Ok(Redb {
            db: Db::Write(db),
            durability,
            info: BackendInfo {
                engine: "redb",
                version: REDB_VERSION,
                storage: "custom",
                location: location.to_owned(),
            },
            _open: None,
        })
    }

    /// The database in the file at `path`, created if it does not exist.
    ///
    /// A file that is not a redb database is rejected ([`Error::NotKvs`]) before redb touches
    /// it, and a redb file is first opened read-only, so that opening never writes to a
    /// database that kvs then rejects as foreign (unless it needs crash recovery, which only a
    /// writer can do).
    ///
    /// A new file appears whole: it is created under a temporary name beside `path` and linked
    /// into place, so that a crash while creating it never leaves a file that redb refuses. An
    /// existing empty file is initialized in place.
    pub fn file(path: &Path, durability: redb::Durability) -> Result<Redb> {
        Redb::file_shared(path, durability, ConcurrencyMode::ExclusiveWriter)
    }

    /// [`Redb::file`] in one of redb's concurrency modes (see [`open`]'s `share`).
    pub fn file_shared(
        path: &Path,
        durability: redb::Durability,
        share: ConcurrencyMode,
    ) -> Result<Redb> {
        guard_open(&path.display().to_string(), || {
            Redb::file_shared_unguarded(path, durability, share)
        })
    }

    /// The kvs database in the file at `path`, opened read-only: never created, never
    /// written, and refused unless it holds a kvs header. Without `share`, each of redb's
    /// concurrency modes is tried in turn, so that the open succeeds while another process
    /// writes the file in `single` or `multi` mode; a writer in `exclusive` mode (the default)
    /// locks everyone else out, which is [`Error::InUse`].
    pub fn file_read_only(path: &Path, share: Option<ConcurrencyMode>) -> Result<Redb> {
        guard_open(&path.display().to_string(), || {
            Redb::file_read_only_unguarded(path, share)
        })
    }
}

impl Backend for Redb {
    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn read(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<()>) -> Result<()> {
        let txn = guard(|| {
            match &self.db {
                Db::Write(db) | Db::Empty(db) => db.begin_read(),
                Db::Read(db) => db.begin_read(),
            }
            .map_err(storage)
        })?;
        f(&RedbRead::new(txn))
    }

    fn snapshot(&self) -> Result<Box<dyn ReadTx + Send + '_>> {
        let txn = guard(|| {
            match &self.db {
                Db::Write(db) | Db::Empty(db) => db.begin_read(),
                Db::Read(db) => db.begin_read(),
            }
            .map_err(storage)
        })?;
        Ok(Box::new(RedbRead::new(txn)))
    }

    fn serial_writes(&self) -> bool {
        true
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()> {
        let txn = self.begin()?;
        let result = f(&mut RedbWrite::new(&txn));
        match result {
            Ok(()) => guard(|| txn.commit().map_err(storage)),
            Err(e) => {
                // Dropping an uncommitted transaction aborts it too; abort reports failures.
                guard(|| txn.abort().map_err(storage))?;
                Err(e)
            }
        }
    }

    fn begin_write(&self) -> Option<Result<Box<dyn SharedWrite>>> {
        Some(
            self.begin()
                .map(|txn| Box::new(Shared::new(txn)) as Box<dyn SharedWrite>),
        )
    }
}

impl Redb {
    /// A write transaction at the configured durability.
    fn begin(&self) -> Result<redb::WriteTransaction> {
        let Db::Write(db) = &self.db else {
            return Err(Error::ReadOnly {
                location: self.info.location.clone(),
            });
        };
        let mut txn = guard(|| db.begin_write().map_err(storage))?;
        txn.set_durability(self.durability).map_err(storage)?;
        Ok(txn)
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;

    use super::*;

    #[test]
    fn redb_version_matches_the_lock_file() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
            .expect("Cargo.lock at the workspace root");
        let entry = format!("name = \"redb\"\nversion = \"{REDB_VERSION}\"");
        assert!(
            lock.contains(&entry),
            "Cargo.lock does not lock redb {REDB_VERSION}"
        );
    }

    #[test]
    fn a_cursor_walks_from_both_ends_until_they_meet() {
        let backend = open(&Config::parse("mem:").unwrap()).unwrap();
        backend
            .write(&mut |w| {
                for k in 1u8..=5 {
                    w.insert("t", &[k], &[k * 10])?;
                }
                Ok(())
            })
            .unwrap();
        let snap = backend.snapshot().unwrap();
        let all = (Bound::Unbounded, Bound::Unbounded);
        let mut cursor = snap.cursor("t", all).unwrap().expect("redb has cursors");
        let mut seen = Vec::new();
        // Takes up to `n` entries from one end; whether it found all `n`.
        let mut take = |cursor: &mut Box<dyn kvs_core::Cursor>, back: bool, n: usize| {
            for _ in 0..n {
                match cursor.next_entry(back).unwrap() {
                    Some((k, v)) => seen.push((k[0], v[0])),
                    None => return false,
                }
            }
            true
        };
        assert!(take(&mut cursor, false, 2));
        assert!(take(&mut cursor, true, 1));
        // Two left between the ends; asking for three exhausts the walk.
        assert!(!take(&mut cursor, true, 3));
        assert!(!take(&mut cursor, false, 1));
        assert!(!take(&mut cursor, true, 1));
        assert_eq!(seen, [(1, 10), (2, 20), (5, 50), (4, 40), (3, 30)]);
        // A missing table and an inverted range walk nothing.
        for (table, range) in [
            ("missing", all),
            (
                "t",
                (Bound::Included(&[4u8][..]), Bound::Excluded(&[2u8][..])),
            ),
        ] {
            let mut cursor = snap.cursor(table, range).unwrap().unwrap();
            assert!(cursor.next_entry(false).unwrap().is_none());
        }
    }

    #[test]
    fn empty_and_inverted_ranges_visit_nothing() {
        let backend = open(&Config::parse("mem:").unwrap()).unwrap();
        backend
            .write(&mut |w| {
                for k in [1u8, 2, 3] {
                    w.insert("t", &[k], &[])?;
                }
                let mut seen = 0;
                w.scan(
                    "t",
                    (Bound::Included(&[3]), Bound::Included(&[1])),
                    false,
                    &mut |_, _| {
                        seen += 1;
                        Ok(true)
                    },
                )?;
                w.scan(
                    "t",
                    (Bound::Included(&[2]), Bound::Excluded(&[2])),
                    true,
                    &mut |_, _| {
                        seen += 1;
                        Ok(true)
                    },
                )?;
                assert_eq!(seen, 0);
                Ok(())
            })
            .unwrap();
    }
}
