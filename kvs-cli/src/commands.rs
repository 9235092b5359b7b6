//! The commands: each opens the database as it needs (read-only unless it writes), does its
//! work in one transaction through kvs's untyped session, and prints one result. What a
//! command does to the data is kvs-core's; this file parses, renders and reports.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::ops::Bound;

use indicatif::{ProgressBar, ProgressStyle};
use kvs::untyped::{index_of, key_to_json, Access, CatalogEntry, Session};
use serde_json::{json, Value};

use crate::show;
use crate::value::encode_text;
use crate::{Command, Fail};

/// Opens the database at `url`, with a console's message for a write command on a database
/// that does not exist.
pub fn open(url: &str, access: Access) -> Result<Session, Fail> {
    match Session::open(url, access) {
        Err(kvs::Error::Missing { location }) if access != Access::Read => Err(Fail::new(format!(
            "{location} does not exist (`kvs import --create` makes a new database)"
        ))),
        other => Ok(other?),
    }
}

/// Runs one command against the database at `url`.
// One arm per command, each short; the long ones call their own function.
#[allow(clippy::too_many_lines)]
pub fn run(url: &str, json: bool, command: &Command) -> Result<(), Fail> {
    match command {
        Command::Dir => dir(url, json),
        Command::Ver => ver(url, json),
        Command::Dump => dump(url, json),
        Command::Count {
            table,
            field,
            value,
        } => {
            let n = open(url, Access::Read)?.read(|view| match (field, value) {
                (Some(field), Some(value)) => {
                    let entry = view.entry(table)?;
                    let ix = index_of(&entry, field)?;
                    let value =
                        encode_text(value, &ix.value_type, &format!("value for {table}.{field}"))?;
                    Ok::<_, Fail>(view.index_count(ix, &value)?)
                }
                (Some(field), None) => Err(Fail::new(format!(
                    "count {table} {field} needs a VALUE: the records of {table} whose {field} equals it"
                ))),
                _ => Ok(view.count(table)?),
            })?;
            emit(json, &json!(n), || n.to_string())
        }
        Command::Get { table, key } => {
            let record = open(url, Access::Read)?.read(|view| {
                let entry = view.entry(table)?;
                let key_bytes = encode_text(key, &entry.key_type, &format!("key for {table}"))?;
                view.get(&entry, &key_bytes)?.ok_or_else(|| {
                    Fail::from(kvs::Error::NotFound {
                        table: table.clone(),
                        key: entry.key_type.render(&key_bytes),
                    })
                })
            })?;
            emit(json, &record, || show::pretty(&record))
        }
        Command::Index {
            table,
            field,
            value,
            from,
            to,
            limit,
            back,
        } => open(url, Access::Read)?.read(|view| {
            let entry = view.entry(table)?;
            let ix = index_of(&entry, field)?;
            let what = format!("value for {table}.{field}");
            let parse = |text: &Option<String>| {
                text.as_deref()
                    .map(|t| encode_text(t, &ix.value_type, &what))
                    .transpose()
            };
            let mut listing = Listing::new(json, &entry.fields, limit.unwrap_or(usize::MAX));
            if let Some(value) = parse(value)? {
                let mut records = view.index(&entry, ix, &value)?;
                if *back {
                    records.reverse();
                }
                for record in records {
                    if !listing.push(record)? {
                        break;
                    }
                }
            } else {
                let (from, to) = (parse(from)?, parse(to)?);
                let mut failed = None;
                view.index_range(
                    &entry,
                    ix,
                    from.as_deref(),
                    to.as_deref(),
                    *back,
                    &mut |r| {
                        listing.push(r).or_else(|e| {
                            failed = Some(e);
                            Ok(false)
                        })
                    },
                )?;
                if let Some(e) = failed {
                    return Err(e);
                }
            }
            listing.finish()
        }),
        Command::All {
            table,
            limit,
            from,
            back,
        } => open(url, Access::Read)?.read(|view| {
            let entry = view.entry(table)?;
            let from = from
                .as_deref()
                .map(|k| encode_text(k, &entry.key_type, &format!("key for {table}")))
                .transpose()?;
            let mut listing = Listing::new(json, &entry.fields, limit.unwrap_or(usize::MAX));
            let bound = from.as_deref().map_or(Bound::Unbounded, Bound::Included);
            let range = if *back {
                (Bound::Unbounded, bound)
            } else {
                (bound, Bound::Unbounded)
            };
            let mut failed = None;
            view.scan(&entry, range, *back, &mut |_, record| {
                listing.push(record).or_else(|e| {
                    failed = Some(e);
                    Ok(false)
                })
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            listing.finish()
        }),
        Command::Seq { name, incr } => {
            let value = if *incr == 0 {
                open(url, Access::Read)?.read(|view| view.seq(name))?
            } else {
                open(url, Access::Write)?.write(|edit| edit.seq(name, *incr))?
            };
            emit(json, &json!(value), || value.to_string())
        }
        Command::Delete { table, key } => {
            let (deleted, shown) = open(url, Access::Write)?.write(|edit| {
                let entry = edit.view().entry(table)?;
                let key_bytes = encode_text(key, &entry.key_type, &format!("key for {table}"))?;
                Ok::<_, Fail>((
                    edit.delete(&entry, &key_bytes)?,
                    entry.key_type.render(&key_bytes),
                ))
            })?;
            emit(json, &json!({ "deleted": deleted }), || {
                if deleted {
                    format!("deleted {table} {shown}")
                } else {
                    format!("no record {shown} in {table}: nothing deleted")
                }
            })
        }
        Command::Export { tables } => export(url, tables),
        Command::Import { create, batch } => import(url, json, *create, (*batch).max(1)),
        Command::Check { repair } => check(url, json, *repair),
        Command::Feed { name, limit, back } => feed(url, json, name, *limit, *back),
        Command::Writers => writers(url, json),
    }
}

/// Writes `text` and a newline to stdout; a closed pipe (`| head`) ends the output quietly.
pub fn out(text: &str) -> Result<(), Fail> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn emit(json: bool, doc: &Value, text: impl FnOnce() -> String) -> Result<(), Fail> {
    if json {
        out(&doc.to_string())
    } else {
        out(&text())
    }
}

/// Records printed as they are read, so that a listing of a large table starts at once and
/// holds one page in memory: `--json` as one array written element by element, otherwise
/// aligned tables of up to a page of rows each.
struct Listing<'f> {
    json: bool,
    fields: &'f [String],
    limit: usize,
    count: usize,
    page: Vec<Value>,
}

/// Rows per aligned table when a listing goes on.
const LISTING_PAGE: usize = 500;

impl<'f> Listing<'f> {
    fn new(json: bool, fields: &'f [String], limit: usize) -> Self {
        Listing {
            json,
            fields,
            limit,
            count: 0,
            page: Vec::new(),
        }
    }

    /// Prints (or buffers) one record; returns whether the listing wants more.
    fn push(&mut self, record: Value) -> Result<bool, Fail> {
        if self.count >= self.limit {
            return Ok(false);
        }
        if self.json {
            write_out(if self.count == 0 { "[" } else { "," })?;
            write_out(&record.to_string())?;
        } else {
            self.page.push(record);
            if self.page.len() == LISTING_PAGE {
                let text = show::table_of(self.fields, &self.page);
                write_out(&text)?;
                self.page.clear();
            }
        }
        self.count += 1;
        Ok(self.count < self.limit)
    }

    fn finish(mut self) -> Result<(), Fail> {
        if self.json {
            return out(if self.count == 0 { "[]" } else { "]" });
        }
        let mut text = show::table_of(self.fields, &self.page);
        self.page.clear();
        let n = self.count;
        let _ = write!(text, "({n} record{})", if n == 1 { "" } else { "s" });
        out(&text)
    }
}

/// Writes `text` to stdout without a newline; a closed pipe ends the output quietly.
fn write_out(text: &str) -> Result<(), Fail> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn records_out(json: bool, entry: &CatalogEntry, records: Vec<Value>) -> Result<(), Fail> {
    if json {
        out(&Value::Array(records).to_string())
    } else {
        out(&show::records(&entry.fields, &records))
    }
}

fn dir(url: &str, json: bool) -> Result<(), Fail> {
    let entries = open(url, Access::Read)?.dir()?;
    if json {
        // The catalog entries as stored: export writes the same form.
        return out(&serde_json::to_string(&entries).map_err(|e| Fail::new(e.to_string()))?);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let indexes: Vec<String> = e
                .indexes
                .iter()
                .map(|ix| {
                    format!(
                        "{}{}: {}",
                        if ix.unique { "unique " } else { "" },
                        ix.field,
                        ix.value_type
                    )
                })
                .collect();
            vec![
                e.name.clone(),
                e.schema.clone(),
                format!("{}: {}", e.key_field, e.key_type),
                if indexes.is_empty() {
                    "-".to_owned()
                } else {
                    indexes.join(", ")
                },
                e.rust_type.clone(),
            ]
        })
        .collect();
    out(show::table(&["NAME", "SCHEMA", "KEY", "INDEXES", "TYPE"], &rows).trim_end())
}

