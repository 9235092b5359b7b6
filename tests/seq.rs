//! `seq` hands out every value once, from many threads on one handle.

mod common;
use common::backend_test;

use std::sync::Arc;
use std::thread;

use common::{TempDir, User};
use kvs::Kvs;

fn hammer(kvs: &Arc<Kvs>) {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 200;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let kvs = Arc::clone(kvs);
            thread::spawn(move || {
                (0..PER_THREAD)
                    .map(|i| {
                        let id = kvs.seq("users", 1).unwrap();
                        if i % 4 == 0 {
                            kvs.put(&User::new(id, &format!("{t}-{i}@x.io"), "Oslo"))
                                .unwrap();
                        }
                        id
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    let expect: Vec<u64> = (1..=THREADS * PER_THREAD).collect();
    assert_eq!(
        all, expect,
        "every value handed out exactly once, none skipped"
    );
    assert_eq!(kvs.seq("users", 0).unwrap(), THREADS * PER_THREAD);
    assert_eq!(kvs.count::<User>().unwrap(), THREADS * PER_THREAD / 4);
}

#[test]
fn unique_from_eight_threads_in_memory() {
    hammer(&Arc::new(Kvs::open("mem:").unwrap()));
}

#[test]
fn unique_from_eight_threads_on_a_file() {
    let dir = TempDir::new();
    let url = format!("{}?durability=none", dir.url("seq.redb"));
    hammer(&Arc::new(Kvs::open(&url).unwrap()));
    let kvs = Kvs::open(&dir.url("seq.redb")).unwrap();
    assert_eq!(kvs.seq("users", 0).unwrap(), 1600, "durable after reopen");
}

backend_test! {
    /// 32 threads on one counter, each call adding 1, 2 or 3: concurrent calls combine into
    /// one commit, yet every call owns its own values (the `incr` values up to the one it got),
    /// no value is owned twice or skipped, and each thread's values increase.
    #[test]
    fn a_hot_counter_hands_out_disjoint_values_in_order() {
        on_each_backend(|kvs| {
            const THREADS: u64 = 32;
            const CALLS: u64 = 30;
            let per_thread: Vec<Vec<(u64, u64)>> = thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|t| {
                        s.spawn(move || {
                            (0..CALLS)
                                .map(|i| {
                                    let incr = 1 + (t + i) % 3;
                                    (kvs.seq("hot", incr).unwrap(), incr)
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for values in &per_thread {
                assert!(
                    values.windows(2).all(|w| w[0].0 < w[1].0),
                    "a thread's values went back: {values:?}"
                );
            }
            let mut owned: Vec<(u64, u64)> = per_thread
                .into_iter()
                .flatten()
                .map(|(value, incr)| (value - incr + 1, value))
                .collect();
            owned.sort_unstable();
            let mut next = 1;
            for (first, last) in &owned {
                assert_eq!(*first, next, "values owned twice or skipped at {next}");
                next = last + 1;
            }
            assert_eq!(kvs.seq("hot", 0).unwrap(), next - 1);
        });
    }
}
