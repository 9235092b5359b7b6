//! Runs the workloads on every system, checks each answer, and keeps the timings.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::data::{
    self, Inputs, Msg, DURABLE, ITER_PAGE, ITER_PAGES, LOOKUPS, RANGES, SEQ, SEQ_DURABLE,
};
use crate::systems::{self, Res, System, SYSTEMS};

/// The workloads, in report order (also the names in the JSON output).
pub const WORKLOADS: [&str; 16] = [
    "bulk_insert",
    "durable_insert",
    "get",
    "unique_lookup",
    "index_lookup",
    "index_range",
    "iter_page",
    "scan_all",
    "indexed_update",
    "delete",
    "count",
    "seq",
    "seq_durable",
    "append",
    "take20",
    "remove",
];

/// The stream workloads' sizes: messages appended, page size, messages removed.
pub const FEED: u64 = 10_000;
/// Elements per page of `take20`.
pub const PAGE: usize = 20;
/// Elements removed from the feed.
pub const REMOVES: u64 = 1_000;

/// The timings of one workload on one system, one per repeat.
#[derive(Clone, Debug)]
pub struct Timing {
    /// The workload.
    pub workload: &'static str,
    /// The system.
    pub system: &'static str,
    /// Operations per run.
    pub ops: u64,
    /// Seconds, one per repeat.
    pub secs: Vec<f64>,
}

impl Timing {
    /// The largest distance of a repeat from the median, relative to the median.
    pub fn spread(&self) -> f64 {
        let med = self.median();
        self.secs
            .iter()
            .map(|s| (s - med).abs() / med)
            .fold(0.0, f64::max)
    }

    /// The median of the repeats, in seconds.
    pub fn median(&self) -> f64 {
        let mut s = self.secs.clone();
        s.sort_by(f64::total_cmp);
        let m = s.len() / 2;
        if s.len().is_multiple_of(2) {
            f64::midpoint(s[m - 1], s[m])
        } else {
            s[m]
        }
    }
}

