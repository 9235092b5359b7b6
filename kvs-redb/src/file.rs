//! Opening a database file: the checks that refuse a file that is not kvs's before redb
//! writes to it, the atomic creation of a new file, and the registry of the files this process
//! has open, which tells its own second open from another process's lock.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use kvs_core::{BackendInfo, Error, Result};
use redb::{ConcurrencyMode, Database, DatabaseError};

use crate::{storage, Db, Redb, REDB_VERSION};

/// The first bytes of every redb file.
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// The files this process has open for writing, so that a second open of one is reported as
/// such rather than as another process's lock.
static OPEN_FILES: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// A file in [`OPEN_FILES`], removed on drop.
pub(crate) struct OpenFile(std::path::PathBuf);

impl OpenFile {
    pub(crate) fn register(path: &Path) -> Option<OpenFile> {
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

impl Redb {
    pub(crate) fn file_shared_unguarded(
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
                    // A redb file that is not a kvs database was refused by kvs-core's
                    // read-only probe before this open (which may repair a file) ran.
                    if head != REDB_MAGIC {
                        return Err(not_kvs("not a redb file".to_owned()));
                    }
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

    pub(crate) fn file_read_only_unguarded(
        path: &Path,
        share: Option<ConcurrencyMode>,
    ) -> Result<Redb> {
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
            let empty = redb::Builder::new()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(storage)?;
            return Ok(Redb {
                db: Db::Empty(empty),
                durability: redb::Durability::Immediate,
                info: BackendInfo {
                    engine: "redb",
                    version: REDB_VERSION,
                    storage: "file",
                    location,
                },
                _open: None,
            });
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
                    // Whether it holds a kvs database is kvs-core's to decide.
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
