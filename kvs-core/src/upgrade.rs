//! Upgrading a database written in an older format, in the first read-write open's commit,
//! and the rules by which a table's stored fields may change while its records stay readable.
//!
//! Format 1 stored each record as a `MessagePack` map of named fields; format 2 stores an
//! array of the fields in the catalog's order (docs/FORMAT.md). The upgrade rewrites every
//! record of every table in the catalog, and then the header: all in the transaction of the
//! open that found it, so that a crash leaves the database as it was, and a record that
//! cannot be rewritten leaves it untouched too. A table the opening program declares (with
//! the same key type) is rewritten through its Rust type, read as format 1 read it (serde's
//! names, aliases and defaults) and laid out in the type's own field order; any other table
//! (or one with a record the type cannot read) by its stored catalog entry, each field's bytes
//! copied unchanged (`row::from_map`).

use std::ops::Bound;

use crate::backend::WriteTx;
use crate::catalog::{self, CatalogColumn, CatalogEntry, Header, FORMAT};
use crate::error::{Error, Result};
use crate::field::FieldKind;
use crate::table::TableMeta;

/// Records rewritten per scan: the upgrade holds this many in memory, not a table.
const BATCH: usize = 1024;

/// Brings a database of an older format (`header`) to [`FORMAT`]. Returns the tables that were
/// rewritten through their Rust types in `tables`: their records are laid out as the types'
/// catalog entries say, whatever the stored entries said.
pub(crate) fn upgrade(
    w: &mut dyn WriteTx,
    header: &Header,
    tables: &[&'static TableMeta],
) -> Result<Vec<&'static str>> {
    if header.format >= FORMAT {
        return Ok(Vec::new());
    }
    w.upgrade_tables()?;
    let mut typed = Vec::new();
    for entry in catalog::entries(&*w)? {
        let meta = tables
            .iter()
            .find(|m| m.name == entry.name && (m.key_type)() == entry.key_type);
        match meta {
            Some(meta) if reads_as_type(&*w, &entry, meta)? => {
                rewrite(w, &entry, &mut |bytes| (meta.upgrade)(bytes))?;
                typed.push(meta.name);
            }
            _ => {
                let columns = entry.row_columns();
                rewrite(w, &entry, &mut |bytes| {
                    crate::row::from_map(bytes, &columns)
                })?;
            }
        }
    }
    catalog::write_header_value(
        w,
        &Header {
            format: FORMAT,
            ..header.clone()
        },
    )?;
    Ok(typed)
}

/// Whether every record of `entry`'s table reads as `meta`'s type (a read-only pass, so that
/// a table is rewritten one way or the other, never both).
fn reads_as_type(w: &dyn WriteTx, entry: &CatalogEntry, meta: &TableMeta) -> Result<bool> {
    let mut all = true;
    let everything = (Bound::Unbounded, Bound::Unbounded);
    w.scan(&entry.name, everything, false, &mut |_, bytes| {
        all = (meta.upgrade)(bytes).is_ok();
        Ok(all)
    })?;
    Ok(all)
}

/// What the upgrade makes of a stored record: its new bytes, or why it cannot.
type Rewrite<'a> = dyn FnMut(&[u8]) -> std::result::Result<Vec<u8>, String> + 'a;

/// Rewrites the records of `entry`'s table with `row`, a batch at a time.
fn rewrite(w: &mut dyn WriteTx, entry: &CatalogEntry, row: &mut Rewrite<'_>) -> Result<()> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(BATCH);
        let start = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        w.scan(&entry.name, (start, Bound::Unbounded), false, &mut |key, bytes| {
            let new = row(bytes).map_err(|reason| {
                Error::schema(
                    &entry.name,
                    format!(
                        "the upgrade from format 1 (fields by name) to format {FORMAT} (fields by position) cannot rewrite the record with key {}: {reason}. Nothing was changed. Migrate by hand: `kvs export` with the kvs that wrote the database, then `kvs import` into a new one",
                        entry.key_type.render(key)
                    ),
                )
            })?;
            batch.push((key.to_vec(), new));
            Ok(batch.len() < BATCH)
        })?;
        let full = batch.len() == BATCH;
        for (key, new) in &batch {
            w.put(&entry.name, key, new)?;
        }
        match batch.pop() {
            Some((key, _)) if full => after = Some(key),
            _ => return Ok(()),
        }
    }
}

