//! Group commit: one-call writes (`put`, `delete`, `seq`, `append`, `remove`, the reader
//! calls) that arrive while a commit is under way run together in the next backend write
//! transaction, and one commit makes them all durable: one fsync on redb, one Raft round on
//! etcd.
//!
//! A handle's writes queue in one lane. The first caller to find the lane idle leads: it
//! takes every write waiting (its own included), runs them one after another in one
//! transaction, commits, answers each, and hands the lane to the next caller waiting, which
//! leads the next group. A write that fails (a duplicate unique value, say) rolls back only
//! itself: the transaction is abandoned and run again without it, and it gets its own error.
//! When the commit itself fails, each write of the group runs again alone, so that every
//! caller gets its own outcome. Writes are serialized in lane order, so a write that returned
//! is ordered before every write that begins later.
//!
//! It holds the lane; what a write does is its own boxed operation, and the transaction and
//! its retries are `Kvs::transaction`'s and `retry`'s.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};
use crate::tx::Tx;

/// What one write returns, boxed, for any write's result type.
pub(crate) type Value = Box<dyn Any + Send>;

/// One write, owning what it writes, so that a leader on another thread can run it (again,
/// when its group is run again).
pub(crate) type Op = Box<dyn FnMut(&mut Tx<'_>) -> Result<Value> + Send>;

/// Runs a group's writes (the closure it is given) in one write transaction, with the
/// retries of a one-call write.
pub(crate) type Commit<'a> = &'a dyn Fn(&mut dyn FnMut(&mut Tx<'_>) -> Result<()>) -> Result<()>;

/// The most writes a group takes.
const MAX_GROUP: usize = 64;

/// A handle's lane of one-call writes.
#[derive(Default)]
pub(crate) struct Lane {
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.lock();
        f.debug_struct("Lane")
            .field("busy", &queue.busy)
            .field("waiting", &queue.waiting.len())
            .finish()
    }
}

#[derive(Default)]
struct Queue {
    /// Whether a leader runs a group now.
    busy: bool,
    waiting: Vec<Job>,
}

struct Job {
    op: Op,
    reply: SyncSender<Turn>,
}

/// What a waiting write is told.
enum Turn {
    /// Its outcome: its group committed (or it failed on its own).
    Done(Result<Value>),
    /// Lead the next group.
    Lead,
    /// Its group's commit failed: run alone (the operation comes back).
    Alone(Op),
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `op` in the next group; `commit` runs a group's writes in one transaction (with
    /// the retries of a one-call write).
    pub(crate) fn write(&self, op: Op, commit: Commit<'_>) -> Result<Value> {
        let (reply, turn) = sync_channel(1);
        let lead = {
            let mut queue = self.lock();
            queue.waiting.push(Job { op, reply });
            !std::mem::replace(&mut queue.busy, true)
        };
        let mut answer = if lead { Ok(Turn::Lead) } else { turn.recv() };
        if matches!(answer, Ok(Turn::Lead)) {
            self.lead(commit);
            answer = turn.recv();
        }
        match answer {
            Ok(Turn::Done(result)) => result,
            Ok(Turn::Alone(op)) => run_alone(op, commit),
            // A leader answers its own write; a caller that is answered nothing was dropped
            // by a leader that died.
            Ok(Turn::Lead) | Err(_) => Err(Error::Aborted),
        }
    }

    /// Runs the group waiting in the lane (this leader's own write among them), answers each
    /// write, and hands the lane on.
    fn lead(&self, commit: Commit<'_>) {
        // Hands the lane on however this ends (a panic included), so it never stays busy.
        let _handoff = Handoff(self);
        let jobs = {
            let mut queue = self.lock();
            let n = queue.waiting.len().min(MAX_GROUP);
            queue.waiting.drain(..n).collect::<Vec<_>>()
        };
        let (ops, replies): (Vec<Op>, Vec<SyncSender<Turn>>) =
            jobs.into_iter().map(|j| (j.op, j.reply)).unzip();
        for (turn, reply) in run_group(ops, commit).into_iter().zip(replies) {
            // A caller that is gone (it panicked) needs no answer.
            let _ = reply.try_send(turn);
        }
    }
}

/// Runs `ops` in one transaction; a write that fails on its own is taken out and the
/// transaction run again without it. Returns each write's answer, in order.
fn run_group(mut ops: Vec<Op>, commit: Commit<'_>) -> Vec<Turn> {
    let n = ops.len();
    let mut failed: Vec<Option<Error>> = (0..n).map(|_| None).collect();
    loop {
        if failed.iter().all(Option::is_some) {
            // Nothing left to commit: no empty commit (and fsync) for it.
            return failed
                .into_iter()
                .map(|e| Turn::Done(Err(e.unwrap_or(Error::Aborted))))
                .collect();
        }
        let mut values: Vec<Option<Value>> = (0..n).map(|_| None).collect();
        // The write that failed by itself in this attempt, and its error.
        let mut culprit: Option<(usize, Error)> = None;
        let result = commit(&mut |tx| {
            for value in &mut values {
                *value = None;
            }
            culprit = None;
            for (i, op) in ops.iter_mut().enumerate() {
                if failed[i].is_some() {
                    continue;
                }
                // A write that panics (a `Table` impl's, say) fails by itself, as one
                // that returns an error does: the others go on without it.
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
        });
        match (result, culprit.take()) {
            (Ok(()), _) => {
                return values
                    .into_iter()
                    .zip(failed)
                    .map(|(value, failed)| match (failed, value) {
                        (Some(e), _) => Turn::Done(Err(e)),
                        (None, Some(value)) => Turn::Done(Ok(value)),
                        (None, None) => Turn::Done(Err(Error::Aborted)),
                    })
                    .collect();
            }
            // One write failed by itself: run the group again without it.
            (Err(_), Some((i, e))) => failed[i] = Some(e),
            (Err(_), None) => {
                // The commit failed: each write runs alone, to get its own outcome
                // (those that failed by themselves keep their error).
                return ops
                    .into_iter()
                    .zip(failed)
                    .map(|(op, failed)| match failed {
                        Some(e) => Turn::Done(Err(e)),
                        None => Turn::Alone(op),
                    })
                    .collect();
            }
        }
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

/// Runs one write by itself.
fn run_alone(mut op: Op, commit: Commit<'_>) -> Result<Value> {
    let mut value = None;
    commit(&mut |tx| {
        value = Some(op(tx)?);
        Ok(())
    })?;
    value.ok_or(Error::Aborted)
}
