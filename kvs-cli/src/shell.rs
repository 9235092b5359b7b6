//! The shell: `kvs` without a command. On a terminal, a line editor with history and tab
//! completion (`kvs> get users 1`); from a pipe, one command per line. An error is printed and
//! the session goes on.

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches};
use kvs::untyped::{Access, CatalogEntry};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::{commands, Cli, Fail};

/// The commands, for completion (clap's, plus the shell's own).
fn command_names() -> Vec<String> {
    let mut names: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    names.extend(["help".to_owned(), "exit".to_owned(), "quit".to_owned()]);
    names.sort();
    names
}

/// Splits a line into words: whitespace separates, `"..."` and `'...'` quote (a backslash
/// escapes the next character inside double quotes).
fn split_words(line: &str) -> Result<Vec<String>, Fail> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(Fail::new("unclosed '")),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => w.push(c),
                            None => return Err(Fail::new("unclosed \"")),
                        },
                        Some(c) => w.push(c),
                        None => return Err(Fail::new("unclosed \"")),
                    }
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = word {
        words.push(w);
    }
    Ok(words)
}

/// What one line asks for.
enum Line {
    Nothing,
    Exit,
    /// Text to show (help, or clap's message about the line).
    Show(String),
    Run(String, bool, crate::Command),
}

/// Parses a line with the command line's own parser; `--db` and `--json` in the line apply
/// to it alone, else the session's are used.
fn parse(line: &str, db: &str, json: bool) -> Result<Line, Fail> {
    let words = split_words(line)?;
    match words.first().map(String::as_str) {
        None => return Ok(Line::Nothing),
        Some("exit" | "quit") => return Ok(Line::Exit),
        Some("help") if words.len() == 1 => {
            let mut cmd = Cli::command();
            return Ok(Line::Show(cmd.render_help().to_string()));
        }
        _ => {}
    }
    let args = std::iter::once("kvs".to_owned()).chain(words);
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(m) => m,
        // Help asked for: shown. A usage error: one line on stderr, as any failed line.
        Err(e) if !e.use_stderr() => return Ok(Line::Show(e.render().to_string())),
        Err(e) => return Err(crate::usage_error(&e)),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| crate::usage_error(&e))?;
    let url = cli.db.unwrap_or_else(|| db.to_owned());
    match cli.command {
        Some(command) => Ok(Line::Run(url, cli.json || json, command)),
        None => Ok(Line::Show("a command is needed: try help".to_owned())),
    }
}

/// Runs one line; returns whether the session goes on, and whether the line failed.
fn run_line(line: &str, db: &str, json: bool) -> (bool, bool) {
    match parse(line, db, json) {
        Ok(Line::Nothing) => (true, false),
        Ok(Line::Exit) => (false, false),
        Ok(Line::Show(text)) => {
            let _ = commands::out(text.trim_end());
            (true, false)
        }
        Ok(Line::Run(url, json, command)) => match commands::run(&url, json, &command) {
            Ok(()) => (true, false),
            Err(e) => {
                eprintln!("error: {e}");
                (true, true)
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            (true, true)
        }
    }
}

/// Commands from a pipe or file, one per line; fails at the end if any line failed.
pub fn piped(db: &str, json: bool) -> Result<(), Fail> {
    let mut failures = 0;
    for line in std::io::stdin().lines() {
        let line = line?;
        let (go_on, failed) = run_line(&line, db, json);
        failures += usize::from(failed);
        if !go_on {
            break;
        }
    }
    if failures == 0 {
        Ok(())
    } else {
        Err(Fail::new(format!(
            "{failures} command{} failed",
            if failures == 1 { "" } else { "s" }
        )))
    }
}

/// Tab completion of commands, table names and indexed fields, from the catalog.
struct Completion {
    commands: Vec<String>,
    tables: RefCell<Vec<CatalogEntry>>,
    feeds: RefCell<Vec<String>>,
}

impl Completion {
    fn refresh(&self, db: &str) {
        let Ok(session) = commands::open(db, Access::Read) else {
            return;
        };
        if let Ok(entries) = session.read(|view| view.entries()) {
            *self.tables.borrow_mut() = entries;
        }
        if let Ok(writers) = session.read(|view| view.writers()) {
            *self.feeds.borrow_mut() = writers.into_iter().map(|w| w.feed).collect();
        }
    }

    /// The candidates for word number `index` of a line whose earlier words are `before`.
    fn candidates(&self, before: &[String], index: usize) -> Vec<String> {
        if index == 0 {
            return self.commands.clone();
        }
        let command = before[0].as_str();
        let tables = || {
            self.tables
                .borrow()
                .iter()
                .map(|e| e.name.clone())
                .collect()
        };
        match (command, index) {
            ("count" | "get" | "index" | "all" | "delete", 1) | ("export", _) => tables(),
            ("index", 2) => self
                .tables
                .borrow()
                .iter()
                .find(|e| e.name == before[1])
                .map(|e| e.indexes.iter().map(|ix| ix.field.clone()).collect())
                .unwrap_or_default(),
            ("feed", 1) => self.feeds.borrow().clone(),
            _ => Vec::new(),
        }
    }
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        let start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let before: Vec<String> = head[..start]
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let partial = &head[start..];
        let pairs = self
            .candidates(&before, before.len())
            .into_iter()
            .filter(|c| c.starts_with(partial))
            .map(|c| Pair {
                display: c.clone(),
                replacement: format!("{c} "),
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for Completion {
    type Hint = String;
}

impl Highlighter for Completion {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for Completion {}

impl Helper for Completion {}

fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kvs_history"))
}

/// The interactive shell.
pub fn interactive(db: &str, json: bool) -> Result<(), Fail> {
    let helper = Completion {
        commands: command_names(),
        tables: RefCell::new(Vec::new()),
        feeds: RefCell::new(Vec::new()),
    };
    helper.refresh(db);
    let mut editor: Editor<Completion, rustyline::history::FileHistory> =
        Editor::new().map_err(|e| Fail::new(format!("cannot start the line editor: {e}")))?;
    editor.set_helper(Some(helper));
    let history = history_file();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!("kvs console on {db}: dir, get TABLE KEY, index TABLE FIELD VALUE, help, exit (tab completes)");
    loop {
        match editor.readline("kvs> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let (go_on, _) = run_line(&line, db, json);
                if !go_on {
                    break;
                }
                if let Some(helper) = editor.helper() {
                    helper.refresh(db);
                }
            }
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Fail::new(format!("line editor: {e}"))),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn words_split_on_spaces_and_quotes() {
        assert_eq!(
            split_words(r#"get users "a b" 'c d' e\f"#).unwrap(),
            ["get", "users", "a b", "c d", r"e\f"]
        );
        assert_eq!(
            split_words(r#"x "say \"hi\"""#).unwrap(),
            ["x", "say \"hi\""]
        );
        assert_eq!(
            split_words(r#"index t f '["Oslo", 3]'"#).unwrap()[3],
            r#"["Oslo", 3]"#
        );
        assert!(split_words("get 'open").is_err());
        assert!(split_words("").unwrap().is_empty());
    }
}
