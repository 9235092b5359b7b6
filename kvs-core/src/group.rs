//! Group commit: writes that arrive while a commit is under way (one-call writes: `put`,
//! `delete`, `seq`, `append`, `remove`, the reader calls; and transactions) run together in
//! the next backend write transaction, and one commit makes them all durable: one fsync on
//! redb.
//!
//! A handle's writes queue in one lane. The first caller to find the lane idle leads: it
//! takes the writes waiting (its own among them), begins one write transaction that it owns
//! ([`Backend::begin_write`](crate::Backend::begin_write)), runs them one after another in
//! arrival order, commits, answers each, and hands the lane to the next caller waiting, which
//! leads the next group.
//! - A one-call write owns what it writes (a boxed `Send` operation): the leader runs it.
//! - A transaction's closure may borrow its caller's data and runs once, on its caller's
//!   thread: the leader lends the transaction to that thread, which runs the closure in it and
//!   hands it back.
//!
//! In a group of more than one, each write runs over an undo log ([`Undo`]): a write that
//! fails by itself (a duplicate unique value, a closure's `Err`, a panic) is rolled back
//! alone, and the others go on. It still waits for the group's outcome, since it may have
//! failed on the group's earlier writes: when the group commits, it gets its own error (a
//! panic unwinds in its own caller). A write that the engine failed under (a storage error)
//! breaks the group: what the engine did before failing is not in the undo log, so nothing
//! of the group commits. When the group does not commit, each one-call write runs again
//! alone, so that it gets its own outcome, and each transaction (whose closure ran already)
//! gets the group's error. Writes are serialized in lane order, so a write that returned is
//! ordered before every write that begins later, and transactions stay serializable.
//!
//! It holds the lane and runs the group; what a write does is its own, and a write that runs
//! alone runs in `Kvs::write_alone`'s transaction.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::backend::{SharedWrite, WriteTx};
use crate::error::{Error, Result};
use crate::kvs::Kvs;
use crate::record::ReadKeys;
use crate::retry::retry;
use crate::tx::Tx;
use crate::undo::Undo;

/// What one write returns, boxed, for any write's result type.
pub(crate) type Value = Box<dyn Any + Send>;

/// One write, owning what it writes, so that a leader on another thread can run it (and run
/// it again alone, when its group's commit fails).
pub(crate) type Op = Box<dyn FnMut(&mut Tx<'_>) -> Result<Value> + Send>;

/// A transaction's closure, wrapped by its caller, which keeps the closure's own result and
/// error: run at most once, on its caller's thread. `Err` rolls the transaction back.
pub(crate) type Part<'p> = &'p mut dyn FnMut(&mut Tx<'_>) -> Result<()>;

/// The most writes a group takes.
const MAX_GROUP: usize = 64;

/// A handle's lane of writes, `J` a waiting write: threads' ([`Job`], here) or `AsyncKvs`
/// tasks' (`async_group`'s), each kind with its own leader's code.
pub(crate) struct Lane<J = Job> {
    queue: Mutex<Queue<J>>,
}

impl<J> Default for Lane<J> {
    fn default() -> Self {
        Lane {
            queue: Mutex::new(Queue {
                busy: false,
                waiting: Vec::new(),
                next: 0,
                limit: 0,
            }),
        }
    }
}

impl<J> std::fmt::Debug for Lane<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.lock();
        f.debug_struct("Lane")
            .field("busy", &queue.busy)
            .field("waiting", &queue.waiting.len())
            .finish()
    }
}

impl<J> Lane<J> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Queue<J>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writes waiting in a lane, and its leader's state.
pub(crate) struct Queue<J> {
    /// Whether a leader runs a group now.
    pub(crate) busy: bool,
    pub(crate) waiting: Vec<J>,
    /// The id of the next write to join.
    next: u64,
    /// The most writes a group takes: `MAX_GROUP`, or the backend's batch size, halved after
    /// a batch too large for one transaction (`Error::Limit`). Zero until the first group.
    limit: usize,
}

