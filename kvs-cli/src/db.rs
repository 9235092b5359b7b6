//! A kvs database opened without its Rust types: the catalog says what the tables are, and
//! records are read as the self-describing `MessagePack` they are stored as.
//!
//! The writes here (delete, import, repair) keep the same invariants as the typed API: a
//! record and its index entries change in one transaction, unique indexes are enforced, and a
//! deleted record is unlinked from every feed.

use std::collections::BTreeSet;
use std::ops::Bound;

use kvs::catalog::{self, CatalogEntry, CatalogIndex, SEQ_TABLE};
use kvs::{Backend, Config, KeyType, ReadTx, WriteTx};
use serde_json::Value;

use crate::value::{check_kind, decode_key, encode_json};
use crate::Fail;

/// How a command opens the database.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-only: never creates or modifies the file.
    Read,
    /// Read and write an existing kvs database.
    Write,
    /// Read and write, creating the database if there is none.
    Create,
}

/// An open database.
pub struct Db {
    backend: Box<dyn Backend>,
    location: String,
}

impl Db {
    /// Opens `url`; a read-only open is checked to be a kvs database, and so is a write open
    /// of an existing one (it is first opened read-only, so that nothing is created or written
    /// before that check).
    pub fn open(url: &str, access: Access) -> Result<Db, Fail> {
        let mut config = Config::parse(url)?;
        if access == Access::Write {
            // Read-only first, so that nothing is created or written before the file is known
            // to be a kvs database; a file that needs crash recovery can only be checked once
            // a read-write open has recovered it (the header check below then refuses a
            // foreign one).
            let mut probe = config.clone();
            probe.read_only = true;
            match Db::open_config(&probe, true) {
                Ok(_) | Err(OpenFailure::Kvs(kvs::Error::NeedsRecovery { .. })) => {}
                Err(OpenFailure::Kvs(kvs::Error::Missing { location })) => {
                    return Err(Fail::new(format!(
                        "{location} does not exist (`kvs import --create` makes a new database)"
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        config.read_only = access == Access::Read;
        let db = Db::open_config(&config, access != Access::Create).map_err(Fail::from)?;
        if access == Access::Create {
            // A new store gets its header (and empty catalog) before anything else is read.
            db.write(|w| {
                if catalog::read_header(&*w, &db.location)?.is_none() {
                    catalog::reconcile(w, &db.location, &[])?;
                }
                Ok(())
            })?;
        }
        Ok(db)
    }

    fn open_config(config: &Config, must_exist: bool) -> Result<Db, OpenFailure> {
        let backend = kvs::open_backend(config).map_err(OpenFailure::Kvs)?;
        let location = backend.info().location;
        let db = Db { backend, location };
        let header = db
            .read(|r| Ok(catalog::read_header(r, &db.location)?))
            .map_err(OpenFailure::Console)?;
        if header.is_none() && must_exist {
            return Err(OpenFailure::Kvs(kvs::Error::NotKvs {
                location: db.location.clone(),
                reason: "it is empty: no kvs header".to_owned(),
            }));
        }
        Ok(db)
    }

    /// The backend.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// Where the data lives.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs `f` on one consistent snapshot.
    pub fn read<R>(&self, f: impl FnOnce(&dyn ReadTx) -> Result<R, Fail>) -> Result<R, Fail> {
        let mut f = Some(f);
        let mut out = None;
        let done = self.backend.read(&mut |r| {
            if let Some(f) = f.take() {
                let result = f(r);
                let failed = result.is_err();
                out = Some(result);
                if failed {
                    return Err(aborted());
                }
            }
            Ok(())
        });
        finish(done, out)
    }

    /// Runs `f` in one write transaction, committed if it returns `Ok`.
    pub fn write<R>(&self, f: impl FnOnce(&mut dyn WriteTx) -> Result<R, Fail>) -> Result<R, Fail> {
        let mut f = Some(f);
        let mut out = None;
        let done = self.backend.write(&mut |w| {
            let f = f.take().ok_or_else(aborted)?;
            let result = f(w);
            let failed = result.is_err();
            out = Some(result);
            if failed {
                Err(aborted())
            } else {
                Ok(())
            }
        });
        finish(done, out)
    }
}

/// Why an open failed: kvs's typed error (which the caller may branch on), or the console's.
enum OpenFailure {
    Kvs(kvs::Error),
    Console(Fail),
}

impl From<OpenFailure> for Fail {
    fn from(e: OpenFailure) -> Fail {
        match e {
            OpenFailure::Kvs(e) => e.into(),
            OpenFailure::Console(e) => e,
        }
    }
}

fn aborted() -> kvs::Error {
    kvs::Error::Aborted
}

fn finish<R>(done: kvs::Result<()>, out: Option<Result<R, Fail>>) -> Result<R, Fail> {
    match (done, out) {
        (_, Some(Err(e))) => Err(e),
        (Err(e), _) => Err(e.into()),
        (Ok(()), Some(Ok(value))) => Ok(value),
        (Ok(()), None) => Err(Fail::new("the backend did not run the transaction")),
    }
}

/// The catalog entry of `table`, or an error naming the tables there are.
pub fn entry(r: &dyn ReadTx, table: &str) -> Result<CatalogEntry, Fail> {
    if let Some(entry) = catalog::read_entry(r, table)? {
        return Ok(entry);
    }
    let names: Vec<String> = catalog::entries(r)?.into_iter().map(|e| e.name).collect();
    Err(Fail::from(kvs::Error::schema(
        table,
        format!(
            "no such table (tables: {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        ),
    )))
}

/// The index of `entry` on `field`, or an error naming the indexed fields.
pub fn index_of<'e>(entry: &'e CatalogEntry, field: &str) -> Result<&'e CatalogIndex, Fail> {
    entry
        .indexes
        .iter()
        .find(|ix| ix.field == field)
        .ok_or_else(|| {
            let fields: Vec<&str> = entry.indexes.iter().map(|ix| ix.field.as_str()).collect();
            let why = if entry.fields.iter().any(|f| f == field) {
                "is not indexed"
            } else {
                "is not a field"
            };
            Fail::from(kvs::Error::schema(
                &entry.name,
                format!(
                    "{field} {why} (indexed fields: {})",
                    if fields.is_empty() {
                        "none".to_owned()
                    } else {
                        fields.join(", ")
                    }
                ),
            ))
        })
}

/// A stored record as JSON.
pub fn record_json(entry: &CatalogEntry, key: &[u8], bytes: &[u8]) -> Result<Value, Fail> {
    rmp_serde::from_slice(bytes).map_err(|e| {
        Fail::from(kvs::Error::Decode {
            table: entry.name.clone(),
            key: entry.key_type.render(key),
            reason: e.to_string(),
        })
    })
}

/// The record with `key`.
pub fn get(r: &dyn ReadTx, entry: &CatalogEntry, key: &[u8]) -> Result<Option<Value>, Fail> {
    r.get(&entry.name, key)?
        .map(|bytes| record_json(entry, key, &bytes))
        .transpose()
}

/// Up to `limit` records from `from` (inclusive), in key order.
pub fn scan(
    r: &dyn ReadTx,
    entry: &CatalogEntry,
    from: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Value>, Fail> {
    let mut rows = Vec::new();
    let start = from.map_or(Bound::Unbounded, Bound::Included);
    let mut failed = None;
    r.scan(
        &entry.name,
        (start, Bound::Unbounded),
        false,
        &mut |key, bytes| {
            if rows.len() >= limit {
                return Ok(false);
            }
            match record_json(entry, key, bytes) {
                Ok(json) => rows.push(json),
                Err(e) => {
                    failed = Some(e);
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    failed.map_or(Ok(rows), Err)
}

/// The keys of the records whose `ix` value is `value` (encoded), in key order.
pub fn index_keys(r: &dyn ReadTx, ix: &CatalogIndex, value: &[u8]) -> Result<Vec<Vec<u8>>, Fail> {
    let mut keys = Vec::new();
    kvs::raw::index_keys(r, &ix.table, ix.unique, value, &mut |key| {
        keys.push(key.to_vec());
        Ok(())
    })?;
    Ok(keys)
}

/// The encoded key of a record given as JSON.
pub fn record_key(entry: &CatalogEntry, record: &Value) -> Result<Vec<u8>, Fail> {
    let field = record.get(&entry.key_field).ok_or_else(|| {
        Fail::new(format!(
            "a record of {} without its key field {}",
            entry.name, entry.key_field
        ))
    })?;
    encode_json(field, &entry.key_type).ok_or_else(|| {
        Fail::new(format!(
            "key field {}.{} is {field}, not a {}",
            entry.name, entry.key_field, entry.key_type
        ))
    })
}

/// The encoded value of each index of a record (`None` for a null or missing field).
pub fn index_values(entry: &CatalogEntry, record: &Value) -> Result<Vec<Option<Vec<u8>>>, Fail> {
    entry
        .indexes
        .iter()
        .map(|ix| match record.get(&ix.field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => encode_json(value, &ix.value_type).map(Some).ok_or_else(|| {
                Fail::new(format!(
                    "indexed field {}.{} is {value}, not a {}",
                    entry.name, ix.field, ix.value_type
                ))
            }),
        })
        .collect()
}

fn entry_key(value: &[u8], key: &[u8]) -> Vec<u8> {
    let mut out = value.to_vec();
    out.extend_from_slice(key);
    out
}

/// The index values of a stored record of `entry` (the one a write replaces or deletes).
fn stored_index_values(
    entry: &CatalogEntry,
    key: &[u8],
    bytes: &[u8],
) -> kvs::Result<kvs::raw::IndexValues> {
    let decode_error = |reason: String| kvs::Error::Decode {
        table: entry.name.clone(),
        key: entry.key_type.render(key),
        reason,
    };
    let record: Value = rmp_serde::from_slice(bytes).map_err(|e| decode_error(e.to_string()))?;
    index_values(entry, &record).map_err(|e| decode_error(e.to_string()))
}

/// Why `record` is not one the application can read, as far as the catalog knows its fields:
/// a field missing that the type requires, or a value of another kind than the field's.
/// With `strict`, a field the catalog does not list is refused too (the application would
/// drop it on its next write). Entries written before kvs recorded field kinds are checked
/// for the key and indexes only.
pub fn check_fields(entry: &CatalogEntry, record: &Value, strict: bool) -> Result<(), String> {
    let Some(map) = record.as_object() else {
        return Err(format!("a record of {} must be a JSON object", entry.name));
    };
    if entry.columns.is_empty() {
        return Ok(());
    }
    for column in &entry.columns {
        match map.get(&column.name) {
            None if column.optional => {}
            None => return Err(format!("field {}.{} is missing", entry.name, column.name)),
            Some(value) => check_kind(value, &column.kind)
                .map_err(|why| format!("field {}.{}: {why}", entry.name, column.name))?,
        }
    }
    if strict {
        if let Some(unknown) = map
            .keys()
            .find(|k| !entry.columns.iter().any(|c| &c.name == *k))
        {
            return Err(format!(
                "{unknown} is not a field of {} (fields: {})",
                entry.name,
                entry.fields.join(", ")
            ));
        }
    }
    Ok(())
}

/// Stores a record given as JSON, keeping its indexes exact and unique ones unique (the same
/// write path as `Kvs::put`). A record the application could not read (see
/// [`check_fields`]) is refused.
pub fn put(w: &mut dyn WriteTx, entry: &CatalogEntry, record: &Value) -> Result<(), Fail> {
    check_fields(entry, record, true)
        .map_err(|why| Fail::new(format!("a record of {}: {why}", entry.name)))?;
    let key = record_key(entry, record)?;
    let new = index_values(entry, record)?;
    let bytes = rmp_serde::to_vec_named(record).map_err(|e| {
        Fail::from(kvs::Error::Encode {
            table: entry.name.clone(),
            reason: e.to_string(),
        })
    })?;
    kvs::raw::put(w, entry, &key, &bytes, &new, &|old| {
        stored_index_values(entry, &key, old)
    })?;
    Ok(())
}

/// Deletes the record with `key`, its index entries and its feed links (the same write path
/// as `Kvs::delete`).
pub fn delete(w: &mut dyn WriteTx, entry: &CatalogEntry, key: &[u8]) -> Result<bool, Fail> {
    Ok(kvs::raw::delete(w, entry, key, &|old| {
        stored_index_values(entry, key, old)
    })?)
}

/// Every counter, by name.
pub fn seqs(r: &dyn ReadTx) -> Result<Vec<(String, u64)>, Fail> {
    let mut counters = Vec::new();
    r.scan(
        SEQ_TABLE,
        (Bound::Unbounded, Bound::Unbounded),
        false,
        &mut |name, _| {
            counters.push(String::from_utf8_lossy(name).into_owned());
            Ok(true)
        },
    )?;
    // Each value through read_seq, the one place that checks a counter's bytes.
    counters
        .into_iter()
        .map(|name| {
            let value = kvs::raw::read_seq(r, &name)?;
            Ok((name, value))
        })
        .collect()
}

/// Raises counter `name` to at least `value` (a restore never moves a counter back).
pub fn raise_seq(w: &mut dyn WriteTx, name: &str, value: u64) -> Result<(), Fail> {
    let current = kvs::raw::read_seq(&*w, name)?;
    if current < value {
        kvs::raw::seq(w, name, value - current)?;
    }
    Ok(())
}

/// What `check` finds in one table.
#[derive(Default)]
pub struct TableCheck {
    /// Records scanned.
    pub records: u64,
    /// Problems, for people.
    pub problems: Vec<String>,
    /// Whether the problems are in indexes (which a repair rebuilds).
    pub index_problems: bool,
}

/// Checks every record of `entry` (its key, that it decodes, that its key field matches) and
/// every index entry against the records.
pub fn check_table(r: &dyn ReadTx, entry: &CatalogEntry) -> Result<TableCheck, Fail> {
    let mut report = TableCheck::default();
    let mut expected: Vec<BTreeSet<Vec<u8>>> = vec![BTreeSet::new(); entry.indexes.len()];
    let mut unique_values: Vec<BTreeSet<Vec<u8>>> = vec![BTreeSet::new(); entry.indexes.len()];
    let mut problems = Vec::new();
    r.scan(
        &entry.name,
        (Bound::Unbounded, Bound::Unbounded),
        false,
        &mut |key, bytes| {
            report.records += 1;
            let shown = entry.key_type.render(key);
            if decode_key(&entry.key_type, key).is_none() {
                problems.push(format!("key {shown} is not a {}", entry.key_type));
            }
            let record = match record_json(entry, key, bytes) {
                Ok(record) => record,
                Err(e) => {
                    problems.push(e.to_string());
                    return Ok(true);
                }
            };
            if let Err(why) = check_fields(entry, &record, false) {
                problems.push(format!(
                    "record {shown} cannot be read by the application: {why}"
                ));
            }
            match record_key(entry, &record) {
                Ok(k) if k == key => {}
                Ok(_) => problems.push(format!(
                    "record {shown} holds another key in {}",
                    entry.key_field
                )),
                Err(e) => problems.push(format!("record {shown}: {e}")),
            }
            match index_values(entry, &record) {
                Ok(values) => {
                    for (i, (ix, value)) in entry.indexes.iter().zip(values).enumerate() {
                        let Some(value) = value else { continue };
                        if ix.unique && !unique_values[i].insert(value.clone()) {
                            problems.push(format!(
                                "unique index {} holds a value twice (record {shown})",
                                ix.field
                            ));
                        }
                        expected[i].insert(entry_key(&value, key));
                    }
                }
                Err(e) => problems.push(format!("record {shown}: {e}")),
            }
            Ok(true)
        },
    )?;
    report.problems = problems;
    for (ix, expected) in entry.indexes.iter().zip(expected) {
        let mut actual = BTreeSet::new();
        r.scan(
            &ix.table,
            (Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |k, v| {
                actual.insert(if ix.unique {
                    entry_key(k, v)
                } else {
                    k.to_vec()
                });
                Ok(true)
            },
        )?;
        let missing = expected.difference(&actual).count();
        let stale = actual.difference(&expected).count();
        if missing > 0 {
            report.index_problems = true;
            report.problems.push(format!(
                "index {}: {missing} entries missing for records that hold the value",
                ix.field
            ));
        }
        if stale > 0 {
            report.index_problems = true;
            report.problems.push(format!(
                "index {}: {stale} entries point at no record or a stale value",
                ix.field
            ));
        }
    }
    Ok(report)
}

/// Rebuilds every index of `entry` from its records.
pub fn rebuild_indexes(w: &mut dyn WriteTx, entry: &CatalogEntry) -> Result<(), Fail> {
    for (i, ix) in entry.indexes.iter().enumerate() {
        catalog::rebuild_index(w, &entry.name, &entry.key_type, ix, &mut |key, record| {
            Ok(stored_index_values(entry, key, record)
                .map(|mut values| values.swap_remove(i))
                .map_err(|e| e.to_string()))
        })?;
    }
    Ok(())
}

/// The key type of `table`, from the catalog.
pub fn key_type_of(r: &dyn ReadTx, table: &str) -> kvs::Result<Option<KeyType>> {
    Ok(catalog::read_entry(r, table)?.map(|e| e.key_type))
}
