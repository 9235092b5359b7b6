//! The report: the machine, a markdown table, JSON for scripts, and an SVG chart.

use std::fmt::Write as _;

use crate::run::{Results, Scaled, Timing, READ_ROUNDS, WORKLOADS};
use crate::systems::SYSTEMS;

/// What the report says about the machine and the run.
pub struct Machine {
    /// The CPU model, from /proc/cpuinfo.
    pub cpu: String,
    /// Logical cores.
    pub cores: usize,
    /// The kernel, from /proc/sys/kernel/osrelease.
    pub os: String,
    /// Peak resident memory of the whole run (`VmHWM`), in KiB.
    pub peak_kib: u64,
    /// The command that made the report.
    pub command: String,
    /// Records of the main workloads.
    pub records: u64,
    /// Repeats.
    pub repeat: usize,
    /// Versions of the systems.
    pub versions: Vec<(&'static str, String)>,
}

impl Machine {
    /// Reads the machine's description.
    pub fn read(command: String, records: u64, repeat: usize) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            os: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |s| format!("Linux {}", s.trim())),
            peak_kib: peak_kib(),
            command,
            records,
            repeat,
            versions: vec![
                ("kvs", env!("CARGO_PKG_VERSION").to_owned()),
                ("redb", kvs::redb::REDB_VERSION.to_owned()),
                ("native_db", "0.8.2 (on redb 2)".to_owned()),
                (
                    "sqlite",
                    format!("{} (rusqlite 0.37, bundled)", rusqlite::version()),
                ),
            ],
        }
    }
}

/// Peak resident memory of this process so far (`VmHWM` from `/proc/self/status`), in KiB.
pub fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn find<'a>(timings: &'a [Timing], workload: &str, system: &str) -> Option<&'a Timing> {
    timings
        .iter()
        .find(|t| t.workload == workload && t.system == system)
}

/// The median time of `t` divided by raw redb's on the same workload.
pub fn ratio(timings: &[Timing], t: &Timing) -> Option<f64> {
    let base = find(timings, t.workload, "redb")?;
    Some(t.median() / base.median())
}

fn fmt_rate(ops_per_s: f64) -> String {
    if ops_per_s >= 1e6 {
        format!("{:.2}M", ops_per_s / 1e6)
    } else if ops_per_s >= 1e3 {
        format!("{:.1}k", ops_per_s / 1e3)
    } else {
        format!("{ops_per_s:.0}")
    }
}

fn fmt_secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

/// What each workload does, for the report.
fn describe(workload: &str, n: u64) -> String {
    match workload {
        "bulk_insert" => format!("{n} inserts, one transaction"),
        "durable_insert" => "1,000 inserts, one durable commit each".to_owned(),
        "get" => format!("{n} random gets by key, one read transaction each"),
        "unique_lookup" => "10,000 lookups in the unique index (1 hit each)".to_owned(),
        "index_lookup" => "10,000 lookups in the non-unique index (~100 hits each)".to_owned(),
        "index_range" => {
            "1,000 ranges of the integer index (~100 hits each), one read transaction each"
                .to_owned()
        }
        "iter_page" => "10,000 reads of the newest 50 records by key, newest first".to_owned(),
        "scan_all" => format!("one lazy pass over all {n} records in key order (ops = records)"),
        "indexed_update" => "10,000 replacements that change the city, one transaction".to_owned(),
        "delete" => format!("{} deletes, one transaction", n / 10),
        "count" => "10,000 counts, one read transaction each".to_owned(),
        "seq" => "100,000 counter increments, one transaction".to_owned(),
        "seq_durable" => "1,000 counter increments, one durable commit each".to_owned(),
        "append" => "10,000 appends to a feed, one transaction".to_owned(),
        "take20" => "500 pages of 20 through that feed, one read transaction each".to_owned(),
        "remove" => "1,000 removes from the feed, one transaction".to_owned(),
        _ => String::new(),
    }
}