impl<J> Queue<J> {
    /// Queues the write `job(id)`; returns its id and whether it leads (the lane was idle).
    pub(crate) fn join(&mut self, job: impl FnOnce(u64) -> J) -> (u64, bool) {
        let id = self.next;
        self.next += 1;
        self.waiting.push(job(id));
        (id, !std::mem::replace(&mut self.busy, true))
    }

    /// Takes the next group's writes: at most the limit (`first` until a batch has set it),
    /// and no more than keep the keys they declare they read (`weight` of each) within
    /// `reads`, the first write whatever it reads.
    pub(crate) fn take(
        &mut self,
        first: usize,
        reads: usize,
        weight: impl Fn(&J) -> usize,
    ) -> Vec<J> {
        if self.limit == 0 {
            self.limit = first.max(1);
        }
        let mut n = 0;
        let mut total = 0usize;
        for job in self.waiting.iter().take(self.limit) {
            total = total.saturating_add(weight(job));
            if n > 0 && total > reads {
                break;
            }
            n += 1;
        }
        self.waiting.drain(..n).collect()
    }

    /// Sets the limit after a batch of `n` writes (see [`next_limit`]).
    pub(crate) fn retune(&mut self, n: usize, too_large: bool, most: usize) {
        self.limit = next_limit(self.limit, n, too_large, most);
    }
}

/// A write waiting in the lane.
pub(crate) struct Job {
    id: u64,
    work: Work,
    /// The keys a one-call write reads, where it declares them.
    reads: ReadKeys,
    reply: SyncSender<Turn>,
}

enum Work {
    /// A one-call write: the leader runs it.
    Op(Op),
    /// A transaction: its caller runs it, in the transaction the leader lends it.
    Part,
}

/// What a waiting write is told.
enum Turn {
    /// Its outcome: its group committed (or it failed on its own).
    Done(Result<Value>),
    /// Lead the next group.
    Lead,
    /// Run alone, in a transaction of its own: there was no group transaction, or (a
    /// one-call write, which comes back) the group's commit failed.
    Alone(Option<Op>),
    /// A transaction's turn: run the closure in this transaction and hand it back.
    Run(Lent),
}

/// The group's transaction, lent to a transaction's caller.
struct Lent {
    txn: Box<dyn SharedWrite>,
    undo: bool,
    back: SyncSender<Back>,
}

/// The group's transaction, handed back, and how the closure's run ended.
struct Back {
    txn: Box<dyn SharedWrite>,
    ran: Ran,
}

/// How a write's run in the group's transaction ended, for the group.
enum Ran {
    /// It wrote what it meant to, and commits with the group.
    Stands,
    /// It failed, and what it wrote is rolled back (or, alone in its group, the transaction
    /// is not committed): the group goes on without it.
    Out,
    /// The transaction holds what no one can vouch for (a rollback failed): the group must
    /// not commit. The error is for the group's other writes.
    Broken(Error),
}

/// How a write's run ended, for its caller.
enum Outcome<R> {
    Done(R),
    Failed(Error),
    Panicked(Box<dyn Any + Send>),
}

/// Where a write of the group stands once it has run.
enum Slot {
    /// A one-call write that stands, with its value.
    Value(Value),
    /// A transaction that stands.
    Stands,
    /// A one-call write that failed by itself, with its error.
    Failed(Error),
    /// A transaction that failed by itself, rolled back: its caller keeps its failure and
    /// learns whether the group committed.
    Out,
    /// Not run: the group broke before its turn.
    NotRun,
}

impl Lane {
    /// Queues a write; returns its id, where its answers come, and whether it leads (the lane
    /// was idle).
    fn join(&self, work: Work, reads: ReadKeys) -> (u64, std::sync::mpsc::Receiver<Turn>, bool) {
        let (reply, turn) = sync_channel(1);
        let (id, lead) = self.lock().join(|id| Job {
            id,
            work,
            reads,
            reply,
        });
        (id, turn, lead)
    }

