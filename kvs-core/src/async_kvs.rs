//! [`AsyncKvs`]: the calls of [`Kvs`] as `async fn`s, for tokio services (feature `tokio`).
//!
//! Each call encodes its borrowed arguments where they live (keys, index values and ranges,
//! records), then runs the one implementation of the call, `Kvs`'s, on tokio's blocking pool
//! with the owned encodings, and awaits it. Nothing here restates a call's logic: the owned
//! forms (`EncodedKey`, `EncodedValue`, `EncodedRange`, `Prepared`) feed `Kvs`'s own methods.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::{Bound, RangeBounds};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::arg::{EncodedKey, EncodedValue, IndexArg, KeyArg};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::kvs::Kvs;
use crate::query::{EncodedRange, IndexRange};
use crate::reads::Snapshot;
use crate::record::{self, Prepared};
use crate::report::{Dump, TableInfo, Version};
use crate::stream::{Reader, Writer};
use crate::table::{field_index, IndexField, KindCheck, Table};
use crate::tx::Tx;

/// A [`Kvs`] for async code: every call of `Kvs`, with the same name and arguments, as an
/// `async fn` whose future is `Send` (so it runs in `tokio::spawn` and in axum handlers).
///
/// Cheap to clone (an `Arc` inside), `Send` and `Sync`: clone it into each task. Each call
/// runs on tokio's blocking pool ([`tokio::task::spawn_blocking`]), never on the executor's
/// worker threads, so a slow disk or a distant cluster does not stall other tasks; it needs
/// a tokio runtime (either flavour). Dropping a call's future (a timeout that fires) does not
/// stop the call: it finishes on the pool, and its write commits whole or not at all, as
/// every write does.
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
/// counterpart is [`AsyncKvs::stream`]; and `snapshot`, whose async counterpart is
/// [`AsyncKvs::read`] (a closure given a [`Snapshot`]). [`AsyncKvs::kvs`] hands out the
/// sync handle for code that runs on a blocking thread of its own.
#[derive(Clone, Debug)]
pub struct AsyncKvs {
    kvs: Arc<Kvs>,
}

impl From<Kvs> for AsyncKvs {
    fn from(kvs: Kvs) -> Self {
        AsyncKvs { kvs: Arc::new(kvs) }
    }
}

impl From<Arc<Kvs>> for AsyncKvs {
    fn from(kvs: Arc<Kvs>) -> Self {
        AsyncKvs { kvs }
    }
}

