//! Many writers at once: one-call writes from 32 threads share commits (group commit), and a
//! write that fails (a duplicate unique value), a transaction whose closure returns `Err`, or
//! one whose closure panics, rolls back only itself. Afterwards every acknowledged write is
//! there, every failed one is not, and the indexes are exact. Transactions share commits
//! too, and stay serializable.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{audit_users, backend_test, User};
use kvs::backend::{Backend, BackendInfo, ReadTx, SharedWrite, WriteTx};
use kvs::{Config, Error, Kvs, Table};
use serde::{Deserialize, Serialize};

const THREADS: u64 = 32;
const STEPS: u64 = 40;

/// A thread's own record `i`, in one of two versions.
fn own(t: u64, i: u64, version: u64) -> User {
    let id = 1 + t * 1_000 + i;
    User::new(
        id,
        &format!("{id}.{version}@x.io"),
        ["Oslo", "Rome", "Lima"][((id + version) % 3) as usize],
    )
}

/// One thread's writes: puts and deletes of its own records, and 1 call in 10 that fails.
/// Returns what its records must be afterwards, and how many calls failed as they should.
fn writer(kvs: &Kvs, t: u64) -> (BTreeMap<u64, Option<User>>, u64) {
    let mut expect = BTreeMap::new();
    let mut failed = 0;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (t + 1);
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for step in 0..STEPS {
        let i = next() % 8;
        let user = own(t, i, step);
        match (step % 10, next() % 3) {
            // The failing tenth: a duplicate, a closure's Err, a panicking closure.
            (9, 0) => {
                let dup = User {
                    email: "taken@x.io".to_owned(),
                    ..user
                };
                assert!(matches!(kvs.put(&dup), Err(Error::Duplicate { .. })));
                failed += 1;
            }
            (9, 1) => {
                let result = kvs.transaction(|tx| {
                    tx.put(&user)?;
                    Err::<(), _>(Error::Aborted)
                });
                assert!(matches!(result, Err(Error::Aborted)));
                failed += 1;
            }
            (9, _) => {
                let result: std::thread::Result<kvs::Result<()>> =
                    catch_unwind(AssertUnwindSafe(|| {
                        kvs.transaction(|tx| {
                            tx.put(&user)?;
                            panic!("a closure that panics");
                        })
                    }));
                assert!(result.is_err(), "the panic reaches the caller");
                failed += 1;
            }
            (_, 0) => {
                let existed = kvs.delete::<User>(&user.id).unwrap();
                let was = expect.insert(user.id, None).flatten();
                assert_eq!(existed, was.is_some());
            }
            _ => {
                kvs.put(&user).unwrap();
                expect.insert(user.id, Some(user));
            }
        }
    }
    (expect, failed)
}

backend_test! {
    #[test]
    fn thirty_two_writers_with_failures_lose_nothing_and_keep_indexes_exact() {
        on_each_backend(|kvs| {
            kvs.put(&User::new(1_000_000, "taken@x.io", "Oslo")).unwrap();
            let results: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|t| s.spawn(move || writer(kvs, t)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let mut failed = 0;
            for (expect, f) in results {
                failed += f;
                for (id, user) in expect {
                    assert_eq!(kvs.get::<User>(&id).unwrap(), user, "record {id}");
                }
            }
            assert!(failed >= THREADS * STEPS / 10, "{failed} calls failed");
            audit_users(kvs);
            // The handle goes on working.
            kvs.put(&User::new(2_000_000, "after@x.io", "Oslo")).unwrap();
        });
    }
}

/// A string whose stored form "boom" panics when it is read back: a `Table` impl that panics.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Fragile(String);

impl<'de> Deserialize<'de> for Fragile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        assert!(s != "boom", "a Table impl that panics");
        Ok(Fragile(s))
    }
}

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "shards")]
struct Shard {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    tag: String,
    note: Fragile,
}

