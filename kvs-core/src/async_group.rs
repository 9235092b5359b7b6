//! Group commit for [`AsyncKvs`](crate::AsyncKvs) tasks, on a backend that batches one-call
//! writes ([`Backend::batch_writes`](crate::Backend::batch_writes): etcd): the `put`s,
//! `delete`s and stream writes that tasks of one handle make while a batch is under way run
//! together in the
//! next one, with their reads fetched in one round trip and one commit, as threads' do in
//! [`group`](crate::group).
//!
//! A task queues its write. The first to find the lane idle leads: it spawns one task for
//! the next batch, on its own runtime, which takes the writes waiting (the leader's among
//! them), runs them as one replayed call of [`group::batch`] (awaiting each request, with no
//! thread of its own, unless the batch moves to the blocking pool past 16 round trips),
//! answers each, and hands the lane to the next write waiting, whose caller spawns the next
//! batch. A batch so goes on however its leader's future is polled, or dropped; where no
//! runtime can be found to spawn on, the leader runs the batch on its own task.
//!
//! Dropped futures: a task whose future is dropped while it waits leaves the lane (and hands
//! it on, if it was just told to lead); its write never runs, unless a batch had taken it in
//! already. A batch's task stopped mid-batch (its runtime shut down) tells every write of the
//! batch to run alone, on its own caller's task: the batch may or may not have committed,
//! and a one-call write is safe to run again (a `delete` run again may then return `false`,
//! a `put` run again may overwrite a later write of the same record, and a `reader` run
//! again may leave a second saved reader behind).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use crate::async_kvs::call;
use crate::error::{Error, Result};
use crate::group::{self, Answer, Lane, Op, Queue, Value};
use crate::kvs::Kvs;
use crate::record::ReadKeys;

/// An `AsyncKvs` handle's lane of batched writes: [`group::Lane`]'s queue, with a leader's
/// code of its own here.
pub(crate) type TaskLane = Lane<Job>;

/// A task's write waiting in the lane.
pub(crate) struct Job {
    id: u64,
    op: Op,
    reads: ReadKeys,
    reply: mpsc::Sender<Told>,
}

/// What a waiting write is told.
enum Told {
    Done(Result<Value>),
    /// Its batch did not commit: run alone (the write comes back).
    Alone(Op),
    /// Lead the next batch.
    Lead,
}

impl Lane<Job> {
    /// Runs the one-call write `op`, which reads the keys `reads`, in the next batch of
    /// `kvs`'s tasks' writes.
    pub(crate) async fn write(
        self: &Arc<Self>,
        kvs: Arc<Kvs>,
        op: Op,
        reads: ReadKeys,
    ) -> Result<Value> {
        let (reply, told) = mpsc::channel(1);
        let (id, lead) = self.lock().join(|id| Job {
            id,
            op,
            reads,
            reply,
        });
        let mut waiting = Waiting {
            lane: self,
            id,
            told,
        };
        let mut answer = if lead {
            Some(Told::Lead)
        } else {
            waiting.told.recv().await
        };
        while matches!(answer, Some(Told::Lead)) {
            self.start_batch(&kvs).await;
            answer = waiting.told.recv().await;
        }
        match answer {
            Some(Told::Done(result)) => result,
            Some(Told::Alone(op)) => alone(kvs, op).await,
            // A leader answers its own write; a write answered nothing was dropped by a
            // leader that died (a panic in kvs).
            Some(Told::Lead) | None => Err(Error::Aborted),
        }
    }

