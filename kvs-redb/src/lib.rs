//! The redb backend of kvs: `redb:PATH` opens a file, `mem:` an in-memory database.
//!
//! Every kvs table is a redb table of byte keys and byte values. A write transaction keeps each
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

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use kvs_core::{
    Backend, BackendFactory, BackendInfo, Config, Error, KeyRange, ReadTx, Result, Visitor, WriteTx,
};
pub use redb::ConcurrencyMode;
use redb::{
    Database, DatabaseError, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, Table, TableDefinition, TableError, WriteTransaction,
};

/// The redb version this crate is built against (kept equal to the locked version by a test).
pub const REDB_VERSION: &str = "4.6.0";

/// The first bytes of every redb file.
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

type Bytes = &'static [u8];

fn definition(name: &str) -> TableDefinition<'_, Bytes, Bytes> {
    TableDefinition::new(name)
}

fn storage(e: impl Into<redb::Error>) -> Error {
    Error::storage("redb", e.into())
}

/// Runs a call into redb, turning a panic into [`Error::Storage`].
///
/// redb 4.6 panics on some pages altered outside it (docs/RELIABILITY.md has the figures);
/// kvs promises an error, never a panic, for bad input, a corrupted file included. The closure
/// holds only kvs's own code and redb's, never an application's (a transaction's closure runs
/// outside any guard), so no application panic is swallowed here.
fn guard<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        Err(Error::storage(
            "redb",
            format!("redb failed on a page it could not read (is the file corrupted?): {what}"),
        ))
    })
}

/// [`guard`] for opening a file: a panic means a file that is not a (sound) kvs database.
fn guard_open<R>(location: &str, f: impl FnOnce() -> Result<R>) -> Result<R> {
    guard(f).map_err(|e| match e {
        Error::Storage { source, .. }
            if source.to_string().starts_with("redb failed on a page") =>
        {
            Error::NotKvs {
                location: location.to_owned(),
                reason: source.to_string(),
            }
        }
        other => other,
    })
}

/// A scan's visitor called back into the transaction it scans: an error, not a panic.
fn reentered() -> Error {
    Error::storage(
        "redb",
        "a scan's visitor called back into the transaction being scanned",
    )
}

/// A kvs backend on a redb database.
pub struct Redb {
    db: Db,
    durability: redb::Durability,
    info: BackendInfo,
    /// The file, while this process has it open for writing.
    _open: Option<OpenFile>,
}

/// The files this process has open for writing, so that a second open of one is reported as
/// such rather than as another process's lock.
static OPEN_FILES: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// A file in [`OPEN_FILES`], removed on drop.
struct OpenFile(std::path::PathBuf);

impl OpenFile {
    fn register(path: &Path) -> Option<OpenFile> {
        let path = std::fs::canonicalize(path).ok()?;
        OPEN_FILES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(path.clone());
        Some(OpenFile(path))
    }

    fn is_open(path: &Path) -> bool {
        std::fs::canonicalize(path).is_ok_and(|path| {
            OPEN_FILES
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&path)
        })
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        let mut open = OPEN_FILES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = open.iter().position(|p| p == &self.0) {
            open.swap_remove(at);
        }
    }
}

/// A file that redb finds locked: by this process ([`Error::AlreadyOpen`]) or another
/// ([`Error::InUse`]).
fn locked(path: &Path, location: &str) -> Error {
    if OpenFile::is_open(path) {
        Error::AlreadyOpen {
            location: location.to_owned(),
        }
    } else {
        Error::InUse {
            location: location.to_owned(),
        }
    }
}

/// A file's I/O error, naming the file.
fn io_error(location: &str, doing: &str, e: &std::io::Error) -> Error {
    Error::storage("redb", format!("cannot {doing} {location}: {e}"))
}

