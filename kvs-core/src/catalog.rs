//! The catalog stored in every kvs database, and its reconciliation with the tables linked into
//! the program at open. Reading it is public; what writes it (reconciling, creating a table,
//! rebuilding an index) is the crate's own, reached through [`Kvs::open`](crate::Kvs::open)
//! and [`untyped::Edit`](crate::untyped::Edit).

use serde::{Deserialize, Serialize};

use crate::backend::{open_backend, Backend, Config, ReadTx, WriteTx};
use crate::error::{Error, Result};
use crate::field::FieldKind;
use crate::key::KeyType;
use crate::table::TableMeta;

/// The table holding the database's identity (`kvs` → [`Header`]).
pub const META_TABLE: &str = "#meta";
/// The table holding one [`CatalogEntry`] per record table, keyed by table name.
pub const CATALOG_TABLE: &str = "#catalog";
/// The table of counters: name → big-endian `u64`.
pub const SEQ_TABLE: &str = "#seq";
/// The key of the header in [`META_TABLE`].
pub const HEADER_KEY: &[u8] = b"kvs";
/// The on-disk format this kvs writes: 2 stores a record's fields by position (docs/FORMAT.md).
/// A database of format 1 (fields by name) is upgraded when it is first opened read-write.
pub const FORMAT: u32 = 2;

/// The database's identity, stored under [`HEADER_KEY`] in [`META_TABLE`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always `"kvs"`.
    pub magic: String,
    /// The format version ([`FORMAT`]).
    pub format: u32,
    /// The kvs version that created the database.
    pub created_by: String,
}

/// What the database knows of one record table: enough to read it without the Rust type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The table name.
    pub name: String,
    /// The schema it belongs to.
    pub schema: String,
    /// The Rust type that last opened it.
    pub rust_type: String,
    /// The key field.
    pub key_field: String,
    /// The key's type, which decodes the stored keys.
    pub key_type: KeyType,
    /// The names of the stored fields, in declaration order, as they are stored (serde's
    /// names).
    pub fields: Vec<String>,
    /// The indexes.
    pub indexes: Vec<CatalogIndex>,
    /// The stored fields with their kinds (empty in entries written before kvs 0.1.1, which
    /// recorded names only).
    #[serde(default)]
    pub columns: Vec<CatalogColumn>,
}

/// One stored field in a [`CatalogEntry`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogColumn {
    /// The name it is stored under.
    pub name: String,
    /// Its stored form.
    pub kind: FieldKind,
    /// Whether a record may lack it (an `Option`, or a field with serde `default`).
    pub optional: bool,
    /// Whether it has a serde `default`: a record stored before the field was added reads
    /// it as its default (absent from entries written before format 2).
    #[serde(default)]
    pub defaulted: bool,
}

/// One index in a [`CatalogEntry`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogIndex {
    /// The indexed field.
    pub field: String,
    /// The index table.
    pub table: String,
    /// Whether values are unique.
    pub unique: bool,
    /// The indexed value's type.
    pub value_type: KeyType,
}

impl CatalogEntry {
    /// The entry that describes `meta`.
    pub fn of(meta: &TableMeta) -> CatalogEntry {
        CatalogEntry {
            name: meta.name.to_owned(),
            schema: meta.schema.to_owned(),
            rust_type: meta.rust_type.to_owned(),
            key_field: meta.key_field.to_owned(),
            key_type: (meta.key_type)(),
            fields: meta.fields.iter().map(|f| (*f).to_owned()).collect(),
            columns: meta
                .columns
                .iter()
                .map(|c| {
                    let kind = (c.kind)();
                    CatalogColumn {
                        name: c.name.to_owned(),
                        optional: c.defaulted || kind.is_option(),
                        defaulted: c.defaulted,
                        kind,
                    }
                })
                .collect(),
            indexes: meta
                .indexes
                .iter()
                .map(|ix| CatalogIndex {
                    field: ix.field.to_owned(),
                    table: ix.table.to_owned(),
                    unique: ix.unique,
                    value_type: (ix.value_type)(),
                })
                .collect(),
        }
    }
}

impl CatalogEntry {
    /// The names of the stored fields, in stored order: the position of each in a record.
    pub fn field_names(&self) -> Vec<&str> {
        if self.columns.is_empty() {
            self.fields.iter().map(String::as_str).collect()
        } else {
            self.columns.iter().map(|c| c.name.as_str()).collect()
        }
    }

