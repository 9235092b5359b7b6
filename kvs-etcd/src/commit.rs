//! Group commit on etcd: the commits of write transactions that run at once on one client go
//! to the cluster together, as one etcd transaction (one request, one Raft entry), instead of
//! one request each.
//!
//! Only commits that cannot see each other share a request: none writes a key that another
//! reads (a compared key, or a key in a compared range) or writes. Each one's compares still
//! guard its own reads, and etcd checks all of them before it applies any write, so a shared
//! commit applies each member exactly as if it had committed alone at that revision, in any
//! order. A commit guarded by the fence (a read no compare describes) or one that deletes a
//! range (a table drop) goes alone.
//!
//! One shared request is in flight per client (commits that go alone are sent beside it);
//! commits that arrive meanwhile queue, and the first of them leads the next. When a shared
//! request fails its compares, is too large for the cluster, or is refused for a member's
//! permissions, nothing of it was applied: every member then commits alone, and each gets an
//! outcome of its own (a request too large also halves the operations the next ones carry,
//! which grow back as shared requests succeed). Any other failure of the request is every
//! member's: a commit whose fate is unknown is unknown for all of them.
//!
//! Calls replayed on a task (`AsyncKvs`) never queue here: they must not block their thread.

use std::collections::VecDeque;
use std::mem::take;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Mutex, MutexGuard, PoisonError};

use kvs_core::{Error, Result};

use crate::client::Rpc;
use crate::etcdserverpb::request_op::Request;
use crate::etcdserverpb::{Compare, PutRequest, RequestOp, TxnRequest};
use crate::{storage, Etcd};

/// The most operations of a shared request, its fence rewrite included (etcd's default
/// `--max-txn-ops`); compares count against the same limit. A cluster set lower makes
/// shared requests fail with `Error::Limit`, and the client then takes fewer.
const MOST_OPS: usize = 128;
/// The least the cap on a shared request's operations falls to after requests too large.
const LEAST_OPS: usize = 16;
/// The most bytes of keys and values in a shared request: well under etcd's default
/// `--max-request-bytes` (1.5 MiB).
const MOST_BYTES: usize = 1 << 20;

/// One transaction's commit: its compares and writes, and the keys they touch.
pub(crate) struct Commit {
    compare: Vec<Compare>,
    ops: Vec<RequestOp>,
    /// Keys it compared (read), sorted.
    reads: Vec<Vec<u8>>,
    /// Ranges it compared (scanned), `[from, to)`.
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// Keys it writes, sorted.
    writes: Vec<Vec<u8>>,
    /// Whether it must go alone: guarded by the fence, or deleting a range.
    alone: bool,
    /// Bytes of its keys and values.
    bytes: usize,
}

impl Commit {
    /// The commit of `ops` guarded by `compare`, where `fence` is the fence's key.
    pub(crate) fn new(fence: &[u8], compare: Vec<Compare>, ops: Vec<RequestOp>) -> Commit {
        let mut alone = false;
        let mut reads = Vec::new();
        let mut ranges = Vec::new();
        for c in &compare {
            if c.key == fence {
                alone = true;
            } else if c.range_end.is_empty() {
                reads.push(c.key.clone());
            } else {
                ranges.push((c.key.clone(), c.range_end.clone()));
            }
        }
        let mut writes = Vec::with_capacity(ops.len());
        let mut bytes = 0;
        for op in &ops {
            match &op.request {
                Some(Request::RequestPut(put)) => {
                    bytes += put.key.len() + put.value.len();
                    writes.push(put.key.clone());
                }
                Some(Request::RequestDeleteRange(delete)) if delete.range_end.is_empty() => {
                    bytes += delete.key.len();
                    writes.push(delete.key.clone());
                }
                _ => alone = true,
            }
        }
        bytes += compare
            .iter()
            .map(|c| c.key.len() + c.range_end.len())
            .sum::<usize>();
        reads.sort_unstable();
        writes.sort_unstable();
        Commit {
            compare,
            ops,
            reads,
            ranges,
            writes,
            alone,
            bytes,
        }
    }

    /// Whether this commit reads or writes `key`.
    fn touches(&self, key: &[u8]) -> bool {
        let has = |keys: &[Vec<u8>]| keys.binary_search_by(|k| k.as_slice().cmp(key)).is_ok();
        has(&self.writes)
            || has(&self.reads)
            || self
                .ranges
                .iter()
                .any(|(from, to)| from.as_slice() <= key && key < to.as_slice())
    }

    /// Whether neither commit writes what the other reads or writes.
    fn independent(&self, other: &Commit) -> bool {
        !other.writes.iter().any(|k| self.touches(k))
            && !self.writes.iter().any(|k| other.touches(k))
    }
}

