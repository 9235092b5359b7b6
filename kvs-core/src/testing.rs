//! A conformance suite for the [`Backend`] contract: what a storage engine must do for kvs,
//! checked rule by rule (compiled with kvs-core's `testing` feature).
//!
//! # Using it
//!
//! A backend's author runs [`conformance`] from a test of the backend's crate, with a closure
//! that returns a fresh, empty database each time it is called:
//!
//! ```toml
//! [dev-dependencies]
//! kvs-core = { version = "0.1", features = ["testing"] }
//! ```
//!
//! ```ignore
//! #[test]
//! fn keeps_the_backend_contract() {
//!     kvs_core::testing::conformance(&|| {
//!         // A new, empty database on every call: a new file, a new key prefix, ...
//!         my_backend::open(&kvs_core::Config::parse("mine:").unwrap()).unwrap()
//!     });
//! }
//! ```
//!
//! The backend is done when that test passes. Each check stops at the first behaviour kvs
//! does not accept, with a message that starts `kvs backend conformance: rule broken:` and
//! names the rule, then says what was called, what came back and what was expected;
//! [`conformance`] runs every check and then fails with one line per broken rule, followed
//! by the details of each. The checks are also public one by one (`check_*`, listed in
//! [`CHECKS`]), each taking a fresh, empty backend, so that a failing rule can be run alone.
//!
//! # What it checks
//!
//! - Keys compare as byte strings: the empty key first, a prefix before its extensions,
//!   `0x00` and `0xFF` bytes anywhere; values come back byte for byte (empty, binary,
//!   64 KiB), an empty value is not an absent one ([`check_key_order`]), also over more
//!   entries than a backend fetches per page ([`check_long_scans`]).
//! - `scan` with every shape of bounds (included, excluded, unbounded, at either end, over
//!   present and absent keys), forward and reverse, on committed entries and inside a write
//!   transaction over its own writes; an inverted or empty range visits nothing
//!   ([`check_scan_ranges`]); a visitor's `Ok(false)` stops the scan at once, and a visitor's
//!   error is what `scan` returns ([`check_scan_stop`]).
//! - `get`, `get_with` and `get_many` (order, duplicates, absent keys as `None`, more keys
//!   than any batch, visitor errors) ([`check_point_reads`]); `len` after every kind of write
//!   ([`check_len`]).
//! - A table that does not exist reads as empty and is not listed ([`check_missing_tables`]);
//!   `tables`, `create_table` and `drop_table` and its answer, a table dropped and written
//!   again in one transaction, tables as separate key spaces whatever their names
//!   ([`check_tables`]).
//! - `insert` returns the previous value, `remove` the removed one, `put` and `delete` write
//!   blind, and `prefetch` changes no answer ([`check_write_results`]).
//! - `write` and `read` call their closure once; `write` commits all of it when it returns
//!   `Ok` and nothing of it when it returns `Err` ([`check_commit_and_rollback`]); nothing a
//!   write transaction wrote is visible to a reader before the commit
//!   ([`check_write_isolation`]); a write transaction from `begin_write` moves between
//!   threads and commits or aborts whole ([`check_shared_write`]); a read transaction keeps one snapshot while another thread
//!   commits ([`check_read_snapshot`]).
//! - Write transactions are serializable: of two that read what the other writes (through
//!   `get`, `get_with`, `get_many`, `scan` or `len`), either one runs after the other and sees
//!   its write, or the later fails with [`Error::Conflict`] and writes nothing
//!   ([`check_conflicts`]); no increment is lost under contention
//!   ([`check_contended_increments`]).
//!
//! # What it needs of the backend
//!
//! - Table names are printable UTF-8 without NUL (`#meta`, `a b`, `a/b`, `tåble`, ...).
//! - No transaction writes more than 100 keys, so that etcd's default `--max-txn-ops` (128)
//!   suffices.
//! - Threads: a read transaction may run on one thread while a write transaction is open on
//!   another, and a write may commit on one thread while a read transaction is open on
//!   another (redb and etcd allow both). Write transactions may be serialized (redb's) or run
//!   at once (etcd's). A step that waits on another thread and has not finished after two
//!   minutes is taken for a deadlock: the suite says so on stderr and aborts the process
//!   (a hung test would otherwise wait forever).
//! - Not checked, because the contract leaves it to the backend: which error `write` returns
//!   when its closure fails (the closure's own or [`Error::Aborted`]), whether a read of a
//!   missing table inside a write transaction creates it (redb's does; kvs lists tables
//!   before it reads in a write transaction), and whether a table that only `insert` made
//!   still exists once its last entry is removed.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use crate::{Backend, Error, KeyRange, ReadTx, Result, WriteTx};

/// A check of the suite: it takes a fresh, empty backend and panics, naming the rule, when the
/// backend breaks it.
pub type Check = fn(&dyn Backend);

/// Every check of the suite with a short name, in the order [`conformance`] runs them. Each
/// takes a fresh, empty backend.
pub const CHECKS: &[(&str, Check)] = &[
    ("info", check_info),
    ("key order", check_key_order),
    ("long scans", check_long_scans),
    ("scan ranges", check_scan_ranges),
    ("scan stops", check_scan_stop),
    ("point reads", check_point_reads),
    ("len", check_len),
    ("missing tables", check_missing_tables),
    ("tables", check_tables),
    ("write results", check_write_results),
    ("commit and rollback", check_commit_and_rollback),
    ("shared write", check_shared_write),
    ("write isolation", check_write_isolation),
    ("read snapshot", check_read_snapshot),
    ("lasting snapshot", check_lasting_snapshot),
    ("conflicts", check_conflicts),
    ("contended increments", check_contended_increments),
];

/// Runs every check of the suite ([`CHECKS`]), each on a backend that `open` returns: a
/// fresh, empty one on each call.
///
/// Every check runs, even after one fails, so that one run lists every rule the backend
/// breaks.
///
/// # Panics
///
/// When the backend breaks a rule: once all checks have run, with one line per failed check
/// naming it and the rule, followed by each failure's details (see the
/// [module documentation](self)); also when `open` hands over a backend that is not empty.
pub fn conformance(open: &dyn Fn() -> Box<dyn Backend>) {
    let mut failures = Vec::new();
    for (name, check) in CHECKS {
        let backend = open();
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| check(&*backend))) {
            failures.push((*name, panic_message(&*panic)));
        }
    }
    if failures.is_empty() {
        return;
    }
    let mut summary = format!(
        "kvs backend conformance: {} of {} checks failed:",
        failures.len(),
        CHECKS.len()
    );
    for (name, message) in &failures {
        let rule = message
            .strip_prefix("kvs backend conformance: rule broken: ")
            .unwrap_or(message);
        let _ = write!(
            summary,
            "\n- {name}: {}",
            rule.lines().next().unwrap_or_default()
        );
    }
    for (name, message) in &failures {
        let _ = write!(summary, "\n\n[{name}] {message}");
    }
    panic!("{summary}");
}

/// The message a panic carried.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Rules, as the panic messages name them.

const ORDER: &str = "keys compare as byte strings (lexicographically, a prefix before its extensions, 0x00 and 0xFF as the lowest and highest bytes): scan visits them in that order, and in the reverse order with reverse";
const VALUES: &str = "values come back byte for byte as stored (empty, binary and 64 KiB values; an empty value is not an absent one)";
const LONG: &str = "a scan over more entries than a backend fetches at once visits each of them once, in order, both ways";
const RANGES: &str = "scan visits exactly the keys within its bounds (Included, Excluded or Unbounded at either end), in key order, descending with reverse";
const INVERTED: &str =
    "a range whose start lies after its end, or that holds no key, visits nothing (never a panic)";
const STOP: &str = "scan stops at the first Ok(false) from its visitor: the visitor is called for the entries up to that one and no more";
const VISITOR: &str =
    "an error returned by a scan's visitor stops the scan and is what scan returns";
const GET: &str = "get returns the value stored under the key, None when there is none";
const GET_WITH: &str = "get_with calls its visitor once with the value and returns true, or returns false without calling it when the key is absent; an error from the visitor is what get_with returns";
const GET_MANY: &str = "get_many calls its visitor once per key, in the order of keys, with the key's position and value (None when absent; duplicates and more keys than any batch included); an error from the visitor is what get_many returns";
const LEN: &str = "len is the number of entries in the table, and equals the number of entries a full scan visits";
const MISSING: &str = "a table that does not exist reads as empty (get None, get_with false, get_many None, scan nothing, len 0, stored_bytes answers) and is not listed by tables";
const TABLES: &str = "tables lists exactly the tables that exist: those made by create_table (even while empty) or by a write, and not those dropped";
const SEPARATE: &str =
    "tables are separate key spaces whatever their names: a table's reads see only its own entries";
const CREATE: &str = "create_table on a table that exists keeps its entries";
const DROP: &str =
    "drop_table removes the table and everything in it, and returns whether it existed";
const OWN_WRITES: &str = "within a write transaction, reads (get, get_with, get_many, scan, len, tables) see the transaction's own inserts, removes, puts, deletes and table drops";
const INSERT: &str = "insert returns the previous value (None when there was none), remove the removed value (None when there was none); put and delete write like them";
const PREFETCH: &str =
    "prefetch is only a hint: reads and the values insert and remove return are the same with it";
const ONCE: &str = "Backend::write and Backend::read call their closure exactly once";
const COMMIT: &str = "a write transaction whose closure returns Ok commits everything it wrote, atomically, visible to every later transaction";
const ROLLBACK: &str = "a write transaction whose closure returns Err fails, and nothing it wrote (entries, created or dropped tables) is ever visible";
const ISOLATION: &str =
    "nothing a write transaction wrote is visible to another transaction before it commits";
const SNAPSHOT: &str = "a read transaction sees one consistent snapshot: a commit made while it runs is not visible inside it";
const SERIAL: &str = "write transactions are serializable: of two that both read what the other writes, either one runs after the other and sees its write, or the later fails with Error::Conflict and writes nothing; never both commit over the same state";
const LOST: &str = "no update is lost under contention: concurrent read-modify-write transactions, each retried on Error::Conflict, all take effect";
const SHARED: &str = "a write transaction from begin_write runs on any thread, each run sees the runs before it, nothing of it is visible before commit and all of it after, and dropped uncommitted it leaves nothing";
const FRESH: &str = "the suite is handed a fresh, empty backend for each check (the closure given to conformance must open a new database on each call)";

