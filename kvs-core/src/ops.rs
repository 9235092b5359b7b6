//! The record, index and counter operations, written once over the backend's transaction
//! traits and shared by [`Kvs`](crate::Kvs) (one transaction per call) and
//! [`Tx`](crate::Tx) (many calls in one transaction).

use std::ops::{Bound, RangeBounds};

use crate::backend::{ReadTx, WriteTx};
use crate::catalog::{CatalogEntry, CatalogIndex, SEQ_TABLE};
use crate::error::{Error, Result};
use crate::key::{IndexArg, Key};
use crate::stream;
use crate::table::{IndexField, IndexMeta, Table};

pub(crate) fn encode<T: Table>(record: &T) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(record).map_err(|e| Error::Encode {
        table: T::META.name.to_owned(),
        reason: e.to_string(),
    })
}

pub(crate) fn decode<T: Table>(bytes: &[u8], key: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::Decode {
        table: T::META.name.to_owned(),
        key: (T::META.key_type)().render(key),
        reason: e.to_string(),
    })
}

/// The record stored under the encoded `key`.
pub(crate) fn get<T: Table>(r: &dyn ReadTx, key: &[u8]) -> Result<Option<T>> {
    read_record(r, key)
}

/// The record stored under the encoded `key`, decoded straight from the backend's bytes.
pub(crate) fn read_record<T: Table>(r: &dyn ReadTx, key: &[u8]) -> Result<Option<T>> {
    let mut record = None;
    r.get_with(T::META.name, key, &mut |bytes| {
        record = Some(decode(bytes, key)?);
        Ok(())
    })?;
    Ok(record)
}

/// The encoded value of each index of `record` (`None` where the field is `None`).
fn index_values<T: Table>(record: &T) -> IndexValues {
    (0..T::META.indexes.len())
        .map(|i| {
            let mut out = Vec::new();
            record.encode_index(i, &mut out).then_some(out)
        })
        .collect()
}

/// The index values of the record stored as `bytes`.
fn stored_index_values<T: Table>(bytes: &[u8], key: &[u8]) -> Result<IndexValues> {
    Ok(index_values(&decode::<T>(bytes, key)?))
}

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

/// Stores `record` and keeps its indexes exact.
///
/// Writes first and reads what the writes replaced, rather than reading before writing: the
/// record's `insert` hands back the old record (whose index values say which entries to
/// move), and a unique entry's `insert` hands back its holder. A clash puts every replaced
/// value back before returning [`Error::Duplicate`], so a failed put leaves the transaction
/// holding what it held, even when the caller goes on to commit it.
pub(crate) fn put<T: Table>(w: &mut dyn WriteTx, record: &T) -> Result<()> {
    put_at(w, record, &record.key().to_key_bytes())
}

/// [`put`] for a caller that has encoded the record's key already.
pub(crate) fn put_at<T: Table>(w: &mut dyn WriteTx, record: &T, key: &[u8]) -> Result<()> {
    let meta = &T::META;
    let bytes = encode(record)?;
    let new = index_values(record);
    put_values(w, meta.name, meta.indexes, key, &bytes, &new, &|old| {
        stored_index_values::<T>(old, key)
    })
}

/// The encoded value of each index of a record, in index order (`None`: not indexed).
pub type IndexValues = Vec<Option<Vec<u8>>>;

