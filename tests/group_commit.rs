//! Many writers at once: one-call writes from 32 threads share commits (group commit), and a
//! write that fails (a duplicate unique value), a transaction whose closure returns `Err`, or
//! one whose closure panics, rolls back only itself. Afterwards every acknowledged write is
//! there, every failed one is not, and the indexes are exact.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{audit_users, backend_test, User};
use kvs::{Error, Kvs, Table};
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