// ---------------------------------------------------------------------------------------------
// Data.

/// Keys whose byte order backends get wrong: the empty key, prefixes of each other, NUL and
/// 0xFF bytes at every position, either side of 0x7F/0x80 (signed bytes).
const ORDER_KEYS: &[&[u8]] = &[
    b"",
    b"\x00",
    b"\x00\x00",
    b"\x00\xff",
    b"\x01",
    b"\x7f",
    b"\x7f\xff",
    b"\x80",
    b"\x80\x00",
    b"a",
    b"ab",
    b"ab\x00",
    b"abc",
    b"b",
    b"\xfe\xff",
    b"\xff",
    b"\xff\x00",
    b"\xff\xff",
    b"\xff\xff\xff",
];

/// The keys of the range checks.
const RANGE_KEYS: &[&[u8]] = &[
    b"",
    b"\x00",
    b"\x00\x00",
    b"\x01",
    b"\x7f",
    b"\x80",
    b"a",
    b"ab",
    b"ab\x00",
    b"abc",
    b"\xff",
    b"\xff\xff",
];

/// Keys the range checks use as bounds besides [`RANGE_KEYS`]: none of them stored.
const ABSENT_PROBES: &[&[u8]] = &[b"\x00\x01", b"aa", b"abd", b"\xff\x00", b"\xff\xff\xff"];

const FULL: KeyRange<'static> = (Bound::Unbounded, Bound::Unbounded);

/// A step that waits on another thread and takes longer than this is taken for a deadlock.
const STEP_LIMIT: Duration = Duration::from_secs(120);
/// How long each of two racing transactions waits, after its read, for the other's read.
const MEET_WAIT: Duration = Duration::from_secs(1);
/// The table where racing transactions mark that they committed.
const RACE_MARKS: &str = "race-marks";
/// The key of a counter.
const COUNTER: &[u8] = b"counter";
/// The table named in the errors the suite's closures return on purpose.
const SUITE: &str = "kvs-conformance";

type Entries = Vec<(Vec<u8>, Vec<u8>)>;
type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// Every table with its entries.
type State = BTreeMap<String, Model>;

/// A write, applied to a transaction and to a model alike.
#[derive(Clone)]
enum Op {
    Insert(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

impl Op {
    fn insert(key: &[u8], value: &[u8]) -> Op {
        Op::Insert(key.to_vec(), value.to_vec())
    }

    fn put(key: &[u8], value: &[u8]) -> Op {
        Op::Put(key.to_vec(), value.to_vec())
    }

    fn remove(key: &[u8]) -> Op {
        Op::Remove(key.to_vec())
    }

    fn delete(key: &[u8]) -> Op {
        Op::Delete(key.to_vec())
    }

    fn apply(&self, w: &mut dyn WriteTx, table: &str) -> Result<()> {
        match self {
            Op::Insert(k, v) => w.insert(table, k, v).map(drop),
            Op::Remove(k) => w.remove(table, k).map(drop),
            Op::Put(k, v) => w.put(table, k, v),
            Op::Delete(k) => w.delete(table, k),
        }
    }

    fn model(&self, model: &mut Model) {
        match self {
            Op::Insert(k, v) | Op::Put(k, v) => {
                model.insert(k.clone(), v.clone());
            }
            Op::Remove(k) | Op::Delete(k) => {
                model.remove(k);
            }
        }
    }
}

fn apply_all(w: &mut dyn WriteTx, table: &str, ops: &[Op]) -> Result<()> {
    ops.iter().try_for_each(|op| op.apply(w, table))
}

fn after(base: &Model, ops: &[Op]) -> Model {
    let mut model = base.clone();
    for op in ops {
        op.model(&mut model);
    }
    model
}

/// The value stored under the `i`th key of a sample: mostly text, some empty, some binary,
/// and one of 64 KiB.
fn sample_value(i: usize) -> Vec<u8> {
    match i % 5 {
        1 => Vec::new(),
        2 => vec![0, 0xff, 0, i.to_le_bytes()[0]],
        3 if i < 5 => (0..65_536)
            .map(|j: usize| (j * 31 + i).to_le_bytes()[0])
            .collect(),
        _ => format!("value {i}").into_bytes(),
    }
}

/// `0..n` in a fixed scrambled order.
fn shuffled(n: usize, seed: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = seed.wrapping_mul(0x9E37_79B9) | 1;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, x % (i + 1));
    }
    order
}

fn number(bytes: Option<&[u8]>) -> Option<u64> {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
}

// ---------------------------------------------------------------------------------------------
// Reporting.

#[track_caller]
fn fail(rule: &str, detail: impl Display) -> ! {
    panic!("kvs backend conformance: rule broken: {rule}\n  {detail}")
}

#[track_caller]
fn check(ok: bool, rule: &str, detail: impl FnOnce() -> String) {
    if !ok {
        fail(rule, detail());
    }
}

#[track_caller]
fn done<T>(result: Result<T>, rule: &str, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => fail(rule, format!("{what} failed: {e} ({e:?})")),
    }
}

/// Bytes for people: text when they are plain, hex otherwise, long ones cut short.
fn show(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "\"\"".to_owned();
    }
    let shown = &bytes[..bytes.len().min(24)];
    let mut out = if shown
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b" #-./_".contains(b))
    {
        format!("{:?}", String::from_utf8_lossy(shown))
    } else {
        let mut hex = "0x".to_owned();
        for b in shown {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    };
    if bytes.len() > shown.len() {
        let _ = write!(out, "...({} bytes)", bytes.len());
    }
    out
}

fn show_value(value: Option<&[u8]>) -> String {
    value.map_or_else(|| "None".to_owned(), |v| format!("Some({})", show(v)))
}

fn show_bound(bound: Bound<&[u8]>) -> String {
    match bound {
        Bound::Included(k) => format!("Included({})", show(k)),
        Bound::Excluded(k) => format!("Excluded({})", show(k)),
        Bound::Unbounded => "Unbounded".to_owned(),
    }
}

fn show_range((start, end): KeyRange<'_>) -> String {
    format!("({}, {})", show_bound(start), show_bound(end))
}

fn show_entries(entries: &[(Vec<u8>, Vec<u8>)]) -> String {
    let mut out = format!("{} entries [", entries.len());
    for (i, (k, v)) in entries.iter().enumerate().take(20) {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}={}", show(k), show(v));
    }
    if entries.len() > 20 {
        out.push_str(", ...");
    }
    out.push(']');
    out
}

fn show_state(state: &State) -> String {
    let mut out = String::new();
    for (table, model) in state {
        let entries: Entries = model.clone().into_iter().collect();
        let _ = write!(out, "\n    {table:?}: {}", show_entries(&entries));
    }
    if out.is_empty() {
        out.push_str("no tables");
    }
    out
}

#[track_caller]
fn same_entries(
    rule: &str,
    call: impl Display,
    got: &[(Vec<u8>, Vec<u8>)],
    want: &[(Vec<u8>, Vec<u8>)],
) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or_else(|| got.len().min(want.len()));
    let entry = |list: &[(Vec<u8>, Vec<u8>)]| {
        list.get(at).map_or_else(
            || "the end".to_owned(),
            |(k, v)| format!("{}={}", show(k), show(v)),
        )
    };
    fail(
        rule,
        format!(
            "{call}\n  visited  {}\n  expected {}\n  first difference at position {at}: visited {}, expected {}",
            show_entries(got),
            show_entries(want),
            entry(got),
            entry(want)
        ),
    );
}

#[track_caller]
fn same_state(rule: &str, context: &str, got: &State, want: &State) {
    check(got == want, rule, || {
        format!(
            "{context}:\n  found{}\n  expected{}",
            show_state(got),
            show_state(want)
        )
    });
}

/// An error the suite's closures return on purpose.
fn planted(what: &str) -> Error {
    Error::NotFound {
        table: SUITE.to_owned(),
        key: what.to_owned(),
    }
}

fn is_planted(e: &Error, what: &str) -> bool {
    matches!(e, Error::NotFound { table, key } if table == SUITE && key == what)
}

// ---------------------------------------------------------------------------------------------
// Transactions and reads.

#[track_caller]
fn read(b: &dyn Backend, rule: &str, mut f: impl FnMut(&dyn ReadTx) -> Result<()>) {
    let result = b.read(&mut |r| f(r));
    done(result, rule, "a read transaction");
}

#[track_caller]
fn write(b: &dyn Backend, rule: &str, mut f: impl FnMut(&mut dyn WriteTx) -> Result<()>) {
    let result = b.write(&mut |w| f(w));
    done(result, rule, "a write transaction (or its commit)");
}

/// Runs `f` in a write transaction whose closure then fails on purpose, and checks that
/// `write` fails.
#[track_caller]
fn write_failing(b: &dyn Backend, rule: &str, mut f: impl FnMut(&mut dyn WriteTx) -> Result<()>) {
    let result = b.write(&mut |w| {
        f(w)?;
        Err(planted("rollback"))
    });
    match result {
        Err(e) if is_planted(&e, "rollback") || matches!(e, Error::Aborted) => {}
        Err(e) => fail(rule, format!("a write transaction failed: {e} ({e:?})")),
        Ok(()) => fail(
            ROLLBACK,
            "Backend::write returned Ok although its closure returned Err",
        ),
    }
}

/// The entries `scan` visits.
fn scan<R: ReadTx + ?Sized>(
    r: &R,
    table: &str,
    range: KeyRange<'_>,
    reverse: bool,
) -> Result<Entries> {
    let mut out = Entries::new();
    r.scan(table, range, reverse, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(true)
    })?;
    Ok(out)
}

fn contains((start, end): KeyRange<'_>, key: &[u8]) -> bool {
    let above = match start {
        Bound::Included(s) => key >= s,
        Bound::Excluded(s) => key > s,
        Bound::Unbounded => true,
    };
    let below = match end {
        Bound::Included(e) => key <= e,
        Bound::Excluded(e) => key < e,
        Bound::Unbounded => true,
    };
    above && below
}