    /// Runs the one-call write `op`, which reads the keys `reads` (where it declares them), in
    /// the next group of `kvs`'s writes.
    pub(crate) fn write(&self, kvs: &Kvs, op: Op, reads: ReadKeys) -> Result<Value> {
        let (id, turn, lead) = self.join(Work::Op(op), reads);
        let mut answer = if lead { Ok(Turn::Lead) } else { turn.recv() };
        if matches!(answer, Ok(Turn::Lead)) {
            self.lead(kvs, id, &mut |_, _| unreachable_part());
            answer = turn.recv();
        }
        match answer {
            Ok(Turn::Done(result)) => result,
            Ok(Turn::Alone(Some(mut op))) => run_alone(kvs, &mut op),
            // A leader answers its own write; a caller that is answered nothing was dropped
            // by a leader that died.
            Ok(_) | Err(_) => Err(Error::Aborted),
        }
    }

    /// Runs the transaction `part` in the next group of `kvs`'s writes, on this thread. A
    /// panic in it unwinds here, once its writes are rolled back and the group has its
    /// transaction back.
    pub(crate) fn transaction(&self, kvs: &Kvs, part: Part<'_>) -> Result<()> {
        let (id, turn, mut lead) = self.join(Work::Part, Vec::new());
        // How the part's run ended, once it ran in a group's transaction.
        let mut mine: Option<Outcome<()>> = None;
        loop {
            let answer = if std::mem::take(&mut lead) {
                Ok(Turn::Lead)
            } else {
                turn.recv()
            };
            match answer {
                Ok(Turn::Lead) => {
                    self.lead(kvs, id, &mut |txn, undo| {
                        run_part(txn, kvs, undo, part, &mut mine)
                    });
                }
                Ok(Turn::Run(lent)) => {
                    let Lent {
                        mut txn,
                        undo,
                        back,
                    } = lent;
                    let ran = run_part(&mut *txn, kvs, undo, part, &mut mine);
                    // The leader waits for it; were it gone, no one would commit this run.
                    let _ = back.send(Back { txn, ran });
                }
                Ok(Turn::Done(group)) => {
                    return match (mine, group) {
                        // A panic is the closure's own, whatever became of the group.
                        (Some(Outcome::Panicked(panic)), _) => resume_unwind(panic),
                        // Rolled back, in a group that committed: the closure's failure
                        // stands on committed writes. When the group did not commit, its
                        // error, for the closure may have failed on writes that never were.
                        (Some(Outcome::Failed(e)), Ok(_)) | (_, Err(e)) => Err(e),
                        (_, Ok(_)) => Ok(()),
                    };
                }
                Ok(Turn::Alone(_)) => return kvs.write_alone(part),
                Err(_) => {
                    return match mine {
                        Some(Outcome::Panicked(panic)) => resume_unwind(panic),
                        _ => Err(Error::Aborted),
                    }
                }
            }
            // Whether it stood or was rolled back, the group's outcome comes.
        }
    }

