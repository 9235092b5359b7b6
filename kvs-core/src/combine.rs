//! Hot counters: concurrent one-call [`Kvs::seq`](crate::Kvs::seq) calls on one counter, in
//! one process, combine into one increment by their sum, committed once, and the values are
//! handed out in the order the calls arrived. `Kvs` combines threads' calls so where its
//! writes are not grouped (etcd; on redb a `seq` is a write of the group commit), and
//! `AsyncKvs` its tasks' calls where they are replayed (etcd).
//!
//! Each counter has a lane. The first caller to find its lane idle leads: it takes every call
//! waiting in the lane (itself included), commits one increment by their sum, answers each
//! with its own value, and hands the lane to the next caller waiting, if any, which leads the
//! next batch. Calls that arrive while a batch commits wait for the next one, so under load
//! a counter costs one commit per batch instead of one per call, and on etcd the callers of
//! one process stop conflicting with each other. When a batch fails, each of its callers runs
//! its own increment instead, so every caller gets its own error (and a batch whose commit's
//! outcome is unknown can only have skipped values, never handed one out twice).
//!
//! It holds the lanes and nothing else; the commit is the caller's (`Kvs::seq`).

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};

/// The lanes of one handle's counters, by name.
#[derive(Default)]
pub(crate) struct Counters {
    lanes: Mutex<HashMap<String, Lane>>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("busy", &self.lock().len())
            .finish()
    }
}

/// The calls waiting on one counter; a lane exists only while a batch is under way.
#[derive(Default)]
struct Lane {
    waiting: Vec<Waiter>,
}

/// One call in a lane: its increment, and where its answer goes.
struct Waiter {
    incr: u64,
    reply: Reply,
}

/// Where a waiting call's answer goes: a thread blocked on it, or an `AsyncKvs` task
/// awaiting it.
enum Reply {
    Thread(SyncSender<Turn>),
    #[cfg(feature = "tokio")]
    Task(tokio::sync::mpsc::Sender<Turn>),
}

impl Reply {
    /// Sends `turn`; returns whether it was delivered (a caller that is gone, because it
    /// panicked or its future was dropped, needs no answer, and cannot lead).
    fn send(&self, turn: Turn) -> bool {
        match self {
            Reply::Thread(reply) => reply.try_send(turn).is_ok(),
            #[cfg(feature = "tokio")]
            Reply::Task(reply) => reply.try_send(turn).is_ok(),
        }
    }
}

/// Passes `name`'s lane to its first waiting call that is still there, or retires the lane
/// when none is.
fn pass_lead(lanes: &mut HashMap<String, Lane>, name: &str) {
    let Some(lane) = lanes.get_mut(name) else {
        return;
    };
    while let Some(next) = lane.waiting.first() {
        if next.reply.send(Turn::Lead) {
            return;
        }
        lane.waiting.remove(0);
    }
    lanes.remove(name);
}

/// What a waiting call is told.
enum Turn {
    /// Its value: the batch committed.
    Value(u64),
    /// Lead the next batch.
    Lead,
    /// The batch failed: run your own increment.
    Alone,
    /// The batch failed in a way every call of it shares.
    Failed(Error),
}

/// What a call does with the turn it was told (`None`: its channel closed, the leader is
/// gone).
enum Step {
    Done(Result<u64>),
    Lead,
    Alone,
}

impl Step {
    fn of(turn: Option<Turn>) -> Step {
        match turn {
            Some(Turn::Value(value)) => Step::Done(Ok(value)),
            Some(Turn::Failed(e)) => Step::Done(Err(e)),
            Some(Turn::Lead) => Step::Lead,
            // A batch that failed, or a leader that died: this call runs alone.
            Some(Turn::Alone) | None => Step::Alone,
        }
    }
}

impl Counters {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Lane>> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a call of `incr` into `name`'s lane; returns whether it leads (the lane was
    /// idle).
    fn join(&self, name: &str, incr: u64, reply: Reply) -> bool {
        let mut lanes = self.lock();
        let idle = !lanes.contains_key(name);
        lanes
            .entry(name.to_owned())
            .or_default()
            .waiting
            .push(Waiter { incr, reply });
        idle
    }