/// Whether no key can lie in `range`.
fn is_empty_range((start, end): KeyRange<'_>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
        _ => false,
    }
}

/// The entries of `model` that a scan of `range` must visit, in its order.
fn expected(model: &Model, range: KeyRange<'_>, reverse: bool) -> Entries {
    let mut out: Entries = model
        .iter()
        .filter(|(k, _)| contains(range, k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if reverse {
        out.reverse();
    }
    out
}

/// Every table `r` lists, with its entries.
fn state<R: ReadTx + ?Sized>(r: &R) -> Result<State> {
    let mut out = State::new();
    for table in r.tables()? {
        let entries = scan(r, &table, FULL, false)?;
        out.insert(table, entries.into_iter().collect());
    }
    Ok(out)
}

fn observe(b: &dyn Backend) -> Result<State> {
    let mut seen = None;
    b.read(&mut |r| {
        seen = Some(state(r)?);
        Ok(())
    })?;
    Ok(seen.unwrap_or_default())
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
    names.sort();
    names
}

#[track_caller]
fn tables_are<R: ReadTx + ?Sized>(r: &R, want: &[&str], rule: &str, context: &str) -> Result<()> {
    let mut got = r.tables()?;
    got.sort();
    let want = sorted(want);
    check(got == want, rule, || {
        format!("tables() {context} lists {got:?}, expected {want:?}")
    });
    Ok(())
}

/// Full scans both ways match `model`.
fn scans_match<R: ReadTx + ?Sized>(
    r: &R,
    table: &str,
    model: &Model,
    rule: &str,
    context: &str,
) -> Result<()> {
    for reverse in [false, true] {
        let got = scan(r, table, FULL, reverse)?;
        same_entries(
            rule,
            format_args!("scan({table:?}, (Unbounded, Unbounded), reverse={reverse}) {context}"),
            &got,
            &expected(model, FULL, reverse),
        );
    }
    Ok(())
}

/// `len` and the number of entries a full scan visits are both `want`.
fn len_is<R: ReadTx + ?Sized>(r: &R, table: &str, want: usize, context: &str) -> Result<()> {
    let len = r.len(table)?;
    check(len == want as u64, LEN, || {
        format!("len({table:?}) {context} is {len}, expected {want}")
    });
    let visited = scan(r, table, FULL, false)?.len();
    check(visited == want, LEN, || {
        format!("a full scan of {table:?} {context} visits {visited} entries, expected {want} (len says {len})")
    });
    Ok(())
}

/// Stops scans after `n` entries, for each `n` in `stops`, both ways over `range`.
fn stops_match<R: ReadTx + ?Sized>(
    r: &R,
    table: &str,
    model: &Model,
    range: KeyRange<'_>,
    stops: &[usize],
    context: &str,
) -> Result<()> {
    for reverse in [false, true] {
        let want = expected(model, range, reverse);
        for &n in stops {
            let mut seen = Entries::new();
            r.scan(table, range, reverse, &mut |k, v| {
                seen.push((k.to_vec(), v.to_vec()));
                Ok(seen.len() < n)
            })?;
            same_entries(
                STOP,
                format_args!(
                    "scan({table:?}, {}, reverse={reverse}) whose visitor returns Ok(false) at entry {n}, {context}",
                    show_range(range)
                ),
                &seen,
                &want[..n.min(want.len())],
            );
        }
    }
    Ok(())
}

fn fresh(b: &dyn Backend) {
    read(b, FRESH, |r| {
        let tables = r.tables()?;
        check(tables.is_empty(), FRESH, || {
            format!("tables() lists {tables:?} before the check wrote anything")
        });
        Ok(())
    });
}

/// Writes `model` into `table`, 64 entries per transaction.
fn load(b: &dyn Backend, table: &str, model: &Model) {
    let entries: Entries = model.clone().into_iter().collect();
    for chunk in entries.chunks(64) {
        write(b, COMMIT, |w| {
            for (k, v) in chunk {
                w.put(table, k, v)?;
            }
            Ok(())
        });
    }
}

/// Runs `f`, which waits on other threads; if it has not returned after [`STEP_LIMIT`], says
/// so on stderr (past the test harness's capture) and aborts the process.
fn within<R>(step: &str, f: impl FnOnce() -> R) -> R {
    let (finished, wait) = mpsc::channel::<()>();
    let step = step.to_owned();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(STEP_LIMIT) == Err(RecvTimeoutError::Timeout) {
            let _ = writeln!(
                std::io::stderr(),
                "kvs backend conformance: {step} has not finished after {} s: a deadlock (one transaction waiting for another that waits for it, or a backend that blocks one of them until the other ends); aborting",
                STEP_LIMIT.as_secs()
            );
            std::process::abort();
        }
    });
    let out = f();
    drop(finished);
    let _ = watchdog.join();
    out
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// `info` names the engine and the storage.
///
/// # Panics
///
/// When the backend breaks the rule, naming it.
pub fn check_info(b: &dyn Backend) {
    fresh(b);
    let info = b.info();
    check(
        !info.engine.is_empty() && !info.storage.is_empty(),
        "info() names the engine and the storage",
        || format!("{info:?}"),
    );
}

/// Keys compare as byte strings (the empty key, prefixes, `0x00` and `0xFF` bytes), both in a
/// write transaction over its own inserts and after the commit; values come back byte for
/// byte.
///
/// # Panics
///
/// When the backend breaks the rule, naming it.
pub fn check_key_order(b: &dyn Backend) {
    fresh(b);
    let model: Model = ORDER_KEYS
        .iter()
        .enumerate()
        .map(|(i, k)| (k.to_vec(), sample_value(i)))
        .collect();
    let order = shuffled(ORDER_KEYS.len(), 7);
    write(b, ORDER, |w| {
        for &i in &order {
            w.insert("order", ORDER_KEYS[i], &sample_value(i))?;
        }
        scans_match(
            w,
            "order",
            &model,
            ORDER,
            "inside the write transaction that inserted them in another order",
        )
    });
    read(b, ORDER, |r| {
        scans_match(r, "order", &model, ORDER, "after the commit")?;
        for (k, v) in &model {
            let got = r.get("order", k)?;
            check(got.as_ref() == Some(v), VALUES, || {
                format!(
                    "get(\"order\", {}) returned {}, expected {}",
                    show(k),
                    show_value(got.as_deref()),
                    show(v)
                )
            });
        }
        Ok(())
    });
}

/// Scans over more entries than a backend fetches at once (1,300 and more), both ways, with
/// pending writes spread over them inside a write transaction, and stopped halfway.
///
/// # Panics
///
/// When the backend breaks the rule, naming it.
pub fn check_long_scans(b: &dyn Backend) {
    fresh(b);
    let mut base = Model::new();
    for i in 0..1300u16 {
        let [hi, lo] = i.to_be_bytes();
        base.insert(vec![hi, lo], i.to_be_bytes().to_vec());
        if i % 7 == 0 {
            base.insert(vec![hi, lo, 0], vec![hi]);
        }
    }
    load(b, "long", &base);
    read(b, LONG, |r| {
        scans_match(r, "long", &base, LONG, "after the commits")?;
        len_is(r, "long", base.len(), "after the commits")?;
        stops_match(r, "long", &base, FULL, &[700], "after the commits")
    });
    let mut ops = Vec::new();
    for i in (0..1300u16).step_by(30) {
        let [hi, lo] = i.to_be_bytes();
        ops.push(Op::insert(&[hi, lo, 0x80], b"new"));
        let [hi, lo] = (i + 15).to_be_bytes();
        ops.push(Op::remove(&[hi, lo]));
    }
    let model = after(&base, &ops);
    let context = "inside a write transaction that inserted and removed keys all over the table";
    write(b, LONG, |w| {
        apply_all(w, "long", &ops)?;
        scans_match(w, "long", &model, LONG, context)?;
        len_is(w, "long", model.len(), context)?;
        stops_match(w, "long", &model, FULL, &[650], context)
    });
    read(b, LONG, |r| {
        scans_match(r, "long", &model, LONG, "after that transaction committed")
    });
}

/// `scan` over every shape of bounds, on present and absent keys, forward and reverse:
/// on committed entries, inside a write transaction over its own writes, and on a table
/// the transaction created.
///
/// # Panics
///
/// When the backend breaks the rule, naming it.
pub fn check_scan_ranges(b: &dyn Backend) {
    fresh(b);
    let base: Model = RANGE_KEYS
        .iter()
        .enumerate()
        .map(|(i, k)| (k.to_vec(), format!("r{i}").into_bytes()))
        .collect();
    load(b, "ranges", &base);
    read(b, RANGES, |r| {
        every_range(r, "ranges", &base, "on committed entries")
    });
    let ops = vec![
        Op::remove(b""),
        Op::insert(b"\x00\x01", b"new 1"),
        Op::insert(b"aa", b"new 2"),
        Op::insert(b"ab", b"changed"),
        Op::put(b"abd", b"new 3"),
        Op::put(b"\x7f", b"changed"),
        Op::delete(b"\xff"),
        Op::delete(b"\xff\x00"),
        Op::remove(b"abc"),
        Op::insert(b"abc", b"again"),
        Op::insert(b"zz", b"gone"),
        Op::remove(b"zz"),
        Op::put(b"\xff\xff\xff", b"gone"),
        Op::delete(b"\xff\xff\xff"),
    ];
    let model = after(&base, &ops);
    write_failing(b, RANGES, |w| {
        apply_all(w, "ranges", &ops)?;
        every_range(
            w,
            "ranges",
            &model,
            "inside a write transaction, over its own writes and committed entries",
        )?;
        for (k, v) in &model {
            w.insert("ranges-new", k, v)?;
        }
        every_range(
            w,
            "ranges-new",
            &model,
            "inside the write transaction that made the table",
        )
    });
    read(b, ROLLBACK, |r| {
        scans_match(
            r,
            "ranges",
            &base,
            ROLLBACK,
            "after a write transaction over it failed",
        )
    });
}

/// [`scan`], with a panic in the backend reported as breaking `rule`.
fn scan_unless_panic<R: ReadTx + ?Sized>(
    r: &R,
    table: &str,
    range: KeyRange<'_>,
    reverse: bool,
    rule: &str,
    call: &str,
) -> Result<Entries> {
    let scanned = std::panic::catch_unwind(AssertUnwindSafe(|| scan(r, table, range, reverse)));
    scanned
        .unwrap_or_else(|panic| fail(rule, format!("{call} panicked: {}", panic_message(&*panic))))
}

fn every_range<R: ReadTx + ?Sized>(r: &R, table: &str, model: &Model, context: &str) -> Result<()> {
    let mut bounds = vec![Bound::Unbounded];
    for key in RANGE_KEYS.iter().chain(ABSENT_PROBES) {
        bounds.push(Bound::Included(*key));
        bounds.push(Bound::Excluded(*key));
    }
    for &start in &bounds {
        for &end in &bounds {
            let range = (start, end);
            for reverse in [false, true] {
                let rule = if is_empty_range(range) {
                    INVERTED
                } else {
                    RANGES
                };
                let call = format!(
                    "scan({table:?}, {}, reverse={reverse}) {context}",
                    show_range(range)
                );
                let got = scan_unless_panic(r, table, range, reverse, rule, &call)?;
                same_entries(rule, &call, &got, &expected(model, range, reverse));
            }
        }
    }
    Ok(())
}

/// A visitor's `Ok(false)` stops a scan at once, both ways, on committed entries and inside a
/// write transaction; a visitor's error is what `scan` returns, and it fails the write
/// transaction it is returned from.
///
/// # Panics
///
/// When the backend breaks the rule, naming it.
pub fn check_scan_stop(b: &dyn Backend) {
    fresh(b);
    let base: Model = (0u8..12).map(|i| (vec![0x10 + i * 2], vec![i])).collect();
    load(b, "stop", &base);
    read(b, STOP, |r| {
        stops_everywhere(r, &base, "on committed entries")?;
        visitor_errors(r, "in a read transaction");
        Ok(())
    });
    let ops = vec![
        Op::insert(&[0x13], b"new"),
        Op::insert(&[0x17], b"new"),
        Op::remove(&[0x14]),
        Op::put(&[0x01], b"new"),
        Op::delete(&[0x1a]),
        Op::insert(&[0x40], b"new"),
    ];
    let model = after(&base, &ops);
    write_failing(b, STOP, |w| {
        apply_all(w, "stop", &ops)?;
        stops_everywhere(w, &model, "inside a write transaction over its own writes")?;
        visitor_errors(w, "in a write transaction");
        Ok(())
    });
    // The visitor's error, passed on by the closure, fails the write transaction.
    let result = b.write(&mut |w| {
        w.insert("stop", b"\x50", b"not committed")?;
        w.scan("stop", FULL, false, &mut |_, _| Err(planted("visitor")))
    });
    match result {
        Err(e) if is_planted(&e, "visitor") || matches!(e, Error::Aborted) => {}
        Err(e) => fail(
            VISITOR,
            format!("a write transaction whose closure returned its scan's visitor error failed with another error: {e}"),
        ),
        Ok(()) => fail(
            ROLLBACK,
            "a write transaction whose closure returned its scan's visitor error committed",
        ),
    }
    read(b, ROLLBACK, |r| {
        scans_match(
            r,
            "stop",
            &base,
            ROLLBACK,
            "after write transactions that failed",
        )
    });
}

fn stops_everywhere<R: ReadTx + ?Sized>(r: &R, model: &Model, context: &str) -> Result<()> {
    let ranges: [KeyRange<'_>; 3] = [
        FULL,
        (Bound::Included(b"\x14"), Bound::Excluded(b"\x22")),
        (Bound::Excluded(b"\x10"), Bound::Unbounded),
    ];
    for range in ranges {
        let stops: Vec<usize> = (1..=expected(model, range, false).len()).collect();
        stops_match(r, "stop", model, range, &stops, context)?;
    }
    Ok(())
}

fn visitor_errors<R: ReadTx + ?Sized>(r: &R, context: &str) {
    for reverse in [false, true] {
        for at in [1, 3] {
            let mut calls = 0;
            let result = r.scan("stop", FULL, reverse, &mut |_, _| {
                calls += 1;
                if calls == at {
                    Err(planted("visitor"))
                } else {
                    Ok(true)
                }
            });
            let call = format!("scan(\"stop\", (Unbounded, Unbounded), reverse={reverse}) {context}, whose visitor fails at entry {at}");
            match result {
                Err(e) if is_planted(&e, "visitor") => {}
                Err(e) => fail(VISITOR, format!("{call} returned another error: {e}")),
                Ok(()) => fail(VISITOR, format!("{call} returned Ok")),
            }
            check(calls == at, VISITOR, || {
                format!("{call} called the visitor {calls} times")
            });
        }
    }
}

/// `get`, `get_with` and `get_many` on committed entries and inside a write transaction over
/// its own writes: present and absent keys, the empty key, empty values, `get_many`'s order,
/// duplicates and long key lists, visitors' errors.
///
/// # Panics
///
/// When the backend breaks the rule, naming it.
pub fn check_point_reads(b: &dyn Backend) {
    fresh(b);
    let mut base = Model::new();
    base.insert(b"".to_vec(), b"under the empty key".to_vec());
    base.insert(b"a".to_vec(), b"1".to_vec());
    base.insert(b"b".to_vec(), Vec::new());
    base.insert(b"\xff".to_vec(), vec![0xff; 64]);
    for i in 0..80 {
        base.insert(
            format!("m{i:03}").into_bytes(),
            format!("v{i}").into_bytes(),
        );
    }
    load(b, "points", &base);
    let ops = vec![
        Op::insert(b"c", b"3"),
        Op::remove(b"a"),
        Op::put(b"b", b"2"),
        Op::delete(b"\xff"),
        Op::insert(b"m001", b"changed"),
        Op::remove(b"m002"),
        Op::put(b"m090", b"new"),
        Op::delete(b"m003"),
        Op::insert(b"", b""),
    ];
    let model = after(&base, &ops);
    let mut probes: Vec<Vec<u8>> = base.keys().chain(model.keys()).cloned().collect();
    probes.extend([
        b"zz".to_vec(),
        b"a\x00".to_vec(),
        b"\xff\xff".to_vec(),
        b"m".to_vec(),
    ]);
    probes.sort();
    probes.dedup();
    read(b, GET, |r| {
        point_reads(r, &base, &probes, "on committed entries")
    });
    write_failing(b, OWN_WRITES, |w| {
        apply_all(w, "points", &ops)?;
        point_reads(
            w,
            &model,
            &probes,
            "inside a write transaction over its own writes",
        )
    });
}

fn point_reads<R: ReadTx + ?Sized>(
    r: &R,
    model: &Model,
    probes: &[Vec<u8>],
    context: &str,
) -> Result<()> {
    for key in probes {
        let want = model.get(key).map(Vec::as_slice);
        let got = r.get("points", key)?;
        check(got.as_deref() == want, GET, || {
            format!(
                "get(\"points\", {}) {context} returned {}, expected {}",
                show(key),
                show_value(got.as_deref()),
                show_value(want)
            )
        });
        let mut lent = Vec::new();
        let mut calls = 0;
        let found = r.get_with("points", key, &mut |v| {
            calls += 1;
            lent = v.to_vec();
            Ok(())
        })?;
        let right = match want {
            Some(v) => found && calls == 1 && lent == v,
            None => !found && calls == 0,
        };
        check(right, GET_WITH, || {
            format!(
                "get_with(\"points\", {}) {context} returned {found} after {calls} visits (last with {}), expected {}",
                show(key),
                show(&lent),
                show_value(want)
            )
        });
    }
    if let Some(key) = model.keys().next() {
        match r.get_with("points", key, &mut |_| Err(planted("get_with"))) {
            Err(e) if is_planted(&e, "get_with") => {}
            other => fail(
                GET_WITH,
                format!(
                    "get_with(\"points\", {}) {context}, whose visitor fails, returned {other:?}",
                    show(key)
                ),
            ),
        }
    }
    let mut keys: Vec<&[u8]> = probes.iter().rev().map(Vec::as_slice).collect();
    keys.extend(probes.iter().take(3).map(Vec::as_slice));
    many_match(r, model, &keys, context)?;
    many_match(r, model, &[], context)?;
    let mut long: Vec<&[u8]> = probes.iter().map(Vec::as_slice).collect();
    long.extend(probes.iter().map(Vec::as_slice));
    many_match(r, model, &long, context)?;
    let mut calls = 0;
    match r.get_many("points", &keys, &mut |_, _| {
        calls += 1;
        if calls == 3 {
            Err(planted("get_many"))
        } else {
            Ok(())
        }
    }) {
        Err(e) if is_planted(&e, "get_many") => Ok(()),
        other => fail(
            GET_MANY,
            format!(
                "get_many(\"points\", {} keys) {context}, whose visitor fails at its third call, returned {other:?}",
                keys.len()
            ),
        ),
    }
}

fn many_match<R: ReadTx + ?Sized>(
    r: &R,
    model: &Model,
    keys: &[&[u8]],
    context: &str,
) -> Result<()> {
    let mut seen: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
    r.get_many("points", keys, &mut |i, v| {
        seen.push((i, v.map(<[u8]>::to_vec)));
        Ok(())
    })?;
    let want: Vec<(usize, Option<Vec<u8>>)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (i, model.get(*k).cloned()))
        .collect();
    if seen != want {
        let at = seen
            .iter()
            .zip(&want)
            .position(|(s, w)| s != w)
            .unwrap_or_else(|| seen.len().min(want.len()));
        let visit = |list: &[(usize, Option<Vec<u8>>)]| {
            list.get(at).map_or_else(
                || "no visit".to_owned(),
                |(i, v)| format!("({i}, {})", show_value(v.as_deref())),
            )
        };
        fail(
            GET_MANY,
            format!(
                "get_many(\"points\", {} keys) {context} made {} visits, expected {}; visit {at} was {}, expected {} (key {})",
                keys.len(),
                seen.len(),
                want.len(),
                visit(&seen),
                visit(&want),
                keys.get(at).map_or_else(|| "-".to_owned(), |k| show(k))
            ),
        );
    }
    Ok(())
}