    /// Runs the group waiting in the lane (this leader's own write, `own`, among them),
    /// answers each write, and hands the lane on. `run_own` runs the leader's own write
    /// when it is a transaction.
    fn lead(
        &self,
        kvs: &Kvs,
        own: u64,
        run_own: &mut dyn FnMut(&mut dyn SharedWrite, bool) -> Ran,
    ) {
        // Hands the lane on however this ends (a panic included), so it never stays busy.
        let _handoff = Handoff(self);
        let backend = kvs.session.backend();
        let batch = backend.batch_writes().filter(|_| !backend.serial_writes());
        let mut jobs = self
            .lock()
            .take(batch.unwrap_or(MAX_GROUP), backend.batch_reads(), |job| {
                job.reads.len()
            });
        if batch.is_some() {
            return run_batch(self, kvs, jobs);
        }
        let Some(Ok(mut txn)) = backend.begin_write() else {
            // No group transaction: each write runs alone (and meets the error again, where
            // beginning failed).
            for job in jobs {
                let op = match job.work {
                    Work::Op(op) => Some(op),
                    Work::Part => None,
                };
                let _ = job.reply.try_send(Turn::Alone(op));
            }
            return;
        };
        // A write that fails rolls back alone only where there are others to keep.
        let undo = jobs.len() > 1;
        let mut slots: Vec<Slot> = Vec::with_capacity(jobs.len());
        let mut broken: Option<Error> = None;
        while slots.len() < jobs.len() && broken.is_none() {
            let job = &jobs[slots.len()];
            if matches!(job.work, Work::Op(_)) {
                // A run of one-call writes in one pass, so that each table is opened once.
                let ran = txn.run(&mut |w| {
                    while let Some(Job {
                        work: Work::Op(op), ..
                    }) = jobs.get_mut(slots.len())
                    {
                        let (outcome, ran) = run_one(w, kvs, undo, op);
                        slots.push(match outcome {
                            Outcome::Done(value) => Slot::Value(value),
                            Outcome::Failed(e) => Slot::Failed(e),
                            Outcome::Panicked(panic) => Slot::Failed(Error::panicked(&*panic)),
                        });
                        if let Ran::Broken(e) = ran {
                            broken = Some(e);
                            break;
                        }
                    }
                    Ok(())
                });
                if let Err(e) = ran {
                    broken = Some(e);
                }
            } else if job.id == own {
                let ran = run_own(&mut *txn, undo);
                slots.push(slot_of_part(ran, &mut broken));
            } else {
                match lend(txn, undo, &job.reply) {
                    Ok(Back { txn: t, ran }) => {
                        txn = t;
                        slots.push(slot_of_part(ran, &mut broken));
                    }
                    Err(e) => {
                        // The transaction went with a caller that is gone: nothing of the
                        // group commits, and dropping what is left aborts it.
                        slots.push(Slot::Out);
                        return answer(jobs, slots, Some(&e));
                    }
                }
            }
        }
        let standing = slots
            .iter()
            .any(|slot| matches!(slot, Slot::Value(_) | Slot::Stands));
        let failure = match broken {
            Some(e) => Some(e),
            None if standing => txn.commit().err(),
            // Nothing to commit (no fsync for it): dropping the transaction aborts it.
            None => None,
        };
        answer(jobs, slots, failure.as_ref());
    }
}

/// Lends the group's transaction to the transaction waiting at `reply`, and takes it back
/// once its closure ran.
fn lend(txn: Box<dyn SharedWrite>, undo: bool, reply: &SyncSender<Turn>) -> Result<Back> {
    let (back, returned) = sync_channel(1);
    match reply.send(Turn::Run(Lent { txn, undo, back })) {
        Ok(()) => returned.recv().map_err(|_| Error::Aborted),
        // Its caller is gone: the transaction comes back unused.
        Err(unsent) => match unsent.0 {
            Turn::Run(lent) => Ok(Back {
                txn: lent.txn,
                ran: Ran::Out,
            }),
            _ => Err(Error::Aborted),
        },
    }
}

/// Answers each write of a group that ran (`failure`: it did not commit, or broke).
fn answer(jobs: Vec<Job>, mut slots: Vec<Slot>, failure: Option<&Error>) {
    slots.resize_with(jobs.len(), || Slot::NotRun);
    for (job, slot) in jobs.into_iter().zip(slots) {
        let turn = match (slot, &failure) {
            (Slot::Value(value), None) => Turn::Done(Ok(value)),
            (Slot::Stands | Slot::Out, None) => Turn::Done(Ok(Box::new(()))),
            (Slot::Failed(e), None) => Turn::Done(Err(e)),
            (Slot::Stands | Slot::Out, Some(e)) => Turn::Done(Err(again(e))),
            // A write that failed may have failed on writes of the group that never were:
            // it runs again alone, as one that stood does, for an outcome of its own.
            (Slot::Value(_) | Slot::Failed(_) | Slot::NotRun, Some(_)) | (Slot::NotRun, None) => {
                Turn::Alone(match job.work {
                    Work::Op(op) => Some(op),
                    Work::Part => None,
                })
            }
        };
        // A caller that is gone (it panicked) needs no answer.
        let _ = job.reply.try_send(turn);
    }
}

