//! `kvs-bench`: kvs side by side with raw redb, `native_db` and `SQLite`, on the same records and
//! workloads, in the same run.
//!
//! ```text
//! cargo run -p kvs-bench --release -- [--records N] [--repeat R] [--out docs/BENCHMARKS.md]
//!     [--json docs/benchmarks.json] [--scaling 10000,100000,1000000|none] [--systems a,b]
//!     [--etcd etcd://HOST:PORT,...] [--etcds 'etcds://HOST:PORT,.../PREFIX?ca=...&user=...']
//! ```
//!
//! With `--etcd`, a section compares kvs on that etcd cluster with kvs on a redb file
//! (`scripts/etcd-cluster.sh start` makes a 3-member cluster on loopback); `--etcds` adds a
//! secured cluster to that section (`scripts/etcd-cluster.sh start --tls`, whose `url`
//! prints the URL to give, and `env` the `KVS_ETCD_PASSWORD` to export). An async section
//! always runs: `AsyncKvs` beside the sync `Kvs` on a redb file, and on the cluster with
//! `--etcd`; so does a concurrent section: 1, 8 and 32 threads each calling `seq` and a
//! durable `put`, on kvs, raw redb and `SQLite`.
//!
//! Defaults: 100,000 records, 3 repeats, the scaling table at 10k, 100k and 1M records, all
//! five systems (`kvs`, `kvs-mem`, `redb`, `native_db`, `sqlite`); the markdown goes to
//! `docs/BENCHMARKS.md`, the chart beside it (`benchmarks.svg`) and the JSON to
//! `docs/benchmarks.json`. A progress line per workload goes to stderr. With the defaults a
//! run took 54 to 195 seconds on a shared 2-core machine.
//!
//! Each system runs every workload on a fresh database in the temporary directory (the read
//! workloads in rounds, every system's run right after the others'); every answer is checked (counts, keys, hits per lookup, index exactness after updates) and a
//! wrong one stops the run. The report gives the median of the repeats and its ratio to raw
//! redb; `docs/BENCHMARKS.md` explains the workloads.
#![forbid(unsafe_code)]
// Timings and counts become floats for ratios and rates; precision far exceeds what we print.
#![allow(clippy::cast_precision_loss)]

mod async_api;
mod concurrent;
mod data;
mod etcd;
mod report;
mod run;
mod systems;

use std::path::{Path, PathBuf};

use systems::{Res, SYSTEMS};

/// The report's notes: how kvs stands, and why, written from a run with the defaults.
const NOTES: &str = include_str!("../NOTES.md");

struct Args {
    records: u64,
    repeat: usize,
    out: PathBuf,
    json: PathBuf,
    scaling: Vec<u64>,
    systems: Vec<&'static str>,
    etcd: Option<String>,
    etcds: Option<String>,
}

const USAGE: &str =
    "usage: kvs-bench [--records N] [--repeat R] [--out FILE.md] [--json FILE.json] \
                     [--scaling N,N,...|none] [--systems kvs,kvs-mem,redb,native_db,sqlite] \
                     [--etcd etcd://HOST:PORT,...] [--etcds etcds://HOST:PORT,.../PREFIX?...]";