    /// Runs the next batch on a task of its own (see the module's documentation), or on this
    /// task where there is no runtime to spawn on.
    async fn start_batch(self: &Arc<Self>, kvs: &Arc<Kvs>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.lead(kvs).await;
        };
        // Hands the lane on if the task is dropped before it runs (its runtime shutting
        // down): the writes waiting, this caller's among them, are not left stranded.
        let mut launch = Launch {
            lane: Arc::clone(self),
            started: false,
        };
        let kvs = Arc::clone(kvs);
        drop(runtime.spawn(async move {
            launch.started = true;
            launch.lane.lead(&kvs).await;
        }));
    }

    /// Runs the batch waiting in the lane, answers each write, and hands the lane on.
    async fn lead(&self, kvs: &Arc<Kvs>) {
        let backend = kvs.session.backend();
        let most = backend.batch_writes().unwrap_or(1).max(1);
        let jobs = self
            .lock()
            .take(most, backend.batch_reads(), |job| job.reads.len());
        let n = jobs.len();
        let mut reads = Vec::with_capacity(jobs.len());
        let mut ops = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            ops.push(Some(job.op));
            reads.push(job.reads);
            replies.push(job.reply);
        }
        // Kept here across the replayed runs; answered once the batch is done, or told to
        // run alone if this future is dropped first.
        let mut leading = Leading {
            lane: self,
            ops: Arc::new(Mutex::new(ops)),
            replies,
        };
        let reads = Arc::new(reads);
        let ran = {
            let (ops, reads) = (Arc::clone(&leading.ops), Arc::clone(&reads));
            call(Arc::clone(kvs), move |kvs| {
                let mut ops = ops.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(group::batch(kvs, &mut ops, &reads))
            })
            .await
        };
        // A batch whose call failed as a whole has no answers: each write runs alone.
        let (answers, too_large) = ran.unwrap_or_default();
        self.lock().retune(n, too_large, most);
        leading.answer(answers);
    }
}

/// A batch under way: its writes and where their answers go. Dropped unanswered (its
/// leader's future dropped), it tells each write to run alone; either way it hands the lane
/// on.
struct Leading<'a> {
    lane: &'a TaskLane,
    ops: Arc<Mutex<Vec<Option<Op>>>>,
    replies: Vec<mpsc::Sender<Told>>,
}

impl Leading<'_> {
    /// Answers each write of the batch (`answers` in order; a write with none runs alone).
    fn answer(&mut self, answers: Vec<Option<Answer>>) {
        let mut ops = std::mem::take(&mut *self.ops.lock().unwrap_or_else(PoisonError::into_inner));
        let mut answers = answers.into_iter();
        for (op, reply) in ops.iter_mut().zip(std::mem::take(&mut self.replies)) {
            let told = match (answers.next().flatten(), op.take()) {
                (Some(Answer::Done(result)), _) => Told::Done(result),
                (_, Some(op)) => Told::Alone(op),
                (_, None) => Told::Done(Err(Error::Aborted)),
            };
            // A caller whose future was dropped needs no answer.
            let _ = reply.try_send(told);
        }
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        // Unanswered writes (the batch's task stopped mid-batch) run alone; unless the batch
        // runs on the blocking pool still, holding them: then their callers are told
        // nothing, which they take as `Aborted`, rather than this wait for it.
        if self.ops.try_lock().is_ok() {
            self.answer(Vec::new());
        }
        pass_lead(&mut self.lane.lock());
    }
}

/// A batch's task not started yet: dropped unstarted, it hands the lane on.
struct Launch {
    lane: Arc<TaskLane>,
    started: bool,
}

impl Drop for Launch {
    fn drop(&mut self) {
        if !self.started {
            pass_lead(&mut self.lane.lock());
        }
    }
}

/// Passes the lane to its first waiting write that is still there, or marks it idle.
fn pass_lead(queue: &mut Queue<Job>) {
    while let Some(next) = queue.waiting.first() {
        if next.reply.try_send(Told::Lead).is_ok() {
            return;
        }
        queue.waiting.remove(0);
    }
    queue.busy = false;
}

/// A write waiting in the lane: if its future is dropped while it waits, it leaves the lane,
/// and hands the lane on if it was just told to lead.
struct Waiting<'a> {
    lane: &'a TaskLane,
    id: u64,
    told: mpsc::Receiver<Told>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut queue = self.lane.lock();
        queue.waiting.retain(|job| job.id != self.id);
        if matches!(self.told.try_recv(), Ok(Told::Lead)) {
            pass_lead(&mut queue);
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