/// `len` after committed writes and, inside a write transaction, after each kind of write:
/// new and existing keys, absent keys, blind writes, keys written twice, a dropped table.
///
/// # Panics
///
/// When the backend breaks the rule, naming it.
pub fn check_len(b: &dyn Backend) {
    fresh(b);
    let key = |i: u8| vec![b'k', i];
    let base: Model = (0..10).map(|i| (key(i), vec![i])).collect();
    load(b, "len", &base);
    read(b, LEN, |r| {
        len_is(r, "len", 10, "after committing 10 entries")?;
        len_is(r, "len-other", 0, "of a table never written")
    });
    let steps = [
        (Op::insert(&key(10), b"v"), 11, "after inserting a new key"),
        (
            Op::insert(&key(0), b"v"),
            11,
            "after inserting over a committed key",
        ),
        (Op::remove(&key(1)), 10, "after removing a committed key"),
        (Op::remove(&key(99)), 10, "after removing an absent key"),
        (Op::put(&key(11), b"v"), 11, "after put of a new key"),
        (Op::put(&key(2), b"v"), 11, "after put over a committed key"),
        (Op::delete(&key(3)), 10, "after delete of a committed key"),
        (Op::delete(&key(98)), 10, "after delete of an absent key"),
        (
            Op::put(&key(3), b"v"),
            11,
            "after put of the key deleted in this transaction",
        ),
        (
            Op::insert(&key(1), b"v"),
            12,
            "after inserting the key removed in this transaction",
        ),
        (
            Op::remove(&key(10)),
            11,
            "after removing a key inserted in this transaction",
        ),
        (
            Op::delete(&key(11)),
            10,
            "after delete of a key put in this transaction",
        ),
        (
            Op::insert(&key(12), b"v"),
            11,
            "after inserting another new key",
        ),
    ];
    write(b, LEN, |w| {
        for (op, want, context) in &steps {
            op.apply(w, "len")?;
            len_is(
                w,
                "len",
                *want,
                &format!("inside a write transaction, {context}"),
            )?;
        }
        for i in 0..3 {
            w.insert("len-2", &[i], b"v")?;
        }
        len_is(
            w,
            "len-2",
            3,
            "inside the write transaction that inserted 3 entries",
        )?;
        len_is(
            w,
            "len",
            11,
            "inside a write transaction, after writes to another table",
        )
    });
    read(b, LEN, |r| {
        len_is(r, "len", 11, "after the commit")?;
        len_is(r, "len-2", 3, "after the commit")
    });
    write_failing(b, LEN, |w| {
        check(w.drop_table("len")?, DROP, || {
            "drop_table(\"len\") of a table with 11 entries returned false".to_owned()
        });
        len_is(w, "len", 0, "after drop_table in the same transaction")?;
        w.insert("len", b"new", b"v")?;
        len_is(
            w,
            "len",
            1,
            "after drop_table and one insert in the same transaction",
        )
    });
    read(b, ROLLBACK, |r| {
        len_is(
            r,
            "len",
            11,
            "after a write transaction that dropped it failed",
        )
    });
}

