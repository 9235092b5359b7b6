//! [`Replay`] on etcd: the log of one replayed call of `AsyncKvs` (see
//! [`kvs_core::Replay`]), and the hook by which [`Etcd::call`] answers from it.
//!
//! A run answers the call's requests from the log, in order. The first request past the
//! log's end stops the run: it is kept as the one to send, and it and every later request
//! of the run fail (the run's result is thrown away). A read that differs from the one
//! logged at its place (a call that does not read the same way twice) takes its place and
//! cuts the log there, unless a commit follows it in the log: a commit is sent once, so a
//! call that would diverge after one fails instead of committing again.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use kvs_core::backend::{retry_pause, RETRY_FOR};
use kvs_core::{Error, Replay, Result};

use crate::client::{Reply, Rpc};
use crate::{storage, Etcd};

/// One request of a call and what it got.
struct Entry {
    rpc: Rpc,
    idempotent: bool,
    answer: Result<Reply>,
}

/// The log of one call, and where its current run is in it.
#[derive(Default)]
struct Log {
    /// The client the log belongs to (its address): another `Etcd` in the same run sends
    /// its requests itself.
    owner: usize,
    entries: Vec<Entry>,
    /// The next entry the run reads.
    at: usize,
    /// The request the run stopped at: `(idempotent, request)`.
    missing: Option<(bool, Rpc)>,
}

thread_local! {
    /// The log of the call running on this thread, if it is a replayed one.
    static LOG: RefCell<Option<Log>> = const { RefCell::new(None) };
}

/// What stops a run at a request the log does not hold. Never seen by a caller: the run's
/// result is thrown away.
fn stopped() -> Error {
    storage("a replayed call reached a request that is not answered yet")
}

/// The answer to `rpc` from the log of the call running on this thread, if it is a replayed
/// call of `etcd`; `None` sends the request as usual.
pub(crate) fn answer(etcd: &Etcd, idempotent: bool, rpc: &Rpc) -> Option<Result<Reply>> {
    LOG.with(|log| {
        let mut log = log.borrow_mut();
        let log = log.as_mut().filter(|log| log.owner == owner(etcd))?;
        Some(log.answer(idempotent, rpc))
    })
}

/// Whether this thread runs a replayed call of `etcd`.
pub(crate) fn active(etcd: &Etcd) -> bool {
    LOG.with(|log| {
        log.borrow()
            .as_ref()
            .is_some_and(|log| log.owner == owner(etcd))
    })
}

fn owner(etcd: &Etcd) -> usize {
    std::ptr::from_ref(etcd) as usize
}

impl Log {
    fn answer(&mut self, idempotent: bool, rpc: &Rpc) -> Result<Reply> {
        if self.missing.is_some() {
            return Err(stopped());
        }
        if let Some(entry) = self.entries.get(self.at) {
            if entry.rpc == *rpc && entry.idempotent == idempotent {
                self.at += 1;
                return match &entry.answer {
                    Ok(reply) => Ok(reply.clone()),
                    Err(e) => Err(again(e)),
                };
            }
            if self.entries[self.at..].iter().any(|e| !e.idempotent) {
                return Err(storage(
                    "a replayed call sent other requests than in its first run, after a \
                     commit it sent: it is not run again",
                ));
            }
            self.entries.truncate(self.at);
        }
        self.missing = Some((idempotent, rpc.clone()));
        Err(stopped())
    }

    /// The failures (conflicts and lost answers) since the last commit that went through,
    /// for the pause before the next attempt.
    fn failures(&self) -> u32 {
        let mut failures = 0;
        for e in self.entries.iter().rev() {
            match &e.answer {
                Ok(Reply::Txn(txn)) if !e.idempotent && txn.succeeded => break,
                _ if e.failure().is_some() => failures += 1,
                _ => {}
            }
        }
        failures
    }
}

