//! The key type of every kvs table in redb, and the upgrade of tables written before it.
//!
//! kvs's keys are byte strings whose byte order is the key order (docs/FORMAT.md). redb's
//! own `&[u8]` key compares them with a `memcmp` call; [`KvsKey`] compares the same bytes in
//! the same order, inline, eight at a time, which is most of a short key (an integer key is
//! eight bytes, an index entry on an integer sixteen). The order is the same, so the bytes in
//! a table are the same: only the type name redb records differs, and a table written under
//! `&[u8]` (kvs format 1) is copied under the new type in the first write transaction that
//! opens it ([`upgrade_table`]).

use std::borrow::Cow;
use std::cmp::Ordering;

use kvs_core::Result;
use redb::{ReadableTable, TableDefinition, TableError, TypeName, WriteTransaction};

use crate::{storage, Bytes};

/// The redb key type of every kvs table: bytes in kvs's order-preserving encoding
/// (docs/FORMAT.md), in byte order, compared inline. Tools that open a kvs file with redb
/// itself name tables with [`table_definition`].
#[derive(Debug)]
pub enum KvsKey {}

impl redb::Value for KvsKey {
    type SelfType<'a> = &'a [u8];
    type AsBytes<'a> = &'a [u8];

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        TypeName::new("kvs::Key")
    }
}

impl redb::Key for KvsKey {
    #[inline]
    fn compare(data1: &[u8], data2: &[u8]) -> Ordering {
        compare(data1, data2)
    }

    fn separator<'a>(left: &'a [u8], right: &'a [u8]) -> Cow<'a, [u8]> {
        // The order is `&[u8]`'s, so its shortest separator is ours too.
        <&[u8] as redb::Key>::separator(left, right)
    }

    fn min_encoded_key() -> Option<Cow<'static, [u8]>> {
        Some(Cow::Borrowed(&[]))
    }
}

/// `a.cmp(b)` for byte strings, without a call: eight bytes at a time as big-endian
/// integers, then the rest one by one, then the shorter first.
#[inline]
pub(crate) fn compare(mut a: &[u8], mut b: &[u8]) -> Ordering {
    // An integer key, the commonest: one comparison.
    if let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(a), <[u8; 8]>::try_from(b)) {
        return u64::from_be_bytes(x).cmp(&u64::from_be_bytes(y));
    }
    while let (Some((x, rest_a)), Some((y, rest_b))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        if x != y {
            return u64::from_be_bytes(*x).cmp(&u64::from_be_bytes(*y));
        }
        a = rest_a;
        b = rest_b;
    }
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// A kvs table as redb holds it: [`KvsKey`] keys, byte values.
///
/// ```
/// let def = kvs_redb::table_definition("users");
/// assert_eq!(redb::TableHandle::name(&def), "users");
/// ```
pub fn table_definition(name: &str) -> TableDefinition<'_, KvsKey, &'static [u8]> {
    TableDefinition::new(name)
}

pub(crate) use table_definition as definition;

/// A table as kvs format 1 held it: keys of redb's `&[u8]` type.
pub(crate) fn legacy_definition(name: &str) -> TableDefinition<'_, Bytes, Bytes> {
    TableDefinition::new(name)
}

/// Whether opening a table failed because it was written under another key type.
pub(crate) fn is_legacy(e: &TableError) -> bool {
    matches!(e, TableError::TableTypeMismatch { .. })
}

/// Copies the format-1 table `name` under [`KvsKey`], in `txn`: into a new table, which then
/// takes the old one's name. The entries and their order are unchanged.
pub(crate) fn upgrade_table(txn: &WriteTransaction, name: &str) -> Result<()> {
    let scratch = format!("{name}\u{0}upgrade");
    {
        let old = txn.open_table(legacy_definition(name)).map_err(storage)?;
        let mut new = txn.open_table(definition(&scratch)).map_err(storage)?;
        for entry in old.iter().map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            new.insert(k.value(), v.value()).map_err(storage)?;
        }
    }
    txn.delete_table(legacy_definition(name)).map_err(storage)?;
    txn.rename_table(definition(&scratch), definition(name))
        .map_err(storage)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::compare;

    #[test]
    fn compares_as_byte_strings_do() {
        let keys: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![1],
            vec![1, 2, 3, 4, 5, 6, 7, 8],
            vec![1, 2, 3, 4, 5, 6, 7, 8, 0],
            vec![1, 2, 3, 4, 5, 6, 7, 9],
            vec![1, 2, 3, 4, 5, 6, 8],
            vec![255; 8],
            vec![255; 17],
            vec![0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2],
            vec![0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ];
        for a in &keys {
            for b in &keys {
                assert_eq!(compare(a, b), a.cmp(b), "{a:?} against {b:?}");
            }
        }
    }
}
