//! Group commit for [`AsyncKvs`](crate::AsyncKvs) tasks, on a backend that batches one-call
//! writes ([`Backend::batch_writes`](crate::Backend::batch_writes): etcd): the `put`s and
//! `delete`s that tasks of one handle make while a batch is under way run together in the
//! next one, with their reads fetched in one round trip and one commit, as threads' do in
//! [`group`](crate::group).
//!
//! A task queues its write and awaits its answer. The first to find the lane idle spawns a
//! task that drains the lane: it takes the writes waiting, runs them as one replayed call of
//! [`group::batch`] (awaiting each request, with no thread of its own), answers each, and
//! goes on while writes wait. A write whose caller's future is dropped still runs, as a
//! spawned task would; a write told to run alone (its batch's commit failed) runs alone on
//! its own task.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::async_kvs::call;
use crate::error::{Error, Result};
use crate::group::{self, Answer, Op, Value};
use crate::kvs::Kvs;
use crate::record::ReadKeys;

/// An `AsyncKvs` handle's lane of batched writes.
#[derive(Default)]
pub(crate) struct TaskLane {
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for TaskLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.lock();
        f.debug_struct("TaskLane")
            .field("busy", &queue.busy)
            .field("waiting", &queue.waiting.len())
            .finish()
    }
}

#[derive(Default)]
struct Queue {
    /// Whether a task drains the lane now.
    busy: bool,
    waiting: Vec<Job>,
}

struct Job {
    op: Op,
    reads: ReadKeys,
    reply: oneshot::Sender<Told>,
}

/// What a waiting write is told.
enum Told {
    Done(Result<Value>),
    /// Its batch did not commit: run alone (the write comes back).
    Alone(Op),
}

impl TaskLane {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the one-call write `op`, which reads the keys `reads`, in the next batch of
    /// `kvs`'s tasks' writes.
    pub(crate) async fn write(
        self: &Arc<Self>,
        kvs: Arc<Kvs>,
        op: Op,
        reads: ReadKeys,
    ) -> Result<Value> {
        let (reply, told) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push(Job { op, reads, reply });
            !std::mem::replace(&mut queue.busy, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).drain(Arc::clone(&kvs)));
        }
        match told.await {
            Ok(Told::Done(result)) => result,
            Ok(Told::Alone(op)) => alone(kvs, op).await,
            // The draining task died (a panic in kvs): nothing is known of the write.
            Err(_) => Err(Error::Aborted),
        }
    }

    /// Runs batches while writes wait, then leaves the lane idle.
    async fn drain(self: Arc<Self>, kvs: Arc<Kvs>) {
        // Leaves the lane idle however this ends: writes still waiting after a panic (or when
        // the runtime stops this task) are dropped, their callers told `Aborted`, and the
        // next write starts anew.
        let mut idle = Idle {
            lane: &self,
            done: false,
        };
        let limit = kvs.session.backend().batch_writes().unwrap_or(1).max(1);
        loop {
            let jobs = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.busy = false;
                    idle.done = true;
                    return;
                }
                let n = queue.waiting.len().min(limit);
                queue.waiting.drain(..n).collect::<Vec<_>>()
            };
            let mut ops = Vec::with_capacity(jobs.len());
            let mut reads = Vec::with_capacity(jobs.len());
            let mut replies = Vec::with_capacity(jobs.len());
            for job in jobs {
                ops.push(Some(job.op));
                reads.push(job.reads);
                replies.push(job.reply);
            }
            // Run again at each replay: the writes are kept here, and the answers are sent
            // only once the batch is done.
            let ops = Arc::new(Mutex::new(ops));
            let reads = Arc::new(reads);
            let answers = {
                let (ops, reads) = (Arc::clone(&ops), Arc::clone(&reads));
                call(Arc::clone(&kvs), move |kvs| {
                    let mut ops = ops.lock().unwrap_or_else(PoisonError::into_inner);
                    Ok(group::batch(kvs, &mut ops, &reads))
                })
                .await
            };
            let mut ops = std::mem::take(&mut *ops.lock().unwrap_or_else(PoisonError::into_inner));
            let answers =
                answers.unwrap_or_else(|_| ops.iter().map(|_| Some(Answer::Alone)).collect());
            for ((answer, op), reply) in answers.into_iter().zip(ops.iter_mut()).zip(replies) {
                let told = match (answer, op.take()) {
                    (Some(Answer::Done(result)), _) => Told::Done(result),
                    (Some(Answer::Alone), Some(op)) => Told::Alone(op),
                    _ => Told::Done(Err(Error::Aborted)),
                };
                // A caller whose future was dropped needs no answer.
                let _ = reply.send(told);
            }
        }
    }
}

/// Marks the lane idle when its draining task ends early (a panic, or a runtime that stops
/// it); a task that ends because no write waits has marked it so itself.
struct Idle<'a> {
    lane: &'a TaskLane,
    done: bool,
}

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut queue = self.lane.lock();
            queue.waiting.clear();
            queue.busy = false;
        }
    }
}

/// Runs one write alone, replayed on this task.
async fn alone(kvs: Arc<Kvs>, op: Op) -> Result<Value> {
    let op = Arc::new(Mutex::new(op));
    call(kvs, move |kvs| {
        let mut op = op.lock().unwrap_or_else(PoisonError::into_inner);
        group::run_alone(kvs, &mut op)
    })
    .await
}