    /// Whether this stored entry describes the table as `want` does for every read and write:
    /// equal but perhaps for what no read or write looks at (the Rust type and schema that
    /// last opened it, and the `defaulted` flags, which only the checks of a later change of
    /// fields read, and which entries of format 1 lack).
    pub fn reads_as(&self, want: &CatalogEntry) -> bool {
        let mut masked = self.clone();
        masked.rust_type.clone_from(&want.rust_type);
        masked.schema.clone_from(&want.schema);
        for (have, want) in masked.columns.iter_mut().zip(&want.columns) {
            // A default added is harmless; one removed is not (records may lack the field).
            have.defaulted |= want.defaulted;
        }
        masked == *want
    }

    /// The stored fields as the positional encoding needs them.
    pub(crate) fn row_columns(&self) -> Vec<crate::row::Column<'_>> {
        if self.columns.is_empty() {
            self.fields
                .iter()
                .map(|name| crate::row::Column {
                    name,
                    nullable: false,
                    defaulted: false,
                })
                .collect()
        } else {
            self.columns
                .iter()
                .map(|c| crate::row::Column {
                    name: &c.name,
                    nullable: c.kind.is_option(),
                    // Entries of format 1 lack `defaulted`: `optional` then says it for any
                    // field that is not an Option.
                    defaulted: c.defaulted || (c.optional && !c.kind.is_option()),
                })
                .collect()
        }
    }
}

/// Reads the catalog entry of `table`, if any.
pub fn read_entry(r: &dyn ReadTx, table: &str) -> Result<Option<CatalogEntry>> {
    r.get(CATALOG_TABLE, table.as_bytes())?
        .map(|bytes| decode_entry(table, &bytes))
        .transpose()
}

fn decode_entry(table: &str, bytes: &[u8]) -> Result<CatalogEntry> {
    rmp_serde::from_slice(bytes)
        .map_err(|e| Error::schema(table, format!("unreadable catalog entry: {e}")))
}

/// Every catalog entry, by table name.
pub fn entries(r: &dyn ReadTx) -> Result<Vec<CatalogEntry>> {
    let mut raw = Vec::new();
    let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
    r.scan(CATALOG_TABLE, all, false, &mut |name, bytes| {
        raw.push((String::from_utf8_lossy(name).into_owned(), bytes.to_vec()));
        Ok(true)
    })?;
    raw.iter()
        .map(|(name, bytes)| decode_entry(name, bytes))
        .collect()
}

/// Makes `entry`'s table exist, for tools that create tables without the Rust type (the
/// console's import): writes the header of an empty store, and, when the catalog has no entry
/// for the table, the entry and its tables. Returns the entry in effect: the stored one when
/// there is one, which must then have the same key type.
pub(crate) fn ensure_table(
    w: &mut dyn WriteTx,
    location: &str,
    entry: &CatalogEntry,
) -> Result<CatalogEntry> {
    if entry.name.is_empty() || entry.name.starts_with('#') {
        return Err(Error::schema(&entry.name, "not a record table name"));
    }
    if read_header(&*w, location)?.is_none() {
        write_header(w)?;
    }
    if let Some(have) = read_entry(&*w, &entry.name)? {
        if have.key_type != entry.key_type {
            return Err(Error::schema(
                &entry.name,
                format!("key type is {} here, not {}", have.key_type, entry.key_type),
            ));
        }
        return Ok(have);
    }
    w.create_table(CATALOG_TABLE)?;
    w.create_table(SEQ_TABLE)?;
    w.create_table(&entry.name)?;
    for ix in &entry.indexes {
        if ix.table != format!("{}#{}", entry.name, ix.field) {
            return Err(Error::schema(
                &entry.name,
                format!("index table {:?} is not named NAME#FIELD", ix.table),
            ));
        }
        w.create_table(&ix.table)?;
    }
    w.insert(
        CATALOG_TABLE,
        entry.name.as_bytes(),
        &encode_internal(entry, &entry.name)?,
    )?;
    Ok(entry.clone())
}

fn write_header(w: &mut dyn WriteTx) -> Result<()> {
    write_header_value(
        w,
        &Header {
            magic: "kvs".to_owned(),
            format: FORMAT,
            created_by: format!("kvs {}", env!("CARGO_PKG_VERSION")),
        },
    )
}

/// Stores `header` as the database's header.
pub(crate) fn write_header_value(w: &mut dyn WriteTx, header: &Header) -> Result<()> {
    w.put(
        META_TABLE,
        HEADER_KEY,
        &encode_internal(header, META_TABLE)?,
    )
}