/// Runs `f` on tokio's blocking pool and waits for it; a panic in it is
/// [`Error::Panicked`].
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> Result<R> + Send + 'static) -> Result<R> {
    joined(tokio::task::spawn_blocking(f).await)
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

    /// Runs `f` with the sync handle on tokio's blocking pool.
    async fn run<R: Send + 'static>(
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
    pub async fn seq(&self, name: &str, incr: u64) -> Result<u64> {
        let name = name.to_owned();
        self.run(move |kvs| kvs.seq(&name, incr)).await
    }

    /// [`Kvs::put`]: the record is encoded when the call is made, and written on the pool.
    /// The future holds the encoding, not `record`, so it is `Send + 'static` whatever `T`.
    pub fn put<T: Table>(&self, record: &T) -> impl Future<Output = Result<()>> + Send + 'static {
        let (kvs, record) = (self.kvs.clone(), Prepared::new(record));
        async move {
            let record = record?;
            blocking(move || kvs.put_prepared(record)).await
        }
    }

    /// [`Kvs::delete`].
    pub async fn delete<T: Table>(&self, key: impl KeyArg<T::Key>) -> Result<bool> {
        let key = EncodedKey(key.key_bytes());
        self.run(move |kvs| kvs.delete::<T>(key)).await
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
        self.run(move |kvs| records_in::<T>(kvs, range, usize::MAX))
            .await
    }

    /// [`Kvs::index`], checked at compile time as it is.
    pub async fn index<T: Table + Send>(
        &self,
        field: impl IndexField<T> + Send + 'static,
        value: impl IndexArg,
    ) -> Result<Vec<T>> {
        const { KindCheck::<T, _, _>::new() }.tie(&field, &value);
        let value = encoded_value(&field, &value);
        self.run(move |kvs| kvs.index::<T>(field, value)).await
    }

    /// [`Kvs::index_count`], checked at compile time as it is.
    pub async fn index_count<T: Table>(
        &self,
        field: impl IndexField<T> + Send + 'static,
        value: impl IndexArg,
    ) -> Result<u64> {
        const { KindCheck::<T, _, _>::new() }.tie(&field, &value);
        let value = encoded_value(&field, &value);
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
        self.run(move |kvs| kvs.index_range::<T>(field, range))
            .await
    }

    /// The records whose key lies in `range`, in key order, as a
    /// [`Stream`](futures_core::Stream): the async counterpart of [`Kvs::iter`]. It reads a
    /// page of records at a time on the blocking pool, each page one consistent read that
    /// starts after the last key the stream yielded (so a record is never yielded twice, and
    /// a long walk holds no snapshot open); unlike `iter` on a redb file, the pages are not
    /// one snapshot. An error ends the stream after it is yielded.
    pub fn stream<T: Table + Send>(&self, range: impl RangeBounds<T::Key>) -> RecordStream<T> {
        let (start, end) = record::key_scan_range::<T>(&range);
        RecordStream {
            kvs: self.kvs.clone(),
            start,
            end,
            page: VecDeque::new(),
            pending: None,
            done: false,
        }
    }

    /// Runs `f` on a [`Snapshot`] (one committed state) on the blocking pool: the async
    /// counterpart of [`Kvs::snapshot`].
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Snapshot<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.run(move |kvs| f(&kvs.snapshot()?)).await
    }

    /// [`Kvs::transaction`]: `f` runs on the blocking pool, in one write transaction. An
    /// `Err` from it, or a panic in it ([`Error::Panicked`]), rolls the transaction back and
    /// comes back as the call's `Err`; the handle stays usable.
    pub async fn transaction<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.run(move |kvs| kvs.transaction(f)).await
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

    /// [`Kvs::append`]: the record is encoded when the call is made, and written on the pool;
    /// the future is `Send + 'static` whatever `T`, as [`AsyncKvs::put`]'s is.
    pub fn append<T: Table>(
        &self,
        feed: &str,
        record: &T,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let (kvs, feed, record) = (self.kvs.clone(), feed.to_owned(), Prepared::new(record));
        async move {
            let record = record?;
            blocking(move || kvs.append_prepared(feed, record)).await
        }
    }

    /// [`Kvs::remove`].
    pub async fn remove<T: Table>(&self, feed: &str, key: impl KeyArg<T::Key>) -> Result<bool> {
        let (feed, key) = (feed.to_owned(), EncodedKey(key.key_bytes()));
        self.run(move |kvs| kvs.remove::<T>(&feed, key)).await
    }

    /// [`Kvs::reader`].
    pub async fn reader<T: Table>(&self, feed: &str) -> Result<Reader<T>> {
        let feed = feed.to_owned();
        self.run(move |kvs| kvs.reader::<T>(&feed)).await
    }

    /// Runs `f` on a copy of `reader` on the pool, and moves `reader` as it moved the copy
    /// (only once the call is done: a dropped future leaves `reader` where it was).
    async fn moving<T: Table, R: Send + 'static>(
        &self,
        reader: &mut Reader<T>,
        f: impl FnOnce(&Kvs, &mut Reader<T>) -> Result<R> + Send + 'static,
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
        self.run(move |kvs| kvs.save_reader(&reader)).await
    }

    /// [`Kvs::load_reader`].
    pub async fn load_reader<T: Table>(&self, id: u64) -> Result<Reader<T>> {
        self.run(move |kvs| kvs.load_reader::<T>(id)).await
    }

    /// [`Kvs::remove_reader`].
    pub async fn remove_reader(&self, id: u64) -> Result<bool> {
        self.run(move |kvs| kvs.remove_reader(id)).await
    }
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

/// Up to `limit` records of `T` whose encoded keys lie in `range`, in one consistent read: a
/// whole `range` call, or a page of a stream.
fn records_in<T: Table>(
    kvs: &Kvs,
    range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    limit: usize,
) -> Result<Vec<T>> {
    kvs.check::<T>()?;
    kvs.read(|r| record::range_encoded::<T>(r, range, limit))
}

/// Records per page of [`AsyncKvs::stream`].
const STREAM_PAGE: usize = 256;

type PageTask<T> = tokio::task::JoinHandle<Result<Vec<T>>>;

/// The records of a key range, read a page at a time ([`AsyncKvs::stream`]).
pub struct RecordStream<T> {
    kvs: Arc<Kvs>,
    /// Where the next page starts: after the last key yielded.
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    page: VecDeque<T>,
    pending: Option<PageTask<T>>,
    done: bool,
}

impl<T> std::fmt::Debug for RecordStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream")
            .field("url", &self.kvs.url())
            .field("buffered", &self.page.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

// Nothing in it is pinned: its page task is polled through `Pin::new` on a `JoinHandle`,
// which is `Unpin`.
impl<T> Unpin for RecordStream<T> {}

impl<T: Table + Send> futures_core::Stream for RecordStream<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = self.get_mut();
        loop {
            if let Some(record) = this.page.pop_front() {
                return Poll::Ready(Some(Ok(record)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let task = this.pending.get_or_insert_with(|| {
                let (kvs, range) = (this.kvs.clone(), (this.start.clone(), this.end.clone()));
                tokio::task::spawn_blocking(move || records_in::<T>(&kvs, range, STREAM_PAGE))
            });
            let page = match Pin::new(task).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(page) => page,
            };
            this.pending = None;
            let page = match joined(page) {
                Ok(page) => page,
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            };
            if page.len() < STREAM_PAGE {
                this.done = true;
            }
            if let Some(last) = page.last() {
                this.start = Bound::Excluded(last.key().to_key_bytes());
            }
            this.page = page.into();
        }
    }
}
