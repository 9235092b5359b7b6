//! The compares that guard a write transaction's commit, built from its read set: the commit
//! fails, as a conflict, if anything the transaction read has changed since its snapshot.

use std::cell::RefCell;

use kvs_core::Result;

use crate::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::etcdserverpb::{Compare, RangeRequest};
use crate::write::EtcdWrite;
use crate::Etcd;

/// The most compares a commit carries before one fence compare replaces them (etcd counts
/// them against `--max-txn-ops`, 128 by default).
const COMPARE_BUDGET: usize = 100;

impl EtcdWrite<'_> {
    /// The compares that make the commit fail if anything this transaction read has changed
    /// since its snapshot: each key read or visited still at the revision it had (0 for
    /// absent), and no key in a scanned range newer than the snapshot. Past
    /// [`COMPARE_BUDGET`] compares, or after a read no compare describes (a count, the list of
    /// tables), one compare on the fence stands for them all: no write since the snapshot.
    pub(crate) fn compares(&self, etcd: &Etcd) -> Result<Vec<Compare>> {
        let revision = self.read.revision.get();
        let Some(reads) = self.read.reads.as_ref().map(RefCell::take) else {
            return Ok(Vec::new());
        };
        if revision == 0 {
            return Ok(Vec::new()); // nothing was read: blind writes
        }
        let modified = |key: Vec<u8>, range_end: Vec<u8>, result: CompareResult, at: i64| Compare {
            result: result as i32,
            target: CompareTarget::Mod as i32,
            key,
            range_end,
            target_union: Some(TargetUnion::ModRevision(at)),
        };
        if reads.whole || reads.keys.len() + reads.ranges.len() > COMPARE_BUDGET {
            let fence = etcd.fence();
            let reply = self.read.range(RangeRequest {
                key: fence.clone(),
                ..RangeRequest::default()
            })?;
            let at = reply.kvs.first().map_or(0, |kv| kv.mod_revision);
            return Ok(vec![modified(fence, Vec::new(), CompareResult::Equal, at)]);
        }
        let mut compares: Vec<Compare> = reads
            .keys
            .into_iter()
            .map(|(key, at)| modified(key, Vec::new(), CompareResult::Equal, at))
            .collect();
        for (from, to) in reads.ranges {
            if from < to {
                compares.push(modified(from, to, CompareResult::Less, revision + 1));
            }
        }
        Ok(compares)
    }
}