/// Everything one run of the main workloads measured.
pub struct Results {
    /// The timings.
    pub timings: Vec<Timing>,
    /// The database size after the bulk load, per system (bytes; `None` in memory).
    pub file_sizes: Vec<(&'static str, Option<u64>)>,
}

impl Results {
    fn record(&mut self, workload: &'static str, system: &'static str, ops: u64, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(t) = self
            .timings
            .iter_mut()
            .find(|t| t.workload == workload && t.system == system)
        {
            t.secs.push(secs);
        } else {
            self.timings.push(Timing {
                workload,
                system,
                ops,
                secs: vec![secs],
            });
        }
    }
}

/// A fresh directory for one database.
pub fn scratch(label: &str) -> Res<PathBuf> {
    let dir = std::env::temp_dir().join(format!("kvs-bench-{}-{label}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Fails with a message naming the system and workload unless `got == want`.
fn check(system: &str, workload: &str, what: &str, got: u64, want: u64) -> Res<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{system} {workload}: {what} is {got}, expected {want}").into())
    }
}

fn time<R>(f: impl FnOnce() -> Res<R>) -> Res<(R, Duration)> {
    let start = Instant::now();
    let out = f()?;
    Ok((out, start.elapsed()))
}

/// The read workloads, in the order each round runs them.
const READS: [&str; 7] = [
    "get",
    "unique_lookup",
    "index_lookup",
    "index_range",
    "iter_page",
    "scan_all",
    "count",
];

/// Rounds of the read workloads per repeat. A read row takes 25 to 500 ms, short enough
/// for the machine's noise (±15% between two runs a second apart) to move a median of a few
/// samples by 0.1: each repeat runs them this many times, every system's run of a workload
/// right after the others', so a ratio compares runs made within a second of each other.
pub const READ_ROUNDS: usize = 3;

/// Runs every workload `repeat` times on each of `systems`, alternating the systems' order
/// between repeats. In a repeat every system is loaded first; then the read workloads run in
/// [`READ_ROUNDS`] rounds, each workload on one system after the other (the order turning
/// between rounds), on the bulk load as it stands; then each system runs the writes.
pub fn main_runs(n: u64, repeat: usize, systems: &[&'static str]) -> Res<Results> {
    let inputs = Inputs::new(n);
    let mut results = Results {
        timings: Vec::new(),
        file_sizes: Vec::new(),
    };
    for r in 0..repeat {
        let mut order = systems.to_vec();
        let turn = r % order.len().max(1);
        order.rotate_left(turn);
        if r % 2 == 1 {
            order.reverse();
        }
        let mut open = Vec::new();
        for &system in &order {
            let dir = scratch(&format!("{system}-{r}"))?;
            let mut sys = systems::open(system, &dir)?;
            sys.prepare(&inputs);
            let mut run = Run {
                system,
                r,
                repeat,
                results: &mut results,
            };
            let size = run.load(&mut *sys, &inputs)?;
            if r == 0 {
                results.file_sizes.push((system, size));
            }
            open.push((system, sys, dir));
        }
        for round in 0..READ_ROUNDS {
            for workload in READS {
                let systems = open.len();
                for i in 0..systems {
                    let (system, sys, _) = &mut open[(i + round) % systems];
                    let mut run = Run {
                        system,
                        r,
                        repeat,
                        results: &mut results,
                    };
                    run.read(&mut **sys, workload, &inputs)?;
                }
            }
        }
        for (system, mut sys, dir) in open {
            let mut run = Run {
                system,
                r,
                repeat,
                results: &mut results,
            };
            run.writes(&mut *sys, &inputs)?;
            drop(sys);
            std::fs::remove_dir_all(&dir)?;
        }
    }
    // Report order: as SYSTEMS lists them.
    results.timings.sort_by_key(|t| {
        (
            WORKLOADS.iter().position(|w| *w == t.workload),
            SYSTEMS.iter().position(|s| *s == t.system),
        )
    });
    Ok(results)
}

/// One system's part of one repeat: runs its workloads, checks each answer, and records and
/// prints each time.
struct Run<'a> {
    system: &'static str,
    r: usize,
    repeat: usize,
    results: &'a mut Results,
}

impl Run<'_> {
    fn step(&mut self, workload: &'static str, ops: u64, d: Duration) {
        let secs = d.as_secs_f64();
        eprintln!(
            "[{}/{}] {:<9} {workload:<15} {ops:>8} ops {secs:>9.4} s {:>12.0} ops/s",
            self.r + 1,
            self.repeat,
            self.system,
            ops as f64 / secs
        );
        self.results.record(workload, self.system, ops, d);
    }

    /// The bulk load, timed and checked; the database's size after it.
    fn load(&mut self, sys: &mut dyn System, inputs: &Inputs) -> Res<Option<u64>> {
        let system = self.system;
        let n = inputs.n;
        let ((), d) = time(|| sys.bulk_insert(&inputs.bulk))?;
        self.step("bulk_insert", n, d);
        check(system, "bulk_insert", "count", sys.count(1)?, n)?;
        Ok(sys.file_size())
    }

    /// One run of the read workload `workload`, on the bulk load (users 1..=n), checked.
    fn read(&mut self, sys: &mut dyn System, workload: &'static str, inputs: &Inputs) -> Res<()> {
        let system = self.system;
        let n = inputs.n;
        let (ops, d) = match workload {
            "get" => {
                let (sum, d) = time(|| sys.get(&inputs.get_ids))?;
                let want = inputs.get_ids.iter().sum();
                check(system, workload, "sum of keys", sum, want)?;
                (inputs.get_ids.len() as u64, d)
            }
            "unique_lookup" => {
                let (hits, d) = time(|| sys.unique_lookup(&inputs.emails))?;
                check(system, workload, "hits", hits, LOOKUPS as u64)?;
                (LOOKUPS as u64, d)
            }
            "index_lookup" => {
                let cities = city_names(inputs);
                let (hits, d) = time(|| sys.index_lookup(&cities))?;
                let want = inputs.cities.iter().map(|c| c.1).sum();
                check(system, workload, "hits", hits, want)?;
                (LOOKUPS as u64, d)
            }
            "index_range" => {
                let (found, d) = time(|| sys.index_range(&inputs.ranges))?;
                check(system, workload, "hits", found.0, inputs.range_hits.0)?;
                check(
                    system,
                    workload,
                    "sum of keys",
                    found.1,
                    inputs.range_hits.1,
                )?;
                (RANGES as u64, d)
            }
            "iter_page" => {
                let (sum, d) = time(|| sys.iter_page(ITER_PAGES, ITER_PAGE))?;
                let page = ITER_PAGE as u64;
                let newest = (n - page + 1..=n).sum::<u64>();
                let want = newest * ITER_PAGES as u64;
                check(system, workload, "sum of keys", sum, want)?;
                (ITER_PAGES as u64, d)
            }
            "scan_all" => {
                let (all, d) = time(|| sys.scan_all())?;
                check(system, workload, "records", all.0, n)?;
                check(system, workload, "sum of keys", all.1, n * (n + 1) / 2)?;
                (n, d)
            }
            "count" => {
                let (count, d) = time(|| sys.count(LOOKUPS))?;
                check(system, workload, "count", count, n)?;
                (LOOKUPS as u64, d)
            }
            other => return Err(format!("{other} is not a read workload").into()),
        };
        self.step(workload, ops, d);
        Ok(())
    }

    /// The write workloads, one after the other, each checked.
    fn writes(&mut self, sys: &mut dyn System, inputs: &Inputs) -> Res<()> {
        let system = self.system;
        let n = inputs.n;
        let ((), d) = time(|| sys.indexed_update(&inputs.updates))?;
        self.step("indexed_update", inputs.updates.len() as u64, d);
        // Every record under its current city exactly once: an update that left a stale entry
        // returns a record of another city (an error), one that lost an entry falls short.
        let all: Vec<String> = (0..data::cities(n)).map(data::city).collect();
        check(
            system,
            "indexed_update",
            "records over all cities",
            sys.index_lookup(&all)?,
            n,
        )?;
        let ((), d) = time(|| sys.durable_insert(&inputs.durable))?;
        self.step("durable_insert", DURABLE, d);
        check(
            system,
            "durable_insert",
            "count",
            sys.count(1)?,
            n + DURABLE,
        )?;

        let (deleted, d) = time(|| sys.delete(&inputs.deletes))?;
        check(system, "delete", "deleted", deleted, n / 10)?;
        self.step("delete", n / 10, d);
        check(
            system,
            "delete",
            "count",
            sys.count(1)?,
            n + DURABLE - n / 10,
        )?;

        let (v, d) = time(|| sys.seq(SEQ))?;
        check(system, "seq", "value", v, SEQ as u64)?;
        self.step("seq", SEQ as u64, d);

        let (v, d) = time(|| sys.seq_durable(SEQ_DURABLE))?;
        check(system, "seq_durable", "value", v, SEQ_DURABLE as u64)?;
        self.step("seq_durable", SEQ_DURABLE as u64, d);

        if let Some(streams) = sys.streams() {
            let msgs: Vec<Msg> = (1..=FEED).map(data::msg).collect();
            let ((), d) = time(|| streams.append("bench", &msgs))?;
            check(system, "append", "feed length", streams.len("bench")?, FEED)?;
            self.step("append", FEED, d);

            let pages = usize::try_from(FEED)? / PAGE;
            let (sum, d) = streams.take_pages("bench", 0, PAGE, pages)?;
            check(system, "take20", "sum of keys", sum, FEED * (FEED + 1) / 2)?;
            self.step("take20", pages as u64, d);

            let ids: Vec<u64> = (1..=REMOVES).map(|i| i * (FEED / REMOVES)).collect();
            let (removed, d) = time(|| streams.remove("bench", &ids))?;
            check(system, "remove", "removed", removed, REMOVES)?;
            check(
                system,
                "remove",
                "feed length",
                streams.len("bench")?,
                FEED - REMOVES,
            )?;
            self.step("remove", REMOVES, d);
        }
        Ok(())
    }
}

fn city_names(inputs: &Inputs) -> Vec<String> {
    inputs.cities.iter().map(|c| c.0.clone()).collect()
}

/// One row of the scaling table: per-operation cost of a workload at one size.
#[derive(Clone, Debug)]
pub struct Scaled {
    /// The workload.
    pub workload: &'static str,
    /// The system.
    pub system: &'static str,
    /// Records in the table (elements in the feed for `take20`).
    pub n: u64,
    /// Microseconds per operation.
    pub us_per_op: f64,
}

/// Gets, index lookups and counts at each size in `sizes`, and pages of feeds of 1,000 and
/// of the largest size, on kvs and raw redb files.
pub fn scaling(sizes: &[u64]) -> Res<Vec<Scaled>> {
    let mut out = Vec::new();
    for &n in sizes {
        let bulk: Vec<data::User> = (1..=n).map(|id| data::user(id, n)).collect();
        let mut rng = data::Rng::new(n ^ 0x5CA1E);
        let ids: Vec<u64> = (0..LOOKUPS).map(|_| rng.id(n)).collect();
        let ncities = data::cities(n);
        let cities: Vec<String> = (0..1_000)
            .map(|_| data::city(rng.next_u64() % ncities))
            .collect();
        for system in ["kvs", "redb"] {
            let dir = scratch(&format!("scale-{system}-{n}"))?;
            let mut sys = systems::open(system, &dir)?;
            sys.bulk_insert(&bulk)?;
            let (sum, d) = time(|| sys.get(&ids))?;
            check(system, "get", "sum of keys", sum, ids.iter().sum())?;
            out.push(scaled("get", system, n, d, ids.len()));
            let (hits, d) = time(|| sys.index_lookup(&cities))?;
            if hits < cities.len() as u64 * (data::PER_CITY - 1) {
                return Err(format!("{system} index_lookup at {n}: {hits} hits").into());
            }
            out.push(scaled("index_lookup", system, n, d, cities.len()));
            let (count, d) = time(|| sys.count(LOOKUPS))?;
            check(system, "count", "count", count, n)?;
            out.push(scaled("count", system, n, d, LOOKUPS));
            drop(sys);
            std::fs::remove_dir_all(&dir)?;
        }
    }
    let Some(largest) = sizes.iter().copied().max() else {
        return Ok(out);
    };
    for feed in [1_000, largest.max(1_000)] {
        let msgs: Vec<Msg> = (1..=feed).map(data::msg).collect();
        for system in ["kvs", "redb"] {
            let dir = scratch(&format!("feed-{system}-{feed}"))?;
            let mut sys = systems::open(system, &dir)?;
            let streams = sys.streams().ok_or("no streams")?;
            streams.append("bench", &msgs)?;
            let pages = usize::try_from(feed)? / PAGE / 2;
            let skip = (feed - (pages * PAGE) as u64) / 2;
            let (sum, d) = streams.take_pages("bench", skip, PAGE, pages)?;
            let first = skip + 1;
            let last = skip + (pages * PAGE) as u64;
            check(
                system,
                "take20",
                "sum of keys",
                sum,
                (first + last) * (last - first + 1) / 2,
            )?;
            out.push(scaled("take20", system, feed, d, pages));
            drop(sys);
            std::fs::remove_dir_all(&dir)?;
        }
    }
    Ok(out)
}

fn scaled(workload: &'static str, system: &'static str, n: u64, d: Duration, ops: usize) -> Scaled {
    let us_per_op = d.as_secs_f64() * 1e6 / ops as f64;
    eprintln!("[scaling] {system:<9} {workload:<13} n={n:<8} {us_per_op:>9.2} µs/op");
    Scaled {
        workload,
        system,
        n,
        us_per_op,
    }
}