fn ver(url: &str, json: bool) -> Result<(), Fail> {
    let session = open(url, Access::Read)?;
    let header = session
        .read(|view| view.header())?
        .ok_or_else(|| Fail::new("no kvs header"))?;
    let info = session.info();
    let console = env!("CARGO_PKG_VERSION");
    emit(
        json,
        &json!({
            "kvs": console,
            "format": header.format,
            "created_by": header.created_by,
            "backend": {"engine": info.engine, "version": info.version, "storage": info.storage, "location": info.location},
        }),
        || {
            format!(
                "kvs console {console}; database format {} (created by {}) on {} {} at {}",
                header.format, header.created_by, info.engine, info.version, info.location
            )
        },
    )
}

fn dump(url: &str, json: bool) -> Result<(), Fail> {
    let dump = open(url, Access::Read)?.dump()?;
    let info = &dump.backend;
    if json {
        let rows: Vec<Value> = dump
            .rows
            .iter()
            .map(|r| {
                json!({"name": r.name, "storage": r.storage, "type": r.kind, "bytes": r.bytes, "elements": r.elements})
            })
            .collect();
        return out(
            &json!({
                "backend": {"engine": info.engine, "version": info.version, "storage": info.storage, "location": info.location},
                "rows": rows,
            })
            .to_string(),
        );
    }
    let rows: Vec<Vec<String>> = dump
        .rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.storage.to_owned(),
                r.kind.to_owned(),
                r.megabytes(),
                r.elements.to_string(),
            ]
        })
        .collect();
    let text = show::table(
        &["NAME", "STORAGE", "TYPE", "MEMORY(MB)", "ELEMENTS"],
        &rows,
    );
    out(&format!(
        "{text}{} {} at {}",
        info.engine, info.version, info.location
    ))
}

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

