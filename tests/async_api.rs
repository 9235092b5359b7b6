//! `AsyncKvs`, and the sync `Kvs` inside async code, on every backend: `mem:` and a redb file
//! in each test's `local` twin, the etcd cluster `KVS_TEST_ETCD` names in its ignored `etcd`
//! twin (`bash .ci/run` runs those).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

mod common;
use common::{User, UserField};
use kvs::{AsyncKvs, Error, Kvs};

/// Declares each scenario `fn NAME(url: &str)` as two tests: `NAME::local`, on `mem:` and on
/// a redb file, and `NAME::etcd`, ignored without a cluster, on a fresh etcd prefix.
macro_rules! twins {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn local() {
                let dir = crate::common::TempDir::new();
                super::$name("mem:");
                super::$name(&dir.url("async.redb"));
            }

            #[test]
            #[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
            fn etcd() {
                let url = crate::common::etcd_url().expect(
                    "KVS_TEST_ETCD names no etcd cluster; start one with \
                     `scripts/etcd-cluster.sh start` (bash .ci/run does)",
                );
                super::$name(&url);
            }
        }
    )*};
}

twins!(
    sync_calls_work_inside_async_fns,
    many_tasks_share_one_handle,
    a_dropped_call_commits_whole_or_not_at_all,
    a_failed_or_panicking_transaction_is_an_err,
    streams_page_through_a_range,
    streams_walk_back_from_the_end,
    tasks_share_a_hot_counter,
    tasks_writing_at_once_fail_alone,
    tasks_appending_at_once_fail_alone,
    dropped_writes_leave_the_lane_usable,
    an_unpolled_write_holds_up_no_one,
);

/// Runs `task(kvs, t)` for each `t` in `0..n`, each on a tokio task of its own, all at once;
/// their results in task order (a task that panics fails the test).
async fn on_tasks<R, F>(kvs: &AsyncKvs, n: u64, task: impl Fn(AsyncKvs, u64) -> F) -> Vec<R>
where
    F: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|t| tokio::spawn(task(kvs.clone(), t))).collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

fn runtimes() -> [tokio::runtime::Runtime; 2] {
    [
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap(),
    ]
}

fn user(id: u64) -> User {
    User::new(
        id,
        &format!("u{id}@x.io"),
        ["Oslo", "Bergen", "Rome"][(id % 3) as usize],
    )
}

/// The sync API called straight from async functions (blocking the worker, the caller's
/// choice), and `AsyncKvs` beside it, on both runtime flavours.
fn sync_calls_work_inside_async_fns(url: &str) {
    for (n, runtime) in runtimes().into_iter().enumerate() {
        runtime.block_on(async {
            let kvs = Kvs::open(url).unwrap();
            let base = 100 * n as u64;
            kvs.put(&user(base + 1)).unwrap();
            assert_eq!(kvs.get::<User>(&(base + 1)).unwrap(), Some(user(base + 1)));
            assert!(kvs.seq("sync", 1).unwrap() >= 1);
            let kvs = AsyncKvs::from(kvs);
            kvs.put(&user(base + 2)).await.unwrap();
            assert_eq!(
                kvs.get::<User>(&(base + 2)).await.unwrap(),
                Some(user(base + 2))
            );
            let city = user(base + 2).city;
            let found = kvs
                .index::<User>(UserField::City, city.as_str())
                .await
                .unwrap();
            assert!(found.contains(&user(base + 2)));
            drop(kvs); // dropped inside the runtime: no panic
        });
    }
}

/// 256 tasks on a multi-thread runtime, each `seq`, `put`, `get` and `index` through one
/// cloned handle: ids never repeat, and the records and the index agree.
fn many_tasks_share_one_handle(url: &str) {
    let runtime = &runtimes()[1];
    runtime.block_on(async {
        let kvs = AsyncKvs::open(url).await.unwrap();
        let results = on_tasks(&kvs, 256, |kvs, _| async move {
            let id = kvs.seq("users", 1).await.unwrap();
            kvs.put(&user(id)).await.unwrap();
            assert_eq!(kvs.get::<User>(&id).await.unwrap(), Some(user(id)));
            let city = user(id).city;
            let found = kvs
                .index::<User>(UserField::City, city.as_str())
                .await
                .unwrap();
            assert!(found.iter().any(|u| u.id == id), "{id} not in its city");
            id
        })
        .await;
        let mut ids = BTreeSet::new();
        for id in results {
            assert!(ids.insert(id), "an id was handed out twice");
        }
        assert_eq!(ids.len(), 256);
        assert_eq!(kvs.count::<User>().await.unwrap(), 256);
        let mut indexed = 0;
        for city in ["Oslo", "Bergen", "Rome"] {
            indexed += kvs
                .index_count::<User>(UserField::City, city)
                .await
                .unwrap();
        }
        assert_eq!(indexed, 256, "the index holds every record once");
    });
}

