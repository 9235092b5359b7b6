//! Writing: [`Tx`], the calls of [`Kvs`] inside one write transaction, and `Kvs`'s one-call
//! writes and transactions, with the guard that refuses a handle used inside its own
//! transaction.

use std::sync::atomic::Ordering;

use crate::arg::KeyArg;
use crate::backend::{ReadTx, WriteTx};
use crate::cursor;
use crate::error::{Error, Result};
use crate::group;
use crate::kvs::Kvs;
use crate::query::Source;
use crate::reads::Reads;
use crate::record::{self, Prepared, ReadKeys};
use crate::replay;
use crate::retry::retry;
use crate::stream::{self, Reader};
use crate::table::Table;
use crate::write;

thread_local! {
    /// The handles (by id) whose `transaction` closure runs on this thread, innermost last: a
    /// call on one of them would wait for that very transaction.
    static IN_TRANSACTION: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks a handle's transaction as running on this thread until dropped (a panic included).
struct Running(u64);

impl Running {
    fn start(id: u64) -> Running {
        IN_TRANSACTION.with(|running| running.borrow_mut().push(id));
        Running(id)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        IN_TRANSACTION.with(|running| {
            let mut running = running.borrow_mut();
            if let Some(at) = running.iter().rposition(|&id| id == self.0) {
                running.remove(at);
            }
        });
    }
}

/// A write transaction, with the read and write calls of [`Kvs`].
///
/// Made by [`Kvs::transaction`]; what it writes commits when the closure returns `Ok`.
pub struct Tx<'a> {
    pub(crate) w: &'a mut dyn WriteTx,
    pub(crate) kvs: &'a Kvs,
}

impl Tx<'_> {
    /// [`Kvs::seq`] inside the transaction.
    pub fn seq(&mut self, name: &str, incr: u64) -> Result<u64> {
        write::seq(self.w, name, incr)
    }

    /// [`Kvs::put`] inside the transaction.
    pub fn put<T: Table>(&mut self, record: &T) -> Result<()> {
        self.kvs.check::<T>()?;
        record::put(self.w, &Prepared::new(record)?)
    }

    /// [`Tx::put`] of a record encoded already.
    pub(crate) fn put_prepared<T: Table>(&mut self, record: &Prepared<T>) -> Result<()> {
        self.kvs.check::<T>()?;
        record::put(self.w, record)
    }

    /// [`Kvs::delete`] inside the transaction.
    pub fn delete<T: Table>(&mut self, key: impl KeyArg<T::Key>) -> Result<bool> {
        self.kvs.check::<T>()?;
        self.delete_encoded::<T>(&key.key_bytes())
    }

    /// [`Kvs::append`] inside the transaction.
    pub fn append<T: Table>(&mut self, feed: &str, record: &T) -> Result<()> {
        self.kvs.check_stream::<T>()?;
        self.append_prepared(feed, &Prepared::new(record)?)
    }

    /// [`Tx::append`] of a record encoded already.
    pub(crate) fn append_prepared<T: Table>(
        &mut self,
        feed: &str,
        record: &Prepared<T>,
    ) -> Result<()> {
        self.kvs.check_stream::<T>()?;
        stream::append(self.w, feed, record)?;
        self.kvs.feeds_exist.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// [`Kvs::remove`] inside the transaction.
    pub fn remove<T: Table>(&mut self, feed: &str, key: impl KeyArg<T::Key>) -> Result<bool> {
        self.remove_encoded::<T>(feed, &key.key_bytes())
    }

    /// [`Tx::remove`] of a key encoded already.
    pub(crate) fn remove_encoded<T: Table>(&mut self, feed: &str, key: &[u8]) -> Result<bool> {
        self.kvs.check_stream::<T>()?;
        stream::unlink(self.w, feed, T::META.name, key)
    }

    /// [`Kvs::reader`] inside the transaction.
    pub fn reader<T: Table>(&mut self, feed: &str) -> Result<Reader<T>> {
        self.kvs.check_stream::<T>()?;
        cursor::new_reader(self.w, feed)
    }

    /// [`Kvs::save_reader`] inside the transaction.
    pub fn save_reader<T: Table>(&mut self, r: &Reader<T>) -> Result<()> {
        self.kvs.check_stream::<T>()?;
        cursor::save_reader(self.w, r)
    }

    /// [`Kvs::remove_reader`] inside the transaction.
    pub fn remove_reader(&mut self, id: u64) -> Result<bool> {
        self.kvs.check_streams()?;
        cursor::remove_reader(self.w, id)
    }

    /// Deletes the record under the encoded `key` with its index entries, and unlinks it from
    /// every feed where the database has feeds.
    pub(crate) fn delete_encoded<T: Table>(&mut self, key: &[u8]) -> Result<bool> {
        let deleted = record::delete::<T>(self.w, key)?;
        // Where this handle has streams open, or the database had feeds when it opened (or
        // this handle appended): a handle that left the stream schema out of its URL, on a
        // database with no feeds yet, pays nothing for them.
        if deleted && (self.kvs.streams || self.kvs.feeds_exist.load(Ordering::Relaxed)) {
            stream::unlink_all(self.w, T::META.name, key)?;
        }
        Ok(deleted)
    }
}