/// Runs a group of one-call writes on a backend that batches them (etcd) with [`batch`],
/// and answers each: transactions run alone (their closures run once, and a remote commit
/// that conflicts runs the group again).
fn run_batch(lane: &Lane, kvs: &Kvs, jobs: Vec<Job>) {
    let n = jobs.len();
    let mut ops: Vec<Option<Op>> = Vec::with_capacity(n);
    let mut reads: Vec<ReadKeys> = Vec::with_capacity(n);
    let mut replies = Vec::with_capacity(n);
    for job in jobs {
        ops.push(match job.work {
            Work::Op(op) => Some(op),
            Work::Part => {
                let _ = job.reply.try_send(Turn::Alone(None));
                None
            }
        });
        reads.push(job.reads);
        replies.push(job.reply);
    }
    let (answers, too_large) = batch(kvs, &mut ops, &reads);
    let most = kvs.session.backend().batch_writes().unwrap_or(1).max(1);
    let writes = ops.iter().filter(|op| op.is_some()).count();
    lane.lock().retune(writes, too_large, most);
    for ((answer, op), reply) in answers.into_iter().zip(ops).zip(replies) {
        let turn = match answer {
            Some(Answer::Done(result)) => Turn::Done(result),
            Some(Answer::Alone) => Turn::Alone(op),
            None => continue,
        };
        // A caller that is gone (it panicked) needs no answer.
        let _ = reply.try_send(turn);
    }
}

/// The most writes the next batch takes, after a batch of `n` at `limit`: half of `n` after
/// one too large for a transaction (`Error::Limit`, which for a lone write is its own and
/// changes nothing), and back up, doubling, to `most` after full batches that commit.
pub(crate) fn next_limit(limit: usize, n: usize, too_large: bool, most: usize) -> usize {
    match (too_large, n) {
        (true, 2..) => (n / 2).max(1),
        (false, _) if n >= limit => limit.saturating_mul(2).min(most),
        _ => limit,
    }
}

/// What a batch tells one of its writes.
pub(crate) enum Answer {
    /// Its outcome: the batch committed, or it failed by itself.
    Done(Result<Value>),
    /// The batch's commit failed: run alone, for an outcome of its own.
    Alone,
}

