//! `export` and `import`: JSON lines out of and into any kvs database, in batches of
//! transactions, with a progress bar on a terminal.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::ops::Bound;

use indicatif::{ProgressBar, ProgressStyle};
use kvs::untyped::{Access, CatalogEntry};
use serde_json::{json, Value};

use crate::commands::{emit, open};
use crate::Fail;

fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(n) => (
            ProgressBar::new(n),
            "{msg} [{bar:30}] {human_pos}/{human_len} ({rate}, eta {eta})",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{msg} {spinner} {human_pos} ({rate})",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        // A whole number per second: indicatif's own {per_sec} shows four decimals.
        let style = style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        );
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

pub fn export(url: &str, tables: &[String]) -> Result<(), Fail> {
    let session = open(url, Access::Read)?;
    let stdout = std::io::stdout().lock();
    let mut w = std::io::BufWriter::new(stdout);
    // A failed write (a closed pipe, `| head`) ends the export; kept apart from kvs's errors
    // so that it is told by its kind, not by its message.
    let mut io_error: Option<std::io::Error> = None;
    let result = session.read(|view| {
        let entries = if tables.is_empty() {
            view.entries()?
        } else {
            tables
                .iter()
                .map(|t| view.entry(t))
                .collect::<kvs::Result<_>>()?
        };
        let mut total = 0;
        for e in &entries {
            total += view.count(&e.name)?;
        }
        let bar = progress(Some(total), "export");
        let mut line = |w: &mut std::io::BufWriter<_>, doc: Value| match writeln!(w, "{doc}") {
            Ok(()) => true,
            Err(e) => {
                io_error = Some(e);
                false
            }
        };
        for e in &entries {
            if !line(&mut w, json!({ "catalog": e })) {
                return Ok(());
            }
            let all = (Bound::Unbounded, Bound::Unbounded);
            let mut stopped = false;
            view.scan(e, all, false, &mut |_, record| {
                if !line(&mut w, json!({ "table": e.name, "record": record })) {
                    stopped = true;
                    return Ok(false);
                }
                bar.inc(1);
                Ok(true)
            })?;
            if stopped {
                return Ok(());
            }
        }
        if tables.is_empty() {
            for (name, value) in view.seqs()? {
                if !line(&mut w, json!({ "seq": name, "value": value })) {
                    return Ok(());
                }
            }
        }
        bar.finish();
        Ok::<_, Fail>(())
    });
    result?;
    let flushed = w.flush();
    match io_error.map_or(flushed, Err) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(Fail::from),
    }
}

/// One parsed line of an import.
enum Item {
    Catalog(Box<CatalogEntry>),
    Record(String, Value),
    Seq(String, u64),
}

fn parse_line(line: &str) -> Result<Option<Item>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let expected = "expected {\"table\": NAME, \"record\": {...}}, {\"seq\": NAME, \"value\": N} or {\"catalog\": {...}}";
    let Value::Object(mut map) = value else {
        return Err(expected.to_owned());
    };
    if let Some(entry) = map.remove("catalog") {
        let entry: CatalogEntry =
            serde_json::from_value(entry).map_err(|e| format!("bad catalog entry: {e}"))?;
        return Ok(Some(Item::Catalog(Box::new(entry))));
    }
    if let (Some(Value::String(name)), Some(value)) = (map.get("seq"), map.get("value")) {
        let value = value.as_u64().ok_or("a counter's value must be a u64")?;
        return Ok(Some(Item::Seq(name.clone(), value)));
    }
    match (map.remove("table"), map.remove("record")) {
        (Some(Value::String(table)), Some(record)) => Ok(Some(Item::Record(table, record))),
        _ => Err(expected.to_owned()),
    }
}

#[derive(Default)]
struct Imported {
    records: u64,
    seqs: u64,
    tables_created: Vec<String>,
}

pub fn import(url: &str, json: bool, create: bool, batch: usize) -> Result<(), Fail> {
    let session = open(
        url,
        if create {
            Access::Create
        } else {
            Access::Write
        },
    )?;
    let stdin = std::io::stdin();
    // The total for the progress bar, when stdin is a file.
    let size = std::fs::metadata("/dev/stdin")
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len());
    let bar = progress(size, "import");
    let mut done = Imported::default();
    let mut lines = stdin.lock().lines();
    let mut line_no = 0usize;
    loop {
        let first = line_no + 1;
        let mut items = Vec::with_capacity(batch);
        while items.len() < batch {
            let Some(line) = lines.next() else { break };
            let line = line?;
            line_no += 1;
            bar.inc(line.len() as u64 + 1);
            let item =
                parse_line(&line).map_err(|why| batch_failure(line_no, &why, first, &done))?;
            if let Some(item) = item {
                items.push((line_no, item));
            }
        }
        if items.is_empty() {
            break;
        }
        let created = session
            .write(|edit| {
                let mut entries: HashMap<String, CatalogEntry> = HashMap::new();
                let mut created = Vec::new();
                let mut counts = (0u64, 0u64);
                for (n, item) in &items {
                    let at = |e: kvs::Error| Fail::new(format!("line {n}: {e}"));
                    match item {
                        Item::Catalog(entry) => {
                            let existed = edit.view().entries().map_err(at)?;
                            let effective = edit.ensure_table(entry).map_err(at)?;
                            if !existed.iter().any(|e| e.name == entry.name) {
                                created.push(entry.name.clone());
                            }
                            entries.insert(entry.name.clone(), effective);
                        }
                        Item::Record(table, record) => {
                            if !entries.contains_key(table) {
                                let entry = edit.view().entry(table).map_err(at)?;
                                entries.insert(table.clone(), entry);
                            }
                            edit.put(&entries[table], record).map_err(at)?;
                            counts.0 += 1;
                        }
                        Item::Seq(name, value) => {
                            edit.raise_seq(name, *value).map_err(at)?;
                            counts.1 += 1;
                        }
                    }
                }
                Ok::<_, Fail>((counts, created))
            })
            .map_err(|e| {
                Fail::new(format!(
                    "{e} (nothing of lines {first}-{line_no} was written{})",
                    before(first, &done)
                ))
            })?;
        done.records += created.0 .0;
        done.seqs += created.0 .1;
        done.tables_created.extend(created.1);
    }
    bar.finish();
    emit(
        json,
        &json!({"records": done.records, "seqs": done.seqs, "tables_created": done.tables_created}),
        || {
            let mut text = format!(
                "imported {} records and {} counters",
                done.records, done.seqs
            );
            if !done.tables_created.is_empty() {
                let _ = write!(text, "; created {}", done.tables_created.join(", "));
            }
            text
        },
    )
}

fn before(first: usize, done: &Imported) -> String {
    if first > 1 {
        format!(
            "; lines before {first} were imported: {} records, {} counters",
            done.records, done.seqs
        )
    } else {
        String::new()
    }
}

fn batch_failure(line: usize, why: &str, first: usize, done: &Imported) -> Fail {
    Fail::new(format!(
        "line {line}: {why} (nothing of lines {first}-{line} was written{})",
        before(first, done)
    ))
}