/// What a queued commit is told.
enum Turn {
    /// Lead the next shared request, with this commit in it.
    Lead(Commit),
    /// Its outcome.
    Done(Result<()>),
    /// The shared request failed its compares or was too large: commit alone.
    Alone(Commit),
}

/// A commit waiting for its turn, and where to tell it.
struct Waiting {
    commit: Commit,
    reply: SyncSender<Turn>,
}

/// The commits of one client: whether a shared request is in flight, and those waiting.
pub(crate) struct Commits {
    lane: Mutex<Lane>,
    /// The most operations (and compares) a shared request carries now: [`MOST_OPS`],
    /// halved after a shared request too large for the cluster.
    most_ops: AtomicUsize,
}

impl Default for Commits {
    fn default() -> Self {
        Commits {
            lane: Mutex::default(),
            most_ops: AtomicUsize::new(MOST_OPS),
        }
    }
}

#[derive(Default)]
struct Lane {
    busy: bool,
    queue: VecDeque<Waiting>,
}

impl Commits {
    fn lock(&self) -> MutexGuard<'_, Lane> {
        self.lane.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits `commit` on `etcd`, with the commits of other threads that arrive while a
    /// shared request is in flight. A failed compare is [`Error::Conflict`].
    pub(crate) fn commit(&self, etcd: &Etcd, commit: Commit) -> Result<()> {
        if commit.alone || crate::replay::active(etcd) {
            return alone(etcd, commit);
        }
        let answer = {
            let mut lane = self.lock();
            if lane.busy {
                let (reply, answer) = sync_channel(1);
                lane.queue.push_back(Waiting { commit, reply });
                answer
            } else {
                lane.busy = true;
                drop(lane);
                return self.lead(etcd, commit);
            }
        };
        match answer.recv() {
            Ok(Turn::Lead(commit)) => self.lead(etcd, commit),
            Ok(Turn::Done(result)) => result,
            Ok(Turn::Alone(commit)) => alone(etcd, commit),
            // The leader's thread died with this commit in its request (a panic): whether
            // the request was sent is not known.
            Err(_) => Err(storage(
                "the thread sending this commit with others failed; it may or may not have \
                 been applied",
            )),
        }
    }

    /// Sends `own` with every queued commit that can share its request, answers them, and
    /// hands the lead to the next waiting commit.
    fn lead(&self, etcd: &Etcd, own: Commit) -> Result<()> {
        let handoff = Handoff(self);
        let mut group = vec![own];
        let mut replies = Vec::new();
        let most_ops = self.most_ops.load(Ordering::Relaxed);
        let (mut ops, mut compares, mut bytes) = (
            group[0].ops.len() + 1,
            group[0].compare.len(),
            group[0].bytes,
        );
        {
            let mut lane = self.lock();
            let mut i = 0;
            while i < lane.queue.len() {
                let c = &lane.queue[i].commit;
                let fits = ops + c.ops.len() <= most_ops
                    && compares + c.compare.len() <= most_ops
                    && bytes + c.bytes <= MOST_BYTES
                    && group.iter().all(|g| g.independent(c));
                if fits {
                    (ops, compares, bytes) = (
                        ops + c.ops.len(),
                        compares + c.compare.len(),
                        bytes + c.bytes,
                    );
                    let Some(w) = lane.queue.remove(i) else { break };
                    group.push(w.commit);
                    replies.push(w.reply);
                } else {
                    i += 1;
                }
            }
        }
        let shared = group.len() > 1;
        let sent = if shared {
            // Copied: if the request fails, each member is sent again alone.
            let compare = group
                .iter()
                .flat_map(|c| c.compare.iter().cloned())
                .collect();
            let ops = group.iter().flat_map(|c| c.ops.iter().cloned()).collect();
            send(etcd, compare, ops)
        } else {
            // Alone: its writes move into the request, uncopied.
            let own = &mut group[0];
            send(etcd, take(&mut own.compare), take(&mut own.ops))
        };
        // The next request may go while this one's members are answered.
        drop(handoff);
        let carried = ops.max(compares);
        match sent {
            Ok(true) => {
                if carried * 2 > most_ops && most_ops < MOST_OPS {
                    // A request of more than half the cap went through: the cluster may take
                    // more again.
                    let _ = self.most_ops.compare_exchange(
                        most_ops,
                        (most_ops * 2).min(MOST_OPS),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                for reply in replies {
                    let _ = reply.try_send(Turn::Done(Ok(())));
                }
                Ok(())
            }
            // Nothing of it was applied: each member finds out alone whether it conflicts, is
            // too large, or is refused.
            Ok(false) | Err(Error::Limit { .. } | Error::Denied { .. }) if shared => {
                if matches!(sent, Err(Error::Limit { .. })) {
                    self.most_ops
                        .store((carried / 2).max(LEAST_OPS), Ordering::Relaxed);
                }
                let mut group = group;
                for (commit, reply) in group.drain(1..).zip(replies) {
                    let _ = reply.try_send(Turn::Alone(commit));
                }
                alone(etcd, group.swap_remove(0))
            }
            Ok(false) => Err(conflict()),
            Err(e) => {
                for reply in replies {
                    let _ = reply.try_send(Turn::Done(Err(crate::replay::again(&e))));
                }
                Err(e)
            }
        }
    }
}

/// Hands the lead on when its request is done (or its leader panicked): to the first waiting
/// commit, or to the next commit that arrives.
struct Handoff<'a>(&'a Commits);

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        let mut lane = self.0.lock();
        match lane.queue.pop_front() {
            Some(next) => {
                let _ = next.reply.try_send(Turn::Lead(next.commit));
            }
            None => lane.busy = false,
        }
    }
}

