//! The etcd backend against a real 3-member cluster (`scripts/etcd-cluster.sh start`, which
//! `.ci/run` does): conflicts, limits, unreachable clusters, and a leader killed mid-write
//! (under threads on `Kvs`, and under tasks on `AsyncKvs`).
//! The tests that need the cluster are `#[ignore]`d, so that without one cargo reports them
//! as ignored; `cargo test -p kvs-etcd -- --ignored` runs them on the cluster `KVS_TEST_ETCD`
//! names, and they fail, saying so, when it names none.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{cluster, fresh};
use kvs::{Error, Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "items")]
struct Item {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    bucket: u64,
    #[kvs(index, unique)]
    tag: String,
}

#[derive(Table, Serialize, Deserialize)]
#[kvs(name = "blobs")]
struct Blob {
    #[kvs(key)]
    id: u64,
    data: String,
}

fn item(id: u64) -> Item {
    Item {
        id,
        bucket: id % 7,
        tag: format!("tag-{id}"),
    }
}

#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn a_conflicting_transaction_fails_whole_and_one_call_writes_retry() {
    let cluster = cluster();
    let url = fresh(&cluster, "conflict");
    let a = Kvs::open(&url).unwrap();
    let b = Kvs::open(&url).unwrap(); // a second client, as another process would be
    a.put(&item(1)).unwrap();
    // `a` reads, `b` commits in between, `a`'s commit must fail and write nothing.
    let result = a.transaction(|tx| {
        let seen = tx.get::<Item>(&1)?.unwrap();
        b.put(&Item {
            bucket: 99,
            ..seen.clone()
        })?;
        tx.put(&Item {
            tag: "from-a".to_owned(),
            ..seen
        })?;
        tx.put(&item(2))?;
        Ok(())
    });
    assert!(matches!(result, Err(Error::Conflict { .. })), "{result:?}");
    let now = a.get::<Item>(&1).unwrap().unwrap();
    assert_eq!(
        (now.bucket, now.tag.as_str()),
        (99, "tag-1"),
        "b's write, not a's"
    );
    assert!(a.get::<Item>(&2).unwrap().is_none());
    assert_eq!(a.index::<Item>(ItemField::Bucket, 99u64).unwrap().len(), 1);
    assert!(a.index::<Item>(ItemField::Bucket, 1u64).unwrap().is_empty());

    // A phantom: `a` finds no record in bucket 5, `b` adds one, `a` must not commit.
    let result = a.transaction(|tx| {
        assert!(tx.index::<Item>(ItemField::Bucket, 5u64)?.is_empty());
        b.put(&item(5))?;
        tx.put(&item(100))?;
        Ok(())
    });
    assert!(matches!(result, Err(Error::Conflict { .. })), "{result:?}");
    assert!(a.get::<Item>(&100).unwrap().is_none());
    // A removal under a scan: `a` lists bucket 5, `b` deletes what it saw.
    let result = a.transaction(|tx| {
        let seen = tx.index::<Item>(ItemField::Bucket, 5u64)?;
        assert_eq!(seen.len(), 1);
        b.delete::<Item>(&5)?;
        tx.put(&item(101))?;
        Ok(())
    });
    assert!(matches!(result, Err(Error::Conflict { .. })), "{result:?}");
    // Disjoint transactions do not conflict: both commit.
    let result = a.transaction(|tx| {
        tx.get::<Item>(&200)?;
        b.put(&item(201))?;
        tx.put(&item(200))?;
        Ok(())
    });
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(a.count::<Item>().unwrap(), 3);
}

#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn seq_is_unique_across_clients_and_threads() {
    let cluster = cluster();
    let url = fresh(&cluster, "seq");
    let clients: Vec<Arc<Kvs>> = (0..2).map(|_| Arc::new(Kvs::open(&url).unwrap())).collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for t in 0..8 {
            let kvs = Arc::clone(&clients[t % 2]);
            let seen = Arc::clone(&seen);
            s.spawn(move || {
                for _ in 0..40 {
                    let id = kvs.seq("ids", 1).unwrap();
                    kvs.put(&item(id)).unwrap();
                    seen.lock().unwrap().push(id);
                }
            });
        }
    });
    let seen = seen.lock().unwrap();
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), 320, "no value handed out twice");
    assert_eq!(clients[0].count::<Item>().unwrap(), 320);
    assert_eq!(clients[1].seq("ids", 0).unwrap(), *unique.last().unwrap());
}