fn parse(args: &[String]) -> Res<Args> {
    let mut a = Args {
        records: 100_000,
        repeat: 3,
        out: PathBuf::from("docs/BENCHMARKS.md"),
        json: PathBuf::from("docs/benchmarks.json"),
        scaling: vec![10_000, 100_000, 1_000_000],
        systems: SYSTEMS.to_vec(),
        etcd: None,
        etcds: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--records" => a.records = value.replace('_', "").parse()?,
            "--repeat" => a.repeat = value.parse()?,
            "--out" => a.out = PathBuf::from(value),
            "--etcd" => a.etcd = Some(value.clone()),
            "--etcds" => a.etcds = Some(value.clone()),
            "--json" => a.json = PathBuf::from(value),
            "--scaling" if value == "none" => a.scaling.clear(),
            "--scaling" => {
                a.scaling = value
                    .split(',')
                    .map(|v| v.replace('_', "").parse())
                    .collect::<Result<_, _>>()?;
            }
            "--systems" => {
                a.systems = value
                    .split(',')
                    .map(|v| {
                        SYSTEMS
                            .iter()
                            .copied()
                            .find(|s| *s == v)
                            .ok_or_else(|| format!("unknown system {v}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    if a.etcds.is_some() && a.etcd.is_none() {
        return Err("--etcds joins the etcd section: give --etcd too".into());
    }
    if a.records < 1_000 || a.repeat == 0 {
        return Err("--records must be at least 1000 and --repeat at least 1".into());
    }
    Ok(a)
}

fn write(path: &Path, text: &str) -> Res<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("kvs-bench: {e}");
        std::process::exit(1);
    }
}

fn run(raw: &[String]) -> Res<()> {
    let args = parse(raw)?;
    let started = std::time::Instant::now();
    let results = run::main_runs(args.records, args.repeat, &args.systems)?;
    let scaling = run::scaling(&args.scaling)?;
    let etcd = match &args.etcd {
        Some(cluster) => Some((
            cluster.as_str(),
            etcd::run(cluster, args.etcds.as_deref(), args.repeat)?,
        )),
        None => None,
    };
    let asynchronous = async_api::run(args.etcd.as_deref(), args.repeat)?;
    let concurrent = concurrent::run(args.repeat)?;
    let mut command = "cargo run -p kvs-bench --release".to_owned();
    if !raw.is_empty() {
        command.push_str(" -- ");
        command.push_str(&raw.join(" "));
    }
    let machine = report::Machine::read(command, args.records, args.repeat);
    let mut md = report::markdown(&machine, &results, &scaling, NOTES);
    let mut json = report::json(&machine, &results, &scaling);
    // The etcd and async rows join the JSON document as more top-level keys.
    let mut extra = |key_and_rows: String| {
        let end = json.trim_end().len() - 1;
        json = format!("{},\n  {key_and_rows}\n}}\n", json[..end].trim_end());
    };
    if let Some((cluster, rows)) = &etcd {
        md.push_str(&etcd::markdown(cluster, rows));
        extra(etcd::json(rows));
    }
    md.push_str(&async_api::markdown(&asynchronous));
    extra(async_api::json(&asynchronous));
    md.push_str(&concurrent::markdown(&concurrent));
    extra(concurrent::json(&concurrent));
    write(&args.out, &md)?;
    write(
        &args.out.with_file_name("benchmarks.svg"),
        &report::svg(&results),
    )?;
    write(&args.json, &json)?;
    eprintln!(
        "done in {:.0} s, peak memory {} MiB",
        started.elapsed().as_secs_f64(),
        machine.peak_kib / 1024
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_on_kvs_mem_passes_its_checks_and_reports() {
        let results = run::main_runs(1_000, 1, &["kvs-mem"]).unwrap();
        assert_eq!(results.timings.len(), run::WORKLOADS.len());
        // A read row holds a run per round; a write row one per repeat.
        let runs = |w: &str| {
            let t = results.timings.iter().find(|t| t.workload == w).unwrap();
            t.secs.len()
        };
        assert_eq!(runs("iter_page"), run::READ_ROUNDS);
        assert_eq!(runs("count"), run::READ_ROUNDS);
        assert_eq!(runs("bulk_insert"), 1);
        assert_eq!(runs("delete"), 1);
        let machine = report::Machine::read("test".to_owned(), 1_000, 1);
        let json = report::json(&machine, &results, &[]);
        for key in [
            "\"machine\"",
            "\"results\"",
            "\"workload\": \"take20\"",
            "\"workload\": \"index_range\"",
            "\"workload\": \"iter_page\"",
            "\"workload\": \"scan_all\"",
            "\"system\": \"kvs-mem\"",
            "\"ratio_to_redb\": null",
        ] {
            assert!(json.contains(key), "{key} missing from {json}");
        }
        let md = report::markdown(&machine, &results, &[], "");
        assert!(md.contains("| bulk_insert |"));
        assert!(report::svg(&results).starts_with("<svg"));
    }

    #[test]
    fn every_system_gives_the_same_range_page_and_scan_answers() {
        let n = 1_000;
        let inputs = data::Inputs::new(n);
        assert_eq!(inputs.range_hits.0, data::RANGES as u64 * 100);
        let newest: u64 = (n - 49..=n).sum();
        for system in SYSTEMS {
            let dir = run::scratch(&format!("answers-{system}")).unwrap();
            let mut sys = systems::open(system, &dir).unwrap();
            sys.prepare(&inputs);
            sys.bulk_insert(&inputs.bulk).unwrap();
            assert_eq!(
                sys.index_range(&inputs.ranges).unwrap(),
                inputs.range_hits,
                "{system}"
            );
            assert_eq!(sys.iter_page(10, 50).unwrap(), 10 * newest, "{system}");
            assert_eq!(sys.scan_all().unwrap(), (n, n * (n + 1) / 2), "{system}");
            // A range over the top score and past it, one past every score, an empty one.
            let top = data::scores(n) - 1;
            let holders: Vec<u64> = (1..=n).filter(|id| data::score(*id, n) == top).collect();
            assert_eq!(
                sys.index_range(&[(top, top + 5), (top + 1, top + 10), (5, 5)])
                    .unwrap(),
                (holders.len() as u64, holders.iter().sum()),
                "{system}"
            );
            drop(sys);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn walks_refuse_records_out_of_order() {
        let mut up = systems::Walk::ascending();
        up.step(1, 5).unwrap();
        up.step(1, 6).unwrap();
        up.step(2, 1).unwrap();
        assert!(up.step(2, 1).is_err());
        assert!(up.step(1, 9).is_err());
        let mut down = systems::Walk::descending();
        down.step(0, 9).unwrap();
        down.step(0, 8).unwrap();
        assert!(down.step(0, 8).is_err());
        assert!(down.step(0, 10).is_err());
        assert_eq!((up.n, up.key_sum, down.n, down.key_sum), (3, 12, 2, 17));
    }

    #[test]
    fn arguments_parse() {
        let args: Vec<String> = [
            "--records",
            "10_000",
            "--scaling",
            "none",
            "--systems",
            "kvs,redb",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let a = parse(&args).unwrap();
        assert_eq!((a.records, a.repeat), (10_000, 3));
        assert!(a.scaling.is_empty());
        assert_eq!(a.systems, ["kvs", "redb"]);
        assert!(parse(&["--records".to_owned()]).is_err());
        assert!(parse(&["--systems".to_owned(), "mysql".to_owned()]).is_err());
    }

    #[test]
    fn median_of_odd_and_even_repeats() {
        let t = |secs: Vec<f64>| run::Timing {
            workload: "get",
            system: "kvs",
            ops: 1,
            secs,
        };
        assert!((t(vec![3.0, 1.0, 2.0]).median() - 2.0).abs() < 1e-12);
        assert!((t(vec![4.0, 1.0, 2.0, 3.0]).median() - 2.5).abs() < 1e-12);
    }
}