    /// Adds `incr` (at least 1) to the counter `name` together with the calls on it that
    /// arrive meanwhile; `commit(total)` adds `total` in one durable commit and returns the
    /// new value. Returns this call's value.
    pub(crate) fn seq(
        &self,
        name: &str,
        incr: u64,
        commit: &dyn Fn(u64) -> Result<u64>,
    ) -> Result<u64> {
        let (reply, turn) = sync_channel(1);
        if !self.join(name, incr, Reply::Thread(reply)) {
            match Step::of(turn.recv().ok()) {
                Step::Done(answer) => return answer,
                Step::Alone => return commit(incr),
                Step::Lead => {}
            }
        }
        let (handoff, total) = self.batch(name);
        handoff.answer(total.map(|total| (total, commit(total))))?;
        match Step::of(turn.recv().ok()) {
            Step::Done(answer) => answer,
            Step::Alone | Step::Lead => commit(incr),
        }
    }

    /// [`Counters::seq`] for a task (`AsyncKvs`): it awaits its turn and, leading, the
    /// commit. A leader whose future is dropped mid-commit tells its batch to run alone and
    /// hands the lane on, as one that fails does.
    #[cfg(feature = "tokio")]
    pub(crate) async fn seq_async<F>(
        &self,
        name: &str,
        incr: u64,
        commit: impl Fn(u64) -> F,
    ) -> Result<u64>
    where
        F: std::future::Future<Output = Result<u64>>,
    {
        let (reply, turn) = tokio::sync::mpsc::channel(1);
        let mut waiting = Waiting {
            counters: self,
            name,
            mine: reply.clone(),
            turn,
            armed: true,
        };
        if !self.join(name, incr, Reply::Task(reply)) {
            let turn = waiting.turn.recv().await;
            waiting.armed = false;
            match Step::of(turn) {
                Step::Done(answer) => return answer,
                Step::Alone => return commit(incr).await,
                Step::Lead => {}
            }
        }
        waiting.armed = false;
        let (handoff, total) = self.batch(name);
        let committed = match total {
            Some(total) => Some((total, commit(total).await)),
            None => None,
        };
        handoff.answer(committed)?;
        match Step::of(waiting.turn.recv().await) {
            Step::Done(answer) => answer,
            Step::Alone | Step::Lead => commit(incr).await,
        }
    }

    /// Takes the batch waiting in `name`'s lane (its leader's own call among them), with the
    /// sum of its increments (`None` past `u64::MAX`: each call then finds its own
    /// `SeqOverflow`).
    fn batch<'a>(&'a self, name: &'a str) -> (Handoff<'a>, Option<u64>) {
        let batch = std::mem::take(
            &mut self
                .lock()
                .get_mut(name)
                .expect("a lane exists while its leader runs")
                .waiting,
        );
        let total = batch
            .iter()
            .try_fold(0u64, |sum, w| sum.checked_add(w.incr));
        // Hands the lane on however the leader leaves, telling the batch to run alone.
        let handoff = Handoff {
            counters: self,
            name,
            batch,
        };
        (handoff, total)
    }
}

impl Handoff<'_> {
    /// Answers every call of the batch from the commit of its `total`, `(total, result)`
    /// (this leader's own answer waits in its channel), then hands the lane on.
    fn answer(mut self, committed: Option<(u64, Result<u64>)>) -> Result<()> {
        let committed = match committed {
            Some((total, Ok(last))) => Some((last, total)),
            // A cluster that stayed unreachable through the commit's retries: every call
            // of the batch gets that answer, rather than each retrying as long again.
            Some((_, Err(Error::Unavailable { backend, reason }))) => {
                for waiter in self.batch.drain(..) {
                    waiter.reply.send(Turn::Failed(Error::Unavailable {
                        backend,
                        reason: reason.clone(),
                    }));
                }
                None
            }
            // Anything else (a counter that would overflow, say) is each call's own.
            Some((_, Err(_))) | None => None,
        };
        if let Some((last, total)) = committed {
            let mut value = last.checked_sub(total).ok_or_else(|| Error::Corrupt {
                table: crate::catalog::SEQ_TABLE.to_owned(),
                key: self.name.to_owned(),
                reason: format!("counter at {last} after adding {total}"),
            })?;
            for waiter in self.batch.drain(..) {
                value += waiter.incr;
                waiter.reply.send(Turn::Value(value));
            }
        }
        Ok(())
    }
}

