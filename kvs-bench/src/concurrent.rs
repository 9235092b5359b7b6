//! The concurrent section: N threads, each calling `seq` and then a durable `put` of a `User`
//! in a loop, every commit durable, the same total number of puts whatever N. kvs on a file
//! (whose concurrent `seq`s combine and whose concurrent one-call writes share commits), kvs
//! with each pair in one `transaction` (concurrent transactions share commits too), raw
//! redb (a write transaction per call per thread, as a raw redb user writes), `native_db`
//! (likewise, through its own transactions), and `SQLite`
//! (a connection per thread, WAL, `synchronous=FULL`, `busy_timeout`). Every id must come out
//! once; the latency of each call (the `seq` and `put` pair) is recorded for p50 and p99.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use kvs::Kvs;

use crate::data;
use crate::systems::{Native, Raw, Res, Sqlite};

/// Puts per run, whatever the number of threads.
const PUTS: u64 = 3200;
/// The thread counts.
const THREADS: [u64; 3] = [1, 8, 32];
/// The systems, in report order.
const SYSTEMS: [&str; 5] = ["kvs", "kvs_tx", "redb", "native_db", "sqlite"];

/// One system at one thread count: the median run and its call latencies.
pub struct Row {
    /// `durable_put_{N}t`.
    pub workload: String,
    /// The system.
    pub system: &'static str,
    /// Threads.
    pub threads: u64,
    /// Median seconds of the runs.
    pub median_s: f64,
    /// Latency of one call (seq and put), 50th percentile over every call of every run.
    pub p50: Duration,
    /// The same, 99th percentile.
    pub p99: Duration,
}

/// What one thread did: the ids it got and each call's latency.
type Calls = (Vec<u64>, Vec<Duration>);

/// A database of one system that threads write into.
enum Target {
    Kvs(Box<Kvs>),
    /// kvs, each `seq` and `put` in one transaction.
    KvsTx(Box<Kvs>),
    Raw(Raw),
    Native(Box<Native>),
    Sqlite(std::path::PathBuf),
}

impl Target {
    fn open(system: &str, dir: &std::path::Path) -> Res<Target> {
        Ok(match system {
            "kvs" => Target::Kvs(Box::new(Kvs::open(&format!(
                "redb:{}",
                dir.join("kvs.redb").display()
            ))?)),
            "kvs_tx" => Target::KvsTx(Box::new(Kvs::open(&format!(
                "redb:{}",
                dir.join("kvs.redb").display()
            ))?)),
            "redb" => Target::Raw(Raw::open(&dir.join("raw.redb"))?),
            "native_db" => Target::Native(Box::new(Native::open(&dir.join("native.redb"))?)),
            _ => {
                let path = dir.join("bench.sqlite");
                drop(Sqlite::open(&path)?);
                Target::Sqlite(path)
            }
        })
    }

    /// One thread's `n` calls: the ids it got and each call's latency.
    fn thread(&self, n: u64) -> Result<Calls, String> {
        let mut sqlite = match self {
            Target::Sqlite(path) => Some(Sqlite::connect(path).map_err(|e| e.to_string())?),
            _ => None,
        };
        let mut ids = Vec::new();
        let mut latencies = Vec::new();
        for _ in 0..n {
            let start = Instant::now();
            let id = match (self, sqlite.as_mut()) {
                (Target::Kvs(kvs), _) => kvs
                    .seq("users", 1)
                    .and_then(|id| kvs.put(&data::user(id, PUTS)).map(|()| id))
                    .map_err(|e| e.to_string())?,
                (Target::KvsTx(kvs), _) => kvs
                    .transaction(|tx| {
                        let id = tx.seq("users", 1)?;
                        tx.put(&data::user(id, PUTS))?;
                        Ok(id)
                    })
                    .map_err(|e| e.to_string())?,
                (Target::Raw(raw), _) => raw.seq_then_put(PUTS).map_err(|e| e.to_string())?,
                (Target::Native(native), _) => {
                    native.seq_then_put(PUTS).map_err(|e| e.to_string())?
                }
                (_, Some(sqlite)) => sqlite.seq_then_put(PUTS).map_err(|e| e.to_string())?,
                (Target::Sqlite(_), None) => unreachable!("a SQLite thread has its connection"),
            };
            latencies.push(start.elapsed());
            ids.push(id);
        }
        Ok((ids, latencies))
    }
}