/// A call whose future is dropped (a timeout that fires) still runs to its end on the pool:
/// its transaction of 40 records is there whole, or not at all, with exact indexes, and the
/// handle goes on working.
fn a_dropped_call_commits_whole_or_not_at_all(url: &str) {
    let runtime = &runtimes()[1];
    runtime.block_on(async {
        let kvs = AsyncKvs::open(url).await.unwrap();
        let mut timed_out = 0;
        for (round, wait) in [0u64, 10, 100, 1_000, 10_000, 100_000]
            .into_iter()
            .enumerate()
        {
            let first = 1_000 * (round as u64 + 1);
            let write = kvs.transaction(move |tx| {
                for id in first..first + 40 {
                    tx.put(&user(id))?;
                }
                Ok(())
            });
            if tokio::time::timeout(Duration::from_micros(wait), write)
                .await
                .is_err()
            {
                timed_out += 1;
            }
            // Whatever state a read finds is whole: 0 or 40 of the round's records, and the
            // index agrees with them. Wait for the write to land or not (etcd is remote).
            let seen = kvs
                .read(move |snap| {
                    let all = snap.range::<User>(first..first + 40)?;
                    let indexed: usize = ["Oslo", "Bergen", "Rome"]
                        .iter()
                        .map(|c| snap.index::<User>(UserField::City, *c))
                        .collect::<kvs::Result<Vec<_>>>()?
                        .iter()
                        .flatten()
                        .filter(|u| (first..first + 40).contains(&u.id))
                        .count();
                    Ok((all.len(), indexed))
                })
                .await
                .unwrap();
            assert!(matches!(seen, (0, 0) | (40, 40)), "round {round}: {seen:?}");
        }
        assert!(
            timed_out > 0,
            "no timeout fired: the test did not drop a call"
        );
        kvs.put(&user(1)).await.unwrap();
        assert_eq!(kvs.get::<User>(&1).await.unwrap(), Some(user(1)));
    });
}

/// A transaction closure's own `Err`, and a panic in it, come back as the call's `Err`; it
/// wrote nothing, and the handle stays usable.
fn a_failed_or_panicking_transaction_is_an_err(url: &str) {
    let runtime = &runtimes()[0];
    runtime.block_on(async {
        let kvs = AsyncKvs::open(url).await.unwrap();
        let failed = kvs
            .transaction(|tx| {
                tx.put(&user(7))?;
                Err::<(), _>(Error::NotFound {
                    table: "users".to_owned(),
                    key: "the closure's own".to_owned(),
                })
            })
            .await;
        assert!(matches!(failed, Err(Error::NotFound { key, .. }) if key == "the closure's own"));
        let panicked: kvs::Result<()> = kvs
            .transaction(|tx| {
                tx.put(&user(8))?;
                panic!("a closure that panics");
            })
            .await;
        match panicked {
            Err(Error::Panicked { reason }) => assert!(reason.contains("a closure that panics")),
            other => panic!("expected Panicked, got {other:?}"),
        }
        assert_eq!(kvs.count::<User>().await.unwrap(), 0, "nothing was written");
        kvs.put(&user(9)).await.unwrap();
        assert_eq!(kvs.count::<User>().await.unwrap(), 1);
        // The application's own error type, through try_transaction.
        let own: Result<(), Shop> = kvs.try_transaction(|_tx| Err(Shop::OutOfStock)).await;
        assert!(matches!(own, Err(Shop::OutOfStock)));
    });
}

/// An application's own error type.
#[derive(Debug)]
enum Shop {
    OutOfStock,
    #[allow(dead_code)] // made by `?` on kvs's errors
    Store(Error),
}

impl From<Error> for Shop {
    fn from(e: Error) -> Shop {
        Shop::Store(e)
    }
}

/// Polls `stream` for its next item.
async fn next<S: futures_core::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// A handle on `url` holding the users `1..=n`, put in one transaction.
async fn open_with_users(url: &str, n: u64) -> AsyncKvs {
    let kvs = AsyncKvs::open(url).await.unwrap();
    kvs.transaction(move |tx| {
        for id in 1..=n {
            tx.put(&user(id))?;
        }
        Ok(())
    })
    .await
    .unwrap();
    kvs
}