#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn limits_are_typed_errors_and_nothing_is_split() {
    let cluster = cluster();
    let url = fresh(&cluster, "limits");
    let kvs = Kvs::open(&url).unwrap();
    // The test cluster allows 16384 operations per transaction; this one has 3 x 6000.
    let result = kvs.transaction(|tx| {
        for id in 0..6000 {
            tx.put(&item(id))?;
        }
        Ok(())
    });
    match result {
        Err(Error::Limit { backend, limit, .. }) => {
            assert_eq!((backend, limit.as_str()), ("etcd", "--max-txn-ops"));
        }
        other => panic!("expected Limit, got {other:?}"),
    }
    assert_eq!(kvs.count::<Item>().unwrap(), 0, "nothing of it was written");
    // One value larger than a request may be (128 MiB on the test cluster).
    let big = Blob {
        id: 1,
        data: "x".repeat(160 << 20),
    };
    match kvs.put(&big) {
        Err(Error::Limit { limit, .. }) => assert_eq!(limit, "--max-request-bytes"),
        other => panic!("expected Limit, got {:?}", other.map(|()| "ok")),
    }
    let fits = Blob {
        id: 2,
        data: "y".repeat(4 << 20),
    };
    kvs.put(&fits).unwrap();
    assert_eq!(kvs.get::<Blob>(&2).unwrap().unwrap().data.len(), 4 << 20);
}

