//! The write transaction: it reads at a snapshot (through `read`), buffers its writes in an
//! overlay that its own reads see, and commits them in one etcd transaction guarded by the
//! compares of `compare` (on the keys and ranges it read, or on the fence for reads no
//! compare describes), perhaps shared with other transactions' commits (`commit`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use kvs_core::{KeyRange, ManyVisitor, ReadTx, Result, Visitor, WriteTx};

use crate::commit::Commit;
use crate::etcdserverpb::request_op::Request;
use crate::etcdserverpb::{DeleteRangeRequest, PutRequest, RequestOp};
use crate::layout::prefix_end;
use crate::read::EtcdRead;
use crate::Etcd;

/// A buffered write in a write transaction.
#[derive(Clone)]
struct Pending {
    /// The new value, or `None` for a removal.
    value: Option<Vec<u8>>,
    /// The key's value in the snapshot (after this transaction's table drops).
    base: Base,
}

/// What a write transaction knows of a key's snapshot value.
#[derive(Clone, PartialEq)]
enum Base {
    /// Read (or known from a table drop): the value, `None` for absent.
    Read(Option<Vec<u8>>),
    /// Not read: the key was written blind.
    Unread,
}

impl Pending {
    /// Whether the write changes nothing: it puts back the value the snapshot holds.
    fn is_noop(&self) -> bool {
        matches!(&self.base, Base::Read(base) if *base == self.value)
    }
}

/// A write transaction: reads at a snapshot, writes into an overlay that reads see, all sent
/// in one guarded etcd transaction at the end.
pub(crate) struct EtcdWrite<'a> {
    pub(crate) read: EtcdRead<'a>,
    /// Full etcd key -> pending write.
    overlay: RefCell<BTreeMap<Vec<u8>, Pending>>,
    /// Snapshot values fetched ahead by `prefetch` (full etcd key -> value).
    fetched: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Tables dropped by this transaction (their snapshot entries read as gone).
    dropped: Vec<String>,
    /// Table markers to write (`true`) or delete (`false`).
    markers: BTreeMap<String, bool>,
}

impl<'a> EtcdWrite<'a> {
    /// A write transaction on `etcd` that has read and written nothing yet.
    pub(crate) fn new(etcd: &'a Etcd) -> Self {
        EtcdWrite {
            read: EtcdRead::tracking(etcd),
            overlay: RefCell::new(BTreeMap::new()),
            fetched: BTreeMap::new(),
            dropped: Vec::new(),
            markers: BTreeMap::new(),
        }
    }

    /// Sends the transaction's writes, and a rewrite of the fence, in one etcd transaction
    /// guarded by its compares (shared with other threads' commits that arrive meanwhile:
    /// [`crate::commit`]): if any fails, nothing is written and the transaction fails with
    /// [`kvs_core::Error::Conflict`].
    pub(crate) fn commit(&self, etcd: &Etcd) -> Result<()> {
        let ops = self.ops(etcd);
        if ops.is_empty() {
            return Ok(());
        }
        let compare = self.compares(etcd)?;
        etcd.commits
            .commit(etcd, Commit::new(&etcd.fence(), compare, ops))
    }
}