/// `stream` yields a key range in order, across pages, and nothing twice; `index_stream` an
/// index range in (value, key) order.
fn streams_page_through_a_range(url: &str) {
    let runtime = &runtimes()[1];
    runtime.block_on(async {
        let kvs = open_with_users(url, 600).await;
        let mut all = kvs.stream::<User>(..);
        let mut ids = Vec::new();
        while let Some(user) = next(&mut all).await {
            ids.push(user.unwrap().id);
        }
        assert_eq!(ids, (1..=600).collect::<Vec<_>>());
        let mut some = kvs.stream::<User>(250..=260);
        let mut ids = Vec::new();
        while let Some(user) = next(&mut some).await {
            ids.push(user.unwrap().id);
        }
        assert_eq!(ids, (250..=260).collect::<Vec<_>>());

        // By index: (value, key) order across pages, and a range of values.
        let by_city = |cities: &[&str]| {
            let mut ids: Vec<(String, u64)> = (1..=600)
                .map(user)
                .filter(|u| cities.contains(&u.city.as_str()))
                .map(|u| (u.city, u.id))
                .collect();
            ids.sort();
            ids.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
        };
        let mut all = kvs.index_stream::<User>(UserField::City, ..);
        let mut ids = Vec::new();
        while let Some(user) = next(&mut all).await {
            ids.push(user.unwrap().id);
        }
        assert_eq!(ids, by_city(&["Bergen", "Oslo", "Rome"]));
        let mut some = kvs.index_stream::<User>(UserField::City, "C".."P");
        let mut ids = Vec::new();
        while let Some(user) = next(&mut some).await {
            ids.push(user.unwrap().id);
        }
        assert_eq!(ids, by_city(&["Oslo"]));
        // A unique index, whose entries are keyed by the value alone.
        let mut by_email = kvs.index_stream::<User>(UserField::Email, ..);
        let mut emails = Vec::new();
        while let Some(user) = next(&mut by_email).await {
            emails.push(user.unwrap().email);
        }
        let mut expected: Vec<String> = (1..=600).map(|id| user(id).email).collect();
        expected.sort();
        assert_eq!(emails, expected);
    });
}

/// Everything `stream` yields, in order.
async fn drain<T: kvs::Table + Send>(mut stream: kvs::RecordStream<T>) -> Vec<T> {
    let mut all = Vec::new();
    while let Some(item) = next(&mut stream).await {
        all.push(item.unwrap());
    }
    all
}

/// `stream_rev` and `index_stream_rev` yield what `stream` and `index_stream` do, in the
/// reverse order, across pages and whatever the range's bounds, as `iter(..).rev()` and
/// `index_iter(..).rev()` do; and the newest records first, a page at a time.
fn streams_walk_back_from_the_end(url: &str) {
    let runtime = &runtimes()[1];
    runtime.block_on(async {
        let kvs = open_with_users(url, 600).await;
        let ids = |users: Vec<User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();
        let back = |range: std::ops::RangeInclusive<u64>| range.rev().collect::<Vec<_>>();
        assert_eq!(ids(drain(kvs.stream_rev::<User>(..)).await), back(1..=600));
        assert_eq!(
            ids(drain(kvs.stream_rev::<User>(250..=260)).await),
            back(250..=260)
        );
        assert_eq!(
            ids(drain(kvs.stream_rev::<User>(..300)).await),
            back(1..=299)
        );
        assert_eq!(
            ids(drain(kvs.stream_rev::<User>(590..)).await),
            back(590..=600)
        );
        assert!(drain(kvs.stream_rev::<User>(700..)).await.is_empty());
        // The newest 10, as a page of a feed is read: the stream stops being polled.
        let mut newest = kvs.stream_rev::<User>(..);
        let mut page = Vec::new();
        while page.len() < 10 {
            page.push(next(&mut newest).await.unwrap().unwrap().id);
        }
        assert_eq!(page, back(591..=600));
        // Dropped half-read, it holds nothing back: a write goes through, and a new stream
        // starts with it.
        drop(newest);
        kvs.put(&user(601)).await.unwrap();
        let mut newest = kvs.stream_rev::<User>(..);
        assert_eq!(next(&mut newest).await.unwrap().unwrap().id, 601);

        // By index: the forward order reversed, on a plain and on a unique index.
        for (forward, backward) in [
            (
                kvs.index_stream::<User>(UserField::City, ..),
                kvs.index_stream_rev::<User>(UserField::City, ..),
            ),
            (
                kvs.index_stream::<User>(UserField::City, "C".."P"),
                kvs.index_stream_rev::<User>(UserField::City, "C".."P"),
            ),
            // Two cities, more than a page: pages that end inside a bounded range.
            (
                kvs.index_stream::<User>(UserField::City, "A".."P"),
                kvs.index_stream_rev::<User>(UserField::City, "A".."P"),
            ),
            (
                kvs.index_stream::<User>(UserField::Email, ..),
                kvs.index_stream_rev::<User>(UserField::Email, ..),
            ),
        ] {
            let mut expected = ids(drain(forward).await);
            assert!(!expected.is_empty());
            expected.reverse();
            assert_eq!(ids(drain(backward).await), expected);
        }
    });
}