/// A write that panics inside a group (replacing a record whose stored form panics when read)
/// fails by itself with `Error::Panicked`; the writes grouped with it commit, and the handle
/// goes on working (its lane is not left busy).
#[test]
fn a_write_that_panics_in_a_group_fails_alone() {
    let dir = common::TempDir::new();
    for url in ["mem:".to_owned(), dir.url("panics.redb")] {
        let kvs = Kvs::open(&url).unwrap();
        let shard = |id: u64, note: &str| Shard {
            id,
            tag: format!("t{}", id % 4),
            note: Fragile(note.to_owned()),
        };
        kvs.put(&shard(0, "boom")).unwrap();
        let panicked = std::thread::scope(|s| {
            let writers: Vec<_> = (1..=16u64)
                .map(|t| {
                    let kvs = &kvs;
                    s.spawn(move || {
                        for i in 0..20 {
                            kvs.put(&shard(t * 100 + i, "fine")).unwrap();
                        }
                    })
                })
                .collect();
            let breaker = s.spawn(|| {
                (0..20)
                    .filter(|_| matches!(kvs.put(&shard(0, "new")), Err(Error::Panicked { .. })))
                    .count()
            });
            for w in writers {
                w.join().unwrap();
            }
            breaker.join().unwrap()
        });
        assert_eq!(
            panicked, 20,
            "{url}: every replacement of the fragile record panicked alone"
        );
        assert_eq!(kvs.count::<Shard>().unwrap(), 1 + 16 * 20, "{url}");
        assert_eq!(
            kvs.index_count::<Shard>(ShardField::Tag, "t1").unwrap(),
            80,
            "{url}"
        );
        kvs.put(&shard(1, "after")).unwrap();
    }
}

/// A total that transactions read, add to and write back.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[kvs(name = "tallies")]
struct Tally {
    #[kvs(key)]
    id: u64,
    n: u64,
}

/// redb in memory, whose group commits are counted and take `pause` (an fsync's time, so
/// that writers pile up), and whose every `fail_every`-th group commit fails.
struct Counted {
    inner: kvs::redb::Redb,
    commits: Arc<AtomicU64>,
    begun: AtomicU64,
    fail_every: u64,
    pause: Duration,
}

struct CountedWrite {
    inner: Box<dyn SharedWrite>,
    commits: Arc<AtomicU64>,
    fail: bool,
    pause: Duration,
}

impl SharedWrite for CountedWrite {
    fn run(&mut self, f: &mut dyn FnMut(&mut dyn WriteTx) -> kvs::Result<()>) -> kvs::Result<()> {
        self.inner.run(f)
    }

