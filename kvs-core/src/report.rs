//! What `dir`, `ver` and `dump` report, for the typed [`Kvs`](crate::Kvs) and for tools
//! without the Rust types alike: one table description (the catalog entry), one dump.

use std::fmt;

use crate::backend::{BackendInfo, ReadTx};
use crate::catalog::{CatalogEntry, CatalogIndex, CATALOG_TABLE, SEQ_TABLE};
use crate::error::Result;
use crate::key::KeyType;
use crate::stream::{FEED_TABLE, LINK_TABLE, READER_TABLE, STREAM_SCHEMA, WRITER_TABLE};

/// One table, as `dir` lists it: its catalog entry.
pub type TableInfo = CatalogEntry;

/// One index of a [`TableInfo`].
pub type IndexInfo = CatalogIndex;

/// The stream tables as `dir` lists them, after the record tables.
pub fn stream_entries() -> [CatalogEntry; 2] {
    let entry =
        |name: &str, rust_type: &str, key_field: &str, key_type, fields: &[&str]| CatalogEntry {
            name: name.to_owned(),
            schema: STREAM_SCHEMA.to_owned(),
            rust_type: rust_type.to_owned(),
            key_field: key_field.to_owned(),
            key_type,
            fields: fields.iter().map(|&f| f.to_owned()).collect(),
            indexes: Vec::new(),
            columns: Vec::new(),
        };
    [
        entry(
            WRITER_TABLE,
            "kvs::Writer",
            "feed",
            KeyType::String,
            &["feed", "table", "count", "top", "first", "last"],
        ),
        entry(
            READER_TABLE,
            "kvs::Reader",
            "id",
            KeyType::U64,
            &["id", "feed", "table", "pos", "dir"],
        ),
    ]
}

/// The dump of the record tables `entries`, their indexes, the stream tables when `streams`,
/// and kvs's own tables.
pub(crate) fn dump(
    r: &dyn ReadTx,
    backend: BackendInfo,
    entries: &[CatalogEntry],
    streams: bool,
) -> Result<Dump> {
    let storage = backend.storage;
    let mut rows = Vec::new();
    let mut row = |name: &str, kind: &'static str| -> Result<()> {
        rows.push(DumpRow {
            name: name.to_owned(),
            storage,
            kind,
            bytes: r.stored_bytes(name)?,
            elements: r.len(name)?,
        });
        Ok(())
    };
    for entry in entries {
        row(&entry.name, "set")?;
        for ix in &entry.indexes {
            row(&ix.table, if ix.unique { "unique" } else { "bag" })?;
        }
    }
    if streams {
        for table in [WRITER_TABLE, READER_TABLE, FEED_TABLE, LINK_TABLE] {
            row(table, "set")?;
        }
    }
    row(SEQ_TABLE, "set")?;
    row(CATALOG_TABLE, "set")?;
    Ok(Dump { backend, rows })
}

impl fmt::Display for CatalogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (key {}: {}",
            self.name, self.key_field, self.key_type
        )?;
        for ix in &self.indexes {
            let unique = if ix.unique { "unique " } else { "" };
            write!(f, ", {unique}index {}: {}", ix.field, ix.value_type)?;
        }
        f.write_str(")")
    }
}

/// What [`Kvs::ver`](crate::Kvs::ver) reports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Version {
    /// The kvs version.
    pub kvs: &'static str,
    /// The on-disk format version.
    pub format: u32,
    /// The backend.
    pub backend: BackendInfo,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kvs {} (format {}) on {} {}",
            self.kvs, self.format, self.backend.engine, self.backend.version
        )
    }
}

/// A size in MiB with two decimals, or `-` where the engine keeps none.
fn megabytes(bytes: Option<u64>) -> String {
    #[allow(clippy::cast_precision_loss)] // a report, two decimals
    bytes.map_or_else(
        || "-".to_owned(),
        |bytes| format!("{:.2}", bytes as f64 / (1024.0 * 1024.0)),
    )
}

/// What [`Kvs::dump`](crate::Kvs::dump) reports: one row per table.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Dump {
    /// The backend.
    pub backend: BackendInfo,
    /// One row per table.
    pub rows: Vec<DumpRow>,
}

/// One table in a [`Dump`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DumpRow {
    /// The table name.
    pub name: String,
    /// Where it lives (`file`, `memory`).
    pub storage: &'static str,
    /// `set` (one value per key), `unique` (a unique index) or `bag` (a non-unique index).
    pub kind: &'static str,
    /// The bytes it occupies, as the engine reports them; `None` where the engine keeps no
    /// size per table (etcd).
    pub bytes: Option<u64>,
    /// The number of entries.
    pub elements: u64,
}

impl DumpRow {
    /// The size in MiB with two decimals, as `dump` shows it, or `-` where the engine keeps
    /// no size per table.
    pub fn megabytes(&self) -> String {
        megabytes(self.bytes)
    }
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        writeln!(
            f,
            "{:<width$}  {:<7}  {:<6}  {:>10}  {:>10}",
            "NAME", "STORAGE", "TYPE", "MEMORY(MB)", "ELEMENTS"
        )?;
        for row in &self.rows {
            writeln!(
                f,
                "{:<width$}  {:<7}  {:<6}  {:>10}  {:>10}",
                row.name,
                row.storage,
                row.kind,
                megabytes(row.bytes),
                row.elements
            )?;
        }
        write!(
            f,
            "{} {} at {}",
            self.backend.engine, self.backend.version, self.backend.location
        )
    }
}
