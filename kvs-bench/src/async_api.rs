//! The async section: `get` and a durable `put` through `AsyncKvs` beside the same calls on
//! the sync `Kvs`, on a redb file and (with `--etcd`) on the cluster, same run; and on the
//! cluster, 64 tasks on one `AsyncKvs` beside 64 threads on one `Kvs` (gets and puts, and
//! `seq` on one counter).
//!
//! A sequential async call pays a hop to tokio's blocking pool and back on redb, and its
//! replays on etcd; the rows show what that costs against the call itself. The concurrent rows show whether async code loses
//! throughput against the threads it replaces.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use kvs::{AsyncKvs, Kvs};

use crate::data::{self, User};
use crate::systems::Res;

/// Records loaded before the gets.
const RECORDS: u64 = 2_000;
/// Sequential gets per run.
const GETS: u64 = 2_000;
/// Sequential durable puts per run.
const PUTS: u64 = 200;
/// Concurrent callers (tasks or threads) on the cluster.
const CALLERS: u64 = 64;
/// Calls per concurrent caller: a get and a durable put each.
const PER_CALLER: u64 = 10;

/// One workload on one backend: median seconds through the sync API and through `AsyncKvs`.
pub struct Row {
    /// The workload.
    pub workload: &'static str,
    /// `redb` (a file) or `etcd`.
    pub backend: &'static str,
    /// Calls per run.
    pub ops: u64,
    /// Median seconds, sync `Kvs`.
    pub sync: f64,
    /// Median seconds, `AsyncKvs`.
    pub async_: f64,
}

/// The seconds of each repeat of one workload on one backend.
struct Runs {
    workload: &'static str,
    backend: &'static str,
    ops: u64,
    sync: Vec<f64>,
    async_: Vec<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn timed(f: impl FnOnce() -> Res<()>) -> Res<f64> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64())
}

/// A runtime, and one database at `url` holding the records every workload reads, as a
/// `Kvs` and as an `AsyncKvs` on the same handle.
fn setup(url: &str) -> Res<(tokio::runtime::Runtime, Arc<Kvs>, AsyncKvs)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let kvs = Arc::new(Kvs::open(url)?);
    let users: Vec<User> = (1..=RECORDS).map(|id| data::user(id, RECORDS)).collect();
    data::load(&kvs, &users, 40)?;
    let akvs = AsyncKvs::from(kvs.clone());
    Ok((runtime, kvs, akvs))
}

/// Sequential gets and durable puts, sync then async (or the other way on odd repeats).
fn sequential(url: &str, flip: bool) -> Res<[(f64, f64); 2]> {
    let (runtime, kvs, akvs) = setup(url)?;
    let mut rng = data::Rng::new(11);
    let ids: Vec<u64> = (0..GETS).map(|_| rng.id(RECORDS)).collect();
    let sync_get = || {
        timed(|| {
            for id in &ids {
                if kvs.get::<User>(id)?.is_none() {
                    return Err(format!("async section: get {id} missed").into());
                }
            }
            Ok(())
        })
    };
    let async_get = || {
        timed(|| {
            runtime.block_on(async {
                for id in &ids {
                    if akvs.get::<User>(id).await?.is_none() {
                        return Err(format!("async section: get {id} missed").into());
                    }
                }
                Ok(())
            })
        })
    };
    let next = std::sync::atomic::AtomicU64::new(RECORDS + 1);
    let fresh = || {
        data::user(
            next.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            RECORDS,
        )
    };
    let sync_put = || {
        timed(|| {
            for _ in 0..PUTS {
                kvs.put(&fresh())?;
            }
            Ok(())
        })
    };
    let async_put = || {
        timed(|| {
            runtime.block_on(async {
                for _ in 0..PUTS {
                    akvs.put(&fresh()).await?;
                }
                Ok(())
            })
        })
    };
    Ok(if flip {
        let (ag, sg) = (async_get()?, sync_get()?);
        let (ap, sp) = (async_put()?, sync_put()?);
        [(sg, ag), (sp, ap)]
    } else {
        let (sg, ag) = (sync_get()?, async_get()?);
        let (sp, ap) = (sync_put()?, async_put()?);
        [(sg, ag), (sp, ap)]
    })
}

/// What each concurrent caller does `PER_CALLER` times.
#[derive(Clone, Copy)]
enum Mix {
    /// A get and a durable put.
    GetPut,
    /// A `seq` on one counter that every caller shares.
    Seq,
}