/// The markdown report.
#[allow(clippy::too_many_lines)] // one section after the other
#[allow(clippy::many_single_char_names)] // m(achine), t(imings), s(tring): local shorthands
pub fn markdown(m: &Machine, results: &Results, scaling: &[Scaled], notes: &str) -> String {
    let t = &results.timings;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Benchmarks: kvs beside raw redb, native_db and SQLite\n"
    );
    let _ = writeln!(
        s,
        "Made by `{}` on {} ({} cores), {}. Median of {} repeats, the systems' order \
         alternating between repeats; the read rows are the median of {} runs ({} rounds a \
         repeat, in which every system runs the workload right after the others); {} records of a `User` (u64 key, unique indexed `email`, \
         indexed `city` with about 100 records per city, indexed integer `score` with about \
         10 records per value, and a name). Peak memory of the \
         whole run: {} MiB.\n",
        m.command,
        m.cpu,
        m.cores,
        m.os,
        m.repeat,
        m.repeat * READ_ROUNDS,
        READ_ROUNDS,
        m.records,
        m.peak_kib / 1024
    );
    let versions: Vec<String> = m.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(s, "Versions: {}.\n", versions.join(", "));
    let _ = writeln!(
        s,
        "Systems: `kvs` (a redb file), `kvs-mem` (`mem:`), `redb` (raw redb {}, \
         hand-written tables and index tables, bincode records: the floor for any layer over \
         redb), `native_db` 0.8.2, `sqlite` (WAL, `synchronous=FULL`, real indexes). Every \
         commit is durable (fsync) on every file-backed system. Every answer is checked \
         (counts, keys, hits per lookup and per range, the order of ranges, pages and scans, \
         index exactness after the updates) before its time counts.\n",
        kvs::redb::REDB_VERSION
    );
    let _ = writeln!(s, "![ratios to raw redb](benchmarks.svg)\n");
    let _ = writeln!(s, "## Time relative to raw redb (lower is faster)\n");
    let _ = writeln!(s, "| workload | {} |", SYSTEMS.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(SYSTEMS.len()));
    for w in WORKLOADS {
        let mut row = format!("| {w} |");
        for sys in SYSTEMS {
            match find(t, w, sys) {
                Some(x) => match ratio(t, x) {
                    Some(r) => {
                        let _ = write!(row, " {r:.2}× |");
                    }
                    None => row.push_str(" n/a |"),
                },
                None => row.push_str(" — |"),
            }
        }
        let _ = writeln!(s, "{row}");
    }
    let _ = writeln!(s, "\n## Median time and throughput\n");
    let _ = writeln!(
        s,
        "Each cell: median time · operations per second · the spread of its runs (the \
         largest distance from the median, relative to it): the machine's noise.\n"
    );
    let _ = writeln!(s, "| workload | what | {} |", SYSTEMS.join(" | "));
    let _ = writeln!(s, "|---|---|{}", "---:|".repeat(SYSTEMS.len()));
    for w in WORKLOADS {
        let mut row = format!("| {w} | {} |", describe(w, m.records));
        for sys in SYSTEMS {
            match find(t, w, sys) {
                Some(x) => {
                    let med = x.median();
                    let _ = write!(
                        row,
                        " {} · {}/s · ±{:.0}% |",
                        fmt_secs(med),
                        fmt_rate(x.ops as f64 / med),
                        x.spread() * 100.0
                    );
                }
                None => row.push_str(" — |"),
            }
        }
        let _ = writeln!(s, "{row}");
    }
    let _ = writeln!(s, "\n## Database size after the bulk load\n");
    let _ = writeln!(s, "| system | bytes | per record |");
    let _ = writeln!(s, "|---|---:|---:|");
    for (sys, size) in &results.file_sizes {
        match size {
            Some(b) => {
                let _ = writeln!(
                    s,
                    "| {sys} | {b} ({:.1} MiB) | {:.0} B |",
                    *b as f64 / 1_048_576.0,
                    *b as f64 / m.records as f64
                );
            }
            None => {
                let _ = writeln!(s, "| {sys} | in memory | — |");
            }
        }
    }
    if !scaling.is_empty() {
        let _ = writeln!(s, "\n## Scaling: cost per operation as the table grows\n");
        let _ = writeln!(
            s,
            "One run per size, on files. `get`: 10,000 random gets; `index_lookup`: 1,000 \
             lookups of ~100 hits; `count`: 10,000 counts; `take20`: pages of 20 from the \
             middle of a feed of that many elements (half the feed, at most 25,000 pages). \
             Microseconds per operation.\n"
        );
        let mut sizes: Vec<(&str, u64)> = Vec::new();
        for x in scaling {
            if !sizes.contains(&(x.workload, x.n)) {
                sizes.push((x.workload, x.n));
            }
        }
        let _ = writeln!(s, "| workload | n | kvs µs/op | redb µs/op | kvs / redb |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        for (w, n) in sizes {
            let get = |sys: &str| {
                scaling
                    .iter()
                    .find(|x| x.workload == w && x.n == n && x.system == sys)
                    .map(|x| x.us_per_op)
            };
            if let (Some(k), Some(r)) = (get("kvs"), get("redb")) {
                let _ = writeln!(s, "| {w} | {n} | {k:.2} | {r:.2} | {:.2}× |", k / r);
            }
        }
    }
    s.push_str(notes);
    s
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.9}")
    } else {
        "null".to_owned()
    }
}

