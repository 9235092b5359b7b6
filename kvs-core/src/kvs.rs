//! [`Kvs`]: an open database with the tables of the program, and the typed calls on it.

use std::fmt;
use std::sync::atomic::AtomicBool;

use crate::backend::{Backend, Config, ReadTx};
use crate::catalog::{self, CatalogEntry, Refusal};
use crate::combine::Counters;
use crate::error::{Error, Result};
use crate::group::Lane;
use crate::report::{self, Dump, TableInfo, Version};
use crate::retry::retry;
use crate::select::select_tables;
use crate::stream::{STREAM_SCHEMA, WRITER_TABLE};
use crate::table::{Table, TableMeta};
use crate::untyped::Session;

/// The environment variable that [`Kvs::from_env`] reads.
pub const KVS_URL: &str = "KVS_URL";
/// The URL [`Kvs::from_env`] uses when `KVS_URL` is not set.
pub const DEFAULT_URL: &str = "redb:kvs.redb";

/// An open kvs database: the tables linked into the program, on the backend a URL chose.
///
/// `Kvs` is `Send + Sync`; share one handle across threads with `Arc`. Every write call
/// (`put`, `delete`, `seq`) is one atomic commit; [`Kvs::transaction`] groups calls into one.
pub struct Kvs {
    /// The database, as tools without the Rust types see it.
    pub(crate) session: Session,
    pub(crate) config: Config,
    pub(crate) tables: Vec<&'static TableMeta>,
    /// The tables open could not reconcile: every call on one fails with its reason.
    refused: Vec<Refusal>,
    /// Whether the stream tables are open (the `kvs_stream` schema is selected).
    pub(crate) streams: bool,
    /// Whether the database has feeds (or this handle appended to one): only then does a
    /// delete look for feed links to remove, so streams cost nothing where none are used.
    pub(crate) feeds_exist: AtomicBool,
    /// Names this handle in the thread's list of running transactions.
    pub(crate) id: u64,
    /// The lanes in which concurrent `seq` calls on one counter combine.
    pub(crate) counters: Counters,
    /// The lane in which concurrent one-call writes share commits.
    pub(crate) lane: Lane,
}