/// Upgrades a database of an older format to [`FORMAT`] (see `upgrade.rs`), rewriting the
/// tables of `tables` through their types, and writes the header of an empty store. Returns
/// the tables rewritten through their types.
pub(crate) fn bring_to_format(
    w: &mut dyn WriteTx,
    location: &str,
    tables: &[&'static TableMeta],
) -> Result<Vec<&'static str>> {
    match read_header(&*w, location)? {
        None => {
            write_header(w)?;
            Ok(Vec::new())
        }
        Some(header) if header.format < FORMAT => crate::upgrade::upgrade(w, &header, tables),
        Some(_) => Ok(Vec::new()),
    }
}

/// Checks that the storage holds a kvs database (or nothing) and reads its header.
///
/// `Ok(None)` is an empty store that open will initialize.
pub fn read_header(r: &dyn ReadTx, location: &str) -> Result<Option<Header>> {
    let not_kvs = |reason: String| Error::NotKvs {
        location: location.to_owned(),
        reason,
    };
    // Tables are listed before the header is read: in a write transaction, reading a table
    // may create it.
    let tables = r.tables()?;
    if !tables.iter().any(|t| t == META_TABLE) {
        return if tables.is_empty() {
            Ok(None)
        } else {
            Err(not_kvs(format!(
                "it holds tables ({}) but no kvs header",
                tables.join(", ")
            )))
        };
    }
    match r.get(META_TABLE, HEADER_KEY)? {
        None => Err(not_kvs("its kvs header is missing".to_owned())),
        Some(bytes) => {
            let header: Header = rmp_serde::from_slice(&bytes)
                .map_err(|e| not_kvs(format!("unreadable kvs header: {e}")))?;
            if header.magic != "kvs" {
                return Err(not_kvs(format!("header magic is {:?}", header.magic)));
            }
            if header.format > FORMAT {
                return Err(Error::schema(
                    META_TABLE,
                    format!(
                        "the database has format {}, newer than the {FORMAT} this kvs {} reads",
                        header.format,
                        env!("CARGO_PKG_VERSION")
                    ),
                ));
            }
            Ok(Some(header))
        }
    }
}

