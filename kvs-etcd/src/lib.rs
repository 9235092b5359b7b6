//! The etcd backend of kvs: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
//!
//! The same API as on redb, on a replicated engine (Raft, strictly serializable). Every kvs
//! table is a key range under `PREFIX`, so several databases share one cluster. Reads run on
//! one snapshot (an etcd revision); a write transaction reads at a snapshot, buffers its
//! writes, and commits them in one etcd transaction guarded by a compare on the database's
//! fence key, which every write transaction rewrites: two write transactions of one database
//! that overlap in time cannot both commit, the later fails with [`Error::Conflict`] and
//! writes nothing (serializable, as redb's one-writer-at-a-time is). `Kvs`'s one-call writes
//! (`put`, `delete`, `seq`, `append`, …) retry a conflict by themselves; a
//! `Kvs::transaction` returns it, and retrying it is safe.
//!
//! ```no_run
//! use kvs_core::Kvs;
//!
//! // With the `kvs` crate's `etcd` feature (on by default), any program opens it by URL:
//! let kvs = Kvs::open("etcd://127.0.0.1:2379,127.0.0.1:22379/myapp")?;
//! println!("{}", kvs.ver());
//! # Ok::<(), kvs_core::Error>(())
//! ```
//!
//! etcd's limits are its own, and a transaction that passes one fails as a whole with
//! [`Error::Limit`], naming it: `--max-txn-ops` (128 operations per transaction by default),
//! `--max-request-bytes` (1.5 MiB) and `--quota-backend-bytes` (2 GiB). kvs never splits a
//! transaction to fit.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use kvs_core::{
    Backend, BackendFactory, BackendInfo, Config, Error, KeyRange, ManyVisitor, ReadTx, Result,
    Visitor, WriteTx,
};
use tonic::transport::{Channel, Endpoint};

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod etcdserverpb;

use etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcdserverpb::kv_client::KvClient;
use etcdserverpb::maintenance_client::MaintenanceClient;
use etcdserverpb::range_request::{SortOrder, SortTarget};
use etcdserverpb::request_op::Request;
use etcdserverpb::response_op::Response;
use etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, StatusRequest,
    TxnRequest,
};

/// The most compares a commit carries before one fence compare replaces them (etcd counts
/// them against `--max-txn-ops`, 128 by default).
const COMPARE_BUDGET: usize = 100;
/// Keys fetched per round trip by `get_many` (one read-only etcd transaction of ranges; etcd
/// counts them against `--max-txn-ops`, 128 by default).
const GET_BATCH: usize = 64;
/// Entries fetched per round trip when scanning.
const PAGE: i64 = 512;
/// The largest response accepted (a page of large values).
const MAX_MESSAGE: usize = 256 << 20;

fn storage(e: impl std::fmt::Display) -> Error {
    Error::storage("etcd", e.to_string())
}

/// Maps a gRPC status to a kvs error: limits by name, an unreachable or leaderless cluster as
/// [`Error::Unavailable`], the rest as storage errors.
fn status_error(status: &tonic::Status) -> Error {
    let message = status.message();
    let limit = |limit: &str, reason: &str| Error::Limit {
        backend: "etcd",
        limit: limit.to_owned(),
        reason: format!("{reason} ({message})"),
    };
    if message.contains("too many operations in txn request") {
        return limit(
            "--max-txn-ops",
            "the transaction has more operations than the cluster allows; raise the limit on every member or make the transaction smaller",
        );
    }
    if message.contains("request is too large")
        || status.code() == tonic::Code::ResourceExhausted
        || status.code() == tonic::Code::OutOfRange
    {
        return limit(
            "--max-request-bytes",
            "the transaction is larger than the cluster accepts; raise the limit on every member or write less at once",
        );
    }
    if message.contains("database space exceeded") {
        return limit(
            "--quota-backend-bytes",
            "the cluster's storage quota is full; compact and defragment it, or raise the quota",
        );
    }
    match status.code() {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled
        | tonic::Code::Unknown
            if !message.contains("compacted") =>
        {
            Error::Unavailable {
                backend: "etcd",
                reason: message.to_owned(),
            }
        }
        _ => storage(format!("{:?}: {message}", status.code())),
    }
}

/// Whether the request never reached a server (so sending it again cannot apply it twice).
fn never_sent(status: &tonic::Status) -> bool {
    let text = format!("{status:?}");
    status.code() == tonic::Code::Unavailable
        && (text.contains("tcp connect error")
            || text.contains("Connection refused")
            || text.contains("error trying to connect"))
}

/// The smallest key after every key that starts with `prefix`, or etcd's "to the end of the
/// keyspace" (`[0]`) when there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    kvs_core::raw::prefix_end(prefix).unwrap_or_else(|| vec![0])
}

