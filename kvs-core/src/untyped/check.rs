//! `kvs check` for one table: every record against its key and the catalog's field kinds,
//! every index entry against the records.

use std::collections::BTreeSet;
use std::ops::Bound;

use crate::backend::ReadTx;
use crate::catalog::CatalogEntry;
use crate::error::Result;
use crate::json::decode_key;

use super::{check_fields, index_values, record_json, record_key};

/// What [`View::check_table`](super::View::check_table) finds in one table.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TableCheck {
    /// Records scanned.
    pub records: u64,
    /// Problems, for people.
    pub problems: Vec<String>,
    /// Whether some problems are in indexes (which [`Edit::rebuild_indexes`](super::Edit::rebuild_indexes) repairs).
    pub index_problems: bool,
}

fn entry_key(value: &[u8], key: &[u8]) -> Vec<u8> {
    let mut out = value.to_vec();
    out.extend_from_slice(key);
    out
}

pub(super) fn check_table(r: &dyn ReadTx, entry: &CatalogEntry) -> Result<TableCheck> {
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
