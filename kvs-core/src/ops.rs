//! The record, index and counter operations, written once over the backend's transaction
//! traits and shared by [`Kvs`](crate::Kvs) (one transaction per call) and
//! [`Tx`](crate::Tx) (many calls in one transaction).

use std::ops::{Bound, RangeBounds};

use crate::backend::{ReadTx, WriteTx};
use crate::catalog::SEQ_TABLE;
use crate::error::{Error, Result};
use crate::key::{IndexArg, Key};
use crate::stream;
use crate::table::{IndexField, Table};

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

pub(crate) fn get<T: Table>(r: &dyn ReadTx, key: &T::Key) -> Result<Option<T>> {
    let key = key.to_key_bytes();
    r.get(T::META.name, &key)?
        .map(|bytes| decode(&bytes, &key))
        .transpose()
}

/// The encoded value of each index of `record` (`None` where the field is `None`).
fn index_values<T: Table>(record: &T) -> Vec<Option<Vec<u8>>> {
    (0..T::META.indexes.len())
        .map(|i| {
            let mut out = Vec::new();
            record.encode_index(i, &mut out).then_some(out)
        })
        .collect()
}

fn entry_key(value: &[u8], key: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(value.len() + key.len());
    entry.extend_from_slice(value);
    entry.extend_from_slice(key);
    entry
}

pub(crate) fn put<T: Table>(w: &mut dyn WriteTx, record: &T) -> Result<()> {
    let meta = &T::META;
    let key = record.key().to_key_bytes();
    let bytes = encode(record)?;
    if meta.indexes.is_empty() {
        w.insert(meta.name, &key, &bytes)?;
        return Ok(());
    }
    // Everything is checked before the first write, so that an error leaves the transaction
    // as it was even when the caller goes on to commit it.
    let old = match w.get(meta.name, &key)? {
        Some(old) => Some(index_values(&decode::<T>(&old, &key)?)),
        None => None,
    };
    let new = index_values(record);
    for (i, ix) in meta.indexes.iter().enumerate() {
        let unchanged = old.as_ref().is_some_and(|old| old[i] == new[i]);
        let Some(value) = &new[i] else { continue };
        if !ix.unique || unchanged {
            continue;
        }
        // A unique value must be free, or already this record's.
        if w.get(ix.table, value)?.is_some_and(|holder| holder != key) {
            return Err(Error::Duplicate {
                table: meta.name.to_owned(),
                field: ix.field.to_owned(),
            });
        }
    }
    w.insert(meta.name, &key, &bytes)?;
    for (i, ix) in meta.indexes.iter().enumerate() {
        let old_value = old.as_ref().and_then(|old| old[i].as_deref());
        if old_value == new[i].as_deref() {
            continue;
        }
        if let Some(value) = old_value {
            remove_entry(w, ix.table, ix.unique, value, &key)?;
        }
        if let Some(value) = &new[i] {
            if ix.unique {
                w.insert(ix.table, value, &key)?;
            } else {
                w.insert(ix.table, &entry_key(value, &key), &[])?;
            }
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
    if unique {
        w.remove(table, value)?;
    } else {
        w.remove(table, &entry_key(value, key))?;
    }
    Ok(())
}

pub(crate) fn delete<T: Table>(w: &mut dyn WriteTx, key: &T::Key) -> Result<bool> {
    let meta = &T::META;
    let key = key.to_key_bytes();
    if meta.indexes.is_empty() {
        if w.remove(meta.name, &key)?.is_none() {
            return Ok(false);
        }
    } else {
        let Some(old) = w.get(meta.name, &key)? else {
            return Ok(false);
        };
        let old = index_values(&decode::<T>(&old, &key)?);
        w.remove(meta.name, &key)?;
        for (ix, value) in meta.indexes.iter().zip(&old) {
            if let Some(value) = value {
                remove_entry(w, ix.table, ix.unique, value, &key)?;
            }
        }
    }
    // A deleted record leaves no feed pointing at it.
    stream::unlink_all(w, meta.name, &key)?;
    Ok(true)
}

/// The smallest byte string greater than every string that starts with `prefix`, if any.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// `field` is passed only for its type: with `F` and `V` inferred from the arguments, the
/// callers' `impl Trait` parameters reach the compile-time check below.
pub(crate) fn index<T: Table, F: IndexField<T>, V: IndexArg>(
    r: &dyn ReadTx,
    _field: F,
    value: &V,
) -> Result<Vec<T>> {
    const {
        assert!(
            <F::Value as crate::IndexValue>::KIND == V::KIND,
            "the value passed to `index` does not have the indexed field's type: pass &str or String for a String field, an integer for an integer field, &[u8] or Vec<u8> for Vec<u8>, and the field's own type otherwise"
        );
    };
    let meta = &T::META;
    let ix = &meta.indexes[F::INDEX];
    let mut prefix = Vec::new();
    if !value.encode_as(&(ix.value_type)(), &mut prefix) {
        return Ok(Vec::new());
    }
    let mut keys: Vec<Vec<u8>> = Vec::new();
    if ix.unique {
        keys.extend(r.get(ix.table, &prefix)?);
    } else {
        let end = prefix_end(&prefix);
        let range = (
            Bound::Included(prefix.as_slice()),
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        );
        r.scan(ix.table, range, false, &mut |entry, _| {
            keys.push(entry[prefix.len()..].to_vec());
            Ok(true)
        })?;
    }
    keys.iter()
        .map(|key| match r.get(meta.name, key)? {
            Some(bytes) => decode(&bytes, key),
            None => Err(Error::schema(
                meta.name,
                format!(
                    "index {} points at the missing record {}",
                    ix.field,
                    (meta.key_type)().render(key)
                ),
            )),
        })
        .collect()
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

pub(crate) fn read_seq(r: &dyn ReadTx, name: &str) -> Result<u64> {
    match r.get(SEQ_TABLE, name.as_bytes())? {
        None => Ok(0),
        Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| {
                Error::schema(
                    SEQ_TABLE,
                    format!("counter {name:?} holds {} bytes, not 8", bytes.len()),
                )
            }),
    }
}

pub(crate) fn seq(w: &mut dyn WriteTx, name: &str, incr: u64) -> Result<u64> {
    let value = read_seq(&*w, name)?;
    if incr == 0 {
        return Ok(value);
    }
    let next = value.checked_add(incr).ok_or_else(|| Error::SeqOverflow {
        name: name.to_owned(),
        value,
        incr,
    })?;
    w.insert(SEQ_TABLE, name.as_bytes(), &next.to_be_bytes())?;
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