impl fmt::Debug for Kvs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kvs")
            .field("url", &self.config.url)
            .field(
                "tables",
                &self.tables.iter().map(|m| m.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Kvs {
    /// Opens (or creates) the database at `url` and reconciles it with the registered tables.
    ///
    /// URLs: `redb:PATH` (a file, created if missing), `mem:` (in memory, gone on drop), plus
    /// any other backend linked into the program. Parameters: `?durability=immediate|none`
    /// (immediate by default) and `?schemas=a,b` (open only the tables of these schemas, or
    /// these tables).
    ///
    /// Reconciling creates new tables, builds new indexes from existing records and drops the
    /// tables of removed indexes, all in one commit. It fails, writing nothing, when two types
    /// claim one table name ([`Error::Schema`]) or the storage is not a kvs database
    /// ([`Error::NotKvs`]). A table it cannot reconcile (a changed key type, an indexed field
    /// whose stored values no longer decode, a new unique index over shared values) is left
    /// as it was and refused alone: see [`Kvs::refused`].
    pub fn open(url: &str) -> Result<Kvs> {
        Kvs::open_with(Config::parse(url)?)
    }

    /// [`Kvs::open`] with a parsed (and perhaps adjusted) configuration, for programs that set
    /// the schemas or durability in code rather than in the URL:
    ///
    /// ```
    /// let mut config = kvs_core::Config::parse("mem:")?;
    /// config.schemas = Some(vec!["billing".to_owned()]);
    /// # let _ = &config;
    /// # Ok::<(), kvs_core::Error>(())
    /// ```
    pub fn open_with(config: Config) -> Result<Kvs> {
        let tables = select_tables(&config)?;
        let backend = catalog::open_checked(&config, false)?;
        Kvs::attach(backend, config, tables)
    }

    /// Opens kvs on a backend built in code rather than named by a URL: an engine wrapped to
    /// inject faults or count I/O, or one configured beyond what a URL can say.
    ///
    /// `config` supplies what kvs itself reads from a URL: the URL shown in messages and the
    /// `schemas` list. Its `durability`, scheme and location are not used: the backend was
    /// built with its own. Open then reconciles the catalog as [`Kvs::open`] does. The redb
    /// backend's `Redb::with_storage` shows it at work.
    pub fn with_backend(backend: Box<dyn Backend>, config: Config) -> Result<Kvs> {
        let tables = select_tables(&config)?;
        Kvs::attach(backend, config, tables)
    }

    /// Reconciles the catalog of `backend` with `tables` and wraps it.
    fn attach(
        backend: Box<dyn Backend>,
        config: Config,
        tables: Vec<&'static TableMeta>,
    ) -> Result<Kvs> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let location = backend.info().location;
        let mut has_header = false;
        let mut format = catalog::FORMAT;
        let mut differing = Vec::new();
        let mut feeds_exist = false;
        backend.read(&mut |r| {
            let header = catalog::read_header(r, &location)?;
            has_header = header.is_some();
            format = header.map_or(catalog::FORMAT, |h| h.format);
            if config.read_only && !has_header {
                return Err(Error::NotKvs {
                    location: location.clone(),
                    reason: "it is empty: no kvs header (a read-only open does not create one)"
                        .to_owned(),
                });
            }
            differing = if config.read_only {
                catalog::unreadable(r, &tables)?
            } else {
                catalog::differing(r, &tables)?
            };
            feeds_exist = r.tables()?.iter().any(|t| t == WRITER_TABLE);
            Ok(())
        })?;
        let current = has_header && format == catalog::FORMAT && differing.is_empty();
        let mut refused = Vec::new();
        if config.read_only {
            // A read-only open cannot reconcile: the tables whose entries differ are refused,
            // and the rest open.
            refused = differing
                .iter()
                .map(|meta| Refusal {
                    table: meta.name.to_owned(),
                    reason: format!(
                        "its stored catalog entry differs from {} (a new table, index or field), and a read-only open cannot bring it in line: open the database read-write once",
                        meta.rust_type
                    ),
                })
                .collect();
        } else if !current {
            retry(|| {
                backend.write(&mut |w| {
                    refused = catalog::reconcile(w, &location, &tables)?;
                    Ok(())
                })
            })?;
        }
        let streams = config
            .schemas
            .as_ref()
            .is_none_or(|schemas| schemas.iter().any(|s| s == STREAM_SCHEMA));
        Ok(Kvs {
            session: Session::attach(backend),
            config,
            tables,
            refused,
            streams,
            feeds_exist: AtomicBool::new(feeds_exist),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            counters: Counters::default(),
            lane: Lane::default(),
        })
    }

    /// Opens the database that `KVS_URL` names, or [`DEFAULT_URL`] (`redb:kvs.redb`) when it is
    /// not set.
    pub fn from_env() -> Result<Kvs> {
        match std::env::var(KVS_URL) {
            Ok(url) => Kvs::open(&url),
            Err(std::env::VarError::NotPresent) => Kvs::open(DEFAULT_URL),
            Err(std::env::VarError::NotUnicode(raw)) => Err(Error::Url {
                url: raw.to_string_lossy().into_owned(),
                reason: format!("{KVS_URL} is not valid UTF-8"),
            }),
        }
    }

    /// The URL this database was opened with.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// The tables that open could not bring in line with their Rust types (a changed key
    /// type, a record that no longer decodes as a new index is built from it, a new unique
    /// index over values held twice), each as the [`Error::Schema`] that every call on it
    /// returns. The rest of the database is open; these tables were left as they were.
    /// docs/SCHEMA.md says how to migrate them.
    pub fn refused(&self) -> Vec<Error> {
        self.refused
            .iter()
            .map(|r| Error::schema(&r.table, &r.reason))
            .collect()
    }

    /// The open tables (Erlang `kvs:dir/0`): the record tables sorted by name, then, when the
    /// `kvs_stream` schema is open (it is unless a URL's `schemas` list leaves it out), the
    /// stream tables `#writer` and `#reader`.
    pub fn dir(&self) -> Result<Vec<TableInfo>> {
        let mut dir: Vec<TableInfo> = self.tables.iter().map(|m| CatalogEntry::of(m)).collect();
        if self.streams {
            dir.extend(report::stream_entries());
        }
        Ok(dir)
    }

    /// The kvs version and the backend's (Erlang `kvs:ver/0`).
    pub fn ver(&self) -> Version {
        Version {
            kvs: env!("CARGO_PKG_VERSION"),
            format: catalog::FORMAT,
            backend: self.session.info(),
        }
    }

    /// A per-table report: name, storage, type, size and element count of every record,
    /// index and system table (Erlang `kvs:dump/0`).
    pub fn dump(&self) -> Result<Dump> {
        let entries: Vec<CatalogEntry> = self.tables.iter().map(|m| CatalogEntry::of(m)).collect();
        self.read(|r| report::dump(r, self.session.info(), &entries, self.streams))
    }

    /// Runs `f` on one consistent snapshot.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&dyn ReadTx) -> Result<R>) -> Result<R> {
        self.not_in_transaction()?;
        let mut f = Some(f);
        let mut out = None;
        self.session.backend().read(&mut |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        out.ok_or(Error::Aborted)
    }

    /// Fails unless `T`'s table is open in this database, as `T`.
    pub(crate) fn check<T: Table>(&self) -> Result<()> {
        let meta = &T::META;
        match self.tables.binary_search_by_key(&meta.name, |m| m.name) {
            Ok(i) if self.tables[i].rust_type == meta.rust_type => {
                match self.refused.iter().find(|r| r.table == meta.name) {
                    Some(refusal) => Err(Error::schema(&refusal.table, &refusal.reason)),
                    None => Ok(()),
                }
            }
            Ok(i) => Err(Error::schema(
                meta.name,
                format!(
                    "table is open as {}, not {}",
                    self.tables[i].rust_type, meta.rust_type
                ),
            )),
            Err(_) => Err(Error::schema(
                meta.name,
                format!(
                    "table is not open in {} (left out by its schemas list)",
                    self.config.url
                ),
            )),
        }
    }
}

impl Kvs {
    // The read calls, written once in reads.rs for Kvs, Snapshot and Tx.
    read_calls!();
}
