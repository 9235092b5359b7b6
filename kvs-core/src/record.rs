//! The typed record calls, written once over the backend's transaction traits and shared by
//! [`Kvs`](crate::Kvs) (one transaction per call) and [`Tx`](crate::Tx) (many calls in one
//! transaction): records encoded and decoded as their Rust type, and their index values.

use std::ops::{Bound, RangeBounds};

use crate::arg::IndexArg;
use crate::backend::{ReadTx, WriteTx};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::scratch::Scratch;
use crate::table::{IndexField, IndexMeta, Table};
use crate::write::{self, IndexValues};

/// The stored form of `record`: its fields by position (docs/FORMAT.md).
pub(crate) fn encode<T: Table>(record: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    crate::row::encode(record, &mut out).map_err(|reason| Error::Encode {
        table: T::META.name.to_owned(),
        reason,
    })?;
    Ok(out)
}

#[inline]
pub(crate) fn decode<T: Table>(bytes: &[u8], key: &[u8]) -> Result<T> {
    crate::row_decode::decode(bytes).map_err(|e| Error::Decode {
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

/// Stores `record` and keeps its indexes exact.
///
/// Writes first and reads what the writes replaced, rather than reading before writing: the
/// record's `insert` hands back the old record (whose index values say which entries to
/// move), and a unique entry's `insert` hands back its holder. A clash puts every replaced
/// value back before returning [`Error::Duplicate`], so a failed put leaves the transaction
/// holding what it held, even when the caller goes on to commit it.
pub(crate) fn put<T: Table>(w: &mut dyn WriteTx, record: &Prepared<T>) -> Result<()> {
    let meta = &T::META;
    let key = &record.key;
    write::put_values(
        w,
        meta.name,
        meta.indexes,
        key,
        &record.bytes,
        &record.values,
        &|old| stored_index_values::<T>(old, key),
    )
}

/// The keys a write reads, by table, declared ahead so that a group of writes fetches them
/// together.
pub(crate) type ReadKeys = Vec<(&'static str, Vec<u8>)>;

/// A record encoded for writing: its key, its stored bytes and its index values. It owns
/// them, so that a record is encoded once however often its transaction is retried, and on
/// the caller's thread when the write runs on another (`AsyncKvs`).
pub(crate) struct Prepared<T> {
    /// The encoded key.
    pub(crate) key: Vec<u8>,
    bytes: Vec<u8>,
    values: IndexValues,
    record: std::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for Prepared<T> {
    fn clone(&self) -> Self {
        Prepared {
            key: self.key.clone(),
            bytes: self.bytes.clone(),
            values: self.values.clone(),
            record: std::marker::PhantomData,
        }
    }
}

impl<T: Table> Prepared<T> {
    /// What [`put`] of this record reads: the record's key and each unique value it claims.
    pub(crate) fn reads(&self) -> ReadKeys {
        let claims = T::META
            .indexes
            .iter()
            .zip(&self.values)
            .filter(|(ix, _)| ix.unique)
            .filter_map(|(ix, value)| Some((ix.table, value.clone()?)));
        std::iter::once((T::META.name, self.key.clone()))
            .chain(claims)
            .collect()
    }

    /// Encodes `record` for [`put`].
    pub(crate) fn new(record: &T) -> Result<Self> {
        Ok(Prepared {
            key: record.key().to_key_bytes(),
            bytes: encode(record)?,
            values: index_values(record),
            record: std::marker::PhantomData,
        })
    }
}

/// Deletes the record under `key` and its index entries, learning the old index values from
/// what `remove` hands back (one lookup, not a read and then a removal).
pub(crate) fn delete<T: Table>(w: &mut dyn WriteTx, key: &[u8]) -> Result<bool> {
    write::delete_values(w, T::META.name, T::META.indexes, key, &|old| {
        stored_index_values::<T>(old, key)
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
    let ix = &T::META.indexes[F::INDEX];
    let mut prefix = Scratch::new();
    if !value.encode_as(&(ix.value_type)(), &mut prefix) {
        return Ok(Vec::new());
    }
    if ix.unique {
        // One entry at most, naming one record: two point reads, with no list of keys.
        let mut key = Scratch::new();
        let mut found = false;
        write::index_keys(r, ix.table, true, &prefix, &mut |k| {
            key.clear();
            key.extend_from_slice(k);
            found = true;
            Ok(())
        })?;
        if !found {
            return Ok(Vec::new());
        }
        return match read_record(r, &key)? {
            Some(record) => Ok(vec![record]),
            None => Err(missing_record::<T>(ix, &key)),
        };
    }
    let mut keys = KeyList::new();
    write::index_keys(r, ix.table, false, &prefix, &mut |key| {
        keys.push(key);
        Ok(())
    })?;
    indexed_records(r, ix, &keys)
}

/// The error for an index entry of `ix` that names `key`, which holds no record: a broken
/// index.
fn missing_record<T: Table>(ix: &IndexMeta, key: &[u8]) -> Error {
    Error::corrupt(
        ix.table,
        (T::META.key_type)().render(key),
        format!("the index on {} points at a missing record", ix.field),
    )
}

/// Record keys end to end in one buffer, each after its length: one allocation for `k` hits,
/// not one each.
pub(crate) struct KeyList {
    bytes: Scratch,
    len: usize,
}

impl KeyList {
    /// A list with room for 128 keys of up to 8 bytes: presized, because growing a buffer
    /// from empty costs more than the hits' own copies (a `realloc` per doubling, in profiles
    /// of 100-hit lookups).
    pub(crate) fn new() -> Self {
        KeyList {
            bytes: Scratch::with_capacity(128 * (4 + 8)),
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, key: &[u8]) {
        // A key is far shorter than 4 GiB: redb and etcd refuse such keys long before.
        let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(key);
        self.len += 1;
    }

    /// How many keys it holds.
    fn len(&self) -> usize {
        self.len
    }

    /// The keys, in the order pushed.
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.bytes.as_slice();
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let (key, tail) = tail.split_at_checked(u32::from_le_bytes(*len) as usize)?;
            rest = tail;
            Some(key)
        })
    }
}

/// The records of `T` under `keys`, which index `ix` named, in that order: one batched read
/// (a remote backend fetches the k records in few round trips). A key with no record is a
/// broken index ([`Error::Corrupt`]).
pub(crate) fn indexed_records<T: Table>(
    r: &dyn ReadTx,
    ix: &IndexMeta,
    keys: &KeyList,
) -> Result<Vec<T>> {
    let meta = &T::META;
    // Sized first: the keys' iterator cannot tell its length, and `collect` would regrow.
    let mut list: Vec<&[u8]> = Vec::with_capacity(keys.len());
    list.extend(keys.iter());
    let keys = list;
    let mut records = Vec::with_capacity(keys.len());
    r.get_many(meta.name, &keys, &mut |i, bytes| match bytes {
        Some(bytes) => {
            records.push(decode(bytes, keys[i])?);
            Ok(())
        }
        None => Err(missing_record::<T>(ix, keys[i])),
    })?;
    Ok(records)
}

pub(crate) fn count<T: Table>(r: &dyn ReadTx) -> Result<u64> {
    r.len(T::META.name)
}

/// The record keys of `T`'s table in `range`, encoded.
pub(crate) fn key_scan_range<T: Table>(
    range: &impl RangeBounds<T::Key>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    (
        range.start_bound().map(Key::to_key_bytes),
        range.end_bound().map(Key::to_key_bytes),
    )
}

pub(crate) fn range<T: Table>(r: &dyn ReadTx, range: &impl RangeBounds<T::Key>) -> Result<Vec<T>> {
    range_encoded(r, key_scan_range::<T>(range), usize::MAX, false)
}

/// [`range`] of keys encoded already, stopping after `limit` records, from the range's end
/// (greatest key first) when `back` (one scan: a page of `AsyncKvs::stream` or
/// `stream_rev`).
pub(crate) fn range_encoded<T: Table>(
    r: &dyn ReadTx,
    (start, end): (Bound<Vec<u8>>, Bound<Vec<u8>>),
    limit: usize,
    back: bool,
) -> Result<Vec<T>> {
    let mut records = Vec::new();
    r.scan(
        T::META.name,
        (
            start.as_ref().map(Vec::as_slice),
            end.as_ref().map(Vec::as_slice),
        ),
        back,
        &mut |key, bytes| {
            records.push(decode(bytes, key)?);
            Ok(records.len() < limit)
        },
    )?;
    Ok(records)
}