/// Runs the one-call writes `ops` (`None`: no write there) in one transaction of
/// `Kvs::write_alone`'s, with a one-call write's retries, every write's declared reads
/// (`reads`, in the same order) fetched first in one round trip. A write that fails by itself
/// is taken out and the batch run again without it (its writes are not undone in place: a
/// remote transaction's blind writes have no old value to put back). Returns each write's
/// answer, and whether the batch was too large for one transaction (`Error::Limit`: the
/// caller takes fewer next time); it sends nothing, so that it can be replayed
/// (`AsyncKvs`).
pub(crate) fn batch(
    kvs: &Kvs,
    ops: &mut [Option<Op>],
    reads: &[ReadKeys],
) -> (Vec<Option<Answer>>, bool) {
    let n = ops.len();
    let mut failed: Vec<Option<Error>> = (0..n).map(|_| None).collect();
    loop {
        let live: Vec<usize> = (0..n)
            .filter(|&i| ops[i].is_some() && failed[i].is_none())
            .collect();
        if live.is_empty() {
            let answers = failed
                .into_iter()
                .map(|e| e.map(|e| Answer::Done(Err(e))))
                .collect();
            return (answers, false);
        }
        let mut values: Vec<Option<Value>> = (0..n).map(|_| None).collect();
        // The write that failed by itself in this attempt, and its error.
        let mut culprit: Option<(usize, Error)> = None;
        let result = retry(|| {
            kvs.write_alone(&mut |tx| {
                for value in &mut values {
                    *value = None;
                }
                culprit = None;
                // One round trip for the reads of every write of the group.
                let mut keys = live
                    .iter()
                    .flat_map(|&i| reads[i].iter().map(|(t, k)| (*t, k.as_slice())));
                tx.w.prefetch(&mut keys)?;
                for &i in &live {
                    let Some(op) = ops[i].as_mut() else { continue };
                    let result = catch_unwind(AssertUnwindSafe(|| op(tx)))
                        .unwrap_or_else(|panic| Err(Error::panicked(&*panic)));
                    match result {
                        Ok(value) => values[i] = Some(value),
                        // A conflict or a lost leader is the group's: retried whole.
                        Err(e) if e.is_transient() => return Err(e),
                        Err(e) => {
                            culprit = Some((i, e));
                            return Err(Error::Aborted);
                        }
                    }
                }
                Ok(())
            })
        });
        match (result, culprit.take()) {
            (Ok(()), _) => {
                let answers = (0..n)
                    .map(|i| match (failed[i].take(), values[i].take()) {
                        (Some(e), _) => Some(Answer::Done(Err(e))),
                        (None, Some(value)) => Some(Answer::Done(Ok(value))),
                        (None, None) => None,
                    })
                    .collect();
                return (answers, false);
            }
            // One write failed by itself: run the group again without it.
            (Err(_), Some((i, e))) => failed[i] = Some(e),
            // The commit failed: each write runs alone, for an outcome of its own, those
            // taken out too (they may have failed on writes of the group that never were).
            (Err(e), None) => {
                let answers = ops
                    .iter()
                    .map(|op| op.as_ref().map(|_| Answer::Alone))
                    .collect();
                return (answers, matches!(e, Error::Limit { .. }));
            }
        }
    }
}

/// A one-call write's leader has no transaction of its own to run.
fn unreachable_part() -> Ran {
    Ran::Broken(Error::Aborted)
}

/// Where a transaction stands in its group after its run.
fn slot_of_part(ran: Ran, broken: &mut Option<Error>) -> Slot {
    match ran {
        Ran::Stands => Slot::Stands,
        Ran::Out => Slot::Out,
        Ran::Broken(e) => {
            *broken = Some(e);
            Slot::Out
        }
    }
}

/// Runs a transaction's `part` in the group's transaction; its outcome goes to `mine` (its
/// caller's), and the group learns how it ended.
fn run_part(
    txn: &mut dyn SharedWrite,
    kvs: &Kvs,
    undo: bool,
    part: Part<'_>,
    mine: &mut Option<Outcome<()>>,
) -> Ran {
    let mut ran = Ran::Broken(Error::Aborted);
    let result = txn.run(&mut |w| {
        let (outcome, how) = run_one(w, kvs, undo, part);
        *mine = Some(outcome);
        ran = how;
        Ok(())
    });
    match result {
        Ok(()) => ran,
        Err(e) => {
            // The engine failed around the run: the group must not commit.
            *mine = Some(Outcome::Failed(again(&e)));
            Ran::Broken(e)
        }
    }
}