/// 32 tasks, 20 `seq`s each on one counter: no value twice, each task's values increasing,
/// and (no call failed) no value skipped.
fn tasks_share_a_hot_counter(url: &str) {
    let runtime = &runtimes()[1];
    runtime.block_on(async {
        let kvs = AsyncKvs::open(url).await.unwrap();
        let start = kvs.seq("hot", 0).await.unwrap();
        let results = on_tasks(&kvs, 32, |kvs, _| async move {
            let mut mine = Vec::new();
            for _ in 0..20 {
                mine.push(kvs.seq("hot", 1).await.unwrap());
            }
            mine
        })
        .await;
        let mut all = BTreeSet::new();
        for mine in results {
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
            for value in mine {
                assert!(all.insert(value), "{value} handed out twice");
            }
        }
        assert_eq!(all, (start + 1..=start + 640).collect::<BTreeSet<_>>());
        assert_eq!(kvs.seq("hot", 0).await.unwrap(), start + 640);
    });
}

/// 32 tasks put and delete records of their own at once (on etcd their writes share batches),
/// and every tenth put claims a unique value another record holds: each of those fails alone
/// with `Duplicate`, every other write is there, and the indexes are exact.
fn tasks_writing_at_once_fail_alone(url: &str) {
    let runtime = &runtimes()[1];
    runtime.block_on(async {
        let kvs = AsyncKvs::open(url).await.unwrap();
        kvs.put(&User::new(1, "taken@x.io", "Oslo")).await.unwrap();
        let kept_by_task = on_tasks(&kvs, 32, |kvs, t| async move {
            let mut kept = Vec::new();
            for i in 0..10 {
                let id = 1_000 + t * 100 + i;
                if i == 9 {
                    let dup = User::new(id, "taken@x.io", "Rome");
                    let failed = kvs.put(&dup).await;
                    assert!(matches!(failed, Err(Error::Duplicate { .. })), "{failed:?}");
                    continue;
                }
                kvs.put(&user(id)).await.unwrap();
                if i % 3 == 0 {
                    assert!(kvs.delete::<User>(&id).await.unwrap());
                } else {
                    kept.push(id);
                }
            }
            kept
        })
        .await;
        let kept: BTreeSet<u64> = kept_by_task.into_iter().flatten().collect();
        let sync = kvs.kvs().clone();
        tokio::task::spawn_blocking(move || {
            let all = common::audit_users(&sync);
            let ids: BTreeSet<u64> = all.iter().map(|u| u.id).filter(|&id| id != 1).collect();
            assert_eq!(ids, kept);
        })
        .await
        .unwrap();
    });
}

