//! The etcd section: kvs on an etcd cluster beside kvs on a redb file, on the same workloads,
//! in the same run (`--etcd etcd://HOST:PORT,...`), and with `--etcds URL` on a secured
//! cluster too (TLS, client certificates, an etcd user: `scripts/etcd-cluster.sh start
//! --tls`), to show what TLS and auth cost.
//!
//! The workloads are the ones a cluster user meets: durable single-record commits, gets,
//! unique and non-unique index lookups (about 100 hits each, fetched in batches), `seq` one
//! commit each, `count`, `seq_32t`: 32 threads calling `seq` on one counter at once (whose
//! calls combine into shared commits), `put_32t`: 32 threads each putting records of its own,
//! every put its own call (batched into shared commits), and `append_32t`: 32 threads
//! appending to one feed (batched likewise), beside `append_1t`. Loads
//! are written in transactions of 40 records, which fit etcd's default limit of 128
//! operations per transaction.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use kvs::Kvs;

use crate::data::{self, User, UserField};
use crate::systems::Res;

/// Records loaded before the read workloads (20 cities of 100).
const RECORDS: u64 = 2_000;
/// Records per load transaction.
const BATCH: usize = 40;

/// The workloads and their operation counts.
const WORKLOADS: [(&str, u64); 12] = [
    ("bulk_insert", RECORDS),
    ("durable_insert", 200),
    ("get", 1_000),
    ("unique_lookup", 500),
    ("index_lookup", 100),
    ("seq_1t", 200),
    ("count", 200),
    ("seq_32t", 640),
    ("put_32t", 640),
    ("append_1t", 200),
    ("append_32t", 640),
    ("tx_put_32t", 640),
];

/// Threads of the `seq_32t` workload, all on one counter, of `put_32t` and of `append_32t`.
const SEQ_THREADS: u64 = 32;

/// One workload's medians on etcd and on a redb file.
pub struct Row {
    /// The workload.
    pub workload: &'static str,
    /// Operations per run.
    pub ops: u64,
    /// Median seconds on etcd.
    pub etcd: f64,
    /// Median seconds on the secured cluster, when one was given.
    pub etcds: Option<f64>,
    /// Median seconds on a redb file, in the same run.
    pub redb: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        f64::midpoint(v[m - 1], v[m])
    } else {
        v[m]
    }
}

/// Runs every workload once on `url`; returns the seconds per workload, in [`WORKLOADS`] order.
fn once(url: &str) -> Res<Vec<f64>> {
    let kvs = Kvs::open(url)?;
    let users: Vec<User> = (1..=RECORDS).map(|id| data::user(id, RECORDS)).collect();
    let mut rng = data::Rng::new(7);
    let mut secs = Vec::new();
    let mut timed = |f: &mut dyn FnMut() -> Res<()>| -> Res<()> {
        let start = Instant::now();
        f()?;
        secs.push(start.elapsed().as_secs_f64());
        Ok(())
    };
    timed(&mut || Ok(data::load(&kvs, &users, BATCH)?))?;
    timed(&mut || {
        for id in RECORDS + 1..=RECORDS + WORKLOADS[1].1 {
            kvs.put(&data::user(id, RECORDS))?;
        }
        Ok(())
    })?;
    let total = RECORDS + WORKLOADS[1].1;
    let ids: Vec<u64> = (0..WORKLOADS[2].1).map(|_| rng.id(RECORDS)).collect();
    timed(&mut || {
        for id in &ids {
            if kvs.get::<User>(id)?.map(|u| u.id) != Some(*id) {
                return Err(format!("etcd section: get {id} missed").into());
            }
        }
        Ok(())
    })?;
    timed(&mut || {
        for i in 0..WORKLOADS[3].1 {
            let email = data::email(1 + (i * 7) % RECORDS);
            let found = kvs.index::<User>(UserField::Email, email.as_str())?;
            if found.len() != 1 || found[0].email != email {
                return Err(format!("etcd section: unique lookup of {email} is wrong").into());
            }
        }
        Ok(())
    })?;
    let cities = data::cities(RECORDS);
    timed(&mut || {
        for i in 0..WORKLOADS[4].1 {
            let city = data::city(i % cities);
            let found = kvs.index::<User>(UserField::City, city.as_str())?;
            if found.len() < 100 || found.iter().any(|u| u.city != city) {
                return Err(format!("etcd section: {city} found {} records", found.len()).into());
            }
        }
        Ok(())
    })?;
    timed(&mut || {
        let mut last = 0;
        for _ in 0..WORKLOADS[5].1 {
            let v = kvs.seq("ids", 1)?;
            if v <= last {
                return Err("etcd section: seq went back".into());
            }
            last = v;
        }
        Ok(())
    })?;
    timed(&mut || {
        for _ in 0..WORKLOADS[6].1 {
            if kvs.count::<User>()? != total {
                return Err("etcd section: count is wrong".into());
            }
        }
        Ok(())
    })?;
    timed(&mut || seq_32t(&kvs))?;
    timed(&mut || put_32t(&kvs, total))?;
    timed(&mut || {
        for id in 1..=WORKLOADS[9].1 {
            kvs.append("feed_1t", &data::msg(id))?;
        }
        check_feed(&kvs, "feed_1t", WORKLOADS[9].1)
    })?;
    timed(&mut || append_32t(&kvs))?;
    timed(&mut || tx_put_32t(&kvs, total + WORKLOADS[8].1))?;
    Ok(secs)
}

