//! `seq` hands out every value once, from many threads on one handle.

mod common;

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