/// 32 tasks append to one feed at once (on etcd, in shared batches), each with a failing
/// append (a duplicate unique value) and removes, and page a feed of their own with a reader
/// they save and remove; afterwards the shared feed holds each task's kept records in its
/// order, and its writer counts them.
fn tasks_appending_at_once_fail_alone(url: &str) {
    let runtime = &runtimes()[1];
    runtime.block_on(async {
        let kvs = AsyncKvs::open(url).await.unwrap();
        kvs.put(&User::new(1, "taken@x.io", "Oslo")).await.unwrap();
        let all = on_tasks(&kvs, 32, |kvs, t| async move {
            let mut kept = Vec::new();
            for i in 0..8 {
                let id = 1_000 + t * 100 + i;
                if i == 5 {
                    let dup = User::new(id, "taken@x.io", "Rome");
                    let failed = kvs.append("shared", &dup).await;
                    assert!(matches!(failed, Err(Error::Duplicate { .. })), "{failed:?}");
                    continue;
                }
                kvs.append("shared", &user(id)).await.unwrap();
                kvs.append(&format!("own-{t}"), &user(id)).await.unwrap();
                if i % 3 == 0 {
                    assert!(kvs.remove::<User>("shared", &id).await.unwrap());
                } else {
                    kept.push(id);
                }
            }
            let mut reader = kvs.reader::<User>(&format!("own-{t}")).await.unwrap();
            assert_eq!(kvs.take(&mut reader, 3).await.unwrap().len(), 3);
            kvs.save_reader(&reader).await.unwrap();
            let again = kvs.load_reader::<User>(reader.id).await.unwrap();
            assert_eq!(again, reader);
            assert!(kvs.remove_reader(reader.id).await.unwrap());
            (t, kept)
        })
        .await;
        let feed: Vec<u64> = kvs
            .feed::<User>("shared")
            .await
            .unwrap()
            .iter()
            .map(|u| u.id)
            .collect();
        for (t, kept) in &all {
            let mine: Vec<u64> = feed
                .iter()
                .copied()
                .filter(|id| (id - 1_000) / 100 == *t)
                .collect();
            assert_eq!(&mine, kept, "task {t}");
        }
        let writer = kvs.writer("shared").await.unwrap();
        assert_eq!(writer.count, feed.len() as u64);
        assert_eq!(
            writer.top,
            32 * 7,
            "one position per append, none for a failed one"
        );
        assert_eq!(kvs.count::<User>().await.unwrap(), 1 + 32 * 7);
    });
}

/// 32 tasks each put 10 records under a timeout that fires at once or soon, so that many
/// futures are dropped while they wait, lead or run (on etcd, in shared batches). Afterwards
/// the handle still writes at once (no lane left busy), every record is whole with exact
/// indexes, and every put that returned `Ok` is there.
fn dropped_writes_leave_the_lane_usable(url: &str) {
    use std::time::Duration;
    for runtime in runtimes() {
        runtime.block_on(async {
            let kvs = AsyncKvs::open(url).await.unwrap();
            let results = on_tasks(&kvs, 32, |kvs, t| async move {
                let mut acknowledged = Vec::new();
                for i in 0..10u64 {
                    let id = 10_000 + t * 100 + i;
                    let wait = Duration::from_micros((t * 37 + i * 101) % 3_000);
                    if let Ok(done) = tokio::time::timeout(wait, kvs.put(&user(id))).await {
                        done.unwrap();
                        acknowledged.push(id);
                    }
                }
                acknowledged
            })
            .await;
            let acknowledged: Vec<u64> = results.into_iter().flatten().collect();
            let after = tokio::time::timeout(Duration::from_secs(60), kvs.put(&user(99_999)))
                .await
                .expect("a put after dropped ones is not held up");
            after.unwrap();
            let sync = kvs.kvs().clone();
            tokio::task::spawn_blocking(move || {
                let all: BTreeSet<u64> = common::audit_users(&sync).iter().map(|u| u.id).collect();
                for id in acknowledged {
                    assert!(all.contains(&id), "acknowledged put {id} is missing");
                }
                assert!(all.contains(&99_999));
                for id in all {
                    sync.delete::<User>(&id).unwrap();
                }
            })
            .await
            .unwrap();
        });
    }
}

/// A put whose future is polled once (so that it joins, and leads, a batch) and then left
/// unpolled while the task goes on: the next put on the handle goes through, and the first
/// completes when it is polled again.
fn an_unpolled_write_holds_up_no_one(url: &str) {
    use std::time::Duration;
    for runtime in runtimes() {
        runtime.block_on(async {
            let kvs = AsyncKvs::open(url).await.unwrap();
            let mut first = std::pin::pin!(kvs.put(&user(1)));
            // Polled once, then set aside (unless it finished at once).
            let done = tokio::time::timeout(Duration::ZERO, &mut first).await;
            tokio::time::timeout(Duration::from_secs(60), kvs.put(&user(2)))
                .await
                .expect("a put is not held up by another one left unpolled")
                .unwrap();
            match done {
                Ok(done) => done.unwrap(),
                Err(_) => first.await.unwrap(),
            }
            assert_eq!(kvs.get::<User>(&1).await.unwrap(), Some(user(1)));
            assert_eq!(kvs.get::<User>(&2).await.unwrap(), Some(user(2)));
            kvs.delete::<User>(&1).await.unwrap();
            kvs.delete::<User>(&2).await.unwrap();
        });
    }
}

