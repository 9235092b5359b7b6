//! The read transaction: every read at one etcd revision, fixed by the first. In a write
//! transaction it also keeps the read set, what was read and at which revision, from which
//! `compare` builds the compares that guard the commit.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::Bound;

use kvs_core::{KeyRange, ManyVisitor, ReadTx, Result, Visitor};

use crate::client::Rpc;
use crate::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::etcdserverpb::request_op::Request;
use crate::etcdserverpb::response_op::Response;
use crate::etcdserverpb::{RangeRequest, RangeResponse, RequestOp, TxnRequest};
use crate::layout::prefix_end;
use crate::{storage, Etcd};

/// Keys fetched per round trip by `get_many` (one read-only etcd transaction of ranges; etcd
/// counts them against `--max-txn-ops`, 128 by default).
const GET_BATCH: usize = 64;
/// Entries fetched per round trip when scanning.
const PAGE: i64 = 512;

/// A read transaction: every read at one revision, fixed by the first.
pub(crate) struct EtcdRead<'a> {
    pub(crate) etcd: &'a Etcd,
    pub(crate) revision: Cell<i64>,
    /// What a write transaction read, for the compares that guard its commit.
    pub(crate) reads: Option<RefCell<ReadSet>>,
}

/// The reads of a write transaction.
#[derive(Default)]
pub(crate) struct ReadSet {
    /// Keys read or visited, with the revision they had (0: absent).
    pub(crate) keys: BTreeMap<Vec<u8>, i64>,
    /// The ranges scanned (`[from, to)`), as far as the scan went.
    pub(crate) ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// A read no compare can guard exactly (a count, the table list).
    pub(crate) whole: bool,
}

impl<'a> EtcdRead<'a> {
    pub(crate) fn new(etcd: &'a Etcd) -> Self {
        EtcdRead {
            etcd,
            revision: Cell::new(0),
            reads: None,
        }
    }

    /// A reader that records what it reads (for a write transaction).
    pub(crate) fn tracking(etcd: &'a Etcd) -> Self {
        EtcdRead {
            etcd,
            revision: Cell::new(0),
            reads: Some(RefCell::new(ReadSet::default())),
        }
    }

    fn note(&self, f: impl FnOnce(&mut ReadSet)) {
        if let Some(reads) = &self.reads {
            f(&mut reads.borrow_mut());
        }
    }

    /// A reader whose revision is fixed now, by one small request (a snapshot that must not
    /// see what is committed between its creation and its first read).
    pub(crate) fn pinned(etcd: &'a Etcd) -> Result<Self> {
        let read = EtcdRead::new(etcd);
        read.range(RangeRequest {
            key: etcd.fence(),
            count_only: true,
            ..RangeRequest::default()
        })?;
        Ok(read)
    }

    pub(crate) fn range(&self, mut request: RangeRequest) -> Result<RangeResponse> {
        request.revision = self.revision.get();
        let reply = self.etcd.range(request)?;
        if self.revision.get() == 0 {
            self.revision
                .set(reply.header.as_ref().map_or(0, |h| h.revision));
        }
        Ok(reply)
    }

