//! The commands: each opens the database as it needs (read-only unless it writes), does its
//! work in one transaction through kvs's untyped session, and prints one result. What a
//! command does to the data is kvs-core's; this file parses, renders and reports.

use std::fmt::Write as _;
use std::io::Write;
use std::ops::Bound;

use kvs::untyped::{index_of, key_to_json, Access, CatalogEntry, Session};
use serde_json::{json, Value};

use crate::show;
use crate::transfer;
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
            // One value is the range of its encodings' prefix: the listing streams either way.
            let (from, to) = match parse(value)? {
                Some(value) => {
                    let end = kvs::backend::prefix_end(&value);
                    (Some(value), end)
                }
                None => (parse(from)?, parse(to)?),
            };
            {
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
        Command::Export { tables } => transfer::export(url, tables),
        Command::Import { create, batch } => transfer::import(url, json, *create, (*batch).max(1)),
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

pub(crate) fn emit(json: bool, doc: &Value, text: impl FnOnce() -> String) -> Result<(), Fail> {
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