/// An index as the write path needs it: the typed [`IndexMeta`] of a registered table, or the
/// stored [`CatalogIndex`] that tools without the Rust types (the console) work from.
pub(crate) trait IndexDef {
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

/// The write path of [`put`], on encoded values: stores `bytes` under `key` in `table` and
/// moves the entries of `indexes` from the replaced record's values (`old_values` computes
/// them from its stored bytes) to `new`.
pub(crate) fn put_values<I: IndexDef>(
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

/// Deletes the record under `key` and its index entries, learning the old index values from
/// what `remove` hands back (one lookup, not a read and then a removal).
pub(crate) fn delete<T: Table>(w: &mut dyn WriteTx, key: &[u8]) -> Result<bool> {
    delete_values(w, T::META.name, T::META.indexes, key, &|old| {
        stored_index_values::<T>(old, key)
    })
}

/// [`put_values`] on a table described by its catalog entry (see `raw::put`).
pub fn put_entry(
    w: &mut dyn WriteTx,
    entry: &CatalogEntry,
    key: &[u8],
    bytes: &[u8],
    new: &[Option<Vec<u8>>],
    old_values: &dyn Fn(&[u8]) -> Result<IndexValues>,
) -> Result<()> {
    put_values(w, &entry.name, &entry.indexes, key, bytes, new, old_values)
}

/// [`delete_values`] on a table described by its catalog entry (see `raw::delete`).
pub fn delete_entry(
    w: &mut dyn WriteTx,
    entry: &CatalogEntry,
    key: &[u8],
    old_values: &dyn Fn(&[u8]) -> Result<IndexValues>,
) -> Result<bool> {
    delete_values(w, &entry.name, &entry.indexes, key, old_values)
}

/// The write path of [`delete`], on encoded values (see [`put_values`]).
pub(crate) fn delete_values<I: IndexDef>(
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
    // A deleted record leaves no feed pointing at it.
    stream::unlink_all(w, table, key)?;
    Ok(true)
}

/// The smallest byte string greater than every string that starts with `prefix`, if any.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
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

/// `field` is passed only for its type. The value's kind is checked against the field's by
/// the public callers ([`KindCheck`](crate::table::KindCheck)), so that the error names the
/// user's line.
pub(crate) fn index<T: Table, F: IndexField<T>, V: IndexArg>(
    r: &dyn ReadTx,
    _field: F,
    value: &V,
) -> Result<Vec<T>> {
    let meta = &T::META;
    let ix = &meta.indexes[F::INDEX];
    let mut prefix = Vec::new();
    if !value.encode_as(&(ix.value_type)(), &mut prefix) {
        return Ok(Vec::new());
    }
    // The matching keys, end to end in one buffer: one allocation, not one per hit.
    let mut keys: Vec<u8> = Vec::new();
    let mut ends: Vec<usize> = Vec::new();
    index_keys(r, ix.table, ix.unique, &prefix, &mut |key| {
        keys.extend_from_slice(key);
        ends.push(keys.len());
        Ok(())
    })?;
    let mut start = 0;
    let keys: Vec<&[u8]> = ends
        .iter()
        .map(|&end| {
            let key = &keys[start..end];
            start = end;
            key
        })
        .collect();
    let mut records = Vec::with_capacity(keys.len());
    // One batched read: a remote backend fetches the k records in few round trips.
    r.get_many(meta.name, &keys, &mut |i, bytes| match bytes {
        Some(bytes) => {
            records.push(decode(bytes, keys[i])?);
            Ok(())
        }
        None => Err(Error::schema(
            meta.name,
            format!(
                "index {} points at the missing record {}",
                ix.field,
                (meta.key_type)().render(keys[i])
            ),
        )),
    })?;
    Ok(records)
}

pub(crate) fn count<T: Table>(r: &dyn ReadTx) -> Result<u64> {
    r.len(T::META.name)
}

pub(crate) fn range<T: Table>(r: &dyn ReadTx, range: &impl RangeBounds<T::Key>) -> Result<Vec<T>> {
    let encode_bound = |bound: Bound<&T::Key>| match bound {
        Bound::Included(k) => Bound::Included(k.to_key_bytes()),
        Bound::Excluded(k) => Bound::Excluded(k.to_key_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    };
    let start = encode_bound(range.start_bound());
    let end = encode_bound(range.end_bound());
    let mut records = Vec::new();
    r.scan(
        T::META.name,
        (
            start.as_ref().map(Vec::as_slice),
            end.as_ref().map(Vec::as_slice),
        ),
        false,
        &mut |key, bytes| {
            records.push(decode(bytes, key)?);
            Ok(true)
        },
    )?;
    Ok(records)
}

/// The value of counter `name` (0 if it was never used).
pub fn read_seq(r: &dyn ReadTx, name: &str) -> Result<u64> {
    let mut value = 0;
    r.get_with(SEQ_TABLE, name.as_bytes(), &mut |bytes| {
        value = <[u8; 8]>::try_from(bytes)
            .map(u64::from_be_bytes)
            .map_err(|_| {
                Error::schema(
                    SEQ_TABLE,
                    format!("counter {name:?} holds {} bytes, not 8", bytes.len()),
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