/// Why records stored under `have` would be misread by position as `want`, naming the field;
/// `None` when every stored record reads as it did. A field may be added at the end with a
/// serde `default`, and a field's type may widen (`u32` to `u64`, `T` to `Option<T>`); a
/// field removed, renamed or moved, or a type changed otherwise, is a change.
pub(crate) fn positional_change(have: &CatalogEntry, want: &CatalogEntry) -> Option<String> {
    let stored = have.field_names();
    let now: Vec<&str> = want.columns.iter().map(|c| c.name.as_str()).collect();
    for (at, name) in stored.iter().enumerate() {
        let Some(&new) = now.get(at) else {
            return Some(format!(
                "field {name} was removed (the stored records hold it at position {at})"
            ));
        };
        if new != *name {
            return Some(match now.iter().position(|n| n == name) {
                Some(moved) => format!(
                    "field {name} moved from position {at} to {moved} (the stored records hold their fields in the old order)"
                ),
                None => format!(
                    "field {name} at position {at} is now {new}: renamed or removed (the stored records hold {name} there)"
                ),
            });
        }
        let (Some(old), Some(new)) = (have.columns.get(at), want.columns.get(at)) else {
            continue;
        };
        if !reads_as(&old.kind, &new.kind) {
            return Some(format!(
                "field {name} changed type from {} to {}, which the stored values do not read as",
                old.kind, new.kind
            ));
        }
        if old.defaulted && !new.defaulted {
            return Some(format!(
                "field {name} lost its #[serde(default)]: records stored before it was added lack it, and read it only as its default"
            ));
        }
    }
    want.columns[stored.len().min(want.columns.len())..]
        .iter()
        .find(|c: &&CatalogColumn| !c.defaulted)
        .map(|c| {
            format!(
                "field {} was added without #[serde(default)], and the stored records lack it; give it #[serde(default)] (they then read it as its default)",
                c.name
            )
        })
}

/// Whether a value stored as `old` reads as `new`.
fn reads_as(old: &FieldKind, new: &FieldKind) -> bool {
    use FieldKind::{Any, Enum, Map, Option, Seq, Signed, Tuple, Unsigned};
    match (old, new) {
        (_, Any) | (Any, _) => true,
        (Unsigned(a), Unsigned(b)) | (Signed(a), Signed(b)) => a <= b,
        (Unsigned(a), Signed(b)) => a < b,
        (Option(a), Option(b)) | (Seq(a), Seq(b)) | (Map(a), Map(b)) => reads_as(a, b),
        (a, Option(b)) => reads_as(a, b),
        (Tuple(a), Tuple(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| reads_as(a, b)),
        (Enum(a), Enum(b)) => a.iter().all(|name| b.contains(name)),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyType;

    fn entry(columns: &[(&str, FieldKind, bool)]) -> CatalogEntry {
        CatalogEntry {
            name: "t".into(),
            schema: "default".into(),
            rust_type: "T".into(),
            key_field: "id".into(),
            key_type: KeyType::U64,
            fields: columns.iter().map(|c| c.0.to_owned()).collect(),
            indexes: Vec::new(),
            columns: columns
                .iter()
                .map(|(name, kind, defaulted)| CatalogColumn {
                    name: (*name).to_owned(),
                    kind: kind.clone(),
                    optional: *defaulted || kind.is_option(),
                    defaulted: *defaulted,
                })
                .collect(),
        }
    }

    #[test]
    fn only_changes_that_keep_positions_pass() {
        use FieldKind::{Option, Signed, String, Unsigned};
        let id = ("id", Unsigned(64), false);
        let have = entry(&[
            id.clone(),
            ("name", String, false),
            ("n", Unsigned(32), false),
        ]);
        let same = entry(&[
            id.clone(),
            ("name", String, false),
            ("n", Unsigned(32), false),
        ]);
        assert_eq!(positional_change(&have, &same), None);
        let widened = entry(&[
            id.clone(),
            ("name", Option(Box::new(String)), false),
            ("n", Signed(64), false),
            ("extra", Unsigned(8), true),
        ]);
        assert_eq!(positional_change(&have, &widened), None);
        let cases = [
            (
                entry(&[id.clone(), ("name", String, false)]),
                "field n was removed",
            ),
            (
                entry(&[
                    id.clone(),
                    ("n", Unsigned(32), false),
                    ("name", String, false),
                ]),
                "field name moved",
            ),
            (
                entry(&[
                    id.clone(),
                    ("nom", String, false),
                    ("n", Unsigned(32), false),
                ]),
                "is now nom",
            ),
            (
                entry(&[
                    id.clone(),
                    ("name", String, false),
                    ("n", Unsigned(16), false),
                ]),
                "field n changed type from u32 to u16",
            ),
            (
                entry(&[
                    id.clone(),
                    ("name", String, false),
                    ("n", Unsigned(32), false),
                    ("x", String, false),
                ]),
                "field x was added without #[serde(default)]",
            ),
        ];
        for (want, says) in cases {
            let change = positional_change(&have, &want).expect(says);
            assert!(change.contains(says), "{change}");
        }
    }
}
