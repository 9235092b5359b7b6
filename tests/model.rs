//! Model-based property test: random sequences of put, delete, get, index, range, count,
//! `seq`, committed and aborted transactions (and reopening, on a file), run on kvs and on a
//! `BTreeMap` model, compared after every step: each call's result, and then every record,
//! every index lookup, every count and every counter.
//!
//! The keys, indexed values and unique values come from small sets, so that sequences collide
//! often: replaced records, moved index entries, unique clashes, empty and inverted ranges.
//! `KVS_MODEL_CASES` sets the number of sequences per backend (default 256); failures are
//! kept in `tests/proptest-regressions/model.txt` and replayed first.

mod common;

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

use common::{Temp, TempDir, TempField};
use kvs::{Error, Kvs};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

const CELSIUS: [i16; 5] = [-2, -1, 0, 1, 2];
const STATIONS: [&str; 3] = ["north", "south", ""];
const PLACES: [&str; 2] = ["x", "y\u{0}z"];
const COUNTERS: [&str; 2] = ["a", "b"];

#[derive(Clone, Debug)]
enum Op {
    Put(Temp),
    Delete(i64),
    Get(i64),
    ByCelsius(i16),
    ByStation(String),
    ByPlace(String, u8),
    Range(Bound<i64>, Bound<i64>),
    Count,
    Seq(usize, u64),
    /// The calls in one transaction; committed if `commit`. A duplicate inside is passed on
    /// (rolling everything back) if `propagate`, else ignored, as a caller may.
    Tx {
        ops: Vec<Op>,
        commit: bool,
        propagate: bool,
    },
    /// Drop the handle and open the file again (on `mem:`, nothing).
    Reopen,
}

fn temp() -> impl Strategy<Value = Temp> {
    (
        -3i64..=3,
        prop::sample::select(&CELSIUS[..]),
        prop::option::of(prop::sample::select(&STATIONS[..])),
        prop::sample::select(&PLACES[..]),
        0u8..2,
    )
        .prop_map(|(at, celsius, station, place, n)| Temp {
            at,
            celsius,
            station: station.map(str::to_owned),
            place: (place.to_owned(), n),
        })
}

