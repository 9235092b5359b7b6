//! The write transaction: each table it touches is opened once and kept open until commit;
//! and the same, owned, for a group commit that hands it from thread to thread.

use std::cell::RefCell;

use kvs_core::{KeyRange, ManyVisitor, ReadTx, Result, SharedWrite, Visitor, WriteTx};
use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use crate::guard::{guard, reentered};
use crate::key::{definition, is_legacy, upgrade_table, KvsKey};
use crate::open_tables::OpenTables;
use crate::read::{lend, lend_many, scan_table, table_bytes, table_names};
use crate::{storage, Bytes};

/// A write transaction, with each table opened once and kept open until commit.
pub(crate) struct RedbWrite<'t> {
    txn: &'t WriteTransaction,
    tables: RefCell<OpenTables<Table<'t, KvsKey, Bytes>>>,
}

impl<'t> RedbWrite<'t> {
    /// A write transaction in `txn`, with no table open yet.
    pub(crate) fn new(txn: &'t WriteTransaction) -> RedbWrite<'t> {
        RedbWrite {
            txn,
            tables: RefCell::new(OpenTables::new()),
        }
    }

    fn with<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Table<'t, KvsKey, Bytes>) -> Result<R>,
    ) -> Result<R> {
        let mut tables = self.tables.try_borrow_mut().map_err(|_| reentered())?;
        guard(|| {
            f(tables.get_or_open(name, || {
                match self.txn.open_table(definition(name)) {
                    // A table of kvs format 1: upgraded in this transaction, then opened.
                    Err(e) if is_legacy(&e) => {
                        upgrade_table(self.txn, name)?;
                        self.txn.open_table(definition(name)).map_err(storage)
                    }
                    opened => opened.map_err(storage),
                }
            })?)
        })
    }
}

impl ReadTx for RedbWrite<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(table, |t| {
            Ok(t.get(key).map_err(storage)?.map(|v| v.value().to_vec()))
        })
    }

    fn get_with(
        &self,
        table: &str,
        key: &[u8],
        visit: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        self.with(table, |t| lend(t, key, visit))
    }

    fn get_many(&self, table: &str, keys: &[&[u8]], visit: &mut ManyVisitor<'_>) -> Result<()> {
        self.with(table, |t| lend_many(t, keys, visit))
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange<'_>,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        self.with(table, |t| scan_table(t, range, reverse, visit))
    }

    fn len(&self, table: &str) -> Result<u64> {
        self.with(table, |t| t.len().map_err(storage))
    }

    fn tables(&self) -> Result<Vec<String>> {
        guard(|| table_names(self.txn.list_tables()))
    }

    fn stored_bytes(&self, table: &str) -> Result<Option<u64>> {
        self.with(table, |t| table_bytes(t)).map(Some)
    }
}

impl WriteTx for RedbWrite<'_> {
    fn insert(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(table, |t| {
            Ok(t.insert(key, value)
                .map_err(storage)?
                .map(|old| old.value().to_vec()))
        })
    }

    fn remove(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(table, |t| {
            Ok(t.remove(key)
                .map_err(storage)?
                .map(|old| old.value().to_vec()))
        })
    }

    fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.with(table, |t| t.insert(key, value).map(drop).map_err(storage))
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<()> {
        self.with(table, |t| t.remove(key).map(drop).map_err(storage))
    }

    fn create_table(&mut self, table: &str) -> Result<()> {
        self.with(table, |_| Ok(()))
    }

    fn upgrade_tables(&mut self) -> Result<()> {
        for name in self.tables()? {
            // Opening a table upgrades it when it has the key type of kvs format 1.
            self.with(&name, |_| Ok(()))?;
        }
        Ok(())
    }

    fn drop_table(&mut self, table: &str) -> Result<bool> {
        // redb refuses to delete a table that is open in the transaction.
        self.tables.get_mut().close(table);
        guard(|| self.txn.delete_table(definition(table)).map_err(storage))
    }
}

/// An owned write transaction, for a group commit: each run opens the tables it touches
/// (once per run) on the one transaction the group commits.
pub(crate) struct Shared {
    txn: WriteTransaction,
}

impl Shared {
    pub(crate) fn new(txn: WriteTransaction) -> Shared {
        Shared { txn }
    }
}

impl SharedWrite for Shared {
    fn run(&mut self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()> {
        f(&mut RedbWrite::new(&self.txn))
    }

    fn commit(self: Box<Self>) -> Result<()> {
        guard(|| self.txn.commit().map_err(storage))
    }
}