/// Runs one write in `w`, over an undo log when `undo`, catching its panic.
fn run_one<R>(
    w: &mut dyn WriteTx,
    kvs: &Kvs,
    undo: bool,
    f: &mut dyn FnMut(&mut Tx<'_>) -> Result<R>,
) -> (Outcome<R>, Ran) {
    let (result, rolled_back) = if undo {
        let mut log = Undo::new(w);
        let result = catch_unwind(AssertUnwindSafe(|| f(&mut Tx { w: &mut log, kvs })));
        let rolled_back = match result {
            Ok(Ok(_)) => Ok(()),
            _ => log.roll_back(),
        };
        (result, rolled_back)
    } else {
        // Alone in its group: a failure leaves nothing standing, and nothing commits.
        (
            catch_unwind(AssertUnwindSafe(|| f(&mut Tx { w, kvs }))),
            Ok(()),
        )
    };
    let outcome = match result {
        Ok(Ok(value)) => Outcome::Done(value),
        Ok(Err(e)) => Outcome::Failed(e),
        Err(panic) => Outcome::Panicked(panic),
    };
    let ran = match (&outcome, rolled_back) {
        (_, Err(e)) => Ran::Broken(e),
        (Outcome::Done(_), Ok(())) => Ran::Stands,
        // The engine failed (or panicked) under the write: what it did before that is not in
        // the undo log, so the transaction must not commit.
        (Outcome::Failed(e), Ok(())) if !is_own(e) => Ran::Broken(again(e)),
        (_, Ok(())) => Ran::Out,
    };
    (outcome, ran)
}

/// Whether a write's error is its own (what it would meet alone, with the transaction left as
/// its undo log can restore it), rather than the engine's.
fn is_own(e: &Error) -> bool {
    matches!(
        e,
        Error::Duplicate { .. }
            | Error::Schema { .. }
            | Error::NotFound { .. }
            | Error::Decode { .. }
            | Error::Invalid { .. }
            | Error::Encode { .. }
            | Error::SeqOverflow { .. }
            | Error::Limit { .. }
            | Error::InTransaction { .. }
            | Error::Aborted
            | Error::Panicked { .. }
    )
}

/// The same failure, for another write of the group (an error is not `Clone`: its source
/// need not be).
fn again(e: &Error) -> Error {
    match e {
        Error::Aborted => Error::Aborted,
        Error::Unavailable { backend, reason } => Error::Unavailable {
            backend,
            reason: reason.clone(),
        },
        Error::Conflict { reason } => Error::Conflict {
            reason: reason.clone(),
        },
        Error::Storage { backend, source } => Error::Storage {
            backend,
            source: source.to_string().into(),
        },
        other => Error::Storage {
            backend: "kvs",
            source: format!("the group's transaction failed: {other}").into(),
        },
    }
}

/// Passes the lane to the next waiting write, or marks it idle: when a leader is done, by
/// any way out.
struct Handoff<'a>(&'a Lane);

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        match queue.waiting.first() {
            Some(next) => {
                let _ = next.reply.try_send(Turn::Lead);
            }
            None => queue.busy = false,
        }
    }
}

/// Runs one one-call write by itself, with a one-call write's retries.
pub(crate) fn run_alone(kvs: &Kvs, op: &mut Op) -> Result<Value> {
    let mut value = None;
    retry(|| {
        kvs.write_alone(&mut |tx| {
            value = Some(op(tx)?);
            Ok(())
        })
    })?;
    value.ok_or(Error::Aborted)
}

#[cfg(test)]
mod tests {
    use super::{next_limit, Queue};

    #[test]
    fn a_batch_keeps_its_declared_reads_within_the_budget() {
        let mut queue = Queue {
            busy: true,
            waiting: vec![3usize, 3, 3, 50, 1],
            next: 0,
            limit: 0,
        };
        // 3 + 3 + 3 within 10; the fourth would pass it.
        assert_eq!(queue.take(16, 10, |&reads| reads), [3, 3, 3]);
        // The first write goes whatever it reads.
        assert_eq!(queue.take(16, 10, |&reads| reads), [50]);
        assert_eq!(queue.take(16, 10, |&reads| reads), [1]);
        // And the limit still counts writes.
        queue.waiting = vec![1, 1, 1];
        queue.limit = 2;
        assert_eq!(queue.take(16, 10, |&reads| reads), [1, 1]);
    }

    /// A batch too large for a transaction halves the next; a lone write's `Limit` is its
    /// own; full batches that commit double it back up to the backend's most.
    #[test]
    fn the_batch_size_halves_and_grows_back() {
        assert_eq!(next_limit(16, 16, true, 16), 8);
        assert_eq!(next_limit(8, 5, true, 16), 2);
        assert_eq!(next_limit(2, 1, true, 16), 2);
        assert_eq!(next_limit(2, 2, false, 16), 4);
        assert_eq!(next_limit(4, 3, false, 16), 4);
        assert_eq!(next_limit(8, 8, false, 16), 16);
        assert_eq!(next_limit(16, 16, false, 16), 16);
    }
}