/// Sends `commit` in a request of its own.
fn alone(etcd: &Etcd, commit: Commit) -> Result<()> {
    if send(etcd, commit.compare, commit.ops)? {
        Ok(())
    } else {
        Err(conflict())
    }
}

fn conflict() -> Error {
    Error::Conflict {
        reason: "another transaction changed what this one read".to_owned(),
    }
}

/// Sends the writes `success` guarded by `compare` (one commit's, or a shared request's) in
/// one etcd transaction, with a rewrite of the fence; returns whether its compares held (and
/// so every write was applied).
fn send(etcd: &Etcd, compare: Vec<Compare>, mut success: Vec<RequestOp>) -> Result<bool> {
    // Every write moves the fence, which guards the transactions whose reads no set of
    // compares can (see `EtcdWrite::compares`).
    success.push(RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: etcd.fence(),
            ..PutRequest::default()
        })),
    });
    let txn = TxnRequest {
        compare,
        success,
        failure: Vec::new(),
    };
    Ok(etcd.call(false, Rpc::Txn(txn))?.txn()?.succeeded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcdserverpb::DeleteRangeRequest;

    fn commit(reads: &[&str], ranges: &[(&str, &str)], writes: &[&str]) -> Commit {
        let key = |k: &str| k.as_bytes().to_vec();
        let mut reads: Vec<Vec<u8>> = reads.iter().map(|k| key(k)).collect();
        reads.sort_unstable();
        let mut writes: Vec<Vec<u8>> = writes.iter().map(|k| key(k)).collect();
        writes.sort_unstable();
        Commit {
            compare: Vec::new(),
            ops: Vec::new(),
            reads,
            ranges: ranges.iter().map(|(a, b)| (key(a), key(b))).collect(),
            writes,
            alone: false,
            bytes: 0,
        }
    }

    #[test]
    fn commits_that_touch_each_others_writes_are_not_independent() {
        let a = commit(&["a1", "x"], &[], &["a1", "a2"]);
        let b = commit(&["b1"], &[], &["b1"]);
        assert!(a.independent(&b) && b.independent(&a));
        // b reads what a writes; b writes what a writes; b scans over what a writes.
        for b in [
            commit(&["a2"], &[], &["b1"]),
            commit(&[], &[], &["a2"]),
            commit(&[], &[("a", "b")], &["b1"]),
        ] {
            assert!(!a.independent(&b) && !b.independent(&a));
        }
        // Reading the same key is no conflict; a range ends before its end key.
        assert!(a.independent(&commit(&["x"], &[("a3", "b1")], &["c"])));
        assert!(!a.independent(&commit(&["x"], &[("a2", "b1")], &["c"])));
        assert!(!a.independent(&commit(&[], &[("a", "b")], &["c"])));
    }

    #[test]
    fn the_fence_and_range_deletions_go_alone() {
        let put = |key: &[u8]| RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: key.to_vec(),
                value: b"v".to_vec(),
                ..PutRequest::default()
            })),
        };
        let delete = |key: &[u8], range_end: &[u8]| RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: key.to_vec(),
                range_end: range_end.to_vec(),
                ..DeleteRangeRequest::default()
            })),
        };
        let compare = |key: &[u8], range_end: &[u8]| Compare {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            ..Compare::default()
        };
        let c = Commit::new(
            b"fence",
            vec![compare(b"r", b""), compare(b"s", b"t")],
            vec![put(b"w"), delete(b"d", b"")],
        );
        assert!(!c.alone);
        assert_eq!(c.reads, [b"r".to_vec()]);
        assert_eq!(c.ranges, [(b"s".to_vec(), b"t".to_vec())]);
        assert_eq!(c.writes, [b"d".to_vec(), b"w".to_vec()]);
        assert_eq!(c.bytes, 6, "w, v and d written; r, s and t compared");
        assert!(Commit::new(b"fence", vec![compare(b"fence", b"")], vec![put(b"w")]).alone);
        assert!(Commit::new(b"fence", Vec::new(), vec![delete(b"d", b"e")]).alone);
    }
}