/// A table that does not exist (none ever made, or a name that is a prefix or an extension
/// of one that exists) reads as empty and is not listed, in read and write transactions;
/// `drop_table` says it did not exist.
///
/// # Panics
///
/// When the backend breaks the rule, naming it.
pub fn check_missing_tables(b: &dyn Backend) {
    const NAMES: [&str; 3] = ["absent", "presen", "presentx"];
    fresh(b);
    write(b, COMMIT, |w| {
        w.insert("present", b"k", b"v")?;
        w.insert("present", b"", b"under the empty key").map(drop)
    });
    read(b, MISSING, |r| {
        tables_are(r, &["present"], MISSING, "in a read transaction")?;
        for table in NAMES {
            reads_empty(r, table, "in a read transaction")?;
        }
        Ok(())
    });
    write_failing(b, MISSING, |w| {
        // Listed and dropped before any read: a backend may create a table that a write
        // transaction reads.
        tables_are(w, &["present"], MISSING, "in a write transaction")?;
        for table in NAMES {
            let existed = w.drop_table(table)?;
            check(!existed, DROP, || {
                format!("drop_table({table:?}) of a table that never existed returned true")
            });
        }
        for table in NAMES {
            reads_empty(w, table, "in a write transaction")?;
        }
        Ok(())
    });
    read(b, ROLLBACK, |r| {
        tables_are(
            r,
            &["present"],
            ROLLBACK,
            "after a write transaction that failed",
        )?;
        len_is(r, "present", 2, "after a write transaction that failed")
    });
}

fn reads_empty<R: ReadTx + ?Sized>(r: &R, table: &str, context: &str) -> Result<()> {
    let what = |call: &str, got: &dyn std::fmt::Debug| {
        format!("{call} on the missing table {table:?} {context} returned {got:?}")
    };
    for key in [&b"k"[..], b""] {
        let got = r.get(table, key)?;
        check(got.is_none(), MISSING, || what("get", &got));
        let mut calls = 0;
        let found = r.get_with(table, key, &mut |_| {
            calls += 1;
            Ok(())
        })?;
        check(!found && calls == 0, MISSING, || {
            what("get_with", &(found, calls))
        });
    }
    let mut seen = Vec::new();
    r.get_many(table, &[b"k", b""], &mut |i, v| {
        seen.push((i, v.map(<[u8]>::to_vec)));
        Ok(())
    })?;
    check(seen == vec![(0, None), (1, None)], MISSING, || {
        what("get_many", &seen)
    });
    let ranges: [KeyRange<'_>; 3] = [
        FULL,
        (Bound::Included(b""), Bound::Unbounded),
        (Bound::Included(b"k"), Bound::Included(b"k")),
    ];
    for range in ranges {
        for reverse in [false, true] {
            let got = scan(r, table, range, reverse)?;
            check(got.is_empty(), MISSING, || {
                what(
                    &format!("scan {} reverse={reverse}", show_range(range)),
                    &got,
                )
            });
        }
    }
    let len = r.len(table)?;
    check(len == 0, MISSING, || what("len", &len));
    r.stored_bytes(table)?;
    Ok(())
}

/// `tables`, `create_table` and `drop_table`: empty tables listed, tables of similar names
/// kept apart, `create_table` on an existing table, `drop_table`'s answer and effect (within
/// the transaction and after it), a table dropped and written again in one transaction.
///
/// # Panics
///
/// When the backend breaks the rule, naming it.
pub fn check_tables(b: &dyn Backend) {
    const NAMED: [&str; 6] = ["a", "ab", "a b", "a/b", "#meta", "tåble"];
    fresh(b);
    let mut all: Vec<&str> = vec!["empty", "full", "filled"];
    all.extend(NAMED);
    write(b, TABLES, |w| {
        w.create_table("empty")?;
        w.insert("full", b"k", b"full")?;
        w.create_table("filled")?;
        w.insert("filled", b"k", b"filled")?;
        for name in NAMED {
            w.put(name, b"k", name.as_bytes())?;
        }
        tables_are(
            w,
            &all,
            TABLES,
            "inside the write transaction that made them",
        )
    });
    read(b, TABLES, |r| {
        tables_are(r, &all, TABLES, "after the commit")?;
        len_is(r, "empty", 0, "of a table made by create_table alone")?;
        for name in NAMED.iter().chain(&["full", "filled"]) {
            // Each table holds its own name under the same key.
            let got = scan(r, name, FULL, false)?;
            same_entries(
                SEPARATE,
                format_args!("scan({name:?}, (Unbounded, Unbounded), reverse=false)"),
                &got,
                &[(b"k".to_vec(), name.as_bytes().to_vec())],
            );
        }
        Ok(())
    });
    write(b, CREATE, |w| {
        w.create_table("full")?;
        w.create_table("empty")
    });
    read(b, CREATE, |r| {
        tables_are(r, &all, CREATE, "after create_table of tables that exist")?;
        let got = r.get("full", b"k")?;
        check(got.as_deref() == Some(b"full"), CREATE, || {
            format!(
                "get(\"full\", \"k\") after create_table(\"full\") returned {}",
                show_value(got.as_deref())
            )
        });
        Ok(())
    });
    drop_tables(b, &all);
}

fn drop_tables(b: &dyn Backend, all: &[&str]) {
    let left: Vec<&str> = all
        .iter()
        .copied()
        .filter(|t| !["empty", "full", "a"].contains(t))
        .collect();
    write(b, DROP, |w| {
        for (table, want, what) in [
            ("empty", true, "an empty table made by create_table"),
            ("full", true, "a table with an entry"),
            ("nope", false, "a table that never existed"),
            (
                "full",
                false,
                "a table dropped earlier in the same transaction",
            ),
            ("a", true, "a table whose name is a prefix of others"),
        ] {
            let got = w.drop_table(table)?;
            check(got == want, DROP, || {
                format!("drop_table({table:?}) of {what} returned {got}")
            });
        }
        w.create_table("new")?;
        let got = w.drop_table("new")?;
        check(got, DROP, || {
            format!("drop_table(\"new\") of a table made by create_table earlier in the same transaction returned {got}")
        });
        tables_are(
            w,
            &left,
            OWN_WRITES,
            "after drop_table in the same transaction",
        )
    });
    read(b, DROP, |r| {
        tables_are(r, &left, DROP, "after a commit that dropped tables")?;
        for table in ["full", "a"] {
            len_is(r, table, 0, "after its drop_table committed")?;
            let got = r.get(table, b"k")?;
            check(got.is_none(), DROP, || {
                format!(
                    "get({table:?}, \"k\") after drop_table({table:?}) committed returned {}",
                    show_value(got.as_deref())
                )
            });
        }
        for table in ["ab", "a b", "a/b"] {
            len_is(r, table, 1, "after drop_table(\"a\") committed")?;
        }
        Ok(())
    });
    write(b, COMMIT, |w| {
        w.insert("redo", b"old 1", b"v")?;
        w.insert("redo", b"old 2", b"v").map(drop)
    });
    let want: Model = [(b"new".to_vec(), b"v".to_vec())].into_iter().collect();
    write(b, DROP, |w| {
        let existed = w.drop_table("redo")?;
        check(existed, DROP, || {
            "drop_table(\"redo\") of a table with 2 entries returned false".to_owned()
        });
        w.insert("redo", b"new", b"v")?;
        let context = "inside the transaction that dropped the table and then inserted into it";
        scans_match(w, "redo", &want, OWN_WRITES, context)?;
        len_is(w, "redo", 1, context)?;
        let old = w.get("redo", b"old 1")?;
        check(old.is_none(), OWN_WRITES, || {
            format!(
                "get(\"redo\", \"old 1\") {context} returned {}",
                show_value(old.as_deref())
            )
        });
        let listed = w.tables()?.iter().any(|t| t == "redo");
        check(listed, OWN_WRITES, || {
            format!("tables() {context} does not list \"redo\"")
        });
        Ok(())
    });
    read(b, DROP, |r| {
        scans_match(
            r,
            "redo",
            &want,
            DROP,
            "after a commit that dropped the table and then inserted into it",
        )?;
        r.stored_bytes("redo")?;
        r.stored_bytes("nope")?;
        Ok(())
    });
}