impl EtcdWrite<'_> {
    fn dropped(&self, table: &str) -> bool {
        self.dropped.iter().any(|t| t == table)
    }

    /// The snapshot's value of a key, as this transaction sees it before its own writes.
    fn base(&self, table: &str, full: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.dropped(table) {
            return Ok(None);
        }
        if let Some(value) = self.fetched.get(full) {
            return Ok(value.clone());
        }
        self.read.get_full(full.to_vec())
    }

    fn write(
        &mut self,
        table: &str,
        key: &[u8],
        value: Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        let full = self.read.etcd.data_key(table, key);
        let existing = self.overlay.borrow().get(&full).cloned();
        // Written before (perhaps blind): its value now, and what is known of the snapshot.
        let (old, base) = if let Some(p) = existing {
            (p.value, p.base)
        } else {
            let base = self.base(table, &full)?;
            (base.clone(), Base::Read(base))
        };
        self.pend(full, Pending { value, base });
        Ok(old)
    }

    /// A write that needs no old value: nothing is read (unless this transaction already knows
    /// the key's snapshot value).
    fn write_blind(&mut self, table: &str, key: &[u8], value: Option<Vec<u8>>) {
        let full = self.read.etcd.data_key(table, key);
        let base = match self.overlay.borrow().get(&full) {
            Some(p) => p.base.clone(),
            // A dropped table holds nothing in this transaction's view.
            None if self.dropped(table) => Base::Read(None),
            None => Base::Unread,
        };
        self.pend(full, Pending { value, base });
    }

    /// Records a pending write; one that puts back the snapshot's value is forgotten, so that
    /// an undone write (a failed `put` restoring what it replaced) sends nothing.
    fn pend(&self, full: Vec<u8>, pending: Pending) {
        let mut overlay = self.overlay.borrow_mut();
        if pending.is_noop() {
            overlay.remove(&full);
        } else {
            overlay.insert(full, pending);
        }
    }

    /// Whether `full` exists in the snapshot, as this transaction sees it before its writes.
    fn existed(&self, full: &[u8], pending: &Pending) -> Result<bool> {
        match &pending.base {
            Base::Read(base) => Ok(base.is_some()),
            Base::Unread => Ok(self.read.get_full(full.to_vec())?.is_some()),
        }
    }

    /// The etcd operations that apply this transaction: table drops first, then markers, then
    /// the pending writes.
    fn ops(&self, etcd: &Etcd) -> Vec<RequestOp> {
        let mut ops = Vec::new();
        let overlay = self.overlay.borrow();
        for table in &self.dropped {
            // etcd refuses a transaction whose range deletion covers a key it also puts
            // ("duplicate key given in txn request"): the table is deleted in the pieces
            // between the keys this transaction writes into it again (an index rebuilt in
            // the transaction that dropped it).
            let base = etcd.table_base(table);
            let end = prefix_end(&base);
            let mut from = base.clone();
            let rewritten = overlay
                .range::<Vec<u8>, _>((Bound::Included(&base), Bound::Excluded(&end)))
                .filter(|(_, pending)| pending.value.is_some())
                .map(|(key, _)| key);
            let mut delete = |key: Vec<u8>, range_end: Vec<u8>| {
                if key < range_end {
                    ops.push(RequestOp {
                        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                            key,
                            range_end,
                            ..DeleteRangeRequest::default()
                        })),
                    });
                }
            };
            for key in rewritten {
                // The piece before `key`; the next starts at the smallest key after it.
                let mut next = key.clone();
                next.push(0);
                delete(std::mem::replace(&mut from, next), key.clone());
            }
            delete(from, end);
        }
        drop(overlay);
        for (table, keep) in &self.markers {
            let key = etcd.marker(table);
            ops.push(RequestOp {
                request: Some(if *keep {
                    Request::RequestPut(PutRequest {
                        key,
                        ..PutRequest::default()
                    })
                } else {
                    Request::RequestDeleteRange(DeleteRangeRequest {
                        key,
                        ..DeleteRangeRequest::default()
                    })
                }),
            });
        }
        for (key, pending) in self.overlay.borrow().iter() {
            match &pending.value {
                Some(value) => ops.push(RequestOp {
                    request: Some(Request::RequestPut(PutRequest {
                        key: key.clone(),
                        value: value.clone(),
                        ..PutRequest::default()
                    })),
                }),
                // Removing a key the snapshot surely did not hold is nothing; a blind removal
                // is sent (deleting an absent key is harmless).
                None if pending.base != Base::Read(None) => ops.push(RequestOp {
                    request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                        key: key.clone(),
                        ..DeleteRangeRequest::default()
                    })),
                }),
                None => {}
            }
        }
        ops
    }
}