#[test]
fn an_unreachable_cluster_is_unavailable_not_a_hang() {
    // Ports nothing listens on: refused at once.
    let start = Instant::now();
    match Kvs::open("etcd://127.0.0.1:1,127.0.0.1:2/x") {
        Err(Error::Unavailable { backend, reason }) => {
            assert_eq!(backend, "etcd");
            assert!(reason.contains("127.0.0.1:1"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(30));
    for bad in ["etcd:", "etcd://", "etcd:///x", "etcd://h:1/x?zone=a"] {
        assert!(matches!(Kvs::open(bad), Err(Error::Url { .. })), "{bad}");
    }
}

/// The directory of the cluster's pid files (`scripts/etcd-cluster.sh`).
fn cluster_dir() -> PathBuf {
    std::env::var_os("KVS_ETCD_CLUSTER")
        .map_or_else(|| PathBuf::from("/tmp/kvs-etcd-cluster"), PathBuf::from)
}

/// What the writers of a failover test share: when to stop, the writes acknowledged (an id
/// whose `seq` and `put` both returned, and when), and how many calls failed.
#[derive(Clone, Default)]
struct Writes {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(u64, Instant)>>>,
    errors: Arc<AtomicUsize>,
}

impl Writes {
    /// Notes a writer's `seq` then `put`: returns whether it was acknowledged.
    fn record(&self, outcome: &kvs::Result<u64>) -> bool {
        if let Ok(id) = outcome {
            self.acked.lock().unwrap().push((*id, Instant::now()));
            true
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

#[test]
#[ignore = "needs an etcd cluster that scripts/etcd-cluster.sh started: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn writes_go_on_when_the_leader_is_killed() {
    failover("failover", |kvs, writes| {
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (kvs, writes) = (kvs.clone(), writes.clone());
                std::thread::spawn(move || {
                    while !writes.stop.load(Ordering::Relaxed) {
                        let outcome = kvs
                            .seq("items", 1)
                            .and_then(|id| kvs.put(&item(id)).map(|()| id));
                        if !writes.record(&outcome) {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                })
            })
            .collect();
        Box::new(move || writers.into_iter().for_each(|w| w.join().unwrap()))
    });
}

/// The same through `AsyncKvs`: tasks whose calls are replayed on them, with the retries,
/// pauses and failover of the replayed calls.
#[test]
#[ignore = "needs an etcd cluster that scripts/etcd-cluster.sh started: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn async_writes_go_on_when_the_leader_is_killed() {
    failover("failover-async", |kvs, writes| {
        let akvs = kvs::AsyncKvs::from(kvs);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let driver = std::thread::spawn(move || {
            runtime.block_on(async move {
                let tasks: Vec<_> = (0..4)
                    .map(|_| {
                        let (akvs, writes) = (akvs.clone(), writes.clone());
                        tokio::spawn(async move {
                            while !writes.stop.load(Ordering::Relaxed) {
                                let outcome = async {
                                    let id = akvs.seq("items", 1).await?;
                                    akvs.put(&item(id)).await.map(|()| id)
                                }
                                .await;
                                if !writes.record(&outcome) {
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            });
        });
        Box::new(move || driver.join().unwrap())
    });
}

/// Held by the tests that kill a member, one at a time (two killing a member each would leave
/// the cluster no quorum), and by those that count requests or unwrap a commit, which a
/// member killed under them would disturb.
fn steady() -> std::sync::MutexGuard<'static, ()> {
    static STEADY: Mutex<()> = Mutex::new(());
    STEADY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts writers (`start` returns how to wait for them once `stop` is raised), kills the
/// cluster's leader, and checks that writes resume within 30 s, that every acknowledged
/// write is there with its index entries, and that no id was handed out twice; then brings
/// the member back.
fn failover(name: &str, start: impl FnOnce(Arc<Kvs>, Writes) -> Box<dyn FnOnce()>) {
    let _one = steady();
    let cluster = cluster();
    let dir = cluster_dir();
    assert!(
        dir.join("m1.pid").exists(),
        "no pid files in {}: this test kills and restarts members of a cluster that \
         scripts/etcd-cluster.sh started, with the same KVS_ETCD_CLUSTER and KVS_ETCD_PORT_BASE",
        dir.display()
    );
    let url = fresh(&cluster, name);
    let kvs = Arc::new(Kvs::open(&url).unwrap());
    let writes = Writes::default();
    let join = start(kvs.clone(), writes.clone());
    std::thread::sleep(Duration::from_millis(1500));

    // Find the leader by asking the members, and kill it.
    let etcd = kvs::etcd::Etcd::open(&kvs::Config::parse(&url).unwrap()).unwrap();
    let statuses: Vec<_> = etcd.status().into_iter().map(Result::unwrap).collect();
    let leader = statuses
        .iter()
        .position(|s| s.id == s.leader)
        .expect("a leader");
    let pid = std::fs::read_to_string(dir.join(format!("m{}.pid", leader + 1))).unwrap();
    let killed_at = Instant::now();
    assert!(Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap()
        .success());
    let before = writes.acked.lock().unwrap().len();

    // Writes resume: wait for 50 acknowledgements after the kill (at most 60 s).
    let resumed = loop {
        let after: Vec<Instant> = writes
            .acked
            .lock()
            .unwrap()
            .iter()
            .map(|(_, at)| *at)
            .filter(|at| *at > killed_at)
            .collect();
        if after.len() >= 50 {
            break after.into_iter().min();
        }
        if killed_at.elapsed() > Duration::from_secs(60) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    writes.stop.store(true, Ordering::Relaxed);
    join();
    // Bring the member back for whatever runs next.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/etcd-cluster.sh");
    let restarted = Command::new("bash")
        .arg(&script)
        .args(["restart", &(leader + 1).to_string()])
        .status()
        .unwrap()
        .success();

    let resumed = resumed.expect("writes did not resume within 60 s of killing the leader");
    let pause = resumed.duration_since(killed_at);
    eprintln!(
        "{name}: killed m{} after {before} writes; first write acknowledged {pause:?} later; {} failed calls surfaced",
        leader + 1,
        writes.errors.load(Ordering::Relaxed)
    );
    assert!(pause < Duration::from_secs(30), "writes paused {pause:?}");

    check_acknowledged(&kvs, &writes.acked.lock().unwrap());
    assert!(restarted, "could not restart the killed member");
}

/// Every acknowledged write is there, with its index entries; no id was handed out twice.
fn check_acknowledged(kvs: &Kvs, acked: &[(u64, Instant)]) {
    let ids: BTreeSet<u64> = acked.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), acked.len(), "an id was handed out twice");
    for id in &ids {
        let got = kvs.get::<Item>(id).unwrap();
        assert_eq!(got, Some(item(*id)), "acknowledged record {id} is missing");
    }
    for bucket in 0..7u64 {
        let listed: BTreeSet<u64> = kvs
            .index::<Item>(ItemField::Bucket, bucket)
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect();
        let stored: BTreeSet<u64> = kvs
            .all::<Item>()
            .unwrap()
            .iter()
            .filter(|i| i.bucket == bucket)
            .map(|i| i.id)
            .collect();
        assert_eq!(listed, stored, "index of bucket {bucket}");
    }
    assert!(kvs.seq("items", 0).unwrap() >= *ids.last().unwrap());
}

#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn batched_reads_take_few_round_trips() {
    use kvs::backend::Backend;
    use kvs::Config;
    let cluster = cluster();
    let url = fresh(&cluster, "batch");
    let etcd = kvs::etcd::Etcd::open(&Config::parse(&url).unwrap()).unwrap();
    let keys: Vec<Vec<u8>> = (0..150u32).map(|i| i.to_be_bytes().to_vec()).collect();
    etcd.write(&mut |w| {
        for k in keys.iter().step_by(2) {
            w.insert("t", k, b"v")?;
        }
        Ok(())
    })
    .unwrap();
    let before = etcd.requests();
    let mut found = 0;
    etcd.read(&mut |r| {
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        r.get_many("t", &refs, &mut |i, v| {
            assert_eq!(v.is_some(), i % 2 == 0, "key {i}");
            found += usize::from(v.is_some());
            Ok(())
        })
    })
    .unwrap();
    assert_eq!(found, 75);
    assert_eq!(etcd.requests() - before, 3, "150 keys in batches of 64");
    // kvs refuses that prefix (tables but no kvs header); an index lookup of 100 records, on
    // a database of its own, reads them in two batches of gets after one scan of the index.
    assert!(matches!(Kvs::open(&url), Err(Error::NotKvs { .. })));
    let kvs = Kvs::open(&fresh(&cluster, "batch-kvs")).unwrap();
    kvs.transaction(|tx| {
        for id in 0..700 {
            tx.put(&item(id))?; // 100 per bucket
        }
        Ok(())
    })
    .unwrap();
    let hits = kvs.index::<Item>(ItemField::Bucket, 3u64).unwrap();
    assert_eq!(hits.len(), 100);
}

/// Write transactions that commit at once share requests (group commit): 32 threads each
/// read a key of its own, wait for the others, then commit together. Their commits go in far
/// fewer than 32 requests, and every write is there.
#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn commits_that_arrive_together_share_requests() {
    use kvs::backend::Backend;
    use kvs::Config;
    const THREADS: u32 = 32;
    let _steady = steady();
    let cluster = cluster();
    let etcd = kvs::etcd::Etcd::open(&Config::parse(&fresh(&cluster, "shared")).unwrap()).unwrap();
    let read = std::sync::Barrier::new(THREADS as usize);
    let before = etcd.requests();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (etcd, read) = (&etcd, &read);
            s.spawn(move || {
                let key = t.to_be_bytes();
                etcd.write(&mut |w| {
                    // One read (of the value it replaces), then the commit.
                    assert!(w.insert("t", &key, b"v")?.is_none());
                    read.wait();
                    Ok(())
                })
                .unwrap();
            });
        }
    });
    let commits = etcd.requests() - before - u64::from(THREADS);
    assert!(
        commits <= u64::from(THREADS) / 2,
        "{THREADS} commits took {commits} requests"
    );
    etcd.read(&mut |r| {
        assert_eq!(r.len("t")?, u64::from(THREADS));
        Ok(())
    })
    .unwrap();
}

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "accounts")]
struct Account {
    #[kvs(key)]
    id: u64,
    balance: i64,
}

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "transfers")]
struct Transfer {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    from: u64,
    #[kvs(index)]
    to: u64,
}