/// What `insert` and `remove` return (from committed values and from the transaction's own
/// earlier writes, blind ones included), what `put` and `delete` leave, and that `prefetch`
/// changes none of it.
///
/// # Panics
///
/// When the backend breaks the rule, naming it.
pub fn check_write_results(b: &dyn Backend) {
    fresh(b);
    let base: Model = [("a", "1"), ("b", "2"), ("c", "3"), ("e", "")]
        .into_iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    load(b, "w", &base);
    let first: &[Step] = &[
        (
            Op::insert(b"a", b"1b"),
            Some(b"1"),
            "over a committed value",
        ),
        (
            Op::insert(b"a", b"1c"),
            Some(b"1b"),
            "over this transaction's insert",
        ),
        (Op::insert(b"n", b"n1"), None, "of a new key"),
        (
            Op::insert(b"n", b"n1"),
            Some(b"n1"),
            "of the value already there",
        ),
        (Op::remove(b"b"), Some(b"2"), "of a committed key"),
        (Op::remove(b"b"), None, "of a key this transaction removed"),
        (
            Op::insert(b"b", b"2b"),
            None,
            "of a key this transaction removed",
        ),
        (Op::put(b"c", b"3b"), None, "over a committed key"),
        (
            Op::insert(b"c", b"3c"),
            Some(b"3b"),
            "over a put of a committed key",
        ),
        (Op::put(b"p", b"p1"), None, "of a new key"),
        (
            Op::remove(b"p"),
            Some(b"p1"),
            "of a key put in this transaction",
        ),
        (Op::delete(b"e"), None, "of a committed key"),
        (
            Op::insert(b"e", b"e2"),
            None,
            "of a committed key deleted in this transaction",
        ),
        (
            Op::remove(b"e"),
            Some(b"e2"),
            "of a key inserted in this transaction",
        ),
        (Op::remove(b"zz"), None, "of a key that never existed"),
        (Op::delete(b"zz2"), None, "of a key that never existed"),
        (Op::insert(b"f", b""), None, "of an empty value"),
        (Op::insert(b"f", b"f2"), Some(b""), "over an empty value"),
    ];
    let model = after(
        &base,
        &first.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
    );
    write(b, INSERT, |w| {
        let mut m = base.clone();
        for step in first {
            returns(w, &mut m, step)?;
        }
        scans_match(w, "w", &m, OWN_WRITES, "inside the write transaction")
    });
    read(b, COMMIT, |r| {
        scans_match(r, "w", &model, COMMIT, "after the commit")
    });
    let second: &[Step] = &[
        (
            Op::insert(b"a", b"x"),
            Some(b"1c"),
            "over a value the last transaction committed",
        ),
        (
            Op::remove(b"n"),
            Some(b"n1"),
            "of a key the last transaction committed",
        ),
        (
            Op::remove(b"e"),
            None,
            "of a key the last transaction removed",
        ),
    ];
    write_failing(b, INSERT, |w| {
        let mut m = model.clone();
        second.iter().try_for_each(|step| returns(w, &mut m, step))
    });
    prefetch_changes_nothing(b, &model);
}

/// The prefetch part of [`check_write_results`], over the committed `model`.
fn prefetch_changes_nothing(b: &dyn Backend, model: &Model) {
    let keys: [(&str, &[u8]); 6] = [
        ("w", b"a"),
        ("w", b"c"),
        ("w", b"zz"),
        ("w", b"n"),
        ("w-other", b"k"),
        ("missing", b"k"),
    ];
    let before: &[Step] = &[(Op::insert(b"a", b"pending"), Some(b"1c"), "before prefetch")];
    let then: &[Step] = &[
        (Op::insert(b"c", b"c4"), Some(b"3c"), "after prefetch"),
        (Op::remove(b"n"), Some(b"n1"), "after prefetch"),
        (Op::remove(b"zz"), None, "of an absent key, after prefetch"),
        (
            Op::insert(b"a", b"again"),
            Some(b"pending"),
            "after prefetch, over a write before it",
        ),
    ];
    write_failing(b, PREFETCH, |w| {
        let mut m = model.clone();
        before
            .iter()
            .try_for_each(|step| returns(w, &mut m, step))?;
        w.prefetch(&mut keys.into_iter())?;
        then.iter().try_for_each(|step| returns(w, &mut m, step))?;
        scans_match(w, "w", &m, PREFETCH, "after prefetch")
    });
    read(b, ROLLBACK, |r| {
        scans_match(
            r,
            "w",
            model,
            ROLLBACK,
            "after write transactions that failed",
        )
    });
}

/// A write, the value it must return (`insert` and `remove`), and what it is, for messages.
type Step = (Op, Option<&'static [u8]>, &'static str);

/// Applies a step's write and checks what it returned and the value now read.
fn returns(w: &mut dyn WriteTx, model: &mut Model, (op, want, what): &Step) -> Result<()> {
    let (got, key, call) = match op {
        Op::Insert(k, v) => (
            Some(w.insert("w", k, v)?),
            k,
            format!("insert(\"w\", {}, {}) {what}", show(k), show(v)),
        ),
        Op::Remove(k) => (
            Some(w.remove("w", k)?),
            k,
            format!("remove(\"w\", {}) {what}", show(k)),
        ),
        Op::Put(k, v) => (
            w.put("w", k, v).map(|()| None)?,
            k,
            format!("put(\"w\", {}, {}) {what}", show(k), show(v)),
        ),
        Op::Delete(k) => (
            w.delete("w", k).map(|()| None)?,
            k,
            format!("delete(\"w\", {}) {what}", show(k)),
        ),
    };
    if let Some(got) = got {
        check(got.as_deref() == *want, INSERT, || {
            format!(
                "{call} returned {}, expected {}",
                show_value(got.as_deref()),
                show_value(*want)
            )
        });
    }
    op.model(model);
    let now = w.get("w", key)?;
    check(now.as_ref() == model.get(key), OWN_WRITES, || {
        format!(
            "get(\"w\", {}) after {call} returned {}, expected {}",
            show(key),
            show_value(now.as_deref()),
            show_value(model.get(key).map(Vec::as_slice))
        )
    });
    Ok(())
}

/// `write` and `read` call their closure once; a commit makes every kind of write visible at
/// once; a closure's `Err` leaves nothing of any kind of write.
///
/// # Panics
///
/// When the backend breaks the rule, naming it.
pub fn check_commit_and_rollback(b: &dyn Backend) {
    fresh(b);
    let mut calls = 0;
    let result = b.write(&mut |_| {
        calls += 1;
        Ok(())
    });
    done(result, COMMIT, "an empty write transaction");
    check(calls == 1, ONCE, || {
        format!("an empty write transaction called its closure {calls} times")
    });
    calls = 0;
    let result = b.read(&mut |_| {
        calls += 1;
        Ok(())
    });
    done(result, ONCE, "an empty read transaction");
    check(calls == 1, ONCE, || {
        format!("a read transaction called its closure {calls} times")
    });

    let entries = |pairs: &[(&str, &str)]| -> Model {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    };
    write(b, COMMIT, |w| {
        for t in ["c1", "c2", "c3"] {
            w.create_table(t)?;
        }
        w.insert("c1", b"a", b"1")?;
        w.insert("c1", b"b", b"2")?;
        w.put("c2", b"x", b"3")?;
        w.insert("c4", b"k", b"4")?;
        w.put("c4", b"l", b"5")
    });
    let mut want = State::new();
    want.insert("c1".into(), entries(&[("a", "1"), ("b", "2")]));
    want.insert("c2".into(), entries(&[("x", "3")]));
    want.insert("c3".into(), Model::new());
    want.insert("c4".into(), entries(&[("k", "4"), ("l", "5")]));
    same_state(
        COMMIT,
        "after the first commit",
        &done(observe(b), COMMIT, "a read transaction"),
        &want,
    );
    write(b, COMMIT, |w| {
        w.remove("c1", b"b")?;
        w.delete("c2", b"x")?;
        w.insert("c1", b"c", b"6")?;
        w.put("c3", b"y", b"7")?;
        w.drop_table("c4").map(drop)
    });
    want.insert("c1".into(), entries(&[("a", "1"), ("c", "6")]));
    want.insert("c2".into(), Model::new());
    want.insert("c3".into(), entries(&[("y", "7")]));
    want.remove("c4");
    same_state(
        COMMIT,
        "after the second commit",
        &done(observe(b), COMMIT, "a read transaction"),
        &want,
    );

    calls = 0;
    write_failing(b, ROLLBACK, |w| {
        calls += 1;
        w.insert("c1", b"a", b"changed")?;
        w.insert("c1", b"new", b"v")?;
        w.remove("c1", b"c")?;
        w.put("c2", b"p", b"v")?;
        w.delete("c3", b"y")?;
        w.create_table("c5")?;
        w.insert("c6", b"k", b"v")?;
        w.drop_table("c3")?;
        w.drop_table("c1")?;
        w.put("c1", b"z", b"v")
    });
    check(calls == 1, ONCE, || {
        format!("a failing write transaction called its closure {calls} times")
    });
    same_state(
        ROLLBACK,
        "after a write transaction that wrote, removed, created and dropped, then failed",
        &done(observe(b), ROLLBACK, "a read transaction"),
        &want,
    );
}