fn bound() -> impl Strategy<Value = Bound<i64>> {
    prop_oneof![
        (-4i64..=4).prop_map(Bound::Included),
        (-4i64..=4).prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

/// Calls allowed inside a transaction.
fn tx_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => temp().prop_map(Op::Put),
        2 => (-3i64..=3).prop_map(Op::Delete),
        1 => (-3i64..=3).prop_map(Op::Get),
        1 => prop::sample::select(&CELSIUS[..]).prop_map(Op::ByCelsius),
        1 => prop::sample::select(&STATIONS[..]).prop_map(|s| Op::ByStation(s.to_owned())),
        1 => (bound(), bound()).prop_map(|(a, b)| Op::Range(a, b)),
        1 => Just(Op::Count),
        2 => (0..COUNTERS.len(), prop_oneof![Just(0u64), 1u64..3, Just(u64::MAX)])
            .prop_map(|(c, n)| Op::Seq(c, n)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => tx_op(),
        1 => (prop::sample::select(&PLACES[..]), 0u8..2)
            .prop_map(|(p, n)| Op::ByPlace(p.to_owned(), n)),
        3 => (prop::collection::vec(tx_op(), 0..6), any::<bool>(), any::<bool>())
            .prop_map(|(ops, commit, propagate)| Op::Tx { ops, commit, propagate }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    temps: BTreeMap<i64, Temp>,
    counters: BTreeMap<&'static str, u64>,
}

impl Model {
    fn clash(&self, t: &Temp) -> bool {
        t.station.is_some()
            && self
                .temps
                .values()
                .any(|o| o.at != t.at && o.station == t.station)
    }

    fn select(&self, keep: impl Fn(&Temp) -> bool) -> Vec<Temp> {
        self.temps.values().filter(|t| keep(t)).cloned().collect()
    }
}

/// What a call returned, in a form both sides produce.
#[derive(Debug, PartialEq)]
enum Answer {
    Done,
    Existed(bool),
    One(Option<Temp>),
    Many(Vec<Temp>),
    Number(u64),
    Duplicate,
    Overflow,
}

/// The model's answer to `op`, applied to `model`.
fn expect(model: &mut Model, op: &Op) -> Answer {
    match op {
        Op::Put(t) => {
            if model.clash(t) {
                return Answer::Duplicate;
            }
            model.temps.insert(t.at, t.clone());
            Answer::Done
        }
        Op::Delete(at) => Answer::Existed(model.temps.remove(at).is_some()),
        Op::Get(at) => Answer::One(model.temps.get(at).cloned()),
        Op::ByCelsius(c) => Answer::Many(model.select(|t| t.celsius == *c)),
        Op::ByStation(s) => Answer::Many(model.select(|t| t.station.as_deref() == Some(s))),
        Op::ByPlace(p, n) => Answer::Many(model.select(|t| t.place.0 == *p && t.place.1 == *n)),
        Op::Range(a, b) => Answer::Many(model.select(|t| (*a, *b).contains(&t.at))),
        Op::Count => Answer::Number(model.temps.len() as u64),
        Op::Seq(c, incr) => {
            let value = model.counters.entry(COUNTERS[*c]).or_default();
            match value.checked_add(*incr) {
                Some(next) => {
                    *value = next;
                    Answer::Number(next)
                }
                None => Answer::Overflow,
            }
        }
        Op::Tx { .. } | Op::Reopen => unreachable!("handled by the runner"),
    }
}

/// kvs's answer to `op`, on a `Kvs` or a `Tx` (same method names, different types).
macro_rules! answer {
    ($target:expr, $op:expr) => {{
        let result: kvs::Result<Answer> = match $op {
            Op::Put(t) => $target.put(t).map(|()| Answer::Done),
            Op::Delete(at) => $target.delete::<Temp>(at).map(Answer::Existed),
            Op::Get(at) => $target.get::<Temp>(at).map(Answer::One),
            Op::ByCelsius(c) => $target
                .index::<Temp>(TempField::Celsius, *c)
                .map(Answer::Many),
            Op::ByStation(s) => $target
                .index::<Temp>(TempField::Station, s.as_str())
                .map(Answer::Many),
            Op::ByPlace(p, n) => $target
                .index::<Temp>(TempField::Place, (p.as_str(), *n))
                .map(Answer::Many),
            Op::Range(a, b) => $target.range::<Temp>((*a, *b)).map(Answer::Many),
            Op::Count => $target.count::<Temp>().map(Answer::Number),
            Op::Seq(c, incr) => $target.seq(COUNTERS[*c], *incr).map(Answer::Number),
            Op::Tx { .. } | Op::Reopen => unreachable!("handled by the runner"),
        };
        match result {
            Ok(answer) => Ok(answer),
            Err(Error::Duplicate { table, field }) => {
                assert_eq!((table.as_str(), field.as_str()), ("temps", "station"));
                Ok(Answer::Duplicate)
            }
            Err(Error::SeqOverflow { .. }) => Ok(Answer::Overflow),
            Err(e) => Err(e),
        }
    }};
}

/// Everything kvs holds equals the model: records, counts, each index lookup over the whole
/// domain, the number of entries in each index table, and the counters.
fn check_all(kvs: &Kvs, model: &Model) -> Result<(), TestCaseError> {
    let all: Vec<Temp> = kvs.all().unwrap();
    prop_assert_eq!(&all, &model.select(|_| true));
    prop_assert_eq!(kvs.count::<Temp>().unwrap(), model.temps.len() as u64);
    for c in CELSIUS {
        let got = kvs.index::<Temp>(TempField::Celsius, c).unwrap();
        prop_assert_eq!(got, model.select(|t| t.celsius == c), "celsius {}", c);
    }
    for s in STATIONS {
        let got = kvs.index::<Temp>(TempField::Station, s).unwrap();
        prop_assert_eq!(got, model.select(|t| t.station.as_deref() == Some(s)));
    }
    for p in PLACES {
        for n in 0..2u8 {
            let got = kvs.index::<Temp>(TempField::Place, (p, n)).unwrap();
            prop_assert_eq!(got, model.select(|t| t.place == (p.to_owned(), n)));
        }
    }
    let dump = kvs.dump().unwrap();
    let entries = |table: &str| dump.rows.iter().find(|r| r.name == table).unwrap().elements;
    let n = model.temps.len() as u64;
    prop_assert_eq!(entries("temps#celsius"), n);
    prop_assert_eq!(entries("temps#place"), n);
    let stations = model.temps.values().filter(|t| t.station.is_some()).count();
    prop_assert_eq!(entries("temps#station"), stations as u64);
    for name in COUNTERS {
        let want = model.counters.get(name).copied().unwrap_or(0);
        prop_assert_eq!(kvs.seq(name, 0).unwrap(), want);
    }
    Ok(())
}

/// The reason of the error that aborts a transaction on purpose.
const ABORT: &str = "aborted by the test";

fn abort() -> Error {
    Error::Conflict {
        reason: ABORT.to_owned(),
    }
}

fn run_sequence(url: &str, file: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut kvs = Kvs::open(url).unwrap();
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Reopen => {
                if file {
                    drop(kvs);
                    kvs = Kvs::open(url).unwrap();
                }
            }
            Op::Tx {
                ops,
                commit,
                propagate,
            } => {
                let mut inner = model.clone();
                let mut mismatch = None;
                let result = kvs.transaction(|tx| {
                    for op in ops {
                        let want = expect(&mut inner, op);
                        let got = answer!(tx, op)?;
                        if got != want && mismatch.is_none() {
                            mismatch =
                                Some(format!("{op:?} in a transaction: {got:?}, model {want:?}"));
                        }
                        if *propagate && got == Answer::Duplicate {
                            return Err(Error::Duplicate {
                                table: "temps".to_owned(),
                                field: "station".to_owned(),
                            });
                        }
                    }
                    if *commit {
                        Ok(())
                    } else {
                        Err(abort())
                    }
                });
                if let Some(m) = mismatch {
                    return Err(TestCaseError::fail(format!("step {step}: {m}")));
                }
                match result {
                    Ok(()) => model = inner,
                    Err(Error::Duplicate { .. }) if *propagate => {}
                    Err(Error::Conflict { reason }) if !commit && reason == ABORT => {}
                    Err(e) => return Err(TestCaseError::fail(format!("step {step}: {e}"))),
                }
            }
            op => {
                let want = expect(&mut model, op);
                let got = answer!(kvs, op).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(got, want, "step {}: {:?}", step, op);
            }
        }
        check_all(&kvs, &model)?;
    }
    Ok(())
}

fn config() -> Config {
    let cases = std::env::var("KVS_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/model.txt",
        ))),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn kvs_in_memory_behaves_as_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run_sequence("mem:", false, &ops)?;
    }

    #[test]
    fn kvs_on_a_file_behaves_as_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = TempDir::new();
        let url = format!("{}?durability=none", dir.url("model.redb"));
        run_sequence(&url, true, &ops)?;
    }
}