/// Answers whatever of a batch is unanswered with [`Turn::Alone`], and passes the lane to the
/// next waiting call or retires it: on every way out of leading a batch.
struct Handoff<'a> {
    counters: &'a Counters,
    name: &'a str,
    batch: Vec<Waiter>,
}

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        for waiter in self.batch.drain(..) {
            waiter.reply.send(Turn::Alone);
        }
        pass_lead(&mut self.counters.lock(), self.name);
    }
}

/// A task's call waiting in a lane: if its future is dropped while it waits, it leaves the
/// lane, and hands the lane on if it was just told to lead, so that no lane waits for a
/// call that is gone.
#[cfg(feature = "tokio")]
struct Waiting<'a> {
    counters: &'a Counters,
    name: &'a str,
    /// Its own channel, to find its waiter by.
    mine: tokio::sync::mpsc::Sender<Turn>,
    turn: tokio::sync::mpsc::Receiver<Turn>,
    /// Whether it still waits for its turn.
    armed: bool,
}

#[cfg(feature = "tokio")]
impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut lanes = self.counters.lock();
        if let Some(lane) = lanes.get_mut(self.name) {
            lane.waiting
                .retain(|w| !matches!(&w.reply, Reply::Task(r) if r.same_channel(&self.mine)));
        }
        if matches!(self.turn.try_recv(), Ok(Turn::Lead)) {
            pass_lead(&mut lanes, self.name);
        }
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::task::{Context, Poll, Waker};

    use super::*;

    /// A counter whose commits wait until `open` is set.
    struct Gated {
        open: AtomicBool,
        value: AtomicU64,
    }

    impl Gated {
        fn new() -> Self {
            Gated {
                open: AtomicBool::new(false),
                value: AtomicU64::new(0),
            }
        }

        fn commit(&self, total: u64) -> impl Future<Output = Result<u64>> + '_ {
            std::future::poll_fn(move |_| {
                if self.open.load(Ordering::SeqCst) {
                    Poll::Ready(Ok(self.value.fetch_add(total, Ordering::SeqCst) + total))
                } else {
                    Poll::Pending
                }
            })
        }
    }

    /// Three calls on one counter: `a` leads, its commit waiting for the gate, and `b` then
    /// `c` wait in the lane.
    #[allow(clippy::type_complexity)]
    fn three<'a>(
        counters: &'a Counters,
        gate: &'a Gated,
        cx: &mut Context<'_>,
    ) -> [Pin<Box<dyn Future<Output = Result<u64>> + 'a>>; 3] {
        [(); 3].map(|()| {
            let mut call: Pin<Box<dyn Future<Output = Result<u64>>>> =
                Box::pin(counters.seq_async("n", 1, |total| gate.commit(total)));
            assert!(call.as_mut().poll(cx).is_pending());
            call
        })
    }

    /// A task told to lead, whose future is dropped before it reads that, hands the lane on:
    /// the call behind it leads instead of waiting for ever.
    #[test]
    fn a_dropped_task_passes_on_the_lead_it_was_given() {
        let (counters, gate) = (Counters::default(), Gated::new());
        let mut cx = Context::from_waker(Waker::noop());
        let [mut a, b, mut c] = three(&counters, &gate, &mut cx);
        gate.open.store(true, Ordering::SeqCst);
        assert!(matches!(a.as_mut().poll(&mut cx), Poll::Ready(Ok(1))));
        // b has been told to lead; it is dropped before it reads that.
        drop(b);
        assert!(matches!(c.as_mut().poll(&mut cx), Poll::Ready(Ok(2))));
        assert!(counters.lock().is_empty(), "the lane is retired");
    }

    /// A task dropped while it waits leaves the lane: the leader's batch does not count it,
    /// and the lane goes to the call behind it.
    #[test]
    fn a_task_dropped_while_waiting_leaves_the_lane() {
        let (counters, gate) = (Counters::default(), Gated::new());
        let mut cx = Context::from_waker(Waker::noop());
        let [mut a, b, mut c] = three(&counters, &gate, &mut cx);
        drop(b);
        gate.open.store(true, Ordering::SeqCst);
        assert!(matches!(a.as_mut().poll(&mut cx), Poll::Ready(Ok(1))));
        assert!(matches!(c.as_mut().poll(&mut cx), Poll::Ready(Ok(2))));
        assert!(counters.lock().is_empty());
    }
}