/// Every future `AsyncKvs` returns is `Send`, so it runs in `tokio::spawn`, and its streams
/// are `Send` and `Sync` (checked at compile time).
#[test]
fn its_futures_are_send() {
    fn send<F: Future + Send>(_: &F) {}
    fn clone_send_sync<T: Clone + Send + Sync>() {}
    fn send_sync<T: Send + Sync>() {}
    clone_send_sync::<AsyncKvs>();
    send_sync::<kvs::RecordStream<User>>();
    let runtime = &runtimes()[0];
    runtime.block_on(async {
        let kvs = AsyncKvs::open("mem:").await.unwrap();
        let id = 5u64;
        let city = String::from("Oslo");
        send(&kvs.get::<User>(&id));
        send(&kvs.put(&user(1)));
        send(&kvs.index::<User>(UserField::City, city.as_str()));
        send(&kvs.index_range::<User>(UserField::City, "A".."P"));
        send(&kvs.seq("n", 1));
        send(&kvs.transaction(|_| Ok(())));
    });
}

/// `call`, bounded: a call that waits for a blocking thread fails instead of hanging.
async fn on_task<F: Future>(call: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call waited for a blocking thread")
}

/// On etcd, `AsyncKvs` awaits the cluster on the caller's task: with tokio's blocking pool
/// held to one thread, kept busy, every call that has no closure of the caller's goes
/// through, on a current-thread runtime. A one-call write whose future is dropped mid-way
/// commits whole or not at all.
#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn etcd_calls_take_no_blocking_thread() {
    let url = common::etcd_url().expect("KVS_TEST_ETCD names no etcd cluster");
    let kvs = AsyncKvs::from(Kvs::open(&url).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let (release, held) = std::sync::mpsc::channel::<()>();
    runtime.block_on(async {
        let busy = tokio::task::spawn_blocking(move || held.recv());
        let id = on_task(kvs.seq("users", 1)).await.unwrap();
        on_task(kvs.put(&user(id))).await.unwrap();
        assert_eq!(on_task(kvs.get::<User>(&id)).await.unwrap(), Some(user(id)));
        let city = user(id).city;
        let found = on_task(kvs.index::<User>(UserField::City, city.as_str()))
            .await
            .unwrap();
        assert_eq!(found, vec![user(id)]);
        assert_eq!(
            on_task(kvs.index_count::<User>(UserField::City, city.as_str()))
                .await
                .unwrap(),
            1
        );
        assert_eq!(on_task(kvs.count::<User>()).await.unwrap(), 1);
        assert_eq!(
            on_task(kvs.range::<User>(..)).await.unwrap(),
            vec![user(id)]
        );
        let mut stream = kvs.stream::<User>(..);
        assert_eq!(on_task(next(&mut stream)).await.unwrap().unwrap(), user(id));
        assert!(on_task(next(&mut stream)).await.is_none());
        on_task(kvs.append("feed", &user(id))).await.unwrap();
        let mut reader = on_task(kvs.reader::<User>("feed")).await.unwrap();
        assert_eq!(
            on_task(kvs.take(&mut reader, 5)).await.unwrap(),
            vec![user(id)]
        );
        on_task(kvs.save_reader(&reader)).await.unwrap();
        assert!(on_task(kvs.dump()).await.is_ok());
        assert!(on_task(kvs.remove::<User>("feed", &id)).await.unwrap());
        assert!(on_task(kvs.delete::<User>(&id)).await.unwrap());
        assert_eq!(on_task(kvs.count::<User>()).await.unwrap(), 0);

        // Dropped mid-way: the record and its index entries are there together, or neither.
        for (n, wait) in [0u64, 100, 1_000, 3_000, 10_000].into_iter().enumerate() {
            let id = 100 + n as u64;
            let put = kvs.put(&user(id));
            let _ = tokio::time::timeout(Duration::from_micros(wait), put).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let stored = on_task(kvs.get::<User>(&id)).await.unwrap();
            let city = user(id).city;
            let indexed = on_task(kvs.index::<User>(UserField::City, city.as_str()))
                .await
                .unwrap()
                .contains(&user(id));
            assert_eq!(
                stored.is_some(),
                indexed,
                "put {id}: record and index disagree"
            );
        }
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
    });
}