impl ReadTx for EtcdWrite<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let full = self.read.etcd.data_key(table, key);
        if let Some(p) = self.overlay.borrow().get(&full) {
            return Ok(p.value.clone());
        }
        self.base(table, &full)
    }

    fn get_many(&self, table: &str, keys: &[&[u8]], visit: &mut ManyVisitor<'_>) -> Result<()> {
        let etcd = self.read.etcd;
        let full: Vec<Vec<u8>> = keys.iter().map(|k| etcd.data_key(table, k)).collect();
        // The transaction's own writes first; the rest from the snapshot, batched.
        let mut values: Vec<Option<Option<Vec<u8>>>> = {
            let overlay = self.overlay.borrow();
            full.iter()
                .map(|k| overlay.get(k).map(|p| p.value.clone()))
                .collect()
        };
        if !self.dropped(table) {
            let missing: Vec<Vec<u8>> = full
                .iter()
                .zip(&values)
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| k.clone())
                .collect();
            let mut fetched = self.read.get_many_full(&missing)?.into_iter();
            for v in &mut values {
                if v.is_none() {
                    *v = Some(fetched.next().flatten());
                }
            }
        }
        for (i, value) in values.into_iter().enumerate() {
            visit(i, value.flatten().as_deref())?;
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
        let etcd = self.read.etcd;
        let base_len = etcd.table_base(table).len();
        let (from, to) = etcd.etcd_range(table, range);
        if from >= to {
            // An empty or inverted range (BTreeMap::range would panic on it).
            return Ok(());
        }
        // The transaction's own writes in the range, in scan order.
        let mut mine: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .overlay
            .borrow()
            .range::<Vec<u8>, _>((Bound::Included(&from), Bound::Excluded(&to)))
            .map(|(k, p)| (k.clone(), p.value.clone()))
            .collect();
        if reverse {
            mine.reverse();
        }
        let mut mine = mine.into_iter().peekable();
        let before = |a: &[u8], b: &[u8]| if reverse { a > b } else { a < b };
        let mut stopped = false;
        // Emits the transaction's entries that come before `key` (all, for `None`).
        let mut flush = |until: Option<&[u8]>, visit: &mut Visitor<'_>| -> Result<bool> {
            while let Some((k, _)) = mine.peek() {
                if until.is_some_and(|u| !before(k, u)) {
                    break;
                }
                let (k, v) = mine.next().expect("peeked");
                if let Some(v) = v {
                    if !visit(&k[base_len..], &v)? {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        };
        if !self.dropped(table) {
            let overlay = self.overlay.borrow();
            self.read
                .scan_full((from, to), reverse, &mut |key, value| {
                    if !flush(Some(&key), visit)? {
                        stopped = true;
                        return Ok(false);
                    }
                    if overlay.contains_key(&key) {
                        // Shadowed: emitted (or removed) by the transaction's own write.
                        return Ok(true);
                    }
                    if !visit(&key[base_len..], &value)? {
                        stopped = true;
                        return Ok(false);
                    }
                    Ok(true)
                })?;
        }
        if !stopped {
            flush(None, visit)?;
        }
        Ok(())
    }

    fn len(&self, table: &str) -> Result<u64> {
        let etcd = self.read.etcd;
        let range = etcd.etcd_range(table, (Bound::Unbounded, Bound::Unbounded));
        let mut n = if self.dropped(table) {
            0
        } else {
            i128::from(self.read.count(range.clone())?)
        };
        let pending: Vec<(Vec<u8>, Pending)> = self
            .overlay
            .borrow()
            .range::<Vec<u8>, _>((Bound::Included(&range.0), Bound::Excluded(&range.1)))
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        for (key, p) in &pending {
            let existed = !self.dropped(table) && self.existed(key, p)?;
            n += i128::from(p.value.is_some()) - i128::from(existed);
        }
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn tables(&self) -> Result<Vec<String>> {
        let mut names: std::collections::BTreeSet<String> = self
            .read
            .table_names()?
            .into_iter()
            .filter(|t| !self.dropped(t) || self.markers.get(t) == Some(&true))
            .collect();
        for (table, keep) in &self.markers {
            if *keep {
                names.insert(table.clone());
            }
        }
        let data_len = self.read.etcd.table_base("").len() - 1;
        for (key, p) in self.overlay.borrow().iter() {
            if p.value.is_some() {
                let rest = &key[data_len..];
                if let Some(nul) = rest.iter().position(|&b| b == 0) {
                    names.insert(String::from_utf8_lossy(&rest[..nul]).into_owned());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    fn stored_bytes(&self, table: &str) -> Result<Option<u64>> {
        self.read.stored_bytes(table)
    }
}

impl WriteTx for EtcdWrite<'_> {
    fn insert(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        self.write(table, key, Some(value.to_vec()))
    }

    fn remove(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.write(table, key, None)
    }

    fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.write_blind(table, key, Some(value.to_vec()));
        Ok(())
    }

    fn prefetch(&mut self, keys: &mut dyn Iterator<Item = (&str, &[u8])>) -> Result<()> {
        let etcd = self.read.etcd;
        // Once each: writes of a batch often read the same key (one feed's writer).
        let wanted: Vec<Vec<u8>> = {
            let overlay = self.overlay.borrow();
            keys.filter(|(table, _)| !self.dropped(table))
                .map(|(table, key)| etcd.data_key(table, key))
                .filter(|full| !overlay.contains_key(full) && !self.fetched.contains_key(full))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        if wanted.len() < 2 {
            return Ok(()); // one key costs the same fetched now or later
        }
        let values = self.read.get_many_full(&wanted)?;
        self.fetched.extend(wanted.into_iter().zip(values));
        Ok(())
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<()> {
        self.write_blind(table, key, None);
        Ok(())
    }

    fn create_table(&mut self, table: &str) -> Result<()> {
        self.markers.insert(table.to_owned(), true);
        Ok(())
    }

    fn drop_table(&mut self, table: &str) -> Result<bool> {
        let existed = self.tables()?.iter().any(|t| t == table);
        let base = self.read.etcd.table_base(table);
        let end = prefix_end(&base);
        self.overlay
            .borrow_mut()
            .retain(|k, _| !(k.as_slice() >= base.as_slice() && k.as_slice() < end.as_slice()));
        if !self.dropped(table) {
            self.dropped.push(table.to_owned());
        }
        self.markers.insert(table.to_owned(), false);
        Ok(existed)
    }
}