impl Tx<'_> {
    read_calls!();
}

impl Reads for Tx<'_> {
    fn handle(&self) -> &Kvs {
        self.kvs
    }
    fn with<R>(&self, f: impl FnOnce(&dyn ReadTx) -> Result<R>) -> Result<R> {
        f(&*self.w)
    }
    fn source(&self) -> Result<Source<'_>> {
        Ok(Source::Borrowed(&*self.w))
    }
    fn committed(&self) -> bool {
        false
    }
}

/// One-call writes and transactions: each runs the closure in one backend write transaction.
impl Kvs {
    /// Fails when this handle's own transaction runs on this thread: the call would wait for
    /// it forever.
    pub(crate) fn not_in_transaction(&self) -> Result<()> {
        if IN_TRANSACTION.with(|running| running.borrow().contains(&self.id)) {
            Err(Error::InTransaction {
                location: self.config.url.clone(),
            })
        } else {
            Ok(())
        }
    }

    /// Adds `incr` to the counter `name` (created at 0) and returns the new value; `incr = 0`
    /// reads it. Atomic and durable: no value is handed out twice (Erlang `kvs:seq/2`).
    ///
    /// Concurrent calls on one counter through this handle combine: the calls that arrive
    /// while one commits are added in the next commit, and each gets its own value, in the
    /// order the calls arrived. A hot counter then costs one commit per batch rather than one
    /// per call. On etcd a batch is one increment by its calls' sum, so that one process's
    /// callers do not conflict with each other; on redb the calls are writes of a group
    /// commit. A call that returned is ordered before every call that begins later.
    pub fn seq(&self, name: &str, incr: u64) -> Result<u64> {
        if incr == 0 {
            return self.read(|r| write::read_seq(r, name));
        }
        // Before joining a lane: a call inside this handle's own transaction would wait for a
        // batch that waits for that transaction.
        self.not_in_transaction()?;
        // Where writes share commits (group commit), a `seq` is one write of the group: the
        // calls on one counter that arrive while a commit is under way are added in the next
        // one, in arrival order. Combining them first (as below) adds a wait: the batch's
        // leader then waits in the group's lane too.
        if self.session.backend().serial_writes() {
            return self.seq_alone(name, incr);
        }
        self.counters
            .seq(name, incr, &|total| self.seq_alone(name, total))
    }

    /// Adds `incr` to the counter `name` in a commit of its own, outside its lane: the
    /// commit of a batch of combined calls.
    pub(crate) fn seq_alone(&self, name: &str, incr: u64) -> Result<u64> {
        let name = name.to_owned();
        self.write_call(move |tx| tx.seq(&name, incr))
    }

    /// Stores `record`, replacing the record with the same key and keeping every index exact.
    /// A value already held by another record in a unique index is [`Error::Duplicate`], and
    /// nothing is written.
    pub fn put<T: Table>(&self, record: &T) -> Result<()> {
        self.check::<T>()?;
        self.put_prepared(Prepared::new(record)?)
    }

    /// [`Kvs::put`] of a record encoded already (once, however often the write is retried).
    pub(crate) fn put_prepared<T: Table>(&self, record: Prepared<T>) -> Result<()> {
        let reads = self.declared(|| record.reads());
        self.write_call_reading(reads, put_write(record))
    }

    /// Deletes the record with `key` and its index entries; returns whether it existed.
    pub fn delete<T: Table>(&self, key: impl KeyArg<T::Key>) -> Result<bool> {
        let key = key.key_bytes();
        let reads = self.declared(|| delete_reads::<T>(&key));
        self.write_call_reading(reads, delete_write::<T>(key))
    }

