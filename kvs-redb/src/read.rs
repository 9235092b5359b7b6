//! Reading a redb table, written once for both transactions, and the read transaction.

use std::cell::{Cell, RefCell};
use std::ops::Bound;

use kvs_core::{Cursor, KeyRange, ManyVisitor, ReadTx, Result, Visitor};
use redb::{
    AccessGuard, ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata, TableError,
};

use crate::guard::{guard, reentered};
use crate::key::{definition, is_legacy, legacy_definition, KvsKey};
use crate::open_tables::OpenTables;
use crate::{storage, Bytes};

/// A redb key type whose values are byte strings: [`KvsKey`], or `&[u8]` in a table of kvs
/// format 1 that a read-only open finds.
pub(crate) trait ByteKey:
    redb::Key + 'static + for<'a> redb::Value<SelfType<'a> = &'a [u8]>
{
}
impl<K: redb::Key + 'static + for<'a> redb::Value<SelfType<'a> = &'a [u8]>> ByteKey for K {}

pub(crate) fn scan_table<K: ByteKey>(
    table: &impl ReadableTable<K, Bytes>,
    range: KeyRange<'_>,
    reverse: bool,
    visit: &mut Visitor<'_>,
) -> Result<()> {
    if is_empty_range(range) {
        return Ok(());
    }
    let iter = table.range::<&[u8]>(range).map_err(storage)?;
    let mut step = |item: std::result::Result<_, redb::StorageError>| -> Result<bool> {
        let (k, v): (redb::AccessGuard<K>, redb::AccessGuard<Bytes>) = item.map_err(storage)?;
        visit(k.value(), v.value())
    };
    if reverse {
        for item in iter.rev() {
            if !step(item)? {
                break;
            }
        }
    } else {
        for item in iter {
            if !step(item)? {
                break;
            }
        }
    }
    Ok(())
}

