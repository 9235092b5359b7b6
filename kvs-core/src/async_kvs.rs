//! [`AsyncKvs`]: the calls of [`Kvs`] as `async fn`s, for tokio services (feature `tokio`).
//!
//! Each call encodes its borrowed arguments where they live (keys, index values and ranges,
//! records), then runs the one implementation of the call, `Kvs`'s, with the owned
//! encodings: replayed on the caller's task where the backend awaits its requests (etcd, see
//! [`crate::replay`]), else on tokio's blocking pool, and awaits it. Nothing here restates a
//! call's logic: the owned forms (`EncodedKey`, `EncodedValue`, `EncodedRange`, `Prepared`)
//! feed `Kvs`'s own methods.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::{Bound, RangeBounds};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::arg::{EncodedKey, EncodedValue, IndexArg, KeyArg};
use crate::async_group::TaskLane;
use crate::combine::Counters;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::kvs::Kvs;
use crate::query::{index_page, index_scan_range, EncodedRange, IndexRange, OwnedRange};
use crate::reads::Snapshot;
use crate::record::{self, Prepared, ReadKeys};
use crate::replay::Replay;
use crate::report::{Dump, TableInfo, Version};
use crate::stream::{Reader, Writer};
use crate::streams;
use crate::table::{field_index, IndexField, IndexMeta, KindCheck, Table};
use crate::tx::Tx;

/// A [`Kvs`] for async code: every call of `Kvs`, with the same name and arguments, as an
/// `async fn` whose future is `Send` (so it runs in `tokio::spawn` and in axum handlers).
///
/// Cheap to clone (an `Arc` inside), `Send` and `Sync`: clone it into each task. No call
/// blocks the executor's worker threads, so a slow disk or a distant cluster does not stall
/// other tasks; it needs a tokio runtime (either flavour):
/// - On etcd a call runs on the caller's task and awaits each request to the cluster, with
///   no thread of its own: `Kvs`'s call is replayed, its requests answered from a log that
///   grows by one awaited answer per run (see [`Backend::replay`](crate::Backend::replay)).
///   A call of more than 16 round trips that has sent no commit (a long read) moves to the
///   blocking pool. Concurrent `put`s and `delete`s run in shared batches, each batch run
///   the same way on a task spawned for it.
/// - Elsewhere (redb, `mem:`), and for the closures of `transaction` and `read` everywhere,
///   the call runs on tokio's blocking pool ([`tokio::task::spawn_blocking`]).
///
/// Dropping a call's future (a timeout that fires) leaves the store as a commit leaves it:
/// on the pool the call finishes by itself; on etcd a commit already sent applies whole or
/// not at all, and one not yet sent is never sent, except that a `put` or `delete` already
/// taken into a batch runs with it (and one whose batch's task is stopped, its runtime
/// shutting down, runs again alone on its own caller's task).
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # async fn f(url: &str) -> kvs_core::Result<()> {
/// use kvs_core::AsyncKvs;
///
/// let kvs = AsyncKvs::open(url).await?; // the `kvs` crate links the backends
/// let id = kvs.seq("users", 1).await?;
/// let same = kvs.clone(); // for another task
/// let seen = tokio::spawn(async move { same.seq("users", 0).await });
/// assert!(seen.await.unwrap()? >= id);
/// # Ok(())
/// # }
/// ```
///
/// What it has not: `iter` and `index_iter` (their iterators borrow the handle), whose async
/// counterparts are [`AsyncKvs::stream`] and [`AsyncKvs::index_stream`] (and, for `.rev()`,
/// [`AsyncKvs::stream_rev`] and [`AsyncKvs::index_stream_rev`]); and `snapshot`,
/// whose async counterpart is [`AsyncKvs::read`] (a closure given a [`Snapshot`]).
/// [`AsyncKvs::kvs`] hands out the sync handle for code that runs on a blocking thread of its
/// own.
#[derive(Clone, Debug)]
pub struct AsyncKvs {
    kvs: Arc<Kvs>,
    /// The lanes in which its tasks' `seq` calls combine: apart from the sync handle's, so
    /// that a thread blocked in a lane never waits for a task (on a current-thread runtime,
    /// that task could never run).
    counters: Arc<Counters>,
    /// The lane in which its tasks' `put`s and `delete`s share commits, where the backend
    /// batches writes (etcd): apart from the sync handle's, as `counters` is.
    batch: Arc<TaskLane>,
}