/// One cluster member the client talks to.
struct Member {
    url: String,
    kv: KvClient<Channel>,
    maintenance: MaintenanceClient<Channel>,
}

/// A kvs backend on an etcd cluster.
pub struct Etcd {
    runtime: tokio::runtime::Runtime,
    members: Vec<Member>,
    /// The member requests go to first; moves on when one is unreachable.
    current: AtomicUsize,
    /// The key prefix of this database.
    root: Vec<u8>,
    info: BackendInfo,
    /// Requests sent, for [`Etcd::requests`].
    requests: AtomicU64,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What one member says of itself ([`Etcd::status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberStatus {
    /// The client URL it was reached at.
    pub url: String,
    /// Its member id.
    pub id: u64,
    /// The member id it believes leads.
    pub leader: u64,
    /// Its etcd version.
    pub version: String,
}

/// Opens the backend an `etcd://` URL names.
pub fn open(config: &Config) -> Result<Box<dyn Backend>> {
    Ok(Box::new(Etcd::open(config)?))
}

kvs_core::__private::inventory::submit! { BackendFactory { scheme: "etcd", open } }

impl Etcd {
    /// Connects to the cluster `config` names (`etcd://HOST:PORT[,HOST:PORT...]/PREFIX`) and
    /// checks that a member answers.
    pub fn open(config: &Config) -> Result<Etcd> {
        config.expect_params(&[])?;
        let rest = config
            .location
            .strip_prefix("//")
            .ok_or_else(|| config.error("expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX"))?;
        let (hosts, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let hosts: Vec<&str> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        if hosts.is_empty() {
            return Err(config.error("no HOST:PORT given"));
        }
        if prefix.contains('\0') {
            return Err(config.error("the prefix must not contain NUL"));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kvs-etcd")
            .enable_time()
            .enable_io()
            .build()
            .map_err(storage)?;
        let mut members = Vec::new();
        for host in &hosts {
            let url = if host.contains("://") {
                (*host).to_owned()
            } else {
                format!("http://{host}")
            };
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| config.error(format!("bad member address {host:?}: {e}")))?
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(10))
                .tcp_nodelay(true);
            let channel = {
                let _guard = runtime.enter();
                endpoint.connect_lazy()
            };
            members.push(Member {
                url,
                kv: KvClient::new(channel.clone())
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
                maintenance: MaintenanceClient::new(channel),
            });
        }
        let mut etcd = Etcd {
            runtime,
            members,
            current: AtomicUsize::new(0),
            root: prefix.as_bytes().to_vec(),
            requests: AtomicU64::new(0),
            info: BackendInfo {
                engine: "etcd",
                version: "unknown",
                storage: "cluster",
                location: config.url.clone(),
            },
        };
        let statuses = etcd.status();
        let Some(version) = statuses
            .iter()
            .find_map(|s| s.as_ref().ok())
            .map(|s| s.version.clone())
        else {
            let reasons: Vec<String> = statuses
                .into_iter()
                .filter_map(std::result::Result::err)
                .map(|e| e.to_string())
                .collect();
            return Err(Error::Unavailable {
                backend: "etcd",
                reason: format!(
                    "no member of {} answers: {}",
                    hosts.join(","),
                    reasons.join("; ")
                ),
            });
        };
        etcd.info.version = version_str(&version);
        Ok(etcd)
    }

    /// What each member says of itself, in the order of the URL (an error for a member that
    /// does not answer). The member whose `leader` is its own `id` leads.
    pub fn status(&self) -> Vec<Result<MemberStatus>> {
        self.members
            .iter()
            .map(|m| {
                let mut client = m.maintenance.clone();
                let reply = self
                    .runtime
                    .block_on(async {
                        tokio::time::timeout(
                            Duration::from_secs(3),
                            client.status(StatusRequest {}),
                        )
                        .await
                    })
                    .map_err(|_| Error::Unavailable {
                        backend: "etcd",
                        reason: format!("{} did not answer in 3 s", m.url),
                    })?
                    .map_err(|s| status_error(&s))?
                    .into_inner();
                Ok(MemberStatus {
                    url: m.url.clone(),
                    id: reply.header.map_or(0, |h| h.member_id),
                    leader: reply.leader,
                    version: reply.version,
                })
            })
            .collect()
    }

    /// The number of key-value requests sent so far (round trips to the cluster), to check
    /// and measure batching.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends a request built by `call` to the current member, moving on to the next one while
    /// members are unreachable. `idempotent` requests (reads) also move on after other
    /// failures of the connection; a commit does only when it surely never left.
    fn call<T>(
        &self,
        idempotent: bool,
        call: impl Fn(
            KvClient<Channel>,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = std::result::Result<tonic::Response<T>, tonic::Status>,
                    > + Send,
            >,
        >,
    ) -> Result<T> {
        let n = self.members.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let at = (start + i) % n;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let result = self.runtime.block_on(call(self.members[at].kv.clone()));
            match result {
                Ok(reply) => {
                    if i > 0 {
                        self.current.store(at, Ordering::Relaxed);
                    }
                    return Ok(reply.into_inner());
                }
                Err(status) => {
                    let movable = never_sent(&status)
                        || (idempotent
                            && matches!(status_error(&status), Error::Unavailable { .. }));
                    if !movable {
                        return Err(status_error(&status));
                    }
                    last = Some(status);
                }
            }
        }
        Err(last.map_or_else(|| storage("no members"), |s| status_error(&s)))
    }

    fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.call(true, move |mut kv| {
            let request = request.clone();
            Box::pin(async move { kv.range(request).await })
        })
    }

    /// The key prefix of `table`'s entries.
    fn table_base(&self, table: &str) -> Vec<u8> {
        let mut key = self.root.clone();
        key.extend_from_slice(b"\0d");
        key.extend_from_slice(table.as_bytes());
        key.push(0);
        key
    }

    fn data_key(&self, table: &str, key: &[u8]) -> Vec<u8> {
        let mut full = self.table_base(table);
        full.extend_from_slice(key);
        full
    }

    /// The key that marks that `table` exists even while empty.
    fn marker(&self, table: &str) -> Vec<u8> {
        let mut key = self.root.clone();
        key.extend_from_slice(b"\0t");
        key.extend_from_slice(table.as_bytes());
        key
    }

    /// The key every write transaction rewrites and compares.
    fn fence(&self) -> Vec<u8> {
        let mut key = self.root.clone();
        key.extend_from_slice(b"\0f");
        key
    }

    /// The etcd range of `range` within `table`.
    fn etcd_range(&self, table: &str, (start, end): KeyRange<'_>) -> (Vec<u8>, Vec<u8>) {
        let base = self.table_base(table);
        let from = match start {
            Bound::Included(k) => self.data_key(table, k),
            Bound::Excluded(k) => {
                let mut k = self.data_key(table, k);
                k.push(0);
                k
            }
            Bound::Unbounded => base.clone(),
        };
        let to = match end {
            Bound::Included(k) => {
                let mut k = self.data_key(table, k);
                k.push(0);
                k
            }
            Bound::Excluded(k) => self.data_key(table, k),
            Bound::Unbounded => prefix_end(&base),
        };
        (from, to)
    }
}

/// The server's version as the `&'static str` that `BackendInfo` holds: each distinct version
/// is kept once for the life of the program (a cluster has one or two), not once per open.
fn version_str(version: &str) -> &'static str {
    static SEEN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = seen.iter().find(|v| **v == version) {
        return known;
    }
    let kept: &'static str = Box::leak(version.to_owned().into_boxed_str());
    seen.push(kept);
    kept
}

impl Backend for Etcd {
    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn read(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<()>) -> Result<()> {
        f(&EtcdRead::new(self))
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()> {
        let mut w = EtcdWrite {
            read: EtcdRead::tracking(self),
            overlay: RefCell::new(BTreeMap::new()),
            fetched: BTreeMap::new(),
            dropped: Vec::new(),
            markers: BTreeMap::new(),
        };
        f(&mut w)?;
        let mut ops = w.ops(self);
        if ops.is_empty() {
            return Ok(());
        }
        let fence = self.fence();
        let compare = w.compares(self)?;
        // Every write moves the fence, which guards the transactions whose reads no set of
        // compares can (see `EtcdWrite::compares`).
        ops.push(RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: fence,
                ..PutRequest::default()
            })),
        });
        let txn = TxnRequest {
            compare,
            success: ops,
            failure: Vec::new(),
        };
        let reply = self.call(false, move |mut kv| {
            let txn = txn.clone();
            Box::pin(async move { kv.txn(txn).await })
        })?;
        if reply.succeeded {
            Ok(())
        } else {
            Err(Error::Conflict {
                reason: "another transaction changed what this one read".to_owned(),
            })
        }
    }
}