/// A copy of an error an earlier run met, for the next run to meet it too (a `kvs::Error`
/// is not `Clone`: its storage variant carries the engine's error, kept here as its text).
pub(crate) fn again(e: &Error) -> Error {
    match e {
        Error::Unavailable { backend, reason } => Error::Unavailable {
            backend,
            reason: reason.clone(),
        },
        Error::Conflict { reason } => Error::Conflict {
            reason: reason.clone(),
        },
        Error::Limit {
            backend,
            limit,
            reason,
        } => Error::Limit {
            backend,
            limit: limit.clone(),
            reason: reason.clone(),
        },
        Error::Tls { member, reason } => Error::Tls {
            member: member.clone(),
            reason: reason.clone(),
        },
        Error::Denied { reason } => Error::Denied {
            reason: reason.clone(),
        },
        Error::Url { url, reason } => Error::Url {
            url: url.clone(),
            reason: reason.clone(),
        },
        Error::Storage { backend, source } => Error::storage(backend, source.to_string()),
        other => storage(other.to_string()),
    }
}

/// Puts a run's log back where it was taken from, and the thread's log as it was, even when
/// the run panics.
struct Restore<'l> {
    log: &'l mut Log,
    outer: Option<Log>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let outer = self.outer.take();
        if let Some(log) = LOG.with(|log| log.replace(outer)) {
            *self.log = log;
        }
    }
}

/// The replayed call of one `AsyncKvs` call on `etcd`.
pub(crate) struct EtcdReplay<'a> {
    etcd: &'a Etcd,
    log: Log,
    started: Instant,
}

impl<'a> EtcdReplay<'a> {
    pub(crate) fn new(etcd: &'a Etcd) -> Self {
        EtcdReplay {
            etcd,
            log: Log {
                owner: owner(etcd),
                ..Log::default()
            },
            started: Instant::now(),
        }
    }
}

impl Replay for EtcdReplay<'_> {
    fn run(&mut self, f: &mut dyn FnMut()) {
        self.log.at = 0;
        self.log.missing = None;
        let outer = LOG.with(|log| log.replace(Some(std::mem::take(&mut self.log))));
        let _restore = Restore {
            log: &mut self.log,
            outer,
        };
        f();
    }

    fn missing(&self) -> bool {
        self.log.missing.is_some()
    }

    fn sent_commit(&self) -> bool {
        self.log.entries.iter().any(|e| !e.idempotent)
    }

    fn fetch(&mut self) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> {
        Box::pin(async move {
            let Some((idempotent, rpc)) = self.log.missing.take() else {
                return Ok(());
            };
            // After a failed attempt (a conflict, a lost answer), the call's retry runs again
            // at once: the pause the sync retry sleeps before the next attempt comes here,
            // before that attempt's first request, and so does its 30 s limit.
            if let Some(failure) = self.log.entries.last().and_then(Entry::failure) {
                if self.started.elapsed() >= RETRY_FOR {
                    return Err(failure);
                }
                self.etcd.pause(self.log.failures()).await;
            }
            let answer = self.etcd.client.send(idempotent, rpc.clone()).await;
            self.log.entries.push(Entry {
                rpc,
                idempotent,
                answer,
            });
            Ok(())
        })
    }
}

impl Entry {
    /// The error a failed attempt ended with, if this request failed it: a commit that
    /// conflicted, or a request that met a conflict or a lost leader.
    fn failure(&self) -> Option<Error> {
        match &self.answer {
            Ok(Reply::Txn(txn)) if !self.idempotent && !txn.succeeded => Some(Error::Conflict {
                reason: "another transaction changed what this one read, again and again \
                         for 30 s"
                    .to_owned(),
            }),
            Err(e) if e.is_transient() => Some(again(e)),
            _ => None,
        }
    }
}