impl From<Kvs> for AsyncKvs {
    fn from(kvs: Kvs) -> Self {
        AsyncKvs::from(Arc::new(kvs))
    }
}

impl From<Arc<Kvs>> for AsyncKvs {
    fn from(kvs: Arc<Kvs>) -> Self {
        AsyncKvs {
            kvs,
            counters: Arc::default(),
            batch: Arc::default(),
        }
    }
}

/// Runs `f` on tokio's blocking pool and waits for it; a panic in it is
/// [`Error::Panicked`].
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> Result<R> + Send + 'static) -> Result<R> {
    joined(tokio::task::spawn_blocking(f).await)
}

/// Runs `f`, one call of the sync core, for an async caller. On a backend that awaits its
/// requests ([`Backend::replay`](crate::Backend::replay): etcd) it runs on this task,
/// replayed until every request it makes is answered (see [`crate::replay`]), so the call
/// costs no thread; `f` runs several times, and must do nothing but call `kvs` (it is
/// `Clone` to be run again). Elsewhere it runs once, on tokio's blocking pool. A panic in
/// it is [`Error::Panicked`] either way.
pub(crate) async fn call<R: Send + 'static>(
    kvs: Arc<Kvs>,
    f: impl FnOnce(&Kvs) -> Result<R> + Clone + Send + 'static,
) -> Result<R> {
    let Some(mut replay) = kvs.session.backend().replay() else {
        return blocking(move || f(&kvs)).await;
    };
    for run in 1.. {
        {
            let out = replayed(&mut *replay, &kvs, &f);
            if !replay.missing() {
                return out;
            }
        }
        // Many round trips (a long read): each run would redo more work than the last.
        if run > crate::replay::MAX_ROUND_TRIPS && !replay.sent_commit() {
            break;
        }
        replay.fetch().await?;
    }
    drop(replay);
    blocking(move || f(&kvs)).await
}

/// One run of a replayed call: `f` on this thread, its requests answered from `replay`.
fn replayed<R>(
    replay: &mut dyn Replay,
    kvs: &Kvs,
    f: &(impl FnOnce(&Kvs) -> Result<R> + Clone),
) -> Result<R> {
    let mut out = None;
    replay.run(&mut || {
        let f = f.clone();
        out = Some(crate::replay::as_replayed(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(kvs)))
        }));
    });
    match out {
        Some(Ok(result)) => result,
        Some(Err(panic)) => Err(Error::panicked(&*panic)),
        None => Err(Error::Aborted),
    }
}

/// The result of a task on the blocking pool: its own, or [`Error::Panicked`] for a panic.
fn joined<R>(result: std::result::Result<Result<R>, tokio::task::JoinError>) -> Result<R> {
    match result {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(Error::panicked(&*e.into_panic())),
        Err(e) => Err(Error::storage("tokio", e.to_string())),
    }
}

impl AsyncKvs {
    /// Opens the database `url` names ([`Kvs::open`]).
    pub async fn open(url: &str) -> Result<AsyncKvs> {
        let url = url.to_owned();
        blocking(move || Kvs::open(&url)).await.map(AsyncKvs::from)
    }

    /// Opens the database `KVS_URL` names, or the default ([`Kvs::from_env`]).
    pub async fn from_env() -> Result<AsyncKvs> {
        blocking(Kvs::from_env).await.map(AsyncKvs::from)
    }

    /// The sync handle, shared with this one: for code that runs on a thread of its own
    /// (inside `spawn_blocking`, say), where blocking is fine.
    pub fn kvs(&self) -> &Arc<Kvs> {
        &self.kvs
    }