    /// Runs `f` in one write transaction: everything it does commits together if it returns
    /// `Ok`, and nothing does if it (or any call in it) returns `Err`, `seq` included.
    ///
    /// Inside `f`, use `tx`: a call on this `Kvs` handle would wait for the transaction that
    /// is running, and fails at once with [`Error::InTransaction`] instead. On a replicated
    /// backend (etcd) a transaction that read what a concurrent one wrote fails with
    /// [`Error::Conflict`] and writes nothing; [`Kvs::transaction_retry`] runs it again.
    ///
    /// On redb, transactions and one-call writes that arrive through one handle while a
    /// commit is under way share the next commit (one fsync), each closure running on its
    /// own caller's thread, one after another: each sees the writes before it, and one that
    /// fails or panics is rolled back alone. The call returns once that commit is durable;
    /// when the shared commit itself fails, every transaction in it gets that error.
    pub fn transaction<R>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<R>) -> Result<R> {
        self.try_transaction(f)
    }

    /// [`Kvs::transaction`] whose closure fails with the application's own error type: an
    /// `Err(e)` from `f` rolls everything back and comes back as that same `e`, unchanged;
    /// kvs's own errors (from calls in `f`, or from the commit) reach the caller through
    /// `E: From<kvs::Error>`.
    ///
    /// ```no_run
    /// # use kvs_core::{Error, Kvs};
    /// #[derive(Debug)]
    /// enum ShopError { OutOfStock, Store(Error) }
    /// impl From<Error> for ShopError {
    ///     fn from(e: Error) -> Self { ShopError::Store(e) }
    /// }
    /// # let kvs = Kvs::open("mem:")?; // the kvs crate links the mem: backend
    /// let sold = kvs.try_transaction(|tx| {
    ///     let left = tx.seq("stock", 0)?;
    ///     if left == 0 {
    ///         return Err(ShopError::OutOfStock);
    ///     }
    ///     Ok(left)
    /// });
    /// assert!(matches!(sold, Err(ShopError::OutOfStock)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_transaction<R, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        match self.run_transaction(f) {
            Ok(value) => Ok(value),
            Err(Failed::Closure(e)) => Err(e),
            Err(Failed::Kvs(e)) => Err(E::from(e)),
        }
    }

    /// Runs the transaction `f`, and runs it again (from the start, on fresh reads) when a
    /// concurrent transaction made it fail with [`Error::Conflict`], for up to 30 seconds with
    /// growing, jittered pauses. This is the call for portable read-modify-write code: on redb
    /// a transaction never conflicts and `f` runs once; on etcd, conflicts are how concurrent
    /// transactions are kept serializable, and a conflict writes nothing, so running `f` again
    /// is safe.
    ///
    /// `f` must be safe to run again: keep its effects inside `tx`. An error `f` returns is
    /// retried when it is a `kvs::Error` that a read met (a conflict, or a cluster without a
    /// leader for a moment: nothing was committed); any other comes back at once, unchanged.
    /// An [`Error::Unavailable`] from the commit itself is returned, not retried: the commit
    /// may have applied, and running `f` again could apply it twice.
    pub fn transaction_retry<R, E: From<Error> + 'static>(
        &self,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        // What ended the last attempt, when retry() is not to see it as transient.
        let mut last: Option<Failed<E>> = None;
        let retried = retry(|| {
            last = None;
            match self.run_transaction(&mut f) {
                Ok(value) => Ok(value),
                // Nothing was written: safe to run again.
                Err(Failed::Kvs(e @ Error::Conflict { .. })) => Err(e),
                Err(Failed::Kvs(e)) => {
                    last = Some(Failed::Kvs(e));
                    Err(Error::Aborted)
                }
                Err(Failed::Closure(e)) => {
                    // The closure failed before any commit: a transient kvs error it met is
                    // safe to run again.
                    let transient = (&e as &dyn std::any::Any)
                        .downcast_ref::<Error>()
                        .is_some_and(Error::is_transient);
                    last = Some(Failed::Closure(e));
                    Err(if transient {
                        Error::Conflict {
                            reason: "the transaction met a conflict or a lost leader".to_owned(),
                        }
                    } else {
                        Error::Aborted
                    })
                }
            }
        });
        match (retried, last) {
            (Ok(value), _) => Ok(value),
            (Err(_), Some(Failed::Closure(e))) => Err(e),
            (Err(_), Some(Failed::Kvs(e))) | (Err(e), None) => Err(E::from(e)),
        }
    }

    /// Runs `f` in one write transaction (in a group's, where the backend's writes are
    /// serial), telling the closure's own error apart from kvs's.
    fn run_transaction<R, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, E>,
    ) -> Result<R, Failed<E>> {
        self.not_in_transaction().map_err(Failed::Kvs)?;
        let _running = Running::start(self.id);
        let mut f = Some(f);
        let mut out = None;
        let mut failed = None;
        let mut part = |tx: &mut Tx<'_>| {
            // It runs once; were it asked again, there is no closure left.
            let Some(f) = f.take() else {
                return Err(Error::Aborted);
            };
            match f(tx) {
                Ok(value) => {
                    out = Some(value);
                    Ok(())
                }
                Err(e) => {
                    failed = Some(e);
                    Err(Error::Aborted)
                }
            }
        };
        let grouped = self.session.backend().serial_writes();
        let done = if grouped {
            self.lane.transaction(self, &mut part)
        } else {
            self.write_alone(&mut part)
        };
        match (done, out, failed) {
            // The closure failed in a group that did not commit: it may have failed on the
            // group's writes that never were, so the group's error is the answer.
            (Err(e), _, Some(_)) if grouped && !matches!(e, Error::Aborted) => Err(Failed::Kvs(e)),
            (_, _, Some(e)) => Err(Failed::Closure(e)),
            (Ok(()), Some(value), None) => Ok(value),
            (Err(e), _, None) => Err(Failed::Kvs(e)),
            (Ok(()), None, None) => Err(Failed::Kvs(Error::Aborted)),
        }
    }

    /// Runs `f` in a backend write transaction of its own, outside the lane.
    pub(crate) fn write_alone(&self, f: &mut dyn FnMut(&mut Tx<'_>) -> Result<()>) -> Result<()> {
        self.session
            .backend()
            .write(&mut |w| f(&mut Tx { w, kvs: self }))
    }

    /// A one-call write (`put`, `seq`, ...): one transaction, run again when a replicated
    /// backend reports a conflict or a lost leader. Every such call is safe to repeat: `put`,
    /// `delete`, `append` and `save_reader` are idempotent, and a repeated `seq` takes a new
    /// value (a value whose commit went unacknowledged is skipped, never reused).
    pub(crate) fn write_call<R: Send + 'static>(
        &self,
        f: impl FnMut(&mut Tx<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.one_call(None, f)
    }

    /// The keys a write reads (`reads`), declared where the backend batches writes (etcd);
    /// elsewhere none, and nothing is spent on them.
    pub(crate) fn declared(&self, reads: impl FnOnce() -> ReadKeys) -> ReadKeys {
        if self.session.backend().batch_writes().is_some() {
            reads()
        } else {
            Vec::new()
        }
    }

    /// [`Kvs::write_call`] of a write that declares the keys it reads (`reads`, perhaps none:
    /// a blind write), so that on a backend that batches such writes (etcd) it joins a batch,
    /// which fetches the reads of all its writes together.
    pub(crate) fn write_call_reading<R: Send + 'static>(
        &self,
        reads: ReadKeys,
        f: impl FnMut(&mut Tx<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.one_call(Some(reads), f)
    }

    /// A one-call write: in the group commit where the backend's writes are serial (redb),
    /// in a batch where it batches writes (etcd) and the write declares its reads (`reads`),
    /// else in a transaction of its own.
    fn one_call<R: Send + 'static>(
        &self,
        reads: Option<ReadKeys>,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        // Before joining the lane: a call inside this handle's own transaction would wait for
        // a group that waits for that transaction.
        self.not_in_transaction()?;
        let backend = self.session.backend();
        // A call replayed on a task (AsyncKvs) must not block its thread in the lane.
        let grouped = backend.serial_writes()
            || (backend.batch_writes().is_some() && reads.is_some() && !replay::replaying());
        if !grouped {
            // Unlike transaction_retry, a lost leader at commit is retried too: these calls
            // are safe to repeat whether or not the first commit applied.
            return retry(|| self.transaction(&mut f));
        }
        unboxed(self.lane.write(self, boxed(f), reads.unwrap_or_default())?)
    }
}

