//! `kvs`, the console of the kvs record store: inspect and manage any kvs database from the
//! shell, without the application's Rust types, by reading the stored catalog and the
//! self-describing records.
//!
//! ```text
//! $ kvs --db redb:app.redb dir
//! $ kvs get users 1
//! $ kvs index users city Oslo --json
//! $ kvs export users > users.jsonl && kvs --db redb:copy.redb import --create < users.jsonl
//! $ kvs                      # an interactive shell: kvs> dir
//! ```
//!
//! The database is `--db URL`, else `KVS_URL`, else `redb:kvs.redb`. Read commands open it
//! read-only; `delete`, `seq` with an increment, `import` and `check --repair` write.
#![forbid(unsafe_code)]
// `session.read(|view| view.entries())`: the method path clippy suggests instead is not
// general enough over the view's lifetime, and does not compile.
#![allow(clippy::redundant_closure_for_method_calls)]

mod commands;
mod shell;
mod show;
mod transfer;
mod value;

use std::fmt;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The console's command line.
#[derive(Parser, Debug)]
#[command(name = "kvs", version, about = "Inspect and manage any kvs database")]
#[command(
    after_help = "Without a command, on a terminal: an interactive shell (kvs> dir). \
With standard input from a pipe or file: runs one command per line."
)]
pub struct Cli {
    /// The database URL (redb:PATH, or any backend linked in) [default: `KVS_URL`, else
    /// redb:kvs.redb].
    #[arg(long, global = true)]
    pub db: Option<String>,
    /// Print one JSON document on stdout and nothing else.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command; none opens the shell.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands, in the console and in the shell.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// The tables: name, key, indexes, fields (as Erlang's kvs dir).
    Dir,
    /// The kvs, format and backend versions (as Erlang's kvs ver).
    Ver,
    /// Per table: name, storage, type, size and elements (as Erlang's kvs dump).
    Dump,
    /// The number of records of TABLE, or of those whose indexed FIELD equals VALUE (index
    /// keys only).
    Count {
        /// The table.
        table: String,
        /// An indexed field.
        field: Option<String>,
        /// The value (parsed by the field's type).
        #[arg(allow_hyphen_values = true, requires = "field")]
        value: Option<String>,
    },
    /// The record of TABLE with KEY (parsed by the table's key type; tuples as JSON arrays).
    Get {
        /// The table.
        table: String,
        /// The key.
        #[arg(allow_hyphen_values = true)]
        key: String,
    },
    /// The records of TABLE whose indexed FIELD equals VALUE, or lies in --from/--to,
    /// ordered by (value, key).
    Index {
        /// The table.
        table: String,
        /// An indexed field.
        field: String,
        /// The value (parsed by the field's type); or give --from and/or --to.
        #[arg(allow_hyphen_values = true, required_unless_present_any = ["from", "to"], conflicts_with_all = ["from", "to"])]
        value: Option<String>,
        /// From this value on (inclusive).
        #[arg(long, allow_hyphen_values = true)]
        from: Option<String>,
        /// Up to this value (exclusive).
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Largest value first.
        #[arg(long)]
        back: bool,
    },
    /// The records of TABLE in key order.
    All {
        /// The table.
        table: String,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// From this key on (inclusive; with --back, down from it).
        #[arg(long, allow_hyphen_values = true)]
        from: Option<String>,
        /// Newest (largest) key first.
        #[arg(long)]
        back: bool,
    },
    /// Adds INCR to counter NAME and prints the new value; without INCR, prints it.
    Seq {
        /// The counter.
        name: String,
        /// The increment (0 reads).
        #[arg(default_value_t = 0)]
        incr: u64,
    },
    /// Deletes the record of TABLE with KEY (its index entries and feed links with it).
    Delete {
        /// The table.
        table: String,
        /// The key.
        #[arg(allow_hyphen_values = true)]
        key: String,
    },
    /// Writes TABLEs (all, and the counters, when none is named) as JSON lines on stdout.
    Export {
        /// The tables.
        tables: Vec<String>,
    },
    /// Reads JSON lines (as export writes them) from stdin, in batches of transactions.
    Import {
        /// Create the database if there is none.
        #[arg(long)]
        create: bool,
        /// Lines per transaction.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Checks every record against its key and every index against the records, and the
    /// feeds against their writers.
    Check {
        /// Rebuild the indexes of the tables with index problems.
        #[arg(long)]
        repair: bool,
    },
    /// The records of feed NAME, oldest first.
    Feed {
        /// The feed.
        name: String,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Newest first.
        #[arg(long)]
        back: bool,
    },
    /// Every feed: its table, count, oldest and newest keys.
    Writers,
}

/// A failure, shown as one line.
#[derive(Debug)]
pub struct Fail(String);

impl Fail {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Fail {
        Fail(message.into())
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<kvs::Error> for Fail {
    fn from(e: kvs::Error) -> Fail {
        Fail(e.to_string())
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        Fail(format!("i/o error: {e}"))
    }
}

impl Cli {
    /// The database: `--db`, else `KVS_URL`, else [`kvs::DEFAULT_URL`]. (Read here rather than
    /// by clap's `env`, which shows `--db` in every usage line once `KVS_URL` is set.)
    pub fn url(&self) -> String {
        self.db.clone().unwrap_or_else(|| {
            std::env::var(kvs::KVS_URL).unwrap_or_else(|_| kvs::DEFAULT_URL.to_owned())
        })
    }
}

/// A clap error as one line: what is wrong, and the usage of the command it concerns.
pub fn usage_error(e: &clap::Error) -> Fail {
    let text = e.to_string();
    let mut what = Vec::new();
    let mut usage = None;
    for line in text.lines().map(str::trim) {
        if let Some(u) = line.strip_prefix("Usage: ") {
            usage = Some(u.to_owned());
        } else if !line.is_empty() && !line.starts_with("For more information") && usage.is_none() {
            what.push(
                line.strip_prefix("error: ")
                    .unwrap_or(line)
                    .trim_end_matches(':'),
            );
        }
    }
    let what = what.join(" ");
    Fail::new(match usage {
        Some(usage) => format!("{what} (usage: {usage}; try --help)"),
        None => what,
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: what was asked for, on stdout.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kvs: {}", usage_error(&e));
            return ExitCode::from(2);
        }
    };
    let url = cli.url();
    let result = match &cli.command {
        Some(command) => commands::run(&url, cli.json, command),
        None if std::io::stdin().is_terminal() => shell::interactive(&url, cli.json),
        None => shell::piped(&url, cli.json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvs: {e}");
            ExitCode::FAILURE
        }
    }
}