/// Transactions from 16 threads at once, shared commits or not, stay serializable: transfers
/// between 4 accounts (read-modify-write, so many conflict and run again) beside writes of
/// each thread's own records. Afterwards no unit is lost or made, and each account's balance
/// is what the transfer records say.
#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn concurrent_transactions_stay_serializable() {
    const ACCOUNTS: u64 = 4;
    const START: i64 = 1_000;
    let _steady = steady();
    let cluster = cluster();
    let kvs = Kvs::open(&fresh(&cluster, "transfers")).unwrap();
    kvs.transaction(|tx| {
        for id in 0..ACCOUNTS {
            tx.put(&Account { id, balance: START })?;
        }
        Ok(())
    })
    .unwrap();
    std::thread::scope(|s| {
        for t in 0..16u64 {
            let kvs = &kvs;
            s.spawn(move || {
                for i in 0..12u64 {
                    let id = t * 100 + i;
                    if i % 2 == 0 {
                        // A write of its own: shares commits with anything.
                        kvs.transaction(|tx| tx.put(&item(1_000 + id))).unwrap();
                        continue;
                    }
                    let (from, to) = ((t + i) % ACCOUNTS, (t + 2 * i + 1) % ACCOUNTS);
                    if from == to {
                        continue;
                    }
                    kvs.transaction_retry(|tx| {
                        let mut a = tx.get::<Account>(&from)?.unwrap();
                        let mut b = tx.get::<Account>(&to)?.unwrap();
                        a.balance -= 1;
                        b.balance += 1;
                        tx.put(&a)?;
                        tx.put(&b)?;
                        tx.put(&Transfer { id, from, to })
                    })
                    .unwrap();
                }
            });
        }
    });
    let mut total = 0;
    for id in 0..ACCOUNTS {
        let out = kvs
            .index_count::<Transfer>(TransferField::From, id)
            .unwrap();
        let into = kvs.index_count::<Transfer>(TransferField::To, id).unwrap();
        let balance = kvs.get::<Account>(&id).unwrap().unwrap().balance;
        assert_eq!(
            balance,
            START - out.cast_signed() + into.cast_signed(),
            "account {id}: no lost update"
        );
        total += balance;
    }
    assert_eq!(total, START * ACCOUNTS.cast_signed());
    assert_eq!(kvs.count::<Item>().unwrap(), 16 * 6);
}

