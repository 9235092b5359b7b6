//! The write path on encoded values, shared by the typed calls and by tools without the Rust
//! types: a record stored with its index entries moved, a record deleted with its entries,
//! index lookups by encoded value, and counters. Nothing here knows a Rust record type.

use std::ops::Bound;

use crate::backend::{ReadTx, WriteTx};
use crate::catalog::{CatalogIndex, SEQ_TABLE};
use crate::error::{Error, Result};
pub use crate::key::prefix_end;
use crate::table::IndexMeta;

fn entry_key(value: &[u8], key: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(value.len() + key.len());
    entry.extend_from_slice(value);
    entry.extend_from_slice(key);
    entry
}

/// Puts back what `insert` replaced under `key` (or removes what it added).
fn restore(w: &mut dyn WriteTx, table: &str, key: &[u8], old: Option<&[u8]>) -> Result<()> {
    match old {
        Some(old) => w.insert(table, key, old).map(drop),
        None => w.remove(table, key).map(drop),
    }
}

/// The encoded value of each index of a record, in index order (`None`: not indexed).
pub type IndexValues = Vec<Option<Vec<u8>>>;

/// An index as the write path needs it: the typed [`IndexMeta`] of a registered table, or the
/// stored [`CatalogIndex`] that tools without the Rust types (the console) work from.
pub trait IndexDef {
    fn table(&self) -> &str;
    fn unique(&self) -> bool;
    fn field(&self) -> &str;
}

impl IndexDef for IndexMeta {
    fn table(&self) -> &str {
        self.table
    }
    fn unique(&self) -> bool {
        self.unique
    }
    fn field(&self) -> &str {
        self.field
    }
}

impl IndexDef for CatalogIndex {
    fn table(&self) -> &str {
        &self.table
    }
    fn unique(&self) -> bool {
        self.unique
    }
    fn field(&self) -> &str {
        &self.field
    }
}

/// The write path of `put`, on encoded values: stores `bytes` under `key` in `table` and
/// moves the entries of `indexes` from the replaced record's values (`old_values` computes
/// them from its stored bytes) to `new`.
pub fn put_values<I: IndexDef>(
    w: &mut dyn WriteTx,
    table: &str,
    indexes: &[I],
    key: &[u8],
    bytes: &[u8],
    new: &[Option<Vec<u8>>],
    old_values: &dyn Fn(&[u8]) -> Result<IndexValues>,
) -> Result<()> {
    if indexes.iter().any(IndexDef::unique) {
        // The record and each unique value it claims are read by the inserts below: a remote
        // backend fetches them in one round trip (an iterator: nothing allocated for redb).
        let claims = indexes.iter().zip(new).filter_map(|(ix, value)| {
            let value = value.as_deref().filter(|_| ix.unique())?;
            Some((ix.table(), value))
        });
        w.prefetch(&mut std::iter::once((table, key)).chain(claims))?;
    }
    let old_bytes = w.insert(table, key, bytes)?;
    if indexes.is_empty() {
        return Ok(());
    }
    let old = match old_bytes.as_deref().map(old_values) {
        None => None,
        Some(Ok(values)) => Some(values),
        Some(Err(e)) => {
            restore(w, table, key, old_bytes.as_deref())?;
            return Err(e);
        }
    };
    let old_value = |i: usize| old.as_ref().and_then(|old| old[i].as_deref());
    // Unique entries first: each claims its value and learns the holder in one write.
    let mut claimed: Vec<usize> = Vec::new();
    for (i, ix) in indexes.iter().enumerate() {
        let Some(value) = new[i].as_deref() else {
            continue;
        };
        if !ix.unique() || old_value(i) == Some(value) {
            continue;
        }
        match w.insert(ix.table(), value, key)? {
            Some(holder) if holder != key => {
                w.insert(ix.table(), value, &holder)?;
                for &j in &claimed {
                    if let Some(value) = new[j].as_deref() {
                        w.remove(indexes[j].table(), value)?;
                    }
                }
                restore(w, table, key, old_bytes.as_deref())?;
                return Err(Error::Duplicate {
                    table: table.to_owned(),
                    field: ix.field().to_owned(),
                });
            }
            // Already this record's (an index rebuilt from it): nothing to undo on a clash.
            Some(_) => {}
            None => claimed.push(i),
        }
    }
    for (i, ix) in indexes.iter().enumerate() {
        let old_value = old_value(i);
        if old_value == new[i].as_deref() {
            continue;
        }
        if let Some(value) = old_value {
            remove_entry(w, ix.table(), ix.unique(), value, key)?;
        }
        if let (Some(value), false) = (&new[i], ix.unique()) {
            w.put(ix.table(), &entry_key(value, key), &[])?;
        }
    }
    Ok(())
}