/// Lends the value under `key` to `visit`, straight from redb's page.
pub(crate) fn lend<K: ByteKey>(
    table: &impl ReadableTable<K, Bytes>,
    key: &[u8],
    visit: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<bool> {
    match table.get(key).map_err(storage)? {
        Some(value) => {
            visit(value.value())?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Visits each of `keys` in `table` ([`ReadTx::get_many`]), the table opened once.
pub(crate) fn lend_many<K: ByteKey>(
    table: &impl ReadableTable<K, Bytes>,
    keys: &[&[u8]],
    visit: &mut ManyVisitor<'_>,
) -> Result<()> {
    for (i, key) in keys.iter().enumerate() {
        match table.get(*key).map_err(storage)? {
            Some(value) => visit(i, Some(value.value()))?,
            None => visit(i, None)?,
        }
    }
    Ok(())
}

/// A range of a table of a read transaction, walked from either end ([`ReadTx::cursor`]). It
/// holds the transaction's pages, not its handle: redb's ranges on a read-only table keep
/// the transaction and what they read alive themselves, and the guards of the entry last
/// lent keep its page.
struct RangeCursor<K: ByteKey> {
    /// The entry last lent. Declared (so dropped) before `range`, which holds the read
    /// transaction: the page is let go while the transaction still holds it.
    current: Option<(AccessGuard<'static, K>, AccessGuard<'static, Bytes>)>,
    range: Option<redb::Range<'static, K, Bytes>>,
}

impl<K: ByteKey> Cursor for RangeCursor<K>
where
    redb::Range<'static, K, Bytes>: Send,
    AccessGuard<'static, K>: Send,
{
    fn next_entry(&mut self, back: bool) -> Result<Option<(&[u8], &[u8])>> {
        let RangeCursor { range, current } = self;
        let Some(range) = range else {
            return Ok(None);
        };
        // The entry goes straight into `current`, not through the guard's result. Its key and
        // value are sliced inside the guard too, once: redb takes their bounds from the page
        // unchecked, and slices them when asked, so a corrupted page panics there.
        guard(move || {
            let item = if back {
                range.next_back()
            } else {
                range.next()
            };
            match item {
                Some(Ok(entry)) => {
                    let (k, v) = &*current.insert(entry);
                    Ok(Some((k.value(), v.value())))
                }
                Some(Err(e)) => {
                    *current = None;
                    Err(storage(e))
                }
                None => {
                    *current = None;
                    Ok(None)
                }
            }
        })
    }
}

fn range_cursor<K: ByteKey>(
    table: &ReadOnlyTable<K, Bytes>,
    range: KeyRange<'_>,
) -> Result<Box<dyn Cursor>>
where
    redb::Range<'static, K, Bytes>: Send,
    AccessGuard<'static, K>: Send,
{
    let range = if is_empty_range(range) {
        None
    } else {
        Some(table.range::<&[u8]>(range).map_err(storage)?)
    };
    Ok(Box::new(RangeCursor {
        current: None,
        range,
    }))
}

/// Whether no key can lie in `range` (redb, like `BTreeMap`, wants start <= end).
fn is_empty_range((start, end): KeyRange<'_>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
        _ => false,
    }
}

pub(crate) fn table_names(
    handles: redb::Result<impl Iterator<Item = redb::UntypedTableHandle>>,
) -> Result<Vec<String>> {
    Ok(handles
        .map_err(storage)?
        .map(|h| redb::TableHandle::name(&h).to_owned())
        .collect())
}

pub(crate) fn table_bytes(table: &impl ReadableTableMetadata) -> Result<u64> {
    let stats = table.stats().map_err(storage)?;
    Ok(stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes())
}

/// A table open for reading: of the current key type, or of kvs format 1, which only a
/// write transaction upgrades.
pub(crate) enum Opened {
    Kvs(ReadOnlyTable<KvsKey, Bytes>),
    Legacy(ReadOnlyTable<Bytes, Bytes>),
}

/// Runs `$body` on the table `$name` of the [`RedbRead`] `$read`, bound to `$t` whichever its
/// key type, or evaluates to `Ok($empty)` when the table does not exist. Inside a guard.
///
/// A table is remembered from its second use in the transaction on: most reads (a `get`, an
/// index lookup) touch each table once, and remembering an open table (moving it into the
/// list) cost about a fifth of the layer's share of a `get`, in profiles. The body is
/// expanded for each way of reaching the table, so that a table is used where redb put it.
macro_rules! read_table {
    ($read:expr, $name:expr, $empty:expr, |$t:ident| $body:expr) => {{
        let read: &RedbRead = $read;
        let name: &str = $name;
        let mut tables = read.tables.try_borrow_mut().map_err(|_| reentered())?;
        guard(|| {
            let remembered = match tables.get(name) {
                Some(table) => Some(table),
                None => {
                    let bit = name_bit(name);
                    let seen = read.seen.replace(read.seen.get() | bit);
                    if seen & bit == 0 {
                        None
                    } else {
                        Some(tables.remember(name, read.open(name)?))
                    }
                }
            };
            match remembered {
                Some(Some(Opened::Kvs(table))) => {
                    let $t = &*table;
                    $body
                }
                Some(Some(Opened::Legacy(table))) => {
                    let $t = &*table;
                    $body
                }
                Some(None) => Ok($empty),
                None => match read.txn.open_table(definition(name)) {
                    Ok(table) => {
                        let $t = &table;
                        $body
                    }
                    Err(TableError::TableDoesNotExist(_)) => Ok($empty),
                    Err(e) if is_legacy(&e) => {
                        let table = read
                            .txn
                            .open_table(legacy_definition(name))
                            .map_err(storage)?;
                        let $t = &table;
                        $body
                    }
                    Err(e) => Err(storage(e)),
                },
            }
        })
    }};
}

/// A read transaction. A table it reads once is opened in place; one it reads again is
/// opened once more and kept for the rest of the transaction.
pub(crate) struct RedbRead {
    txn: ReadTransaction,
    tables: RefCell<OpenTables<Option<Opened>>>,
    /// The tables opened so far without being remembered, as a set of [`name_bit`]s.
    seen: Cell<u64>,
}

/// A table name's bit in [`RedbRead::seen`] (one of 64), to tell a table read a second time:
/// two names on one bit only remember a table sooner. Taken from the name's length and its
/// last two bytes, not a hash of every byte: a table and its index tables (`users`,
/// `users#email`, `users#city`) differ there, and this runs on every read.
fn name_bit(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let last = |back: usize| {
        bytes
            .len()
            .checked_sub(back)
            .map_or(0, |i| u64::from(bytes[i]))
    };
    let mixed = (bytes.len() as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(last(1).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add(last(2).wrapping_mul(0x1656_67B1_9E37_79F9));
    1 << (mixed >> 58)
}

impl RedbRead {
    pub(crate) fn new(txn: ReadTransaction) -> RedbRead {
        RedbRead {
            txn,
            tables: RefCell::new(OpenTables::new()),
            seen: Cell::new(0),
        }
    }

    /// Opens `name` (`None` when it does not exist).
    fn open(&self, name: &str) -> Result<Option<Opened>> {
        match self.txn.open_table(definition(name)) {
            Ok(table) => Ok(Some(Opened::Kvs(table))),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) if is_legacy(&e) => self
                .txn
                .open_table(legacy_definition(name))
                .map(|t| Some(Opened::Legacy(t)))
                .map_err(storage),
            Err(e) => Err(storage(e)),
        }
    }
}

impl ReadTx for RedbRead {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        read_table!(self, table, None, |t| Ok(t
            .get(key)
            .map_err(storage)?
            .map(|v| v.value().to_vec())))
    }

    fn get_with(
        &self,
        table: &str,
        key: &[u8],
        visit: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        read_table!(self, table, false, |t| lend(t, key, visit))
    }

    fn get_many(&self, table: &str, keys: &[&[u8]], visit: &mut ManyVisitor<'_>) -> Result<()> {
        let found = read_table!(self, table, false, |t| {
            lend_many(t, keys, visit)?;
            Ok(true)
        })?;
        if !found {
            for i in 0..keys.len() {
                visit(i, None)?;
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange<'_>,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        read_table!(self, table, (), |t| scan_table(t, range, reverse, visit))
    }

    fn cursor(&self, table: &str, range: KeyRange<'_>) -> Result<Option<Box<dyn Cursor>>> {
        let cursor = read_table!(self, table, None, |t| range_cursor(t, range).map(Some))?;
        // A table that does not exist reads as empty.
        Ok(Some(cursor.unwrap_or_else(|| {
            Box::new(RangeCursor::<KvsKey> {
                current: None,
                range: None,
            })
        })))
    }

    fn len(&self, table: &str) -> Result<u64> {
        read_table!(self, table, 0, |t| t.len().map_err(storage))
    }

    fn tables(&self) -> Result<Vec<String>> {
        guard(|| table_names(self.txn.list_tables()))
    }

    fn stored_bytes(&self, table: &str) -> Result<Option<u64>> {
        read_table!(self, table, 0, |t| table_bytes(t)).map(Some)
    }
}