    /// Runs `f` with the sync handle: replayed on this task when the backend awaits its
    /// requests (etcd), else on tokio's blocking pool (see [`call`]).
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Kvs) -> Result<R> + Clone + Send + 'static,
    ) -> Result<R> {
        call(self.kvs.clone(), f).await
    }

    /// Runs `f` with the sync handle on tokio's blocking pool, whatever the backend: for
    /// closures of the caller's own, which must run once (transactions, snapshot reads).
    async fn run_once<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Kvs) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let kvs = self.kvs.clone();
        blocking(move || f(&kvs)).await
    }

    /// [`Kvs::url`].
    pub fn url(&self) -> &str {
        self.kvs.url()
    }

    /// [`Kvs::refused`].
    pub fn refused(&self) -> Vec<Error> {
        self.kvs.refused()
    }

    /// [`Kvs::dir`].
    pub async fn dir(&self) -> Result<Vec<TableInfo>> {
        self.run(Kvs::dir).await
    }

    /// [`Kvs::ver`]. It reads nothing, and is `async` as every call here is, so that each
    /// reads as its `Kvs` counterpart with `.await`.
    #[allow(clippy::unused_async)]
    pub async fn ver(&self) -> Version {
        self.kvs.ver()
    }

    /// [`Kvs::dump`].
    pub async fn dump(&self) -> Result<Dump> {
        self.run(Kvs::dump).await
    }

    /// [`Kvs::seq`].
    ///
    /// Concurrent calls on one counter combine as `Kvs::seq`'s do: on a replayed backend
    /// (etcd) the task that leads a batch awaits its commit, and the others await their
    /// values. Tasks combine with the tasks of this handle (and its clones), not with threads
    /// calling the sync handle.
    pub async fn seq(&self, name: &str, incr: u64) -> Result<u64> {
        let name = name.to_owned();
        if incr == 0 || self.kvs.session.backend().replay().is_none() {
            return self.run(move |kvs| kvs.seq(&name, incr)).await;
        }
        let kvs = &self.kvs;
        self.counters
            .seq_async(&name, incr, |total| {
                let name = name.clone();
                call(kvs.clone(), move |kvs| kvs.seq_alone(&name, total))
            })
            .await
    }

    /// [`Kvs::put`]: the record is encoded when the call is made, and written as every call
    /// runs (see [`AsyncKvs`]). The future holds the encoding, not `record`, so it is
    /// `Send + 'static` whatever `T`.
    pub fn put<T: Table>(&self, record: &T) -> impl Future<Output = Result<()>> + Send + 'static {
        let (kvs, record, lane) = (self.kvs.clone(), Prepared::new(record), self.batched());
        async move {
            let record = record?;
            if let Some(lane) = lane {
                return in_batch(lane, kvs, record.reads(), crate::tx::put_write(record)).await;
            }
            call(kvs, move |kvs| kvs.put_prepared(record)).await
        }
    }

    /// [`Kvs::delete`].
    pub async fn delete<T: Table>(&self, key: impl KeyArg<T::Key>) -> Result<bool> {
        if let Some(lane) = self.batched() {
            let key = key.key_bytes();
            let reads = crate::tx::delete_reads::<T>(&key);
            let op = crate::tx::delete_write::<T>(key);
            return in_batch(lane, self.kvs.clone(), reads, op).await;
        }
        let key = EncodedKey(key.key_bytes());
        self.run(move |kvs| kvs.delete::<T>(key)).await
    }

    /// The lane of its tasks' batched writes, where the backend batches writes (etcd).
    fn batched(&self) -> Option<Arc<TaskLane>> {
        self.kvs
            .session
            .backend()
            .batch_writes()
            .map(|_| Arc::clone(&self.batch))
    }

    /// [`Kvs::get`].
    pub async fn get<T: Table + Send>(&self, key: impl KeyArg<T::Key>) -> Result<Option<T>> {
        let key = EncodedKey(key.key_bytes());
        self.run(move |kvs| kvs.get::<T>(key)).await
    }

    /// [`Kvs::count`].
    pub async fn count<T: Table>(&self) -> Result<u64> {
        self.run(Kvs::count::<T>).await
    }

    /// [`Kvs::all`].
    pub async fn all<T: Table + Send>(&self) -> Result<Vec<T>> {
        self.run(Kvs::all::<T>).await
    }

    /// [`Kvs::range`]: records by key range, collected.
    pub async fn range<T: Table + Send>(&self, range: impl RangeBounds<T::Key>) -> Result<Vec<T>> {
        let range = record::key_scan_range::<T>(&range);
        self.run(move |kvs| records_in::<T>(kvs, range, usize::MAX, false))
            .await
    }

    /// [`Kvs::index`], checked at compile time as it is.
    pub async fn index<T: Table + Send>(
        &self,
        field: impl IndexField<T> + Send + 'static,
        value: impl IndexArg,
    ) -> Result<Vec<T>> {
        const { KindCheck::<T, _, _>::new() }.tie(&field, &value);
        let (field, value) = (SameField::of(&field), encoded_value(&field, &value));
        self.run(move |kvs| kvs.index::<T>(field, value)).await
    }

    /// [`Kvs::index_count`], checked at compile time as it is.
    pub async fn index_count<T: Table>(
        &self,
        field: impl IndexField<T> + Send + 'static,
        value: impl IndexArg,
    ) -> Result<u64> {
        const { KindCheck::<T, _, _>::new() }.tie(&field, &value);
        let (field, value) = (SameField::of(&field), encoded_value(&field, &value));
        self.run(move |kvs| kvs.index_count::<T>(field, value))
            .await
    }

    /// [`Kvs::index_range`], checked at compile time as it is.
    pub async fn index_range<T: Table + Send>(
        &self,
        field: impl IndexField<T> + Send + 'static,
        range: impl IndexRange,
    ) -> Result<Vec<T>> {
        const { KindCheck::<T, _, _>::new() }.tie(&field, &range);
        let ix = &T::META.indexes[field_index(&field)];
        let range = EncodedRange(range.encode_bounds(&(ix.value_type)()));
        let field = SameField::of(&field);
        self.run(move |kvs| kvs.index_range::<T>(field, range))
            .await
    }

    /// The records whose key lies in `range`, in key order, as a
    /// [`Stream`](futures_core::Stream): the async counterpart of [`Kvs::iter`]. It reads a
    /// page of records at a time (as each call does: on the task on etcd, else on the
    /// blocking pool), each page one consistent read that starts after the last key the
    /// stream yielded (so a record is never yielded twice, and a long walk holds no snapshot
    /// open); unlike `iter` on a redb file, the pages are not one snapshot. An error ends the
    /// stream after it is yielded.
    pub fn stream<T: Table + Send>(&self, range: impl RangeBounds<T::Key>) -> RecordStream<T> {
        let (start, end) = record::key_scan_range::<T>(&range);
        RecordStream::new(self.kvs.clone(), None, Some((start, end)), false)
    }

    /// [`AsyncKvs::stream`] from the range's end: greatest key first, as
    /// `kvs.iter::<T>(range)?.rev()` walks (the newest records first, where keys come from
    /// [`AsyncKvs::seq`]). Each page ends before the last key the stream yielded.
    pub fn stream_rev<T: Table + Send>(&self, range: impl RangeBounds<T::Key>) -> RecordStream<T> {
        let (start, end) = record::key_scan_range::<T>(&range);
        RecordStream::new(self.kvs.clone(), None, Some((start, end)), true)
    }

    /// The records whose indexed `field` lies in `range`, in (value, key) order, as a
    /// [`Stream`](futures_core::Stream): the async counterpart of [`Kvs::index_iter`],
    /// checked at compile time as it is. It reads a page of index entries at a time with one
    /// batched read of their records, each page one consistent read that starts after the
    /// last entry of the one before, as [`AsyncKvs::stream`] does.
    #[allow(clippy::needless_pass_by_value)] // taken by value, as `Kvs::index_iter` takes them
    pub fn index_stream<T: Table + Send>(
        &self,
        field: impl IndexField<T>,
        range: impl IndexRange,
    ) -> RecordStream<T> {
        const { KindCheck::<T, _, _>::new() }.tie(&field, &range);
        self.index_stream_from(&field, &range, false)
    }

    /// [`AsyncKvs::index_stream`] from the range's end: in (value, key) order reversed, as
    /// `kvs.index_iter::<T>(field, range)?.rev()` walks; checked at compile time as
    /// `index_stream` is.
    #[allow(clippy::needless_pass_by_value)] // taken by value, as `Kvs::index_iter` takes them
    pub fn index_stream_rev<T: Table + Send>(
        &self,
        field: impl IndexField<T>,
        range: impl IndexRange,
    ) -> RecordStream<T> {
        const { KindCheck::<T, _, _>::new() }.tie(&field, &range);
        self.index_stream_from(&field, &range, true)
    }

    /// [`AsyncKvs::index_stream`], or from the range's end when `back`.
    fn index_stream_from<T: Table + Send, F: IndexField<T>>(
        &self,
        field: &F,
        range: &impl IndexRange,
        back: bool,
    ) -> RecordStream<T> {
        let ix = &T::META.indexes[field_index(field)];
        RecordStream::new(
            self.kvs.clone(),
            Some(ix),
            index_scan_range(ix, range),
            back,
        )
    }

    /// Runs `f` on a [`Snapshot`] (one committed state) on the blocking pool: the async
    /// counterpart of [`Kvs::snapshot`].
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Snapshot<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.run_once(move |kvs| f(&kvs.snapshot()?)).await
    }

    /// [`Kvs::transaction`]: `f` runs on the blocking pool, in one write transaction. An
    /// `Err` from it, or a panic in it ([`Error::Panicked`]), rolls the transaction back and
    /// comes back as the call's `Err`; the handle stays usable.
    pub async fn transaction<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.run_once(move |kvs| kvs.transaction(f)).await
    }

    /// [`Kvs::try_transaction`]: the closure's own error comes back unchanged; a panic in it
    /// comes back as `E::from(Error::Panicked)`.
    pub async fn try_transaction<R: Send + 'static, E: From<Error> + Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        let kvs = self.kvs.clone();
        match blocking(move || Ok(kvs.try_transaction(f))).await {
            Ok(result) => result,
            Err(e) => Err(E::from(e)),
        }
    }

    /// [`Kvs::transaction_retry`].
    pub async fn transaction_retry<R: Send + 'static, E: From<Error> + Send + 'static>(
        &self,
        f: impl FnMut(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        let kvs = self.kvs.clone();
        match blocking(move || Ok(kvs.transaction_retry(f))).await {
            Ok(result) => result,
            Err(e) => Err(E::from(e)),
        }
    }

    /// [`Kvs::writer`].
    pub async fn writer(&self, feed: &str) -> Result<Writer> {
        let feed = feed.to_owned();
        self.run(move |kvs| kvs.writer(&feed)).await
    }

    /// [`Kvs::writers`].
    pub async fn writers(&self) -> Result<Vec<Writer>> {
        self.run(Kvs::writers).await
    }

    /// [`Kvs::feed`].
    pub async fn feed<T: Table + Send>(&self, feed: &str) -> Result<Vec<T>> {
        let feed = feed.to_owned();
        self.run(move |kvs| kvs.feed::<T>(&feed)).await
    }

    /// [`Kvs::append`]: the record is encoded when the call is made, and written as every
    /// call runs; the future is `Send + 'static` whatever `T`, as [`AsyncKvs::put`]'s is.
    pub fn append<T: Table>(
        &self,
        feed: &str,
        record: &T,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let (kvs, feed, record) = (self.kvs.clone(), feed.to_owned(), Prepared::new(record));
        let lane = self.batched();
        async move {
            let record = record?;
            if let Some(lane) = lane {
                kvs.check_stream::<T>()?;
                let reads = streams::append_reads(&feed, &record);
                return in_batch(lane, kvs, reads, streams::append_write(feed, record)).await;
            }
            call(kvs, move |kvs| kvs.append_prepared(feed, record)).await
        }
    }

    /// [`Kvs::remove`].
    pub async fn remove<T: Table>(&self, feed: &str, key: impl KeyArg<T::Key>) -> Result<bool> {
        if let Some(lane) = self.batched() {
            self.kvs.check_stream::<T>()?;
            let (feed, key) = (feed.to_owned(), key.key_bytes());
            let reads = streams::remove_reads::<T>(&feed, &key);
            let op = streams::remove_write::<T>(feed, key);
            return in_batch(lane, self.kvs.clone(), reads, op).await;
        }
        let (feed, key) = (feed.to_owned(), EncodedKey(key.key_bytes()));
        self.run(move |kvs| kvs.remove::<T>(&feed, key)).await
    }

    /// [`Kvs::reader`].
    pub async fn reader<T: Table>(&self, feed: &str) -> Result<Reader<T>> {
        let feed = feed.to_owned();
        if let Some(lane) = self.batched() {
            self.kvs.check_stream::<T>()?;
            let reads = streams::reader_reads(&feed);
            return in_batch(lane, self.kvs.clone(), reads, streams::reader_write(feed)).await;
        }
        self.run(move |kvs| kvs.reader::<T>(&feed)).await
    }

    /// Runs `f` on a copy of `reader`, and moves `reader` as it moved the copy (only once the
    /// call is done: a dropped future leaves `reader` where it was).
    async fn moving<T: Table, R: Send + 'static>(
        &self,
        reader: &mut Reader<T>,
        f: impl FnOnce(&Kvs, &mut Reader<T>) -> Result<R> + Clone + Send + 'static,
    ) -> Result<R> {
        let mut copy = reader.clone();
        let (result, copy) = self
            .run(move |kvs| {
                let result = f(kvs, &mut copy);
                Ok((result, copy))
            })
            .await?;
        *reader = copy;
        result
    }

    /// [`Kvs::take`].
    pub async fn take<T: Table + Send>(&self, reader: &mut Reader<T>, n: usize) -> Result<Vec<T>> {
        self.moving(reader, move |kvs, r| kvs.take(r, n)).await
    }

    /// [`Kvs::next`].
    pub async fn next<T: Table + Send>(&self, reader: &mut Reader<T>) -> Result<Option<T>> {
        self.moving(reader, Kvs::next).await
    }

    /// [`Kvs::prev`].
    pub async fn prev<T: Table + Send>(&self, reader: &mut Reader<T>) -> Result<Option<T>> {
        self.moving(reader, Kvs::prev).await
    }

    /// [`Kvs::skip`].
    pub async fn skip<T: Table>(&self, reader: &mut Reader<T>, n: usize) -> Result<usize> {
        self.moving(reader, move |kvs, r| kvs.skip(r, n)).await
    }

    /// [`Kvs::top`].
    pub async fn top<T: Table>(&self, reader: &mut Reader<T>) -> Result<()> {
        self.moving(reader, Kvs::top).await
    }

    /// [`Kvs::bot`].
    pub async fn bot<T: Table>(&self, reader: &mut Reader<T>) -> Result<()> {
        self.moving(reader, Kvs::bot).await
    }

    /// [`Kvs::save_reader`].
    pub async fn save_reader<T: Table>(&self, reader: &Reader<T>) -> Result<()> {
        let reader = reader.clone();
        if let Some(lane) = self.batched() {
            self.kvs.check_stream::<T>()?;
            let op = streams::save_reader_write(reader);
            return in_batch(lane, self.kvs.clone(), Vec::new(), op).await;
        }
        self.run(move |kvs| kvs.save_reader(&reader)).await
    }

    /// [`Kvs::load_reader`].
    pub async fn load_reader<T: Table>(&self, id: u64) -> Result<Reader<T>> {
        self.run(move |kvs| kvs.load_reader::<T>(id)).await
    }

    /// [`Kvs::remove_reader`].
    pub async fn remove_reader(&self, id: u64) -> Result<bool> {
        if let Some(lane) = self.batched() {
            self.kvs.check_streams()?;
            let reads = streams::remove_reader_reads(id);
            let op = streams::remove_reader_write(id);
            return in_batch(lane, self.kvs.clone(), reads, op).await;
        }
        self.run(move |kvs| kvs.remove_reader(id)).await
    }
}

