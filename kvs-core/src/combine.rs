//! Hot counters: concurrent one-call [`Kvs::seq`](crate::Kvs::seq) calls on one counter, in
//! one process, combine into one increment by their sum, committed once, and the values are
//! handed out in the order the calls arrived.
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
    reply: SyncSender<Turn>,
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

impl Counters {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Lane>> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
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
        let lead = {
            let mut lanes = self.lock();
            let idle = !lanes.contains_key(name);
            lanes
                .entry(name.to_owned())
                .or_default()
                .waiting
                .push(Waiter { incr, reply });
            idle
        };
        if !lead {
            match turn.recv() {
                Ok(Turn::Value(value)) => return Ok(value),
                Ok(Turn::Failed(e)) => return Err(e),
                Ok(Turn::Lead) => {}
                // A batch that failed, or a leader that died: this call runs alone.
                Ok(Turn::Alone) | Err(_) => return commit(incr),
            }
        }
        self.lead(name, commit)?;
        match turn.recv() {
            Ok(Turn::Value(value)) => Ok(value),
            Ok(Turn::Failed(e)) => Err(e),
            _ => commit(incr),
        }
    }

    /// Commits the batch waiting in `name`'s lane (this leader's own call among them) and
    /// answers every call in it (this leader's own answer waits in its channel), then hands
    /// the lane on.
    fn lead(&self, name: &str, commit: &dyn Fn(u64) -> Result<u64>) -> Result<()> {
        let batch = std::mem::take(
            &mut self
                .lock()
                .get_mut(name)
                .expect("a lane exists while its leader runs")
                .waiting,
        );
        // Hands the lane on even if the commit panics, telling the batch to run alone.
        let mut handoff = Handoff {
            counters: self,
            name,
            batch,
        };
        let total = handoff
            .batch
            .iter()
            .try_fold(0u64, |sum, w| sum.checked_add(w.incr));
        let committed = match total {
            Some(total) => match commit(total) {
                Ok(last) => Some((last, total)),
                // A cluster that stayed unreachable through the commit's retries: every call
                // of the batch gets that answer, rather than each retrying as long again.
                Err(Error::Unavailable { backend, reason }) => {
                    for waiter in handoff.batch.drain(..) {
                        let _ = waiter.reply.try_send(Turn::Failed(Error::Unavailable {
                            backend,
                            reason: reason.clone(),
                        }));
                    }
                    None
                }
                // Anything else (a counter that would overflow, say) is each call's own.
                Err(_) => None,
            },
            // A sum past u64::MAX: each call finds its own SeqOverflow.
            None => None,
        };
        if let Some((last, total)) = committed {
            let mut value = last.checked_sub(total).ok_or_else(|| Error::Corrupt {
                table: crate::catalog::SEQ_TABLE.to_owned(),
                key: name.to_owned(),
                reason: format!("counter at {last} after adding {total}"),
            })?;
            for waiter in handoff.batch.drain(..) {
                value += waiter.incr;
                // A caller that is gone (it panicked) needs no answer.
                let _ = waiter.reply.try_send(Turn::Value(value));
            }
        }
        drop(handoff);
        Ok(())
    }
}

/// Answers whatever of a batch is unanswered with [`Turn::Alone`], and passes the lane to the
/// next waiting call or retires it: on every way out of [`Counters::lead`].
struct Handoff<'a> {
    counters: &'a Counters,
    name: &'a str,
    batch: Vec<Waiter>,
}

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        for waiter in self.batch.drain(..) {
            let _ = waiter.reply.try_send(Turn::Alone);
        }
        let mut lanes = self.counters.lock();
        let next = lanes
            .get_mut(self.name)
            .and_then(|lane| lane.waiting.first());
        match next {
            Some(next) => {
                let _ = next.reply.try_send(Turn::Lead);
            }
            None => {
                lanes.remove(self.name);
            }
        }
    }
}