impl Etcd {
    /// Sleeps [`retry_pause`]`(failures)`, as the sync retry does between attempts, on the
    /// client's runtime, whose timer is there whatever runtime awaits it.
    async fn pause(&self, failures: u32) {
        let _ = self
            .runtime()
            .spawn(tokio::time::sleep(retry_pause(failures)))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcdserverpb::{RangeRequest, RangeResponse, TxnRequest, TxnResponse};

    fn read(key: &str) -> Rpc {
        Rpc::Range(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..RangeRequest::default()
        })
    }

    fn commit(succeeded: bool) -> (Rpc, Reply) {
        (
            Rpc::Txn(TxnRequest::default()),
            Reply::Txn(TxnResponse {
                succeeded,
                ..TxnResponse::default()
            }),
        )
    }

    fn log_of(entries: Vec<(bool, Rpc, Result<Reply>)>) -> Log {
        Log {
            entries: entries
                .into_iter()
                .map(|(idempotent, rpc, answer)| Entry {
                    rpc,
                    idempotent,
                    answer,
                })
                .collect(),
            ..Log::default()
        }
    }

    #[allow(clippy::unnecessary_wraps)] // an answer as the log keeps it
    fn found() -> Result<Reply> {
        Ok(Reply::Range(RangeResponse::default()))
    }

    #[test]
    fn a_run_reads_the_log_in_order_then_stops_at_the_first_new_request() {
        let mut log = log_of(vec![(true, read("a"), found())]);
        assert!(log.answer(true, &read("a")).is_ok());
        assert!(log.answer(true, &read("b")).is_err());
        assert_eq!(log.missing, Some((true, read("b"))));
        // Everything after the stop fails too, and is not sent.
        assert!(log.answer(true, &read("c")).is_err());
        assert_eq!(log.missing, Some((true, read("b"))));
    }

    #[test]
    fn a_logged_error_is_met_again() {
        let lost = Err(Error::Unavailable {
            backend: "etcd",
            reason: "no leader".to_owned(),
        });
        let mut log = log_of(vec![(true, read("a"), lost)]);
        assert!(matches!(
            log.answer(true, &read("a")),
            Err(Error::Unavailable { reason, .. }) if reason == "no leader"
        ));
        assert!(log.missing.is_none());
    }

    #[test]
    fn a_read_that_differs_takes_the_place_of_the_logged_ones() {
        let mut log = log_of(vec![(true, read("a"), found()), (true, read("b"), found())]);
        assert!(log.answer(true, &read("a")).is_ok());
        assert!(log.answer(true, &read("x")).is_err());
        assert_eq!(log.entries.len(), 1, "the log is cut at the new read");
        assert_eq!(log.missing, Some((true, read("x"))));
    }

    #[test]
    fn a_call_that_diverges_before_a_sent_commit_fails_without_sending() {
        let (rpc, reply) = commit(true);
        let mut log = log_of(vec![(true, read("a"), found()), (false, rpc, Ok(reply))]);
        assert!(log.answer(true, &read("x")).is_err());
        assert!(log.missing.is_none(), "nothing is left to send");
        assert_eq!(log.entries.len(), 2, "the commit stays logged");
    }

    #[test]
    fn failures_count_the_conflicts_and_lost_answers_since_the_last_commit() {
        let (rpc, failed) = commit(false);
        let lost = || {
            Err(Error::Unavailable {
                backend: "etcd",
                reason: "lost".to_owned(),
            })
        };
        let log = log_of(vec![
            (false, rpc.clone(), Ok(failed.clone())),
            (true, read("a"), found()),
            (false, rpc.clone(), Ok(failed)),
            (false, rpc, lost()),
        ]);
        assert_eq!(log.failures(), 3, "reads in between do not reset the count");
        assert_eq!(log_of(vec![(true, read("a"), found())]).failures(), 0);
        let (rpc, ok) = commit(true);
        let (_, failed) = commit(false);
        let log = log_of(vec![
            (false, rpc.clone(), Ok(failed)),
            (false, rpc, Ok(ok)),
            (true, read("a"), found()),
        ]);
        assert_eq!(log.failures(), 0, "a commit that went through resets it");
    }
}