/// `put` of an encoded record, as a one-call write.
pub(crate) fn put_write<T: Table>(
    record: Prepared<T>,
) -> impl FnMut(&mut Tx<'_>) -> Result<()> + Send + 'static {
    move |tx| tx.put_prepared(&record)
}

/// `delete` of an encoded key, as a one-call write.
pub(crate) fn delete_write<T: Table>(
    key: Vec<u8>,
) -> impl FnMut(&mut Tx<'_>) -> Result<bool> + Send + 'static {
    move |tx| {
        tx.kvs.check::<T>()?;
        tx.delete_encoded::<T>(&key)
    }
}

/// What `delete` of an encoded key reads: the record.
pub(crate) fn delete_reads<T: Table>(key: &[u8]) -> ReadKeys {
    vec![(T::META.name, key.to_vec())]
}

/// A one-call write, boxed for a group of writes of any result type.
pub(crate) fn boxed<R: Send + 'static>(
    mut f: impl FnMut(&mut Tx<'_>) -> Result<R> + Send + 'static,
) -> group::Op {
    Box::new(move |tx| Ok(Box::new(f(tx)?) as group::Value))
}

/// The result of a write [`boxed`] for a group.
pub(crate) fn unboxed<R: 'static>(value: group::Value) -> Result<R> {
    value
        .downcast::<R>()
        .map(|value| *value)
        .map_err(|_| Error::Aborted)
}

/// How a transaction failed: its closure's own error, or kvs's.
enum Failed<E> {
    Closure(E),
    Kvs(Error),
}