/// A write transaction begun with [`Backend::begin_write`] (where the backend offers one)
/// can move to another thread between runs; each run sees the runs before it; nothing is
/// visible before the commit, all of it after; one dropped uncommitted leaves nothing.
///
/// # Panics
///
/// When the backend breaks the rule, naming it.
pub fn check_shared_write(b: &dyn Backend) {
    fresh(b);
    let Some(begun) = b.begin_write() else {
        return;
    };
    let mut txn = done(begun, SHARED, "begin_write");
    done(
        txn.run(&mut |w| w.insert("s", b"a", b"1").map(drop)),
        SHARED,
        "a first run",
    );
    // The second run on another thread, as a group commit lends it.
    let (txn, seen) = within("a run on another thread", || {
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut seen = None;
                let result = txn.run(&mut |w| {
                    seen = w.get("s", b"a")?;
                    w.put("s", b"b", b"2")
                });
                (txn, result.map(|()| seen))
            })
            .join()
            .unwrap_or_else(|_| fail(SHARED, "a run on another thread panicked"))
        })
    });
    let seen = done(seen, SHARED, "a second run, on another thread");
    check(seen.as_deref() == Some(b"1".as_slice()), SHARED, || {
        format!(
            "the second run read {} under \"a\", which the first wrote as \"1\"",
            show_value(seen.as_deref())
        )
    });
    let before = done(observe(b), SHARED, "a read transaction");
    check(before.values().all(BTreeMap::is_empty), SHARED, || {
        format!("before the commit a reader saw {}", show_state(&before))
    });
    done(txn.commit(), SHARED, "commit");
    let mut want = State::new();
    want.insert(
        "s".into(),
        [
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
        ]
        .into_iter()
        .collect(),
    );
    let after = done(observe(b), SHARED, "a read transaction");
    same_state(SHARED, "after the commit", &after, &want);

    let begun = b
        .begin_write()
        .unwrap_or_else(|| fail(SHARED, "begin_write answered once"));
    let mut txn = done(begun, SHARED, "begin_write");
    done(
        txn.run(&mut |w| w.put("s", b"c", b"3")),
        SHARED,
        "a run that is never committed",
    );
    drop(txn);
    let after = done(observe(b), SHARED, "a read transaction");
    same_state(
        SHARED,
        "after a shared write dropped uncommitted",
        &after,
        &want,
    );
}

/// Nothing a write transaction wrote is visible to a read transaction on another thread
/// before the commit (nor ever, when the write fails); all of it is after the commit.
///
/// # Panics
///
/// When the backend breaks the rule, naming it, or aborts the process when the read does not
/// return within two minutes.
pub fn check_write_isolation(b: &dyn Backend) {
    fresh(b);
    write(b, COMMIT, |w| {
        w.create_table("iso")?;
        w.insert("iso", b"a", b"1")?;
        w.insert("iso", b"b", b"2").map(drop)
    });
    let before = done(observe(b), ISOLATION, "a read transaction");
    for commit in [false, true] {
        let result = b.write(&mut |w| {
            w.insert("iso", b"a", b"changed")?;
            w.remove("iso", b"b")?;
            w.put("iso", b"c", b"3")?;
            w.create_table("iso-new")?;
            w.insert("iso-other", b"k", b"v")?;
            let seen = within(
                "a read transaction on another thread, while a write transaction is open",
                || std::thread::scope(|s| s.spawn(|| observe(b)).join()),
            );
            match seen {
                Ok(Ok(seen)) => same_state(
                    ISOLATION,
                    "what a read transaction on another thread saw while a write transaction was open",
                    &seen,
                    &before,
                ),
                Ok(Err(e)) => fail(
                    ISOLATION,
                    format!("a read transaction on another thread, while a write transaction was open, failed: {e}"),
                ),
                Err(_) => fail(ISOLATION, "the reading thread panicked"),
            }
            if commit {
                Ok(())
            } else {
                Err(planted("isolation"))
            }
        });
        let now = done(observe(b), ISOLATION, "a read transaction");
        if commit {
            done(result, COMMIT, "the write transaction");
            let mut want = before.clone();
            let iso = want.entry("iso".into()).or_default();
            iso.insert(b"a".to_vec(), b"changed".to_vec());
            iso.remove(&b"b"[..]);
            iso.insert(b"c".to_vec(), b"3".to_vec());
            want.insert("iso-new".into(), Model::new());
            want.insert(
                "iso-other".into(),
                [(b"k".to_vec(), b"v".to_vec())].into_iter().collect(),
            );
            same_state(COMMIT, "after the commit", &now, &want);
        } else {
            check(result.is_err(), ROLLBACK, || {
                "Backend::write returned Ok although its closure returned Err".to_owned()
            });
            same_state(
                ROLLBACK,
                "after the write transaction failed",
                &now,
                &before,
            );
        }
    }
}

/// A read transaction keeps its snapshot while another thread commits: after its first
/// read, the commit's updates, removals, insertions and new tables are invisible to `get`,
/// `get_many`, `scan`, `len` and `tables` inside it, and visible to the next read
/// transaction.
///
/// # Panics
///
/// When the backend breaks the rule, naming it, or aborts the process when the commit does
/// not return within two minutes.
pub fn check_read_snapshot(b: &dyn Backend) {
    fresh(b);
    write(b, COMMIT, |w| {
        w.create_table("snap")?;
        w.insert("snap", b"a", b"1")?;
        w.insert("snap", b"b", b"2")?;
        w.insert("snap", b"c", b"3").map(drop)
    });
    let before = done(observe(b), SNAPSHOT, "a read transaction");
    read(b, SNAPSHOT, |r| {
        // The first read: an engine may take its snapshot here rather than at the start.
        let first = state(r)?;
        same_state(SNAPSHOT, "the first read", &first, &before);
        let committed = within(
            "a commit on another thread, while a read transaction is open",
            || {
                std::thread::scope(|s| {
                    s.spawn(|| {
                        b.write(&mut |w| {
                            w.insert("snap", b"a", b"changed")?;
                            w.remove("snap", b"b")?;
                            w.insert("snap", b"d", b"4")?;
                            w.create_table("snap-new")?;
                            w.put("snap-more", b"k", b"v")
                        })
                    })
                    .join()
                })
            },
        );
        match committed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => fail(
                SNAPSHOT,
                format!("a write transaction on another thread, while a read transaction was open, failed: {e}"),
            ),
            Err(_) => fail(SNAPSHOT, "the writing thread panicked"),
        }
        let context = "inside a read transaction, after another thread committed";
        same_state(SNAPSHOT, context, &state(r)?, &before);
        for (key, want) in [
            (&b"a"[..], Some(&b"1"[..])),
            (b"b", Some(b"2")),
            (b"d", None),
        ] {
            let got = r.get("snap", key)?;
            check(got.as_deref() == want, SNAPSHOT, || {
                format!(
                    "get(\"snap\", {}) {context} returned {}, expected {}",
                    show(key),
                    show_value(got.as_deref()),
                    show_value(want)
                )
            });
        }
        let mut many = Vec::new();
        r.get_many("snap", &[b"a", b"b", b"d"], &mut |_, v| {
            many.push(v.map(<[u8]>::to_vec));
            Ok(())
        })?;
        let want = [Some(b"1".to_vec()), Some(b"2".to_vec()), None];
        check(many == want, SNAPSHOT, || {
            format!("get_many(\"snap\", [a, b, d]) {context} visited {many:?}, expected {want:?}")
        });
        let len = r.len("snap")?;
        check(len == 3, SNAPSHOT, || {
            format!("len(\"snap\") {context} is {len}, expected 3")
        });
        Ok(())
    });
    let mut want = before.clone();
    want.insert(
        "snap".into(),
        [
            (b"a", b"changed".to_vec()),
            (b"c", b"3".to_vec()),
            (b"d", b"4".to_vec()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v))
        .collect(),
    );
    want.insert("snap-new".into(), Model::new());
    want.insert(
        "snap-more".into(),
        [(b"k".to_vec(), b"v".to_vec())].into_iter().collect(),
    );
    same_state(
        COMMIT,
        "a read transaction begun after the other thread's commit",
        &done(observe(b), COMMIT, "a read transaction"),
        &want,
    );
}

/// Two threads meet here: each waits, up to [`MEET_WAIT`], for the other to arrive.
#[derive(Default)]
struct Meeting {
    arrived: Mutex<usize>,
    all_here: Condvar,
}

