//! The commands: each opens the database as it needs (read-only unless it writes), does its
//! work in one transaction, and prints one result.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use kvs::catalog::{self, CatalogEntry, CATALOG_TABLE, SEQ_TABLE};
use kvs::{ReadTx, FEED_TABLE, LINK_TABLE, READER_TABLE, WRITER_TABLE};
use serde_json::{json, Value};

use crate::db::{self, Access, Db};
use crate::show;
use crate::value::{encode_text, key_to_json};
use crate::{Command, Fail};

/// Runs one command against the database at `url`.
// One arm per command, each short; the long ones call their own function.
#[allow(clippy::too_many_lines)]
pub fn run(url: &str, json: bool, command: &Command) -> Result<(), Fail> {
    match command {
        Command::Dir => dir(url, json),
        Command::Ver => ver(url, json),
        Command::Dump => dump(url, json),
        Command::Count { table } => {
            let db = Db::open(url, Access::Read)?;
            let n = db.read(|r| {
                // The stream tables that `dir` lists count too.
                if ![WRITER_TABLE, READER_TABLE, FEED_TABLE, LINK_TABLE].contains(&table.as_str()) {
                    db::entry(r, table)?;
                }
                Ok(r.len(table)?)
            })?;
            emit(json, &json!(n), || n.to_string())
        }
        Command::Get { table, key } => {
            let db = Db::open(url, Access::Read)?;
            let record = db.read(|r| {
                let entry = db::entry(r, table)?;
                let key_bytes = encode_text(key, &entry.key_type, &format!("key for {table}"))?;
                db::get(r, &entry, &key_bytes)?.ok_or_else(|| {
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
        } => {
            let db = Db::open(url, Access::Read)?;
            let (entry, records) = db.read(|r| {
                let entry = db::entry(r, table)?;
                let ix = db::index_of(&entry, field)?;
                let value =
                    encode_text(value, &ix.value_type, &format!("value for {table}.{field}"))?;
                let records = db::index_keys(r, ix, &value)?
                    .iter()
                    .map(|key| {
                        db::get(r, &entry, key)?.ok_or_else(|| {
                            Fail::new(format!(
                                "index {table}.{field} points at the missing record {}",
                                entry.key_type.render(key)
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, Fail>>()?;
                Ok((entry, records))
            })?;
            records_out(json, &entry, records)
        }
        Command::All { table, limit, from } => {
            let db = Db::open(url, Access::Read)?;
            let (entry, records) = db.read(|r| {
                let entry = db::entry(r, table)?;
                let from = from
                    .as_deref()
                    .map(|k| encode_text(k, &entry.key_type, &format!("key for {table}")))
                    .transpose()?;
                let records = db::scan(r, &entry, from.as_deref(), limit.unwrap_or(usize::MAX))?;
                Ok((entry, records))
            })?;
            records_out(json, &entry, records)
        }
        Command::Seq { name, incr } => {
            let value = if *incr == 0 {
                let db = Db::open(url, Access::Read)?;
                db.read(|r| Ok(kvs::raw::read_seq(r, name)?))?
            } else {
                let db = Db::open(url, Access::Write)?;
                db.write(|w| Ok(kvs::raw::seq(w, name, *incr)?))?
            };
            emit(json, &json!(value), || value.to_string())
        }
        Command::Delete { table, key } => {
            let db = Db::open(url, Access::Write)?;
            let (deleted, shown) = db.write(|w| {
                let entry = db::entry(&*w, table)?;
                let key_bytes = encode_text(key, &entry.key_type, &format!("key for {table}"))?;
                Ok((
                    db::delete(w, &entry, &key_bytes)?,
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

fn records_out(json: bool, entry: &CatalogEntry, records: Vec<Value>) -> Result<(), Fail> {
    if json {
        out(&Value::Array(records).to_string())
    } else {
        out(&show::records(&entry.fields, &records))
    }
}

fn entry_json(e: &CatalogEntry) -> Value {
    json!({
        "name": e.name,
        "schema": e.schema,
        "rust_type": e.rust_type,
        "key_field": e.key_field,
        "key_type": e.key_type.to_string(),
        "fields": e.fields,
        "indexes": e.indexes.iter().map(|ix| json!({
            "field": ix.field,
            "unique": ix.unique,
            "value_type": ix.value_type.to_string(),
        })).collect::<Vec<_>>(),
    })
}

fn stream_tables(r: &dyn ReadTx) -> Result<Vec<&'static str>, Fail> {
    let present = r.tables()?;
    Ok([WRITER_TABLE, READER_TABLE, FEED_TABLE, LINK_TABLE]
        .into_iter()
        .filter(|t| present.iter().any(|p| p == t))
        .collect())
}

fn dir(url: &str, json: bool) -> Result<(), Fail> {
    let db = Db::open(url, Access::Read)?;
    let (entries, streams) = db.read(|r| Ok((catalog::entries(r)?, stream_tables(r)?)))?;
    let has = |t: &str| streams.contains(&t);
    if json {
        let mut list: Vec<Value> = entries.iter().map(entry_json).collect();
        if has(WRITER_TABLE) {
            list.push(json!({"name": WRITER_TABLE, "schema": "kvs_stream", "key_field": "feed", "key_type": "String"}));
        }
        if has(READER_TABLE) {
            list.push(json!({"name": READER_TABLE, "schema": "kvs_stream", "key_field": "id", "key_type": "u64"}));
        }
        return out(&Value::Array(list).to_string());
    }
    let mut rows: Vec<Vec<String>> = entries
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
    if has(WRITER_TABLE) {
        rows.push(vec![
            WRITER_TABLE.into(),
            "kvs_stream".into(),
            "feed: String".into(),
            "-".into(),
            "kvs::Writer".into(),
        ]);
    }
    if has(READER_TABLE) {
        rows.push(vec![
            READER_TABLE.into(),
            "kvs_stream".into(),
            "id: u64".into(),
            "-".into(),
            "kvs::Reader".into(),
        ]);
    }
    out(show::table(&["NAME", "SCHEMA", "KEY", "INDEXES", "TYPE"], &rows).trim_end())
}

fn ver(url: &str, json: bool) -> Result<(), Fail> {
    let db = Db::open(url, Access::Read)?;
    let header = db
        .read(|r| Ok(catalog::read_header(r, db.location())?))?
        .ok_or_else(|| Fail::new("no kvs header"))?;
    let info = db.backend().info();
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
    let db = Db::open(url, Access::Read)?;
    let info = db.backend().info();
    let rows = db.read(|r| {
        let mut names: Vec<(String, &str)> = Vec::new();
        for e in catalog::entries(r)? {
            names.push((e.name.clone(), "set"));
            for ix in &e.indexes {
                names.push((ix.table.clone(), if ix.unique { "unique" } else { "bag" }));
            }
        }
        for t in stream_tables(r)? {
            names.push((t.to_owned(), "set"));
        }
        names.push((SEQ_TABLE.to_owned(), "set"));
        names.push((CATALOG_TABLE.to_owned(), "set"));
        names
            .into_iter()
            .map(|(name, kind)| {
                let bytes = r.stored_bytes(&name)?;
                let elements = r.len(&name)?;
                Ok((name, kind, bytes, elements))
            })
            .collect::<Result<Vec<_>, Fail>>()
    })?;
    if json {
        let rows: Vec<Value> = rows
            .iter()
            .map(|(name, kind, bytes, elements)| {
                json!({"name": name, "storage": info.storage, "type": kind, "bytes": bytes, "elements": elements})
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
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(name, kind, bytes, elements)| {
            vec![
                name.clone(),
                info.storage.to_owned(),
                (*kind).to_owned(),
                kvs::megabytes(*bytes),
                elements.to_string(),
            ]
        })
        .collect();
    let text = show::table(
        &["NAME", "STORAGE", "TYPE", "MEMORY(MB)", "ELEMENTS"],
        &table_rows,
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
    let db = Db::open(url, Access::Read)?;
    let stdout = std::io::stdout().lock();
    let mut w = std::io::BufWriter::new(stdout);
    let result = db.read(|r| {
        let entries = if tables.is_empty() {
            catalog::entries(r)?
        } else {
            tables
                .iter()
                .map(|t| db::entry(r, t))
                .collect::<Result<_, _>>()?
        };
        let mut total = 0;
        for e in &entries {
            total += r.len(&e.name)?;
        }
        let bar = progress(Some(total), "export");
        for e in &entries {
            writeln!(w, "{}", json!({ "catalog": e }))?;
            let mut failed = None;
            r.scan(
                &e.name,
                (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
                false,
                &mut |key, bytes| {
                    let line = db::record_json(e, key, bytes).and_then(|record| {
                        writeln!(w, "{}", json!({ "table": e.name, "record": record }))
                            .map_err(Fail::from)
                    });
                    if let Err(err) = line {
                        failed = Some(err);
                        return Ok(false);
                    }
                    bar.inc(1);
                    Ok(true)
                },
            )?;
            if let Some(err) = failed {
                return Err(err);
            }
        }
        if tables.is_empty() {
            for (name, value) in db::seqs(r)? {
                writeln!(w, "{}", json!({ "seq": name, "value": value }))?;
            }
        }
        bar.finish();
        Ok(())
    });
    let flushed = w.flush();
    match result {
        Err(e) if e.to_string().contains("Broken pipe") => Ok(()),
        Err(e) => Err(e),
        Ok(()) => match flushed {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map_err(Fail::from),
        },
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
    let db = Db::open(
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
        let created = db
            .write(|w| {
                let mut entries: HashMap<String, CatalogEntry> = HashMap::new();
                let mut created = Vec::new();
                let mut counts = (0u64, 0u64);
                for (n, item) in &items {
                    let at = |e: Fail| Fail::new(format!("line {n}: {e}"));
                    match item {
                        Item::Catalog(entry) => {
                            let existed =
                                catalog::read_entry(&*w, &entry.name).map_err(|e| at(e.into()))?;
                            let effective = catalog::ensure_table(w, db.location(), entry)
                                .map_err(|e| at(e.into()))?;
                            if existed.is_none() {
                                created.push(entry.name.clone());
                            }
                            entries.insert(entry.name.clone(), effective);
                        }
                        Item::Record(table, record) => {
                            if !entries.contains_key(table) {
                                let entry = db::entry(&*w, table).map_err(at)?;
                                entries.insert(table.clone(), entry);
                            }
                            db::put(w, &entries[table], record).map_err(at)?;
                            counts.0 += 1;
                        }
                        Item::Seq(name, value) => {
                            db::raise_seq(w, name, *value).map_err(at)?;
                            counts.1 += 1;
                        }
                    }
                }
                Ok((counts, created))
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
    let db = Db::open(url, if repair { Access::Write } else { Access::Read })?;
    let inspect = |db: &Db| {
        db.read(|r| {
            let mut tables = Vec::new();
            for entry in catalog::entries(r)? {
                let report = db::check_table(r, &entry)?;
                tables.push((entry, report));
            }
            Ok((tables, kvs::raw::check_feeds(r)?))
        })
    };
    let (mut tables, mut feeds) = inspect(&db)?;
    let mut repaired = Vec::new();
    if repair {
        let broken: Vec<&CatalogEntry> = tables
            .iter()
            .filter(|(_, report)| report.index_problems)
            .map(|(entry, _)| entry)
            .collect();
        if !broken.is_empty() {
            db.write(|w| {
                for entry in &broken {
                    db::rebuild_indexes(w, entry)?;
                }
                Ok(())
            })?;
            repaired = broken.iter().map(|e| e.name.clone()).collect();
            (tables, feeds) = inspect(&db)?;
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
    let db = Db::open(url, Access::Read)?;
    let found = db.read(|r| {
        let w = kvs::raw::writer(r, name, &|t| db::key_type_of(r, t))?;
        let Some(table) = w.table else {
            return Ok(None);
        };
        let entry = db::entry(r, &table)?;
        let records = kvs::raw::feed_keys(r, name, back, limit.unwrap_or(usize::MAX))?
            .iter()
            .map(|key| {
                db::get(r, &entry, key)?.ok_or_else(|| {
                    Fail::new(format!(
                        "feed {name:?} links the missing record {}",
                        entry.key_type.render(key)
                    ))
                })
            })
            .collect::<Result<Vec<_>, Fail>>()?;
        Ok(Some((entry, records)))
    })?;
    match found {
        Some((entry, records)) => records_out(json, &entry, records),
        None if json => out("[]"),
        None => out(&format!("feed {name:?} is empty")),
    }
}

fn writers(url: &str, json: bool) -> Result<(), Fail> {
    let db = Db::open(url, Access::Read)?;
    let writers = db.read(|r| Ok(kvs::raw::writers(r, &|t| db::key_type_of(r, t))?))?;
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