    fn commit(self: Box<Self>) -> kvs::Result<()> {
        if self.fail {
            // Dropped uncommitted: nothing of it is written.
            return Err(Error::Storage {
                backend: "test",
                source: "an injected commit failure".into(),
            });
        }
        std::thread::sleep(self.pause);
        self.inner.commit()?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Backend for Counted {
    fn info(&self) -> BackendInfo {
        self.inner.info()
    }
    fn read(&self, f: &mut dyn FnMut(&dyn ReadTx) -> kvs::Result<()>) -> kvs::Result<()> {
        self.inner.read(f)
    }
    fn snapshot(&self) -> kvs::Result<Box<dyn ReadTx + Send + '_>> {
        self.inner.snapshot()
    }
    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> kvs::Result<()>) -> kvs::Result<()> {
        std::thread::sleep(self.pause);
        self.inner.write(f)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn serial_writes(&self) -> bool {
        true
    }
    fn begin_write(&self) -> Option<kvs::Result<Box<dyn SharedWrite>>> {
        let n = self.begun.fetch_add(1, Ordering::Relaxed) + 1;
        let inner = match self.inner.begin_write()? {
            Ok(inner) => inner,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(Box::new(CountedWrite {
            inner,
            commits: Arc::clone(&self.commits),
            fail: self.fail_every != 0 && n.is_multiple_of(self.fail_every),
            pause: self.pause,
        })))
    }
}

/// A handle on [`Counted`], and its count of commits.
fn counted(fail_every: u64) -> (Kvs, Arc<AtomicU64>) {
    counted_pausing(fail_every, Duration::from_millis(2))
}

fn counted_pausing(fail_every: u64, pause: Duration) -> (Kvs, Arc<AtomicU64>) {
    let commits = Arc::new(AtomicU64::new(0));
    let backend = Counted {
        inner: kvs::redb::Redb::in_memory(redb::Durability::Immediate).unwrap(),
        commits: Arc::clone(&commits),
        begun: AtomicU64::new(0),
        fail_every,
        pause,
    };
    let kvs = Kvs::with_backend(Box::new(backend), Config::parse("counted:").unwrap()).unwrap();
    (kvs, commits)
}

/// What one thread's transactions did: the records they committed, those that must be
/// absent, and how many added to the tally.
#[derive(Default)]
struct Done {
    present: Vec<User>,
    absent: Vec<u64>,
    added: u64,
}

/// A thread's transactions: each reads the tally, adds 1 and puts a record of its own; 1 in
/// 10 returns `Err` after writing, and 1 in 10 panics after writing. The closures borrow the
/// thread's data and are not `Send`.
fn transactions(kvs: &Kvs, t: u64, steps: u64) -> Done {
    let mut done = Done::default();
    let seen = std::rc::Rc::new(std::cell::Cell::new(0u64));
    for step in 0..steps {
        let user = own(t, step, 0);
        let user = User {
            id: 10_000_000 + user.id,
            email: format!("tx.{}", user.email),
            ..user
        };
        let fate = (t + step) % 10;
        let run = || {
            kvs.transaction(|tx| {
                let mut tally = tx.get::<Tally>(&0)?.unwrap_or_default();
                tally.n += 1;
                tx.put(&tally)?;
                tx.put(&user)?;
                seen.set(seen.get() + 1);
                match fate {
                    0 => Err(Error::Aborted),
                    1 => panic!("a closure that panics"),
                    _ => Ok(tally.n),
                }
            })
        };
        match catch_unwind(AssertUnwindSafe(run)) {
            Ok(Ok(n)) => {
                assert!(n >= 1);
                done.present.push(user);
                done.added += 1;
            }
            Ok(Err(_)) | Err(_) => done.absent.push(user.id),
        }
    }
    assert!(seen.get() >= steps - steps / 10, "the closures ran");
    done
}

/// Transactions from 32 threads share commits (a commit takes 2 ms here, so they pile up),
/// stay serializable (a tally every one of them reads and writes back adds up), and one that
/// fails or panics rolls back alone.
#[test]
fn transactions_share_commits_and_stay_serializable() {
    let (kvs, commits) = counted(0);
    let steps = 20;
    let done: Vec<Done> = std::thread::scope(|s| {
        let kvs = &kvs;
        let threads: Vec<_> = (0..THREADS)
            .map(|t| s.spawn(move || transactions(kvs, t, steps)))
            .collect();
        threads.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let added: u64 = done.iter().map(|d| d.added).sum();
    assert_eq!(added, THREADS * steps * 8 / 10, "8 in 10 commit");
    assert_eq!(
        kvs.get::<Tally>(&0).unwrap().unwrap().n,
        added,
        "no lost update"
    );
    for d in &done {
        for user in &d.present {
            assert_eq!(kvs.get::<User>(&user.id).unwrap().as_ref(), Some(user));
        }
        for id in &d.absent {
            assert_eq!(
                kvs.get::<User>(id).unwrap(),
                None,
                "record {id} rolled back"
            );
        }
    }
    audit_users(&kvs);
    let commits = commits.load(Ordering::Relaxed);
    assert!(
        commits * 4 <= added,
        "{added} transactions took {commits} commits: they did not share"
    );
}

/// When a group's commit fails, its one-call writes run again alone (and succeed here), and
/// its transactions, whose closures ran already, fail with the commit's error and leave
/// nothing: afterwards every acknowledged write is there and every failed one is not.
#[test]
fn a_failed_group_commit_fails_its_transactions_and_reruns_its_writes() {
    let (kvs, _) = counted(3);
    let done: Vec<(Done, Vec<User>)> = std::thread::scope(|s| {
        let kvs = &kvs;
        let threads: Vec<_> = (0..16)
            .map(|t| {
                s.spawn(move || {
                    let mut puts = Vec::new();
                    let mut done = Done::default();
                    for step in 0..20 {
                        if step % 2 == 0 {
                            let user = own(t, step, 1);
                            kvs.put(&user).unwrap();
                            puts.push(user);
                            continue;
                        }
                        let user = User {
                            id: 20_000_000 + t * 1_000 + step,
                            email: format!("{t}.{step}@tx.io"),
                            ..own(t, step, 2)
                        };
                        match kvs.transaction(|tx| tx.put(&user)) {
                            Ok(()) => done.present.push(user),
                            Err(Error::Storage { .. }) => done.absent.push(user.id),
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                    (done, puts)
                })
            })
            .collect();
        threads.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut failed = 0;
    for (d, puts) in &done {
        for user in d.present.iter().chain(puts) {
            assert_eq!(kvs.get::<User>(&user.id).unwrap().as_ref(), Some(user));
        }
        for id in &d.absent {
            assert_eq!(kvs.get::<User>(id).unwrap(), None, "record {id}");
        }
        failed += d.absent.len();
    }
    assert!(failed > 0, "some group commits failed");
    audit_users(&kvs);
}

/// A transaction's own failure.
#[derive(Debug)]
enum Shop {
    /// The closure saw the marker record.
    SawMarker,
    Store(Error),
}

impl From<Error> for Shop {
    fn from(e: Error) -> Self {
        Shop::Store(e)
    }
}

/// A transaction that fails on what an earlier write of its group wrote does not report that
/// failure when the group does not commit: the write it saw never was. Here a first group's
/// slow commit holds the lane while a transaction that writes a marker, then one that fails
/// when it sees the marker, queue behind it; their group's commit fails.
#[test]
fn a_failure_on_writes_that_never_committed_is_not_reported() {
    // Every second group commit fails: the second group's.
    let (kvs, _) = counted_pausing(2, Duration::from_millis(300));
    let marker = User::new(7, "marker@x.io", "Oslo");
    let saw = std::sync::atomic::AtomicBool::new(false);
    let (written, checked) = std::thread::scope(|s| {
        let kvs = &kvs;
        let first = s.spawn(move || kvs.put(&User::new(1, "first@x.io", "Oslo")));
        std::thread::sleep(Duration::from_millis(100));
        let writer = s.spawn(|| kvs.transaction(|tx| tx.put(&marker)));
        std::thread::sleep(Duration::from_millis(100));
        let checker = s.spawn(|| {
            kvs.try_transaction(|tx| {
                if tx.get::<User>(&7)?.is_some() {
                    saw.store(true, Ordering::Relaxed);
                    return Err(Shop::SawMarker);
                }
                Ok(())
            })
        });
        first.join().unwrap().unwrap();
        (writer.join().unwrap(), checker.join().unwrap())
    });
    assert!(
        matches!(written, Err(Error::Storage { .. })),
        "the marker's group failed to commit: {written:?}"
    );
    assert_eq!(kvs.get::<User>(&7).unwrap(), None);
    assert!(
        saw.load(Ordering::Relaxed),
        "the checker ran after the marker, in its group"
    );
    assert!(
        matches!(checked, Err(Shop::Store(Error::Storage { .. }))),
        "the checker failed on a marker that never committed, and was told {checked:?}"
    );
}