/// A one-call write, with the keys it reads (`reads`), in its tasks' batch (`lane`: the
/// backend batches writes, as etcd does).
async fn in_batch<R: Send + 'static>(
    lane: Arc<TaskLane>,
    kvs: Arc<Kvs>,
    reads: ReadKeys,
    op: impl FnMut(&mut Tx<'_>) -> Result<R> + Send + 'static,
) -> Result<R> {
    crate::tx::unboxed(lane.write(kvs, crate::tx::boxed(op), reads).await?)
}

/// The indexed field `F` names, as a marker that is `Copy` whatever `F` is: a replayed call
/// runs more than once.
struct SameField<F>(std::marker::PhantomData<fn() -> F>);

impl<F> SameField<F> {
    fn of(_field: &F) -> Self {
        SameField(std::marker::PhantomData)
    }
}

impl<F> Clone for SameField<F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F> Copy for SameField<F> {}

impl<T: Table, F: IndexField<T>> IndexField<T> for SameField<F> {
    const INDEX: usize = F::INDEX;
    type Value = F::Value;
    const MISMATCH: [&'static str; 6] = F::MISMATCH;
}

/// `value` encoded as `field`'s type, owned.
fn encoded_value<T: Table>(field: &impl IndexField<T>, value: &impl IndexArg) -> EncodedValue {
    let ix = &T::META.indexes[field_index(field)];
    let mut bytes = Vec::new();
    EncodedValue(
        value
            .encode_as(&(ix.value_type)(), &mut bytes)
            .then_some(bytes),
    )
}

/// Up to `limit` records of `T` in one consistent read: those whose index entries for `ix`
/// lie in `range`, or without `ix` those whose keys do; with the key of the last entry read
/// when it stopped at `limit` (where the next page starts, or ends when `back`). A page of a stream.
fn stream_page<T: Table>(
    kvs: &Kvs,
    ix: Option<&'static IndexMeta>,
    range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    limit: usize,
    back: bool,
) -> Result<(Vec<T>, Option<Vec<u8>>)> {
    let Some(ix) = ix else {
        let records = records_in::<T>(kvs, range, limit, back)?;
        let last = (records.len() == limit)
            .then(|| records.last().map(|r| r.key().to_key_bytes()))
            .flatten();
        return Ok((records, last));
    };
    kvs.check::<T>()?;
    kvs.read(|r| index_page::<T>(r, ix, range, limit, back))
}

/// Up to `limit` records of `T` whose encoded keys lie in `range` (from its end when `back`),
/// in one consistent read: a whole `range` call, or a page of a stream.
fn records_in<T: Table>(
    kvs: &Kvs,
    range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    limit: usize,
    back: bool,
) -> Result<Vec<T>> {
    kvs.check::<T>()?;
    kvs.read(|r| record::range_encoded::<T>(r, range, limit, back))
}

/// Records per page of [`AsyncKvs::stream`] and [`AsyncKvs::index_stream`] (and their
/// `_rev` twins).
const STREAM_PAGE: usize = 256;

/// The read of one page of a [`RecordStream`], under way.
type PageTask<T> = Pin<Box<dyn Future<Output = Result<(Vec<T>, Option<Vec<u8>>)>> + Send>>;

/// The records of a key range or an index range, read a page at a time
/// ([`AsyncKvs::stream`], [`AsyncKvs::index_stream`], and from the range's end
/// [`AsyncKvs::stream_rev`], [`AsyncKvs::index_stream_rev`]).
pub struct RecordStream<T> {
    kvs: Arc<Kvs>,
    /// The index whose entries it walks; `None`: the records' own keys.
    ix: Option<&'static IndexMeta>,
    /// What is left to read: the range, its start moved past the last entry read (its end,
    /// when walking back); `None` when nothing is left.
    range: OwnedRange,
    /// Whether it walks from the range's end.
    back: bool,
    page: VecDeque<T>,
    /// The page being read. In a `Mutex` only so that the stream is `Sync` (the future is
    /// `Send` but not `Sync`); polling it takes `&mut`, so the lock is never taken.
    pending: Option<std::sync::Mutex<PageTask<T>>>,
}

impl<T> RecordStream<T> {
    fn new(kvs: Arc<Kvs>, ix: Option<&'static IndexMeta>, range: OwnedRange, back: bool) -> Self {
        RecordStream {
            kvs,
            ix,
            range,
            back,
            page: VecDeque::new(),
            pending: None,
        }
    }
}

impl<T> std::fmt::Debug for RecordStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream")
            .field("url", &self.kvs.url())
            .field("index", &self.ix.map(|ix| ix.table))
            .field("buffered", &self.page.len())
            .field("done", &self.range.is_none())
            .field("back", &self.back)
            .finish_non_exhaustive()
    }
}

// Nothing in it is pinned: its page task is boxed.
impl<T> Unpin for RecordStream<T> {}

impl<T: Table + Send> futures_core::Stream for RecordStream<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = self.get_mut();
        loop {
            if let Some(record) = this.page.pop_front() {
                return Poll::Ready(Some(Ok(record)));
            }
            let Some(range) = &this.range else {
                return Poll::Ready(None);
            };
            let task = this.pending.get_or_insert_with(|| {
                let (kvs, ix, range, back) = (this.kvs.clone(), this.ix, range.clone(), this.back);
                std::sync::Mutex::new(Box::pin(call(kvs, move |kvs| {
                    stream_page::<T>(kvs, ix, range, STREAM_PAGE, back)
                })))
            });
            let task = task
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let page = match task.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(page) => page,
            };
            this.pending = None;
            match page {
                Ok((page, Some(last))) => {
                    if let Some((start, end)) = &mut this.range {
                        *(if this.back { end } else { start }) = Bound::Excluded(last);
                    }
                    this.page = page.into();
                }
                Ok((page, None)) => {
                    this.range = None;
                    this.page = page.into();
                }
                Err(e) => {
                    this.range = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}