fn remove_entry(
    w: &mut dyn WriteTx,
    table: &str,
    unique: bool,
    value: &[u8],
    key: &[u8],
) -> Result<()> {
    // Blind: the entry is this record's, and nothing of it is needed back.
    if unique {
        w.delete(table, value)
    } else {
        w.delete(table, &entry_key(value, key))
    }
}

/// The write path of `delete`, on encoded values (see [`put_values`]).
pub fn delete_values<I: IndexDef>(
    w: &mut dyn WriteTx,
    table: &str,
    indexes: &[I],
    key: &[u8],
    old_values: &dyn Fn(&[u8]) -> Result<IndexValues>,
) -> Result<bool> {
    let Some(old) = w.remove(table, key)? else {
        return Ok(false);
    };
    if !indexes.is_empty() {
        let values = match old_values(&old) {
            Ok(values) => values,
            Err(e) => {
                w.insert(table, key, &old)?;
                return Err(e);
            }
        };
        for (ix, value) in indexes.iter().zip(&values) {
            if let Some(value) = value {
                remove_entry(w, ix.table(), ix.unique(), value, key)?;
            }
        }
    }
    // The caller unlinks the record from the feeds that hold it, where streams are in use.
    Ok(true)
}

/// Visits, in key order, the keys of the records whose value in the index table `table` is
/// `value` (encoded): a unique index maps the value to the key, another holds one entry
/// `value ++ key` per record, all in one range.
pub fn index_keys(
    r: &dyn ReadTx,
    table: &str,
    unique: bool,
    value: &[u8],
    visit: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    if unique {
        r.get_with(table, value, visit)?;
        return Ok(());
    }
    let end = prefix_end(value);
    let range = (
        Bound::Included(value),
        end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
    );
    r.scan(table, range, false, &mut |entry, _| {
        visit(&entry[value.len()..])?;
        Ok(true)
    })
}

/// The value of counter `name` (0 if it was never used).
pub fn read_seq(r: &dyn ReadTx, name: &str) -> Result<u64> {
    let mut value = 0;
    r.get_with(SEQ_TABLE, name.as_bytes(), &mut |bytes| {
        value = <[u8; 8]>::try_from(bytes)
            .map(u64::from_be_bytes)
            .map_err(|_| {
                Error::corrupt(
                    SEQ_TABLE,
                    format!("{name:?}"),
                    format!("a counter of {} bytes, not 8", bytes.len()),
                )
            })?;
        Ok(())
    })?;
    Ok(value)
}

/// Adds `incr` to counter `name` and returns the new value (`incr = 0` reads it).
pub fn seq(w: &mut dyn WriteTx, name: &str, incr: u64) -> Result<u64> {
    let value = read_seq(&*w, name)?;
    if incr == 0 {
        return Ok(value);
    }
    let next = value.checked_add(incr).ok_or_else(|| Error::SeqOverflow {
        name: name.to_owned(),
        value,
        incr,
    })?;
    // Just read: written blind (on a remote engine, a second read would be a round trip).
    w.put(SEQ_TABLE, name.as_bytes(), &next.to_be_bytes())?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(&[]), None);
    }
}
