//! Reconciling the stored catalog with the tables of the program: new tables and indexes are
//! built, dropped indexes removed, and what cannot be reconciled is refused with nothing
//! written.
//!
//! Several versions of one table live in this test binary, each in its own schema, as
//! successive releases of an application would; each open picks one with `?schemas=`.

mod common;

use common::TempDir;
use kvs::{Error, Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "people", schema = "v1")]
struct PersonV1 {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    city: String,
    age: u32,
}

/// v1 plus a unique index on `age` and a plain one on `(city, age)`.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "people", schema = "v2")]
struct PersonV2 {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    city: String,
    #[kvs(index, unique)]
    age: u32,
}

/// v2 with the `city` index dropped.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "people", schema = "v3")]
struct PersonV3 {
    #[kvs(key)]
    id: u64,
    city: String,
    #[kvs(index, unique)]
    age: u32,
}

/// The key changed type.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "people", schema = "v4")]
struct PersonV4 {
    #[kvs(key)]
    id: String,
    city: String,
    age: u32,
}

/// A field of a type kvs does not know (a struct) replaced a string: open cannot tell that
/// the stored values no longer decode, reading them can.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "people", schema = "v5")]
struct PersonV5 {
    #[kvs(key)]
    id: u64,
    city: Place,
    age: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Place {
    name: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Years {
    n: u32,
}

/// A field changed type, undetectably, in a table with an index: a write must read the old
/// record to remove its index entries, and cannot.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "people", schema = "v6")]
struct PersonV6 {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    city: String,
    age: Years,
}

/// An indexed field changed type: open sees it from the catalog, before any record is read.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "people", schema = "v7")]
struct PersonV7 {
    #[kvs(key)]
    id: u64,
    city: String,
    #[kvs(index)]
    age: String,
}

/// Another table of the same release, which opens whatever happens to `people`.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "notes", schema = "v7")]
struct Note {
    #[kvs(key)]
    id: u64,
    text: String,
}

fn url(dir: &TempDir, schema: &str) -> String {
    format!("{}?schemas={schema}", dir.url("people.redb"))
}

fn seed(dir: &TempDir) {
    let kvs = Kvs::open(&url(dir, "v1")).unwrap();
    for (id, city, age) in [(1, "Oslo", 30), (2, "Rome", 40), (3, "Oslo", 50)] {
        kvs.put(&PersonV1 {
            id,
            city: city.into(),
            age,
        })
        .unwrap();
    }
}

#[test]
fn two_types_with_one_table_name_are_refused() {
    let err = Kvs::open("mem:").unwrap_err();
    match &err {
        Error::Schema { table, reason } => {
            assert_eq!(table, "people");
            assert!(
                reason.contains("PersonV1") && reason.contains("PersonV2"),
                "{reason}"
            );
        }
        other => panic!("expected Schema, got {other:?}"),
    }
}

#[test]
fn a_new_index_is_built_from_existing_records() {
    let dir = TempDir::new();
    seed(&dir);
    let kvs = Kvs::open(&url(&dir, "v2")).unwrap();
    let forty = kvs.index::<PersonV2>(PersonV2Field::Age, 40u32).unwrap();
    assert_eq!(forty.iter().map(|p| p.id).collect::<Vec<_>>(), [2]);
    assert_eq!(
        kvs.index::<PersonV2>(PersonV2Field::City, "Oslo")
            .unwrap()
            .len(),
        2
    );
    // The new unique index is enforced at once.
    let dup = kvs.put(&PersonV2 {
        id: 4,
        city: "Lima".into(),
        age: 30,
    });
    assert!(matches!(dup, Err(Error::Duplicate { .. })), "{dup:?}");
}

#[test]
fn a_unique_index_over_duplicate_values_is_refused_with_nothing_written() {
    let dir = TempDir::new();
    seed(&dir);
    {
        let kvs = Kvs::open(&url(&dir, "v1")).unwrap();
        kvs.put(&PersonV1 {
            id: 4,
            city: "Lima".into(),
            age: 30,
        })
        .unwrap();
    }
    // The table is refused, naming the value and both records; the database opens.
    let v2 = Kvs::open(&url(&dir, "v2")).unwrap();
    match v2.count::<PersonV2>().unwrap_err() {
        Error::Schema { table, reason } => {
            assert_eq!(table, "people");
            assert!(
                reason.contains("age") && reason.contains("1 and 4") && reason.contains("30"),
                "{reason}"
            );
        }
        other => panic!("expected Schema, got {other:?}"),
    }
    assert_eq!(v2.refused().len(), 1);
    drop(v2);
    // Still the v1 database: v1 opens without rebuilding anything, and its index works.
    let kvs = Kvs::open(&url(&dir, "v1")).unwrap();
    assert_eq!(
        kvs.index::<PersonV1>(PersonV1Field::City, "Oslo")
            .unwrap()
            .len(),
        2
    );
    let dump = kvs.dump().unwrap();
    assert!(dump.rows.iter().all(|r| r.name != "people#age"));
}

#[test]
fn a_dropped_index_loses_its_table() {
    let dir = TempDir::new();
    seed(&dir);
    drop(Kvs::open(&url(&dir, "v2")).unwrap());
    let kvs = Kvs::open(&url(&dir, "v3")).unwrap();
    assert_eq!(kvs.count::<PersonV3>().unwrap(), 3);
    assert_eq!(
        kvs.index::<PersonV3>(PersonV3Field::Age, 50).unwrap()[0].id,
        3
    );
    drop(kvs);
    let db = redb::ReadOnlyDatabase::open(dir.path().join("people.redb")).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let tables: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    assert!(tables.contains(&"people#age".to_owned()), "{tables:?}");
    assert!(!tables.contains(&"people#city".to_owned()), "{tables:?}");
}

#[test]
fn a_changed_key_type_is_refused() {
    let dir = TempDir::new();
    seed(&dir);
    let v4 = Kvs::open(&url(&dir, "v4")).unwrap();
    match v4.get::<PersonV4>("1").unwrap_err() {
        Error::Schema { table, reason } => {
            assert_eq!(table, "people");
            assert!(
                reason.contains("u64") && reason.contains("String"),
                "{reason}"
            );
        }
        other => panic!("expected Schema, got {other:?}"),
    }
    drop(v4);
    let kvs = Kvs::open(&url(&dir, "v1")).unwrap();
    assert_eq!(kvs.count::<PersonV1>().unwrap(), 3, "nothing lost");
}

#[test]
fn an_indexed_field_that_changed_type_refuses_its_table_only() {
    let dir = TempDir::new();
    seed(&dir);
    let kvs = Kvs::open(&url(&dir, "v7")).unwrap();
    // The other tables work.
    kvs.put(&Note {
        id: 1,
        text: "hi".into(),
    })
    .unwrap();
    assert_eq!(kvs.count::<Note>().unwrap(), 1);
    // The refused one says which index failed at open, on which record, and where to read
    // about migrating.
    let refused = kvs.refused();
    assert_eq!(refused.len(), 1);
    for err in [
        refused.into_iter().next().unwrap(),
        kvs.count::<PersonV7>().unwrap_err(),
    ] {
        match err {
            Error::Schema { table, reason } => {
                assert_eq!(table, "people");
                assert!(
                    reason.contains("field age changed type from u32 to String")
                        && reason.contains("SCHEMA.md"),
                    "{reason}"
                );
            }
            other => panic!("expected Schema, got {other:?}"),
        }
    }
    assert!(kvs
        .put(&PersonV7 {
            id: 9,
            city: "Oslo".into(),
            age: "old".into(),
        })
        .is_err());
    drop(kvs);
    // Nothing of people was touched: v1 still reads every record through its index.
    let kvs = Kvs::open(&url(&dir, "v1")).unwrap();
    assert_eq!(
        kvs.index::<PersonV1>(PersonV1Field::City, "Oslo")
            .unwrap()
            .len(),
        2
    );
    assert_eq!(kvs.count::<PersonV1>().unwrap(), 3);
}

#[test]
fn a_record_that_no_longer_decodes_is_a_decode_error() {
    let dir = TempDir::new();
    seed(&dir);
    let kvs = Kvs::open(&url(&dir, "v5")).unwrap();
    match kvs.get::<PersonV5>(&2).unwrap_err() {
        Error::Decode { table, key, .. } => {
            assert_eq!((table.as_str(), key.as_str()), ("people", "2"));
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    assert!(kvs.all::<PersonV5>().is_err());
    // Overwriting it is fine: the table has no index that would need the old value.
    kvs.put(&PersonV5 {
        id: 2,
        city: Place {
            name: "Rome".into(),
        },
        age: 1,
    })
    .unwrap();
    assert_eq!(kvs.get::<PersonV5>(&2).unwrap().unwrap().city.name, "Rome");
}

#[test]
fn a_new_database_has_the_catalog() {
    let dir = TempDir::new();
    seed(&dir);
    let db = redb::ReadOnlyDatabase::open(dir.path().join("people.redb")).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let mut tables: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    tables.sort();
    assert_eq!(
        tables,
        ["#catalog", "#meta", "#seq", "people", "people#city"]
    );
}

#[test]
fn a_record_that_no_longer_decodes_is_neither_replaced_nor_deleted_under_an_index() {
    let dir = TempDir::new();
    seed(&dir);
    {
        let kvs = Kvs::open(&url(&dir, "v6")).unwrap();
        let rome = PersonV6 {
            id: 2,
            city: "Lima".into(),
            age: Years { n: 1 },
        };
        assert!(matches!(kvs.put(&rome), Err(Error::Decode { .. })));
        assert!(matches!(
            kvs.delete::<PersonV6>(&2),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            kvs.index::<PersonV6>(PersonV6Field::City, "Rome"),
            Err(Error::Decode { .. })
        ));
    }
    // Nothing changed: v1 reads every record and its index as before.
    let kvs = Kvs::open(&url(&dir, "v1")).unwrap();
    assert_eq!(kvs.count::<PersonV1>().unwrap(), 3);
    let rome = kvs.index::<PersonV1>(PersonV1Field::City, "Rome").unwrap();
    assert_eq!((rome[0].id, rome[0].age), (2, 40));
    assert!(kvs
        .index::<PersonV1>(PersonV1Field::City, "Lima")
        .unwrap()
        .is_empty());
}

#[test]
fn a_read_only_open_refuses_the_tables_it_cannot_reconcile() {
    let dir = TempDir::new();
    seed(&dir);
    let ro = Kvs::open(&format!("{}&read_only=true", url(&dir, "v2"))).unwrap();
    match ro.count::<PersonV2>().unwrap_err() {
        Error::Schema { table, reason } => {
            assert_eq!(table, "people");
            assert!(reason.contains("read-only"), "{reason}");
        }
        other => panic!("expected Schema, got {other:?}"),
    }
    drop(ro);
    // Nothing was written: v1 opens read-only as it was.
    let ro = Kvs::open(&format!("{}&read_only=true", url(&dir, "v1"))).unwrap();
    assert_eq!(ro.count::<PersonV1>().unwrap(), 3);
    assert!(ro.refused().is_empty());
}