/// `CALLERS` concurrent callers, each `PER_CALLER` times what `mix` says: threads on one
/// `Kvs`, then tasks on one `AsyncKvs` (or the other way on odd repeats).
fn concurrent(url: &str, flip: bool, mix: Mix) -> Res<(f64, f64)> {
    let (runtime, kvs, akvs) = setup(url)?;
    let base = std::sync::atomic::AtomicU64::new(1_000_000);
    let threads = || {
        timed(|| {
            let first = base.fetch_add(CALLERS * PER_CALLER, std::sync::atomic::Ordering::Relaxed);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..CALLERS)
                    .map(|c| {
                        let kvs = &kvs;
                        s.spawn(move || -> kvs::Result<()> {
                            for i in 0..PER_CALLER {
                                let id = first + c * PER_CALLER + i;
                                match mix {
                                    Mix::GetPut => {
                                        kvs.get::<User>(&(1 + (c * PER_CALLER + i) % RECORDS))?;
                                        kvs.put(&data::user(id, RECORDS))?;
                                    }
                                    Mix::Seq => {
                                        kvs.seq("hot", 1)?;
                                    }
                                }
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().map_err(|_| "async section: a thread panicked")??;
                }
                Res::Ok(())
            })
        })
    };
    let tasks = || {
        timed(|| {
            let first = base.fetch_add(CALLERS * PER_CALLER, std::sync::atomic::Ordering::Relaxed);
            runtime.block_on(async {
                let tasks: Vec<tokio::task::JoinHandle<kvs::Result<()>>> = (0..CALLERS)
                    .map(|c| {
                        let akvs = akvs.clone();
                        tokio::spawn(async move {
                            for i in 0..PER_CALLER {
                                let id = first + c * PER_CALLER + i;
                                match mix {
                                    Mix::GetPut => {
                                        akvs.get::<User>(&(1 + (c * PER_CALLER + i) % RECORDS))
                                            .await?;
                                        akvs.put(&data::user(id, RECORDS)).await?;
                                    }
                                    Mix::Seq => {
                                        akvs.seq("hot", 1).await?;
                                    }
                                }
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await??;
                }
                Res::Ok(())
            })
        })
    };
    Ok(if flip {
        let a = tasks()?;
        (threads()?, a)
    } else {
        let s = threads()?;
        (s, tasks()?)
    })
}

/// Runs the section `repeat` times on fresh databases.
pub fn run(etcd: Option<&str>, repeat: usize) -> Res<Vec<Row>> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut runs: Vec<Runs> = Vec::new();
    let mut push = |workload, backend, ops, (sync, async_): (f64, f64)| {
        let i = runs
            .iter()
            .position(|r| r.workload == workload && r.backend == backend)
            .unwrap_or_else(|| {
                runs.push(Runs {
                    workload,
                    backend,
                    ops,
                    sync: Vec::new(),
                    async_: Vec::new(),
                });
                runs.len() - 1
            });
        runs[i].sync.push(sync);
        runs[i].async_.push(async_);
    };
    for r in 0..repeat {
        let flip = r % 2 == 1;
        let dir = crate::run::scratch(&format!("async-section-{r}"))?;
        let file = format!("redb:{}", dir.join("kvs.redb").display());
        eprintln!("async section, repeat {}: {file}", r + 1);
        let [get, put] = sequential(&file, flip)?;
        push("get", "redb", GETS, get);
        push("durable_put", "redb", PUTS, put);
        let _ = std::fs::remove_dir_all(dir);
        if let Some(cluster) = etcd {
            let at = |name: &str| {
                let path = format!(
                    "app-kvs-bench-async/{}-{stamp}-{r}-{name}",
                    std::process::id()
                );
                crate::etcd::at(cluster, &path)
            };
            eprintln!("async section, repeat {}: {}", r + 1, at("..."));
            let [get, put] = sequential(&at("seq"), flip)?;
            push("get", "etcd", GETS, get);
            push("durable_put", "etcd", PUTS, put);
            let both = concurrent(&at("concurrent"), flip, Mix::GetPut)?;
            push("get_put_64_callers", "etcd", CALLERS * PER_CALLER * 2, both);
            let both = concurrent(&at("hot"), flip, Mix::Seq)?;
            push("seq_64_callers", "etcd", CALLERS * PER_CALLER, both);
        }
    }
    Ok(runs
        .into_iter()
        .map(|r| Row {
            workload: r.workload,
            backend: r.backend,
            ops: r.ops,
            sync: median(r.sync),
            async_: median(r.async_),
        })
        .collect())
}

/// The section of the markdown report.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Async: AsyncKvs beside the sync Kvs\n\n`get` ({GETS} random keys of {RECORDS} \
         records) and durable `put` ({PUTS} records), one call after another, through the sync \
         `Kvs` and through `AsyncKvs` on a tokio multi-thread runtime, same run, same database, \
         median of the repeats. On redb each async call hops to tokio's blocking pool and \
         back; on etcd it runs on the task, replayed, and awaits each request. On the \
         cluster, `get_put_64_callers` is {CALLERS} callers each making {PER_CALLER} gets and \
         {PER_CALLER} durable puts at once: {CALLERS} threads on one `Kvs` beside {CALLERS} \
         tasks on one `AsyncKvs` (ops counts both calls); `seq_64_callers` is {CALLERS} \
         callers each making {PER_CALLER} `seq` calls on one counter.\n"
    );
    let _ = writeln!(
        s,
        "| workload | backend | ops | sync per op | async per op | async / sync | async ops/s |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let per = |secs: f64| std::time::Duration::from_secs_f64(secs / r.ops as f64);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1?} | {:.1?} | {:.2} | {:.0} |",
            r.workload,
            r.backend,
            r.ops,
            per(r.sync),
            per(r.async_),
            r.async_ / r.sync,
            r.ops as f64 / r.async_
        );
    }
    s
}

/// The section of the JSON report: `"async": [{"workload", "backend", "system", "median_s",
/// "ops_per_s"}]`, a `kvs` row (sync) and a `kvs-async` row per workload and backend.
pub fn json(rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            [("kvs", r.sync), ("kvs-async", r.async_)].map(|(system, secs)| {
                format!(
                    "    {{\"workload\": \"{}\", \"backend\": \"{}\", \"system\": \"{system}\", \
                     \"median_s\": {secs:.6}, \"ops_per_s\": {:.1}}}",
                    r.workload,
                    r.backend,
                    r.ops as f64 / secs
                )
            })
        })
        .collect();
    format!("\"async\": [\n{}\n  ]", items.join(",\n"))
}