/// The JSON report: `{"machine": {...}, "results": [...], "scaling": [...], "file_sizes": [...]}`.
pub fn json(m: &Machine, results: &Results, scaling: &[Scaled]) -> String {
    let mut s = String::from("{\n  \"machine\": {");
    let _ = write!(
        s,
        "\"cpu\": {}, \"cores\": {}, \"os\": {}, \"peak_memory_kib\": {}, \"command\": {}, \
         \"records\": {}, \"repeat\": {}, \"versions\": {{",
        json_str(&m.cpu),
        m.cores,
        json_str(&m.os),
        m.peak_kib,
        json_str(&m.command),
        m.records,
        m.repeat
    );
    let versions: Vec<String> = m
        .versions
        .iter()
        .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
        .collect();
    let _ = write!(s, "{}}}}},\n  \"results\": [\n", versions.join(", "));
    let rows: Vec<String> = results
        .timings
        .iter()
        .map(|t| {
            let med = t.median();
            format!(
                "    {{\"workload\": {}, \"system\": {}, \"median_s\": {}, \"ops_per_s\": {}, \"ratio_to_redb\": {}, \"ops\": {}}}",
                json_str(t.workload),
                json_str(t.system),
                json_num(med),
                json_num(t.ops as f64 / med),
                ratio(&results.timings, t).map_or_else(|| "null".to_owned(), json_num),
                t.ops
            )
        })
        .collect();
    s.push_str(&rows.join(",\n"));
    s.push_str("\n  ],\n  \"scaling\": [\n");
    let rows: Vec<String> = scaling
        .iter()
        .map(|x| {
            format!(
                "    {{\"workload\": {}, \"system\": {}, \"n\": {}, \"us_per_op\": {}}}",
                json_str(x.workload),
                json_str(x.system),
                x.n,
                json_num(x.us_per_op)
            )
        })
        .collect();
    s.push_str(&rows.join(",\n"));
    s.push_str("\n  ],\n  \"file_sizes\": [\n");
    let rows: Vec<String> = results
        .file_sizes
        .iter()
        .map(|(sys, b)| {
            format!(
                "    {{\"system\": {}, \"bytes\": {}}}",
                json_str(sys),
                b.map_or_else(|| "null".to_owned(), |b| b.to_string())
            )
        })
        .collect();
    s.push_str(&rows.join(",\n"));
    s.push_str("\n  ]\n}\n");
    s
}

/// A bar chart of the ratios to raw redb, on a log scale from 1/8× to 64×.
#[allow(clippy::many_single_char_names)] // x(position), t(imings), s(tring): local shorthands
pub fn svg(results: &Results) -> String {
    let t = &results.timings;
    let systems: Vec<&str> = SYSTEMS.iter().copied().filter(|s| *s != "redb").collect();
    let colors = ["#2b6cb0", "#63b3ed", "#dd6b20", "#38a169"];
    let (left, width, bar, gap) = (130.0, 560.0, 9.0, 8.0);
    let (lo, hi) = (0.125f64.log2(), 64f64.log2());
    let x = |r: f64| left + (r.clamp(0.125, 64.0).log2() - lo) / (hi - lo) * width;
    let group = bar * systems.len() as f64 + gap;
    let top = 40.0;
    let height = top + group * WORKLOADS.len() as f64 + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="11">"#,
        w = left + width + 120.0
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{left}" y="16" font-size="13">Time relative to raw redb (log scale; left of 1× is faster than raw redb)</text>"#
    );
    for tick in [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0] {
        let xt = x(tick);
        let stroke = if (tick - 1.0f64).abs() < 1e-9 {
            "#000"
        } else {
            "#ddd"
        };
        let _ = writeln!(
            s,
            r#"<line x1="{xt:.1}" y1="{top}" x2="{xt:.1}" y2="{:.1}" stroke="{stroke}"/><text x="{xt:.1}" y="{:.1}" text-anchor="middle">{tick}×</text>"#,
            height - 35.0,
            height - 22.0
        );
    }
    for (i, w) in WORKLOADS.iter().enumerate() {
        let y0 = top + group * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{w}</text>"#,
            left - 6.0,
            y0 + group / 2.0
        );
        for (j, sys) in systems.iter().enumerate() {
            let Some(r) = find(t, w, sys).and_then(|x| ratio(t, x)) else {
                continue;
            };
            let y = y0 + bar * j as f64;
            let (a, b) = (x(1.0).min(x(r)), x(1.0).max(x(r)));
            let _ = writeln!(
                s,
                r#"<rect x="{a:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{sys} {w}: {r:.2}×</title></rect>"#,
                (b - a).max(1.0),
                bar - 1.0,
                colors[j]
            );
        }
    }
    for (j, sys) in systems.iter().enumerate() {
        let y = top + 12.0 * j as f64;
        let lx = left + width + 15.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.1}" y="{y:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}">{sys}</text>"#,
            colors[j],
            lx + 14.0,
            y + 9.0
        );
    }
    s.push_str("</svg>\n");
    s
}