/// Opens the backend `config` names, having first decided, read-only, that the storage holds a
/// kvs database or nothing: the backend reports what it holds, kvs-core decides, and a foreign
/// store is refused ([`Error::NotKvs`]) before a read-write open could write to it (redb
/// repairs a file at open). A store that does not exist is created unless `must_exist`
/// ([`Error::Missing`] then); one that needs crash recovery is left to the read-write open,
/// after which open checks its header again.
pub(crate) fn open_checked(config: &Config, must_exist: bool) -> Result<Box<dyn Backend>> {
    if !config.read_only {
        let mut probe = config.clone();
        probe.read_only = true;
        match open_backend(&probe) {
            Ok(backend) => {
                let location = backend.info().location;
                backend.read(&mut |r| read_header(r, &location).map(drop))?;
            }
            Err(Error::Missing { .. }) if !must_exist => {}
            Err(Error::NeedsRecovery { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    open_backend(config)
}

/// Whether the database already matches `tables` exactly, so that open need not write.
pub fn is_current(r: &dyn ReadTx, location: &str, tables: &[&'static TableMeta]) -> Result<bool> {
    Ok(
        read_header(r, location)?.is_some_and(|h| h.format == FORMAT)
            && differing(r, tables)?.is_empty(),
    )
}

/// The tables of `tables` whose stored catalog entry is missing or differs from theirs.
pub fn differing(r: &dyn ReadTx, tables: &[&'static TableMeta]) -> Result<Vec<&'static TableMeta>> {
    not_described(r, tables, |have, want| have == want)
}

/// The tables of `tables` that the stored catalog does not describe as they would be read
/// and written ([`CatalogEntry::reads_as`]): what a read-only open, which cannot reconcile,
/// must refuse.
pub fn unreadable(
    r: &dyn ReadTx,
    tables: &[&'static TableMeta],
) -> Result<Vec<&'static TableMeta>> {
    not_described(r, tables, CatalogEntry::reads_as)
}

/// The tables of `tables` with no stored entry, or one that `fits` refuses beside theirs.
fn not_described(
    r: &dyn ReadTx,
    tables: &[&'static TableMeta],
    fits: impl Fn(&CatalogEntry, &CatalogEntry) -> bool,
) -> Result<Vec<&'static TableMeta>> {
    let mut out = Vec::new();
    for &meta in tables {
        let fitting =
            read_entry(r, meta.name)?.is_some_and(|have| fits(&have, &CatalogEntry::of(meta)));
        if !fitting {
            out.push(meta);
        }
    }
    Ok(out)
}

/// A table that open could not bring in line with its Rust type: the rest of the database
/// opened, and every call on this table fails with [`Error::Schema`] and this reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The table.
    pub table: String,
    /// Why, and how to migrate, for people.
    pub reason: String,
}

/// Brings the database in line with `tables`: creates what is new, builds new indexes from the
/// existing records and drops the tables of removed indexes. A table that cannot be
/// reconciled (a changed key type, a record that no longer decodes while a new index is built
/// from it, a new unique index over values held twice) is left exactly as it was and
/// returned as a [`Refusal`]; the other tables are reconciled.
pub(crate) fn reconcile(
    w: &mut dyn WriteTx,
    location: &str,
    tables: &[&'static TableMeta],
) -> Result<Vec<Refusal>> {
    let retyped = bring_to_format(w, location, tables)?;
    w.create_table(CATALOG_TABLE)?;
    w.create_table(SEQ_TABLE)?;
    let mut refused = Vec::new();
    for meta in tables {
        let want = CatalogEntry::of(meta);
        let have = read_entry(&*w, meta.name)?;
        if have.as_ref() == Some(&want) {
            continue;
        }
        let retyped = retyped.contains(&meta.name);
        match reconcile_table(w, meta, &want, have.as_ref(), retyped)? {
            Ok(()) => {}
            Err(reason) => refused.push(Refusal {
                table: meta.name.to_owned(),
                reason,
            }),
        }
    }
    Ok(refused)
}

/// [`reconcile`] for one table whose entry changed: checks and reads everything first, so
/// that a refusal (the inner `Err`) writes nothing. `retyped`: the format upgrade in this
/// transaction rewrote the table's records through its type, so they are laid out as `want`
/// says, whatever `have` says.
fn reconcile_table(
    w: &mut dyn WriteTx,
    meta: &TableMeta,
    want: &CatalogEntry,
    have: Option<&CatalogEntry>,
    retyped: bool,
) -> Result<std::result::Result<(), String>> {
    if let Some(have) = have {
        if have.key_type != want.key_type {
            return Ok(Err(format!(
                "key type changed from {} (stored) to {} ({}): the stored keys cannot be read as the new type, so the table is refused and left as it was; migrate its records to a new table name (docs/SCHEMA.md)",
                have.key_type, want.key_type, meta.rust_type
            )));
        }
        let change = (!retyped)
            .then(|| crate::upgrade::positional_change(have, want))
            .flatten();
        if let Some(change) = change {
            // An empty table has no record to misread: any change of fields is taken.
            if w.len(meta.name)? > 0 {
                return Ok(Err(format!(
                    "{change}. Records store their fields by position, and {} would misread the stored ones, so the table is refused and left as it was; migrate its records (docs/SCHEMA.md)",
                    meta.rust_type
                )));
            }
        }
    }
    let mut built = Vec::new();
    for (i, ix) in want.indexes.iter().enumerate() {
        if have.is_some_and(|have| have.indexes.iter().any(|old| old == ix)) {
            continue;
        }
        let entries = collect_index(
            &*w,
            meta.name,
            ix,
            &(meta.key_type)(),
            &mut |key, record| {
                let mut indexed = Vec::new();
                match (meta.reindex)(record, i, &mut indexed) {
                Ok(has_value) => Ok(Ok(has_value.then_some(indexed))),
                Err(reason) => Ok(Err(format!(
                    "the index on {} was being built at open, and the record with key {} does not decode as {}: {reason}. The record was stored by an earlier version of the type (did the field change type?); the table is refused and left as it was, the rest of the database is open. To migrate, see docs/SCHEMA.md",
                    ix.field,
                    (meta.key_type)().render(key),
                    meta.rust_type
                ))),
            }
            },
        )?;
        match entries {
            Ok(entries) => built.push((ix, entries)),
            Err(reason) => return Ok(Err(reason)),
        }
    }
    w.create_table(meta.name)?;
    if let Some(have) = have {
        for old in &have.indexes {
            if !want.indexes.iter().any(|ix| ix == old) {
                w.drop_table(&old.table)?;
            }
        }
    }
    for (ix, entries) in built {
        write_index(w, ix, entries)?;
    }
    w.insert(
        CATALOG_TABLE,
        meta.name.as_bytes(),
        &encode_internal(want, meta.name)?,
    )?;
    Ok(Ok(()))
}

/// What [`rebuild_index`] asks of each stored record: given its key and bytes, its encoded
/// value for the index (`None` when it is not indexed), or, as the inner `Err`, why the
/// record cannot be indexed.
pub(crate) type IndexValueOf<'a> =
    dyn FnMut(&[u8], &[u8]) -> Result<std::result::Result<Option<Vec<u8>>, String>> + 'a;

/// The entries of index `ix` over the records of `table`, as `(value, key)`, or (inner `Err`)
/// why they cannot be built: a record `value_of` refuses, or, for a unique index, a value held
/// by two records (both keys and the value are named).
fn collect_index(
    r: &dyn ReadTx,
    table: &str,
    ix: &CatalogIndex,
    key_type: &KeyType,
    value_of: &mut IndexValueOf<'_>,
) -> Result<std::result::Result<IndexEntries, String>> {
    let mut entries: IndexEntries = Vec::new();
    let mut problem = None;
    let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
    r.scan(
        table,
        all,
        false,
        &mut |key, record| match value_of(key, record)? {
            Ok(Some(value)) => {
                entries.push((value, key.to_vec()));
                Ok(true)
            }
            Ok(None) => Ok(true),
            Err(reason) => {
                problem = Some(reason);
                Ok(false)
            }
        },
    )?;
    if let Some(problem) = problem {
        return Ok(Err(problem));
    }
    if ix.unique {
        entries.sort();
        if let Some(pair) = entries.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Ok(Err(format!(
                "the unique index on {} cannot be built: the records with keys {} and {} both hold {}; make the values unique (or drop `unique`) first",
                ix.field,
                key_type.render(&pair[0].1),
                key_type.render(&pair[1].1),
                ix.value_type.render(&pair[0].0),
            )));
        }
    }
    Ok(Ok(entries))
}

/// An index's entries as `(value, key)`, before they are written.
type IndexEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// Makes the index table of `ix` hold exactly `entries`, writing only what differs: the
/// entries it holds that are not wanted are deleted, the wanted ones it lacks (or holds with
/// another value) are written. A new index costs one write per entry, and a repair one per
/// wrong entry, rather than a whole table dropped and written again (which on etcd is one
/// operation per entry more, against the cluster's per-transaction limit).
fn write_index(w: &mut dyn WriteTx, ix: &CatalogIndex, entries: IndexEntries) -> Result<()> {
    w.create_table(&ix.table)?;
    let wanted: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = entries
        .into_iter()
        .map(|(value, key)| {
            if ix.unique {
                (value, key)
            } else {
                let mut entry = value;
                entry.extend_from_slice(&key);
                (entry, Vec::new())
            }
        })
        .collect();
    let mut stale = Vec::new();
    let mut held = std::collections::BTreeSet::new();
    let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
    w.scan(&ix.table, all, false, &mut |k, v| {
        match wanted.get(k) {
            Some(want) if want.as_slice() == v => {
                held.insert(k.to_vec());
            }
            _ => stale.push(k.to_vec()),
        }
        Ok(true)
    })?;
    for key in stale {
        w.delete(&ix.table, &key)?;
    }
    for (key, value) in &wanted {
        if !held.contains(key) {
            w.put(&ix.table, key, value)?;
        }
    }
    Ok(())
}

/// Empties the index table of `ix` and fills it again from the records of `table`:
/// `value_of(key, record)` gives a stored record's encoded value for the index. A record it
/// refuses, or a value held twice in a unique index, is [`Error::Schema`] naming the record,
/// and nothing is written. Tools without the Rust types (the console's `check --repair`)
/// rebuild indexes with it.
pub(crate) fn rebuild_index(
    w: &mut dyn WriteTx,
    table: &str,
    key_type: &KeyType,
    ix: &CatalogIndex,
    value_of: &mut IndexValueOf<'_>,
) -> Result<()> {
    match collect_index(&*w, table, ix, key_type, value_of)? {
        Ok(entries) => write_index(w, ix, entries),
        Err(reason) => Err(Error::schema(table, reason)),
    }
}

fn encode_internal<T: Serialize>(value: &T, table: &str) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|e| Error::Encode {
        table: table.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/FORMAT.md promises readers without the Rust types these exact forms.
    #[test]
    fn key_types_serialize_as_documented() {
        let unit = rmp_serde::to_vec_named(&KeyType::U64).unwrap();
        assert_eq!(unit, b"\xa3U64");
        let tuple = rmp_serde::to_vec_named(&KeyType::Tuple(vec![KeyType::Bool])).unwrap();
        assert_eq!(tuple, b"\x81\xa5Tuple\x91\xa4Bool");
    }
}