/// Refuses a directory where a database file was named.
fn not_a_directory(path: &Path, location: &str) -> Result<()> {
    if path.is_dir() {
        return Err(Error::NotKvs {
            location: location.to_owned(),
            reason: "it is a directory, not a file".to_owned(),
        });
    }
    Ok(())
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

    fn file_shared_unguarded(
        path: &Path,
        durability: redb::Durability,
        share: ConcurrencyMode,
    ) -> Result<Redb> {
        let location = path.display().to_string();
        let not_kvs = |reason: String| Error::NotKvs {
            location: location.clone(),
            reason,
        };
        let in_use = |e: DatabaseError| match e {
            DatabaseError::DatabaseAlreadyOpen => locked(path, &location),
            DatabaseError::Storage(redb::StorageError::Io(e)) => io_error(&location, "open", &e),
            DatabaseError::UpgradeRequired(v) => not_kvs(format!(
                "a redb file of format {v}, which redb {REDB_VERSION} cannot open"
            )),
            DatabaseError::Storage(redb::StorageError::Corrupted(reason)) => {
                not_kvs(format!("redb reports it corrupted: {reason}"))
            }
            other => storage(other),
        };
        not_a_directory(path, &location)?;
        match File::open(path) {
            Ok(mut file) => {
                let mut head = Vec::with_capacity(REDB_MAGIC.len());
                (&mut file)
                    .take(REDB_MAGIC.len() as u64)
                    .read_to_end(&mut head)
                    .map_err(|e| io_error(&location, "read", &e))?;
                if !head.is_empty() {
                    if head != REDB_MAGIC {
                        return Err(not_kvs("not a redb file".to_owned()));
                    }
                    Self::check_foreign(path, &location, share)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_atomically(path).map_err(|e| match e {
                    DatabaseError::Storage(redb::StorageError::Io(e)) => {
                        io_error(&location, "create", &e)
                    }
                    other => in_use(other),
                })?;
            }
            Err(e) => return Err(io_error(&location, "open", &e)),
        }
        let db = redb::Builder::new()
            .set_concurrency_mode(share)
            .create(path)
            .map_err(in_use)?;
        Ok(Redb {
            db: Db::Write(db),
            durability,
            info: BackendInfo {
                engine: "redb",
                version: REDB_VERSION,
                storage: "file",
                location,
            },
            _open: OpenFile::register(path),
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

    fn file_read_only_unguarded(path: &Path, share: Option<ConcurrencyMode>) -> Result<Redb> {
        let location = path.display().to_string();
        let not_kvs = |reason: &str| Error::NotKvs {
            location: location.clone(),
            reason: reason.to_owned(),
        };
        not_a_directory(path, &location)?;
        let mut head = Vec::with_capacity(REDB_MAGIC.len());
        match File::open(path) {
            Ok(file) => file
                .take(REDB_MAGIC.len() as u64)
                .read_to_end(&mut head)
                .map_err(|e| io_error(&location, "read", &e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Missing { location })
            }
            Err(e) => return Err(io_error(&location, "open", &e)),
        };
        if head.is_empty() {
            return Err(not_kvs("the file is empty"));
        }
        if head != REDB_MAGIC {
            return Err(not_kvs("not a redb file"));
        }
        let modes = match share {
            Some(mode) => vec![mode],
            None => vec![
                ConcurrencyMode::ExclusiveWriter,
                ConcurrencyMode::SingleWriter,
                ConcurrencyMode::MultiWriter,
            ],
        };
        let mut last = None;
        for mode in modes {
            match redb::Builder::new()
                .set_concurrency_mode(mode)
                .open_read_only(path)
            {
                Ok(db) => {
                    let backend = Redb {
                        db: Db::Read(db),
                        durability: redb::Durability::Immediate,
                        info: BackendInfo {
                            engine: "redb",
                            version: REDB_VERSION,
                            storage: "file",
                            location: location.clone(),
                        },
                        _open: None,
                    };
                    backend.read(
                        &mut |r| match kvs_core::catalog::read_header(r, &location)? {
                            Some(_) => Ok(()),
                            None => Err(not_kvs("an empty redb database, with no kvs header")),
                        },
                    )?;
                    return Ok(backend);
                }
                Err(
                    e @ (DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch),
                ) => {
                    last = Some(e);
                }
                Err(DatabaseError::RepairAborted) => return Err(Error::NeedsRecovery { location }),
                Err(DatabaseError::Storage(redb::StorageError::Corrupted(reason))) => {
                    return Err(not_kvs(&format!("redb reports it corrupted: {reason}")))
                }
                Err(e) => return Err(storage(e)),
            }
        }
        match last {
            Some(_) => Err(locked(path, &location)),
            None => Err(not_kvs("no concurrency mode opened it")),
        }
    }

    /// Rejects a redb file that holds tables but no kvs header, reading it read-only.
    fn check_foreign(path: &Path, location: &str, share: ConcurrencyMode) -> Result<()> {
        let db = match redb::Builder::new()
            .set_concurrency_mode(share)
            .open_read_only(path)
        {
            Ok(db) => db,
            // Needs crash recovery, which only a writer does: leave the decision to open.
            Err(DatabaseError::RepairAborted) => return Ok(()),
            Err(DatabaseError::DatabaseAlreadyOpen) => return Err(locked(path, location)),
            Err(DatabaseError::Storage(redb::StorageError::Corrupted(reason))) => {
                return Err(Error::NotKvs {
                    location: location.to_owned(),
                    reason: format!("redb reports it corrupted: {reason}"),
                })
            }
            Err(e) => return Err(storage(e)),
        };
        let txn = db.begin_read().map_err(storage)?;
        let read = RedbRead::new(txn);
        kvs_core::catalog::read_header(&read, location)?;
        Ok(())
    }
}

/// Creates an empty redb database at `path`, which does not exist, so that a crash at any
/// moment leaves either no file or a whole database.
///
/// redb initializes a new file in place and writes its magic number last: a crash before that
/// leaves a file that redb refuses to open ever after ("not a redb database"). So the database
/// is made under a temporary name beside `path` and linked into place once redb has closed it.
/// A link, unlike a rename, never replaces a database that another process created meanwhile.
/// A crash before the link leaves only a `.NAME.creating-*` file, which nothing reads.
fn create_atomically(path: &Path) -> std::result::Result<(), DatabaseError> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let io = |e: std::io::Error| DatabaseError::Storage(redb::StorageError::Io(e));
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy();
    let temp = dir.join(format!(
        ".{name}.creating-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let linked = Database::create(&temp)
        .and_then(Database::close)
        .and_then(|()| match std::fs::hard_link(&temp, path) {
            Ok(()) => Ok(()),
            // Created by someone else meanwhile: theirs is as good.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            // A file system without hard links: a rename, which could only replace a database
            // created in the last few moments.
            Err(_) => std::fs::rename(&temp, path).map_err(io),
        });
    let _ = std::fs::remove_file(&temp);
    linked?;
    // The new name is durable once its directory is (where a directory can be synced).
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

impl Backend for Redb {
    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn read(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<()>) -> Result<()> {
        let txn = guard(|| {
            match &self.db {
                Db::Write(db) => db.begin_read(),
                Db::Read(db) => db.begin_read(),
            }
            .map_err(storage)
        })?;
        f(&RedbRead::new(txn))
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()> {
        let Db::Write(db) = &self.db else {
            return Err(Error::ReadOnly {
                location: self.info.location.clone(),
            });
        };
        let mut txn = guard(|| db.begin_write().map_err(storage))?;
        txn.set_durability(self.durability).map_err(storage)?;
        let result = {
            let mut w = RedbWrite {
                txn: &txn,
                tables: RefCell::new(OpenTables::new()),
            };
            f(&mut w)
        };
        match result {
            Ok(()) => guard(|| txn.commit().map_err(storage)),
            Err(e) => {
                // Dropping an uncommitted transaction aborts it too; abort reports failures.
                guard(|| txn.abort().map_err(storage))?;
                Err(e)
            }
        }
    }
}

fn scan_table(
    table: &impl ReadableTable<Bytes, Bytes>,
    range: KeyRange<'_>,
    reverse: bool,
    visit: &mut Visitor<'_>,
) -> Result<()> {
    if is_empty_range(range) {
        return Ok(());
    }
    let iter = table.range::<&[u8]>(range).map_err(storage)?;
    let mut step = |item: std::result::Result<_, redb::StorageError>| -> Result<bool> {
        let (k, v): (redb::AccessGuard<Bytes>, redb::AccessGuard<Bytes>) = item.map_err(storage)?;
        visit(k.value(), v.value())
    };
    if reverse {
        for item in iter.rev() {
            if !step(item)? {
                break;
            }
        }
    } else {
        for item in iter {
            if !step(item)? {
                break;
            }
        }
    }
    Ok(())
}

/// Lends the value under `key` to `visit`, straight from redb's page.
fn lend(
    table: &impl ReadableTable<Bytes, Bytes>,
    key: &[u8],
    visit: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<bool> {
    match table.get(key).map_err(storage)? {
        Some(value) => {
            visit(value.value())?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Whether no key can lie in `range` (redb, like `BTreeMap`, wants start <= end).
fn is_empty_range((start, end): KeyRange<'_>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
        _ => false,
    }
}

fn table_names(
    handles: redb::Result<impl Iterator<Item = redb::UntypedTableHandle>>,
) -> Result<Vec<String>> {
    Ok(handles
        .map_err(storage)?
        .map(|h| redb::TableHandle::name(&h).to_owned())
        .collect())
}

fn table_bytes(table: &impl ReadableTableMetadata) -> Result<u64> {
    let stats = table.stats().map_err(storage)?;
    Ok(stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes())
}

/// A table name, kept inline when short (as kvs's names are), so that remembering an open
/// table allocates nothing.
enum Name {
    Short(u8, [u8; Name::SHORT]),
    Long(String),
}

impl Name {
    const SHORT: usize = 46;

    fn new(name: &str) -> Name {
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= Name::SHORT => {
                let mut bytes = [0; Name::SHORT];
                bytes[..name.len()].copy_from_slice(name.as_bytes());
                Name::Short(len, bytes)
            }
            _ => Name::Long(name.to_owned()),
        }
    }

    fn is(&self, name: &str) -> bool {
        match self {
            Name::Short(len, bytes) => &bytes[..usize::from(*len)] == name.as_bytes(),
            Name::Long(long) => long == name,
        }
    }
}

/// The tables a transaction has opened, by name. A transaction touches few tables, so a list
/// beats a hash map, and the first few live inline: a read of up to three tables allocates
/// nothing to remember them.
struct OpenTables<T> {
    inline: [Option<(Name, T)>; 3],
    more: Vec<(Name, T)>,
}

impl<T> OpenTables<T> {
    fn new() -> Self {
        OpenTables {
            inline: [None, None, None],
            more: Vec::new(),
        }
    }

    /// The open table `name`, or the one `open` opens, remembered for the next call.
    fn get_or_open(&mut self, name: &str, open: impl FnOnce() -> Result<T>) -> Result<&mut T> {
        let inline = self
            .inline
            .iter()
            .position(|slot| slot.as_ref().is_some_and(|(n, _)| n.is(name)));
        if let Some(i) = inline {
            return Ok(&mut self.inline[i].as_mut().expect("a filled slot").1);
        }
        if let Some(i) = self.more.iter().position(|(n, _)| n.is(name)) {
            return Ok(&mut self.more[i].1);
        }
        let table = open()?;
        let entry = (Name::new(name), table);
        if let Some(slot) = self.inline.iter_mut().find(|slot| slot.is_none()) {
            return Ok(&mut slot.insert(entry).1);
        }
        self.more.push(entry);
        Ok(&mut self.more.last_mut().expect("just pushed").1)
    }

    /// Forgets (and so closes) the table `name`.
    fn close(&mut self, name: &str) {
        for slot in &mut self.inline {
            if slot.as_ref().is_some_and(|(n, _)| n.is(name)) {
                *slot = None;
            }
        }
        self.more.retain(|(n, _)| !n.is(name));
    }
}

/// A read transaction, with each table opened once.
struct RedbRead {
    txn: ReadTransaction,
    tables: RefCell<OpenTables<Option<ReadOnlyTable<Bytes, Bytes>>>>,
}

impl RedbRead {
    fn new(txn: ReadTransaction) -> RedbRead {
        RedbRead {
            txn,
            tables: RefCell::new(OpenTables::new()),
        }
    }

    /// Runs `f` on `name`, or returns `empty` when the table does not exist.
    fn with<R>(
        &self,
        name: &str,
        empty: R,
        f: impl FnOnce(&ReadOnlyTable<Bytes, Bytes>) -> Result<R>,
    ) -> Result<R> {
        let mut tables = self.tables.try_borrow_mut().map_err(|_| reentered())?;
        guard(|| {
            let table =
                tables.get_or_open(name, || match self.txn.open_table(definition(name)) {
                    Ok(table) => Ok(Some(table)),
                    Err(TableError::TableDoesNotExist(_)) => Ok(None),
                    Err(e) => Err(storage(e)),
                })?;
            match table {
                Some(table) => f(table),
                None => Ok(empty),
            }
        })
    }
}

impl ReadTx for RedbRead {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(table, None, |t| {
            Ok(t.get(key).map_err(storage)?.map(|v| v.value().to_vec()))
        })
    }

    fn get_with(
        &self,
        table: &str,
        key: &[u8],
        visit: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        self.with(table, false, |t| lend(t, key, visit))
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange<'_>,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        self.with(table, (), |t| scan_table(t, range, reverse, visit))
    }

    fn len(&self, table: &str) -> Result<u64> {
        self.with(table, 0, |t| t.len().map_err(storage))
    }

    fn tables(&self) -> Result<Vec<String>> {
        guard(|| table_names(self.txn.list_tables()))
    }

    fn stored_bytes(&self, table: &str) -> Result<Option<u64>> {
        self.with(table, 0, table_bytes).map(Some)
    }
}

/// A write transaction, with each table opened once and kept open until commit.
struct RedbWrite<'t> {
    txn: &'t WriteTransaction,
    tables: RefCell<OpenTables<Table<'t, Bytes, Bytes>>>,
}

impl<'t> RedbWrite<'t> {
    fn with<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Table<'t, Bytes, Bytes>) -> Result<R>,
    ) -> Result<R> {
        let mut tables = self.tables.try_borrow_mut().map_err(|_| reentered())?;
        guard(|| {
            f(tables.get_or_open(name, || {
                self.txn.open_table(definition(name)).map_err(storage)
            })?)
        })
    }
}

impl ReadTx for RedbWrite<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(table, |t| {
            Ok(t.get(key).map_err(storage)?.map(|v| v.value().to_vec()))
        })
    }

    fn get_with(
        &self,
        table: &str,
        key: &[u8],
        visit: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        self.with(table, |t| lend(t, key, visit))
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange<'_>,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        self.with(table, |t| scan_table(t, range, reverse, visit))
    }

    fn len(&self, table: &str) -> Result<u64> {
        self.with(table, |t| t.len().map_err(storage))
    }

    fn tables(&self) -> Result<Vec<String>> {
        guard(|| table_names(self.txn.list_tables()))
    }

    fn stored_bytes(&self, table: &str) -> Result<Option<u64>> {
        self.with(table, |t| table_bytes(t)).map(Some)
    }
}

impl WriteTx for RedbWrite<'_> {
    fn insert(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(table, |t| {
            Ok(t.insert(key, value)
                .map_err(storage)?
                .map(|old| old.value().to_vec()))
        })
    }

    fn remove(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(table, |t| {
            Ok(t.remove(key)
                .map_err(storage)?
                .map(|old| old.value().to_vec()))
        })
    }

    fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.with(table, |t| t.insert(key, value).map(drop).map_err(storage))
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<()> {
        self.with(table, |t| t.remove(key).map(drop).map_err(storage))
    }

    fn create_table(&mut self, table: &str) -> Result<()> {
        self.with(table, |_| Ok(()))
    }

    fn drop_table(&mut self, table: &str) -> Result<bool> {
        // redb refuses to delete a table that is open in the transaction.
        self.tables.get_mut().close(table);
        guard(|| self.txn.delete_table(definition(table)).map_err(storage))
    }
}

#[cfg(test)]
mod tests {
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