    pub(crate) fn get_full(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>> {
        let reply = self.range(RangeRequest {
            key: key.clone(),
            ..RangeRequest::default()
        })?;
        let found = reply.kvs.into_iter().next();
        self.note(|r| {
            r.keys
                .insert(key, found.as_ref().map_or(0, |kv| kv.mod_revision));
        });
        Ok(found.map(|kv| kv.value))
    }

    /// The values of `keys` (full etcd keys), fetched `GET_BATCH` at a time, each batch in one
    /// read-only etcd transaction at this reader's revision.
    pub(crate) fn get_many_full(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(GET_BATCH) {
            let revision = self.revision.get();
            let txn = TxnRequest {
                compare: Vec::new(),
                success: chunk
                    .iter()
                    .map(|key| RequestOp {
                        request: Some(Request::RequestRange(RangeRequest {
                            key: key.clone(),
                            revision,
                            ..RangeRequest::default()
                        })),
                    })
                    .collect(),
                failure: Vec::new(),
            };
            let reply = self.etcd.call(true, Rpc::Txn(txn))?.txn()?;
            if revision == 0 {
                self.revision
                    .set(reply.header.as_ref().map_or(0, |h| h.revision));
            }
            if reply.responses.len() != chunk.len() {
                return Err(storage(
                    "etcd answered a batch of reads with a different count",
                ));
            }
            for (key, response) in chunk.iter().zip(reply.responses) {
                let Some(Response::ResponseRange(range)) = response.response else {
                    return Err(storage("etcd answered a read with something else"));
                };
                let found = range.kvs.into_iter().next();
                self.note(|r| {
                    r.keys
                        .insert(key.clone(), found.as_ref().map_or(0, |kv| kv.mod_revision));
                });
                out.push(found.map(|kv| kv.value));
            }
        }
        Ok(out)
    }

    /// Visits the entries of the etcd range `[from, to)` page by page, with keys relative to
    /// `strip` bytes.
    pub(crate) fn scan_full(
        &self,
        (from, to): (Vec<u8>, Vec<u8>),
        reverse: bool,
        visit: &mut dyn FnMut(Vec<u8>, Vec<u8>) -> Result<bool>,
    ) -> Result<()> {
        let mut stopped_at = None;
        let result = self.scan_pages(
            (from.clone(), to.clone()),
            reverse,
            &mut |key, value, revision| {
                self.note(|r| {
                    r.keys.insert(key.clone(), revision);
                });
                let go_on = visit(key.clone(), value)?;
                if !go_on {
                    stopped_at = Some(key);
                }
                Ok(go_on)
            },
        );
        // The part of the range the scan covered: a key created there later must fail the
        // commit (the keys it visited are guarded one by one, which covers their removal).
        self.note(|r| {
            r.ranges.push(match stopped_at {
                None => (from, to),
                Some(mut last) if !reverse => {
                    last.push(0);
                    (from, last)
                }
                Some(last) => (last, to),
            });
        });
        result
    }

    fn scan_pages(
        &self,
        (mut from, mut to): (Vec<u8>, Vec<u8>),
        reverse: bool,
        visit: &mut dyn FnMut(Vec<u8>, Vec<u8>, i64) -> Result<bool>,
    ) -> Result<()> {
        loop {
            if from >= to && to != [0] {
                return Ok(());
            }
            let reply = self.range(RangeRequest {
                key: from.clone(),
                range_end: to.clone(),
                limit: PAGE,
                sort_order: if reverse {
                    SortOrder::Descend
                } else {
                    SortOrder::Ascend
                } as i32,
                sort_target: SortTarget::Key as i32,
                ..RangeRequest::default()
            })?;
            let more = reply.more;
            let mut last = None;
            for kv in reply.kvs {
                last = Some(kv.key.clone());
                if !visit(kv.key, kv.value, kv.mod_revision)? {
                    return Ok(());
                }
            }
            match last {
                Some(last) if more => {
                    if reverse {
                        to = last;
                    } else {
                        from = last;
                        from.push(0);
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    pub(crate) fn count(&self, (from, to): (Vec<u8>, Vec<u8>)) -> Result<u64> {
        self.note(|r| r.whole = true);
        let reply = self.range(RangeRequest {
            key: from,
            range_end: to,
            count_only: true,
            ..RangeRequest::default()
        })?;
        Ok(u64::try_from(reply.count).unwrap_or(0))
    }

    pub(crate) fn table_names(&self) -> Result<Vec<String>> {
        self.note(|r| r.whole = true);
        let etcd = self.etcd;
        let mut names = std::collections::BTreeSet::new();
        // The markers of tables created empty.
        let mut markers = etcd.root.clone();
        markers.extend_from_slice(b"\0t");
        self.scan_full(
            (markers.clone(), prefix_end(&markers)),
            false,
            &mut |key, _| {
                names.insert(String::from_utf8_lossy(&key[markers.len()..]).into_owned());
                Ok(true)
            },
        )?;
        // Tables with entries: one probe per table, skipping over each table's range.
        let mut data = etcd.root.clone();
        data.extend_from_slice(b"\0d");
        let end = prefix_end(&data);
        let mut from = data.clone();
        loop {
            let reply = self.range(RangeRequest {
                key: from.clone(),
                range_end: end.clone(),
                limit: 1,
                keys_only: true,
                ..RangeRequest::default()
            })?;
            let Some(kv) = reply.kvs.first() else { break };
            let rest = &kv.key[data.len()..];
            let Some(nul) = rest.iter().position(|&b| b == 0) else {
                break;
            };
            let name = String::from_utf8_lossy(&rest[..nul]).into_owned();
            from = prefix_end(&etcd.table_base(&name));
            names.insert(name);
        }
        Ok(names.into_iter().collect())
    }
}

impl ReadTx for EtcdRead<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_full(self.etcd.data_key(table, key))
    }

    fn get_many(&self, table: &str, keys: &[&[u8]], visit: &mut ManyVisitor<'_>) -> Result<()> {
        let full: Vec<Vec<u8>> = keys.iter().map(|k| self.etcd.data_key(table, k)).collect();
        for (i, value) in self.get_many_full(&full)?.iter().enumerate() {
            visit(i, value.as_deref())?;
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
        let base = self.etcd.table_base(table).len();
        self.scan_full(
            self.etcd.etcd_range(table, range),
            reverse,
            &mut |key, value| visit(&key[base..], &value),
        )
    }

    fn len(&self, table: &str) -> Result<u64> {
        self.count(
            self.etcd
                .etcd_range(table, (Bound::Unbounded, Bound::Unbounded)),
        )
    }

    fn tables(&self) -> Result<Vec<String>> {
        self.table_names()
    }

    fn stored_bytes(&self, _table: &str) -> Result<Option<u64>> {
        // etcd reports sizes per member database, not per key range.
        Ok(None)
    }
}