/// Runs `f(thread)` on each of `SEQ_THREADS` threads at once; their results, in thread
/// order.
fn on_threads<R: Send>(f: impl Fn(u64) -> kvs::Result<R> + Sync) -> Res<Vec<R>> {
    let f = &f;
    let joined = std::thread::scope(|s| {
        let threads: Vec<_> = (0..SEQ_THREADS).map(|t| s.spawn(move || f(t))).collect();
        threads
            .into_iter()
            .map(|t| t.join().map_err(|_| "etcd section: a thread panicked"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(joined.into_iter().collect::<kvs::Result<Vec<R>>>()?)
}

/// 32 threads on one counter: concurrent calls combine into shared commits.
fn seq_32t(kvs: &Kvs) -> Res<()> {
    let per_thread = WORKLOADS[7].1 / SEQ_THREADS;
    let mut values: Vec<u64> = on_threads(|_| {
        (0..per_thread)
            .map(|_| kvs.seq("hot", 1))
            .collect::<kvs::Result<Vec<u64>>>()
    })?
    .concat();
    values.sort_unstable();
    values.dedup();
    if values.len() as u64 != WORKLOADS[7].1 {
        return Err("etcd section: seq_32t handed out a value twice".into());
    }
    Ok(())
}

/// 32 threads, each putting records of its own (after the `total` loaded), every put its own
/// durable commit: beside `durable_insert` (one thread), what concurrent writers gain.
fn put_32t(kvs: &Kvs, total: u64) -> Res<()> {
    let per_thread = WORKLOADS[8].1 / SEQ_THREADS;
    on_threads(|t| {
        (0..per_thread)
            .try_for_each(|i| kvs.put(&data::user(total + 1 + t * per_thread + i, RECORDS)))
    })?;
    if kvs.count::<User>()? != total + WORKLOADS[8].1 {
        return Err("etcd section: put_32t lost a record".into());
    }
    Ok(())
}

/// 32 threads, each putting records of its own (after the `total` there), every put in a
/// transaction of its own: beside `put_32t`, what a transaction's commit costs under load.
fn tx_put_32t(kvs: &Kvs, total: u64) -> Res<()> {
    let per_thread = WORKLOADS[11].1 / SEQ_THREADS;
    on_threads(|t| {
        (0..per_thread).try_for_each(|i| {
            let user = data::user(total + 1 + t * per_thread + i, RECORDS);
            kvs.transaction(|tx| tx.put(&user))
        })
    })?;
    if kvs.count::<User>()? != total + WORKLOADS[11].1 {
        return Err("etcd section: tx_put_32t lost a record".into());
    }
    Ok(())
}

/// 32 threads appending messages of their own to one feed, every append its own call: on
/// etcd, where one feed's writer is one hot key, concurrent appends batch into shared
/// commits instead of conflicting.
fn append_32t(kvs: &Kvs) -> Res<()> {
    let per_thread = WORKLOADS[10].1 / SEQ_THREADS;
    on_threads(|t| {
        (0..per_thread).try_for_each(|i| kvs.append("feed_32t", &data::msg(1 + t * 1_000 + i)))
    })?;
    check_feed(kvs, "feed_32t", WORKLOADS[10].1)
}

/// Checks that `feed` holds `n` messages.
fn check_feed(kvs: &Kvs, feed: &str, n: u64) -> Res<()> {
    let writer = kvs.writer(feed)?;
    if (writer.count, writer.top) != (n, n) {
        return Err(format!("etcd section: feed {feed} holds {} of {n}", writer.count).into());
    }
    Ok(())
}

/// The database `path` on `cluster`: where the cluster's URL says `PREFIX` (the secured
/// cluster's, whose parameters follow it), there; else appended.
pub fn at(cluster: &str, path: &str) -> String {
    let cluster = cluster.trim_end_matches('/');
    if cluster.contains("/PREFIX") {
        cluster.replacen("/PREFIX", &format!("/{path}"), 1)
    } else {
        format!("{cluster}/{path}")
    }
}

/// Runs the section `repeat` times on fresh databases, alternating etcd and redb (and the
/// secured cluster, `secure`, when given).
pub fn run(cluster: &str, secure: Option<&str>, repeat: usize) -> Res<Vec<Row>> {
    let mut etcd: Vec<Vec<f64>> = vec![Vec::new(); WORKLOADS.len()];
    let mut etcds: Vec<Vec<f64>> = vec![Vec::new(); WORKLOADS.len()];
    let mut redb: Vec<Vec<f64>> = vec![Vec::new(); WORKLOADS.len()];
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for r in 0..repeat {
        let dir = crate::run::scratch(&format!("etcd-section-{r}"))?;
        let file = format!("redb:{}", dir.join("kvs.redb").display());
        // Under `app`, which the secured test cluster's user may use.
        let path = format!("app-kvs-bench/{}-{stamp}-{r}", std::process::id());
        let remote = at(cluster, &path);
        let mut order: Vec<(String, &mut Vec<Vec<f64>>)> =
            vec![(remote, &mut etcd), (file, &mut redb)];
        if let Some(secure) = secure {
            order.push((at(secure, &path), &mut etcds));
        }
        let n = order.len();
        order.rotate_left(r % n);
        for (url, into) in order {
            eprintln!("etcd section, repeat {}: {url}", r + 1);
            for (i, s) in once(&url)?.into_iter().enumerate() {
                into[i].push(s);
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(WORKLOADS
        .iter()
        .zip(etcd.into_iter().zip(redb).zip(etcds))
        .map(|(&(workload, ops), ((e, r), s))| Row {
            workload,
            ops,
            etcd: median(e),
            redb: median(r),
            etcds: (!s.is_empty()).then(|| median(s)),
        })
        .collect())
}

fn per_op(secs: f64, ops: u64) -> Duration {
    Duration::from_secs_f64(secs / ops as f64)
}

/// The section of the markdown report.
pub fn markdown(cluster: &str, rows: &[Row]) -> String {
    let mut s = String::new();
    let secure = rows.iter().any(|r| r.etcds.is_some());
    let _ = writeln!(
        s,
        "\n## kvs on etcd\n\nkvs on a 3-member etcd cluster on loopback (`{cluster}`, started by \
         `scripts/etcd-cluster.sh start`) beside kvs on a redb file, same run, median of the \
         repeats. {RECORDS} users (20 cities of 100) loaded in transactions of {BATCH}; every \
         answer checked. Each etcd call is at least one network round trip and one Raft commit \
         (replicated to a majority and fsynced) per write; the redb figures are durable \
         (fsync) too.{}\n",
        if secure {
            " The `etcds` columns are the same workloads on a second 3-member cluster on \
             loopback run the way production clusters are (`scripts/etcd-cluster.sh start \
             --tls`: TLS on client and peer ports, client certificates required, etcd auth on, \
             kvs connecting as an etcd user with a token): `etcds / etcd` is what TLS and auth \
             cost."
        } else {
            ""
        }
    );
    if secure {
        let _ = writeln!(
            s,
            "| workload | ops | etcd median | etcd per op | redb file per op | etcd / redb | \
             etcds per op | etcds / etcd |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    } else {
        let _ = writeln!(
            s,
            "| workload | ops | etcd median | etcd per op | redb file per op | etcd / redb |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    }
    for r in rows {
        let _ = write!(
            s,
            "| {} | {} | {:.3} s | {:.1?} | {:.1?} | {:.2} |",
            r.workload,
            r.ops,
            r.etcd,
            per_op(r.etcd, r.ops),
            per_op(r.redb, r.ops),
            r.etcd / r.redb
        );
        if let Some(etcds) = r.etcds {
            let _ = write!(s, " {:.1?} | {:.2} |", per_op(etcds, r.ops), etcds / r.etcd);
        }
        s.push('\n');
    }
    let rate = |workload: &str| {
        rows.iter()
            .find(|r| r.workload == workload)
            .map(|r| r.ops as f64 / r.etcd)
    };
    if let (Some(p1), Some(p32), Some(s1), Some(s32), Some(a1), Some(a32)) = (
        rate("durable_insert"),
        rate("put_32t"),
        rate("seq_1t"),
        rate("seq_32t"),
        rate("append_1t"),
        rate("append_32t"),
    ) {
        let _ = writeln!(
            s,
            "\nOn etcd, 32 threads: puts at {:.1}× one thread's rate, `seq` on one counter at \
             {:.1}× one thread's, appends to one feed at {:.1}× one thread's.",
            p32 / p1,
            s32 / s1,
            a32 / a1
        );
    }
    s
}

/// The section of the JSON report: `"etcd": [{"workload", "system", "median_s", "ops_per_s",
/// "ratio_to_kvs_redb"}]`, with `"system": "kvs-etcds"` rows for the secured cluster (and
/// their `"ratio_to_kvs_etcd"`).
pub fn json(rows: &[Row]) -> String {
    let mut items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "    {{\"workload\": \"{}\", \"system\": \"kvs-etcd\", \"median_s\": {:.6}, \
                 \"ops_per_s\": {:.1}, \"ratio_to_kvs_redb\": {:.3}}}",
                r.workload,
                r.etcd,
                r.ops as f64 / r.etcd,
                r.etcd / r.redb
            )
        })
        .collect();
    items.extend(rows.iter().filter_map(|r| {
        let etcds = r.etcds?;
        Some(format!(
            "    {{\"workload\": \"{}\", \"system\": \"kvs-etcds\", \"median_s\": {:.6}, \
             \"ops_per_s\": {:.1}, \"ratio_to_kvs_redb\": {:.3}, \"ratio_to_kvs_etcd\": {:.3}}}",
            r.workload,
            etcds,
            r.ops as f64 / etcds,
            etcds / r.redb,
            etcds / r.etcd
        ))
    }));
    format!("\"etcd\": [\n{}\n  ]", items.join(",\n"))
}
