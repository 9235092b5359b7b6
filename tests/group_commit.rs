//! Many writers at once: one-call writes from 32 threads share commits (group commit), and a
//! write that fails (a duplicate unique value), a transaction whose closure returns `Err`, or
//! one whose closure panics, rolls back only itself. Afterwards every acknowledged write is
//! there, every failed one is not, and the indexes are exact.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{audit_users, backend_test, User};
use kvs::{Error, Kvs};

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