fn export(url: &str, tables: &[String]) -> Result<(), Fail> {
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

fn import(url: &str, json: bool, create: bool, batch: usize) -> Result<(), Fail> {
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

fn check(url: &str, json: bool, repair: bool) -> Result<(), Fail> {
    let session = open(url, if repair { Access::Write } else { Access::Read })?;
    let inspect = |session: &Session| {
        session.read(|view| {
            let mut tables = Vec::new();
            for entry in view.entries()? {
                let report = view.check_table(&entry)?;
                tables.push((entry, report));
            }
            Ok::<_, kvs::Error>((tables, view.check_feeds()?))
        })
    };
    let (mut tables, mut feeds) = inspect(&session)?;
    let mut repaired = Vec::new();
    if repair {
        let broken: Vec<&CatalogEntry> = tables
            .iter()
            .filter(|(_, report)| report.index_problems)
            .map(|(entry, _)| entry)
            .collect();
        if !broken.is_empty() {
            session.write(|edit| {
                for entry in &broken {
                    edit.rebuild_indexes(entry)?;
                }
                Ok::<_, kvs::Error>(())
            })?;
            repaired = broken.iter().map(|e| e.name.clone()).collect();
            (tables, feeds) = inspect(&session)?;
        }
    }
    let problems: usize = tables.iter().map(|(_, r)| r.problems.len()).sum::<usize>() + feeds.len();
    if json {
        let list: Vec<Value> = tables
            .iter()
            .map(|(e, r)| json!({"table": e.name, "records": r.records, "problems": r.problems}))
            .collect();
        out(
            &json!({"ok": problems == 0, "tables": list, "feeds": feeds, "repaired": repaired})
                .to_string(),
        )?;
    } else {
        let mut text = String::new();
        for name in &repaired {
            let _ = writeln!(text, "{name}: indexes rebuilt");
        }
        for (entry, report) in &tables {
            if report.problems.is_empty() {
                let _ = writeln!(
                    text,
                    "{}: {} records, indexes exact",
                    entry.name, report.records
                );
            } else {
                for p in &report.problems {
                    let _ = writeln!(text, "{}: {p}", entry.name);
                }
            }
        }
        for p in &feeds {
            let _ = writeln!(text, "feeds: {p}");
        }
        text.push_str(if problems == 0 {
            "ok"
        } else {
            "problems found"
        });
        out(&text)?;
    }
    if problems == 0 {
        Ok(())
    } else {
        let hint = if repair {
            ""
        } else {
            " (check --repair rebuilds indexes)"
        };
        Err(Fail::new(format!("check found {problems} problems{hint}")))
    }
}

fn feed(url: &str, json: bool, name: &str, limit: Option<usize>, back: bool) -> Result<(), Fail> {
    let found =
        open(url, Access::Read)?.read(|view| view.feed(name, back, limit.unwrap_or(usize::MAX)))?;
    match found {
        Some((entry, records)) => records_out(json, &entry, records),
        None if json => out("[]"),
        None => out(&format!("feed {name:?} is empty")),
    }
}

fn writers(url: &str, json: bool) -> Result<(), Fail> {
    let writers = open(url, Access::Read)?.read(|view| view.writers())?;
    if json {
        let list: Vec<Value> = writers
            .iter()
            .map(|w| {
                json!({
                    "feed": w.feed,
                    "table": w.table,
                    "count": w.count,
                    "first": w.first.as_ref().map(key_to_json),
                    "last": w.last.as_ref().map(key_to_json),
                })
            })
            .collect();
        return out(&Value::Array(list).to_string());
    }
    let rows: Vec<Vec<String>> = writers
        .iter()
        .map(|w| {
            let key =
                |k: &Option<kvs::KeyValue>| k.as_ref().map_or("-".to_owned(), ToString::to_string);
            vec![
                w.feed.clone(),
                w.table.clone().unwrap_or_default(),
                w.count.to_string(),
                key(&w.first),
                key(&w.last),
            ]
        })
        .collect();
    out(show::table(&["FEED", "TABLE", "COUNT", "FIRST", "LAST"], &rows).trim_end())
}