/// Write skew is refused, shared commits or not: in each round, 16 pairs of transactions at
/// once (so that their commits pile up and share requests), each of a pair reading both of
/// the pair's accounts and emptying its own only if both are full. Serializable, one of a
/// pair sees the other's write (or conflicts and runs again), so no pair ends with both empty.
#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn write_skew_is_refused() {
    const PAIRS: usize = 16;
    let _steady = steady();
    let cluster = cluster();
    let kvs = Kvs::open(&fresh(&cluster, "skew")).unwrap();
    let all = std::sync::Barrier::new(2 * PAIRS);
    for round in 0..6u64 {
        let base = round * 2 * PAIRS as u64;
        kvs.transaction(|tx| {
            for id in base..base + 2 * PAIRS as u64 {
                tx.put(&Account { id, balance: 1 })?;
            }
            Ok(())
        })
        .unwrap();
        std::thread::scope(|s| {
            for id in base..base + 2 * PAIRS as u64 {
                let (kvs, all) = (&kvs, &all);
                s.spawn(move || {
                    let other = id ^ 1;
                    all.wait();
                    kvs.transaction_retry(|tx| {
                        let a = tx.get::<Account>(&id)?.unwrap();
                        let b = tx.get::<Account>(&other)?.unwrap();
                        if a.balance + b.balance == 2 {
                            tx.put(&Account { id, balance: 0 })?;
                        }
                        Ok::<(), Error>(())
                    })
                    .unwrap();
                });
            }
        });
        for pair in (base..base + 2 * PAIRS as u64).step_by(2) {
            let left: i64 = [pair, pair + 1]
                .iter()
                .map(|id| kvs.get::<Account>(id).unwrap().unwrap().balance)
                .sum();
            assert_eq!(
                left,
                1,
                "accounts {pair} and {}: exactly one emptied",
                pair + 1
            );
        }
    }
}

/// The sync API inside a tokio runtime of either flavour (an async service that calls it
/// directly): no panic, at open, on every call, or when the handle is dropped there.
#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn the_sync_api_works_inside_a_tokio_runtime() {
    let cluster = cluster();
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for runtime in [&current, &multi] {
        let url = fresh(&cluster, "in-runtime");
        runtime.block_on(async {
            let kvs = Kvs::open(&url).unwrap();
            kvs.put(&item(1)).unwrap();
            assert_eq!(kvs.get::<Item>(&1).unwrap(), Some(item(1)));
            assert_eq!(kvs.seq("ids", 1).unwrap(), 1);
            assert_eq!(kvs.index::<Item>(ItemField::Bucket, 1u64).unwrap().len(), 1);
            drop(kvs);
        });
        // And from spawn_blocking, the way async code should call it.
        runtime.block_on(async {
            let url = url.clone();
            tokio::task::spawn_blocking(move || {
                let kvs = Kvs::open(&url).unwrap();
                assert_eq!(kvs.count::<Item>().unwrap(), 1);
            })
            .await
            .unwrap();
        });
    }
}
