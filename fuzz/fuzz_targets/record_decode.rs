//! Arbitrary bytes stored as a record: every call that reads it decodes it or fails with
//! `Error::Decode`, and a write over it either succeeds with exact indexes or fails the same
//! way with nothing changed. Never a panic.
#![no_main]
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use kvs::redb::Redb;
use kvs::{Error, Kvs, Table};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[path = "shared.rs"]
mod shared;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Kind {
    Plain,
    Tagged(String),
    Point { x: i32, y: i32 },
}

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "people")]
struct Person {
    #[kvs(key)]
    id: u64,
    #[kvs(index, unique)]
    email: String,
    #[kvs(index)]
    tag: Option<(String, i32)>,
    age: u8,
    scores: Vec<f64>,
    notes: BTreeMap<String, Vec<u8>>,
    kind: Kind,
}

fn person(id: u64) -> Person {
    Person {
        id,
        email: format!("{id}@x.io"),
        tag: Some(("t".to_owned(), 1)),
        age: 30,
        scores: vec![1.5],
        notes: BTreeMap::new(),
        kind: Kind::Point { x: 1, y: 2 },
    }
}

fn decoded_or_decode_error<T: std::fmt::Debug>(what: &str, r: kvs::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(Error::Decode { table, .. }) => {
            assert_eq!(table, "people");
            None
        }
        Err(e) => panic!("{what}: {e:?}"),
    }
}

/// One database for all inputs (a new one per input would cost most of the time): it holds
/// `person(2)`, and each input's record 1 is removed after it.
static DB: OnceLock<(Arc<Redb>, Kvs)> = OnceLock::new();

fuzz_target!(|bytes: &[u8]| {
    let (redb, kvs) = DB.get_or_init(|| {
        let (redb, kvs) = shared::open();
        let kvs = kvs.unwrap();
        kvs.put(&person(2)).unwrap();
        (redb, kvs)
    });
    let key = 1u64.to_be_bytes();
    shared::poke(redb, "people", &key, Some(bytes));

    let got = decoded_or_decode_error("get", kvs.get::<Person>(&1));
    decoded_or_decode_error("all", kvs.all::<Person>());
    assert_eq!(kvs.count::<Person>().unwrap(), 2);
    // A put over it must first read its old index values.
    let replaced = decoded_or_decode_error("put", kvs.put(&person(1)));
    match (got.is_some(), replaced.is_some()) {
        (_, true) => {
            assert_eq!(kvs.get::<Person>(&1).unwrap(), Some(person(1)));
            let by_email = kvs.index::<Person>(PersonField::Email, "1@x.io").unwrap();
            assert_eq!(by_email, [person(1)]);
            assert!(kvs.delete::<Person>(&1).unwrap());
        }
        (false, false) => {
            // Nothing changed.
            assert!(kvs.get::<Person>(&1).is_err());
            assert!(kvs.delete::<Person>(&1).is_err());
            assert_eq!(
                shared::poke(redb, "people", &key, None).as_deref(),
                Some(bytes)
            );
        }
        (true, false) => panic!("decoded by get, not by put"),
    }
    assert_eq!(
        kvs.index::<Person>(PersonField::Email, "2@x.io").unwrap(),
        [person(2)]
    );
});