/// One run: `threads` threads on a fresh database of `system`; its seconds and latencies.
fn once(system: &str, threads: u64, label: &str) -> Res<(f64, Vec<Duration>)> {
    let dir = crate::run::scratch(label)?;
    let target = Target::open(system, &dir)?;
    let start = Instant::now();
    let results: Vec<Result<Calls, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let target = &target;
                s.spawn(move || target.thread(PUTS / threads))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a thread panicked".to_owned()))
            })
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    drop(target);
    let _ = std::fs::remove_dir_all(&dir);
    let mut ids = Vec::new();
    let mut latencies = Vec::new();
    for result in results {
        let (i, l) = result?;
        ids.extend(i);
        latencies.extend(l);
    }
    ids.sort_unstable();
    if ids != (1..=PUTS).collect::<Vec<_>>() {
        return Err(format!(
            "concurrent section: {system} at {threads} threads handed out ids wrongly"
        )
        .into());
    }
    Ok((secs, latencies))
}

/// Runs every system at every thread count `repeat` times, systems alternating.
pub fn run(repeat: usize) -> Res<Vec<Row>> {
    let mut rows = Vec::new();
    for &threads in &THREADS {
        let mut runs: Vec<(Vec<f64>, Vec<Duration>)> =
            vec![(Vec::new(), Vec::new()); SYSTEMS.len()];
        for r in 0..repeat {
            for i in 0..SYSTEMS.len() {
                let i = (i + r) % SYSTEMS.len();
                let system = SYSTEMS[i];
                eprintln!(
                    "concurrent section, repeat {}: {system}, {threads} threads",
                    r + 1
                );
                let (secs, latencies) = once(
                    system,
                    threads,
                    &format!("concurrent-{system}-{threads}-{r}"),
                )?;
                runs[i].0.push(secs);
                runs[i].1.extend(latencies);
            }
        }
        for (i, (mut secs, mut latencies)) in runs.into_iter().enumerate() {
            secs.sort_by(f64::total_cmp);
            latencies.sort_unstable();
            // The q-th percentile: the call q/100 of the way up the sorted latencies.
            let at = |q: usize| latencies[(latencies.len() - 1) * q / 100];
            rows.push(Row {
                workload: format!("durable_put_{threads}t"),
                system: SYSTEMS[i],
                threads,
                median_s: secs[secs.len() / 2],
                p50: at(50),
                p99: at(99),
            });
        }
    }
    Ok(rows)
}

fn find<'r>(rows: &'r [Row], system: &str, threads: u64) -> Option<&'r Row> {
    rows.iter()
        .find(|r| r.system == system && r.threads == threads)
}

/// The section of the markdown report.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Concurrent durable writers\n\nN threads each call `seq` and then a durable `put` \
         of a `User`, {PUTS} puts in all whatever N, on a fresh database each run, median of \
         the repeats; latency is per call (the pair), over every call of every repeat. kvs on \
         a file: concurrent `seq`s on one counter combine into one commit, and concurrent \
         one-call writes share commits (group commit). kvs_tx: the same pair in one \
         `transaction` (concurrent transactions share commits too). Raw redb and native_db: a write \
         transaction per call per thread. SQLite: a connection per thread, WAL, \
         `synchronous=FULL`, `busy_timeout`.\n"
    );
    let _ = writeln!(
        s,
        "| workload | system | threads | median | puts/s | p50 | p99 |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.3} s | {:.0} | {:.1?} | {:.1?} |",
            r.workload,
            r.system,
            r.threads,
            r.median_s,
            PUTS as f64 / r.median_s,
            r.p50,
            r.p99
        );
    }
    let rate =
        |system: &str, threads: u64| find(rows, system, threads).map(|r| PUTS as f64 / r.median_s);
    if let (Some(k1), Some(k32), Some(r32), Some(q32)) = (
        rate("kvs", 1),
        rate("kvs", 32),
        rate("redb", 32),
        rate("sqlite", 32),
    ) {
        let _ = writeln!(
            s,
            "\nkvs at 32 threads: {:.1}× its own single-thread rate, {:.1}× raw redb's and {:.1}× \
             SQLite's at 32 threads.",
            k32 / k1,
            k32 / r32,
            k32 / q32
        );
    }
    if let (Some(t1), Some(t32)) = (rate("kvs_tx", 1), rate("kvs_tx", 32)) {
        let _ = writeln!(
            s,
            "\nkvs_tx (a transaction per pair) at 32 threads: {:.1}× its own single-thread rate.",
            t32 / t1
        );
    }
    s
}

/// The section of the JSON report: `"concurrent": [{"workload", "system", "threads",
/// "median_s", "ops_per_s", "p50_us", "p99_us"}]`.
pub fn json(rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "    {{\"workload\": \"{}\", \"system\": \"{}\", \"threads\": {}, \"median_s\": \
                 {:.6}, \"ops_per_s\": {:.1}, \"p50_us\": {:.1}, \"p99_us\": {:.1}}}",
                r.workload,
                r.system,
                r.threads,
                r.median_s,
                PUTS as f64 / r.median_s,
                r.p50.as_secs_f64() * 1e6,
                r.p99.as_secs_f64() * 1e6
            )
        })
        .collect();
    format!("\"concurrent\": [\n{}\n  ]", items.join(",\n"))
}