impl Meeting {
    fn arrive(&self) {
        let mut arrived = self.arrived.lock().unwrap_or_else(PoisonError::into_inner);
        *arrived += 1;
        self.all_here.notify_all();
        let _ = self
            .all_here
            .wait_timeout_while(arrived, MEET_WAIT, |n| *n < 2)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// How a pair of racing transactions reads and writes.
struct Race {
    /// What the transactions read with, for messages.
    name: &'static str,
    table: &'static str,
    /// Reads what the other transaction writes; returns what was seen.
    read: fn(&dyn ReadTx, &str) -> Result<u64>,
    /// Writes, given the transaction's number (0 or 1) and what it read.
    write: fn(&mut dyn WriteTx, &str, u8, u64) -> Result<()>,
    /// Reads a counter (`true`) or counts entries (`false`).
    counter: bool,
}

fn read_counter(r: &dyn ReadTx, table: &str) -> Result<u64> {
    Ok(number(r.get(table, COUNTER)?.as_deref()).unwrap_or(0))
}

fn read_counter_with(r: &dyn ReadTx, table: &str) -> Result<u64> {
    let mut n = 0;
    r.get_with(table, COUNTER, &mut |v| {
        n = number(Some(v)).unwrap_or(0);
        Ok(())
    })?;
    Ok(n)
}

fn read_counter_many(r: &dyn ReadTx, table: &str) -> Result<u64> {
    let mut n = 0;
    r.get_many(table, &[b"other", COUNTER], &mut |i, v| {
        if i == 1 {
            n = number(v).unwrap_or(0);
        }
        Ok(())
    })?;
    Ok(n)
}

fn write_counter(w: &mut dyn WriteTx, table: &str, _: u8, seen: u64) -> Result<()> {
    w.insert(table, COUNTER, &(seen + 1).to_be_bytes())
        .map(drop)
}

fn count_scanned(r: &dyn ReadTx, table: &str) -> Result<u64> {
    let mut n = 0;
    r.scan(table, FULL, false, &mut |_, _| {
        n += 1;
        Ok(true)
    })?;
    Ok(n)
}

fn count_len(r: &dyn ReadTx, table: &str) -> Result<u64> {
    r.len(table)
}

fn write_seen(w: &mut dyn WriteTx, table: &str, i: u8, seen: u64) -> Result<()> {
    w.insert(table, &[i], &seen.to_be_bytes()).map(drop)
}

static RACES: [Race; 5] = [
    Race {
        name: "get",
        table: "race-get",
        read: read_counter,
        write: write_counter,
        counter: true,
    },
    Race {
        name: "get_with",
        table: "race-get-with",
        read: read_counter_with,
        write: write_counter,
        counter: true,
    },
    Race {
        name: "get_many",
        table: "race-get-many",
        read: read_counter_many,
        write: write_counter,
        counter: true,
    },
    Race {
        name: "scan",
        table: "race-scan",
        read: count_scanned,
        write: write_seen,
        counter: false,
    },
    Race {
        name: "len",
        table: "race-len",
        read: count_len,
        write: write_seen,
        counter: false,
    },
];

/// What one racing transaction did: its result, how often its closure ran, what it read.
type Outcome = (Result<()>, usize, Option<u64>);

/// Pairs of write transactions that each read what the other writes, on two threads that
/// wait for each other after reading (up to a second, for engines that run one write
/// transaction at a time): through `get`, `get_with` and `get_many` (both increment one
/// counter: a lost update if both commit over the same value) and through `scan` and `len`
/// (both count a table's entries and insert their count: a write skew if both commit over
/// the same count). Either outcome is accepted, one after the other or the later failing with
/// [`Error::Conflict`] and writing nothing; both committing over the same state is not.
///
/// # Panics
///
/// When the backend breaks the rule, naming it, or aborts the process when the pair has not
/// finished within two minutes.
pub fn check_conflicts(b: &dyn Backend) {
    fresh(b);
    write(b, COMMIT, |w| {
        w.create_table(RACE_MARKS)?;
        for race in &RACES {
            if race.counter {
                w.insert(race.table, COUNTER, &0u64.to_be_bytes())?;
            } else {
                w.insert(race.table, b"\x09", &0u64.to_be_bytes())?;
            }
        }
        Ok(())
    });
    for race in &RACES {
        let meeting = Meeting::default();
        let outcomes: Vec<Outcome> = within(
            &format!("two write transactions racing through {}", race.name),
            || {
                std::thread::scope(|s| {
                    let racers: Vec<_> = [0u8, 1]
                        .into_iter()
                        .map(|i| {
                            let meeting = &meeting;
                            s.spawn(move || racer(b, race, i, meeting))
                        })
                        .collect();
                    racers
                        .into_iter()
                        .map(|racer| {
                            racer.join().unwrap_or_else(|_| {
                                fail(
                                    SERIAL,
                                    format!("a thread racing through {} panicked", race.name),
                                )
                            })
                        })
                        .collect()
                })
            },
        );
        judge(b, race, &outcomes);
    }
}

fn racer(b: &dyn Backend, race: &Race, i: u8, meeting: &Meeting) -> Outcome {
    let mut calls = 0;
    let mut seen = None;
    let result = b.write(&mut |w| {
        calls += 1;
        let n = (race.read)(&*w, race.table)?;
        seen = Some(n);
        meeting.arrive();
        (race.write)(w, race.table, i, n)?;
        w.insert(
            RACE_MARKS,
            &[race.table.as_bytes(), &[i]].concat(),
            b"committed",
        )
        .map(drop)
    });
    (result, calls, seen)
}

fn judge(b: &dyn Backend, race: &Race, outcomes: &[Outcome]) {
    let name = race.name;
    let summary = || {
        outcomes
            .iter()
            .enumerate()
            .map(|(i, (result, _, seen))| {
                let result = match result {
                    Ok(()) => "committed".to_owned(),
                    Err(e) => format!("failed: {e}"),
                };
                format!("transaction {i} read {seen:?} and {result}")
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    for (i, (result, calls, _)) in outcomes.iter().enumerate() {
        check(*calls == 1, ONCE, || {
            format!("racing write transaction {i} ({name}) had its closure called {calls} times")
        });
        if let Err(e) = result {
            check(matches!(e, Error::Conflict { .. }), SERIAL, || {
                format!("racing through {name}, a write transaction failed with {e} ({e:?}); the only failure accepted is Error::Conflict ({})", summary())
            });
        }
    }
    let committed: Vec<u8> = (0u8..2)
        .filter(|&i| outcomes[usize::from(i)].0.is_ok())
        .collect();
    check(!committed.is_empty(), SERIAL, || {
        format!("racing through {name}, both write transactions failed; the earlier one must commit ({})", summary())
    });
    read(b, SERIAL, |r| {
        for i in 0u8..2 {
            let marked = r
                .get(RACE_MARKS, &[race.table.as_bytes(), &[i]].concat())?
                .is_some();
            check(marked == committed.contains(&i), ROLLBACK, || {
                format!(
                    "racing through {name}: transaction {i}'s write is {}, though it {} ({})",
                    if marked { "there" } else { "missing" },
                    if committed.contains(&i) {
                        "committed"
                    } else {
                        "failed"
                    },
                    summary()
                )
            });
        }
        if race.counter {
            let value = number(r.get(race.table, COUNTER)?.as_deref());
            check(value == Some(committed.len() as u64), SERIAL, || {
                format!("racing through {name}, the counter is {value:?} after {} committed increments: a lost update ({})", committed.len(), summary())
            });
        } else {
            let mut values = Vec::new();
            for i in 0u8..2 {
                let value = number(r.get(race.table, &[i])?.as_deref());
                check(value.is_some() == committed.contains(&i), ROLLBACK, || {
                    format!(
                        "racing through {name}: transaction {i}'s entry is {value:?} ({})",
                        summary()
                    )
                });
                values.extend(value);
            }
            values.sort_unstable();
            let want: Vec<u64> = (1..=committed.len() as u64).collect();
            check(values == want, SERIAL, || {
                format!("racing through {name}, the committed transactions counted {values:?} entries, where one after the other they count {want:?}: a write skew ({})", summary())
            });
        }
        Ok(())
    });
}

/// Four threads increment one counter 15 times each, every increment a read-modify-write
/// transaction retried on [`Error::Conflict`]: the counter ends at 60, and the 60 committed
/// transactions read 60 different values.
///
/// # Panics
///
/// When the backend breaks the rule, naming it, or aborts the process when the threads have
/// not finished within two minutes.
pub fn check_contended_increments(b: &dyn Backend) {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 15;
    fresh(b);
    write(b, COMMIT, |w| {
        w.insert("counter", COUNTER, &0u64.to_be_bytes()).map(drop)
    });
    let taken: Vec<Vec<u64>> = within("4 threads incrementing one counter", || {
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..THREADS)
                .map(|_| s.spawn(|| increments(b, ROUNDS)))
                .collect();
            threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| fail(LOST, "an incrementing thread panicked"))
                })
                .collect()
        })
    });
    let mut all = taken.concat();
    all.sort_unstable();
    let want: Vec<u64> = (1..=THREADS * ROUNDS).collect();
    check(all == want, LOST, || {
        format!(
            "the committed increments produced {all:?}, expected each of 1..={} once",
            THREADS * ROUNDS
        )
    });
    read(b, LOST, |r| {
        let value = number(r.get("counter", COUNTER)?.as_deref());
        check(value == Some(THREADS * ROUNDS), LOST, || {
            format!(
                "the counter is {value:?} after {} committed increments",
                THREADS * ROUNDS
            )
        });
        Ok(())
    });
}

fn increments(b: &dyn Backend, rounds: u64) -> Vec<u64> {
    const ATTEMPTS: usize = 1000;
    let mut taken = Vec::new();
    for _ in 0..rounds {
        for attempt in 1.. {
            let mut calls = 0;
            let mut value = 0;
            let result = b.write(&mut |w| {
                calls += 1;
                value = number(w.get("counter", COUNTER)?.as_deref()).unwrap_or(0) + 1;
                w.insert("counter", COUNTER, &value.to_be_bytes()).map(drop)
            });
            check(calls == 1, ONCE, || {
                format!("an increment's closure was called {calls} times")
            });
            match result {
                Ok(()) => {
                    taken.push(value);
                    break;
                }
                Err(Error::Conflict { .. }) if attempt < ATTEMPTS => {}
                Err(e) => fail(
                    LOST,
                    format!("an increment failed on attempt {attempt}: {e} ({e:?})"),
                ),
            }
        }
    }
    taken
}

/// `Backend::snapshot`: a reader that outlives a call sees the state of the moment it was
/// made, whatever is committed after (before its first read included), and holds back no
/// writer.
///
/// # Panics
///
/// When the backend breaks that rule, naming it.
pub fn check_lasting_snapshot(b: &dyn Backend) {
    let put = |key: &[u8], value: &[u8]| {
        b.write(&mut |w| w.insert("snap", key, value).map(drop))
            .expect("kvs backend conformance: rule broken: a plain commit failed");
    };
    put(b"a", b"1");
    let snap = b
        .snapshot()
        .expect("kvs backend conformance: rule broken: snapshot() failed");
    put(b"a", b"2");
    put(b"b", b"3");
    let got = snap.get("snap", b"a").expect("snapshot get");
    assert_eq!(
        got.as_deref(),
        Some(&b"1"[..]),
        "kvs backend conformance: rule broken: a snapshot saw a commit made after it (before its first read)"
    );
    assert_eq!(
        snap.len("snap").expect("snapshot len"),
        1,
        "kvs backend conformance: rule broken: a snapshot's len saw a later commit"
    );
    // It holds back no writer: a commit goes through while it lives.
    put(b"c", b"4");
    drop(snap);
}