/// A read transaction: every read at one revision, fixed by the first.
struct EtcdRead<'a> {
    etcd: &'a Etcd,
    revision: Cell<i64>,
    /// What a write transaction read, for the compares that guard its commit.
    reads: Option<RefCell<ReadSet>>,
}

/// The reads of a write transaction.
#[derive(Default)]
struct ReadSet {
    /// Keys read or visited, with the revision they had (0: absent).
    keys: BTreeMap<Vec<u8>, i64>,
    /// The ranges scanned (`[from, to)`), as far as the scan went.
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// A read no compare can guard exactly (a count, the table list).
    whole: bool,
}

impl<'a> EtcdRead<'a> {
    fn new(etcd: &'a Etcd) -> Self {
        EtcdRead {
            etcd,
            revision: Cell::new(0),
            reads: None,
        }
    }

    /// A reader that records what it reads (for a write transaction).
    fn tracking(etcd: &'a Etcd) -> Self {
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

    fn range(&self, mut request: RangeRequest) -> Result<RangeResponse> {
        request.revision = self.revision.get();
        let reply = self.etcd.range(request)?;
        if self.revision.get() == 0 {
            self.revision
                .set(reply.header.as_ref().map_or(0, |h| h.revision));
        }
        Ok(reply)
    }

    fn get_full(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>> {
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
    fn get_many_full(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
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
            let reply = self.etcd.call(true, move |mut kv| {
                let txn = txn.clone();
                Box::pin(async move { kv.txn(txn).await })
            })?;
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
    fn scan_full(
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

    fn count(&self, (from, to): (Vec<u8>, Vec<u8>)) -> Result<u64> {
        self.note(|r| r.whole = true);
        let reply = self.range(RangeRequest {
            key: from,
            range_end: to,
            count_only: true,
            ..RangeRequest::default()
        })?;
        Ok(u64::try_from(reply.count).unwrap_or(0))
    }

    fn table_names(&self) -> Result<Vec<String>> {
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
struct EtcdWrite<'a> {
    read: EtcdRead<'a>,
    /// Full etcd key -> pending write.
    overlay: RefCell<BTreeMap<Vec<u8>, Pending>>,
    /// Snapshot values fetched ahead by `prefetch` (full etcd key -> value).
    fetched: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Tables dropped by this transaction (their snapshot entries read as gone).
    dropped: Vec<String>,
    /// Table markers to write (`true`) or delete (`false`).
    markers: BTreeMap<String, bool>,
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

    /// The compares that make the commit fail if anything this transaction read has changed
    /// since its snapshot: each key read or visited still at the revision it had (0 for
    /// absent), and no key in a scanned range newer than the snapshot. Past
    /// [`COMPARE_BUDGET`] compares, or after a read no compare describes (a count, the list of
    /// tables), one compare on the fence stands for them all: no write since the snapshot.
    fn compares(&self, etcd: &Etcd) -> Result<Vec<Compare>> {
        let revision = self.read.revision.get();
        let Some(reads) = self.read.reads.as_ref().map(RefCell::take) else {
            return Ok(Vec::new());
        };
        if revision == 0 {
            return Ok(Vec::new()); // nothing was read: blind writes
        }
        let modified = |key: Vec<u8>, range_end: Vec<u8>, result: CompareResult, at: i64| Compare {
            result: result as i32,
            target: CompareTarget::Mod as i32,
            key,
            range_end,
            target_union: Some(TargetUnion::ModRevision(at)),
        };
        if reads.whole || reads.keys.len() + reads.ranges.len() > COMPARE_BUDGET {
            let fence = etcd.fence();
            let reply = self.read.range(RangeRequest {
                key: fence.clone(),
                ..RangeRequest::default()
            })?;
            let at = reply.kvs.first().map_or(0, |kv| kv.mod_revision);
            return Ok(vec![modified(fence, Vec::new(), CompareResult::Equal, at)]);
        }
        let mut compares: Vec<Compare> = reads
            .keys
            .into_iter()
            .map(|(key, at)| modified(key, Vec::new(), CompareResult::Equal, at))
            .collect();
        for (from, to) in reads.ranges {
            if from < to {
                compares.push(modified(from, to, CompareResult::Less, revision + 1));
            }
        }
        Ok(compares)
    }

    /// The etcd operations that apply this transaction: table drops first, then markers, then
    /// the pending writes.
    fn ops(&self, etcd: &Etcd) -> Vec<RequestOp> {
        let mut ops = Vec::new();
        for table in &self.dropped {
            let base = etcd.table_base(table);
            ops.push(RequestOp {
                request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                    range_end: prefix_end(&base),
                    key: base,
                    ..DeleteRangeRequest::default()
                })),
            });
        }
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
        let wanted: Vec<Vec<u8>> = {
            let overlay = self.overlay.borrow();
            keys.filter(|(table, _)| !self.dropped(table))
                .map(|(table, key)| etcd.data_key(table, key))
                .filter(|full| !overlay.contains_key(full) && !self.fetched.contains_key(full))
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
