//! The stored format: a database written by kvs format 1 (records as maps of named fields,
//! redb tables keyed by `&[u8]`) opens, is upgraded in one commit, and reads and writes as it
//! did; and the field changes that format 2's positional records would misread are refused at
//! open, naming the field, while the safe ones go through.
//!
//! `tests/fixtures/format1/app.redb` was written by kvs at commit 19c1532 (format 1) with the
//! types below (`Note::mood` then carried `skip_serializing_if = "Option::is_none"`, so
//! some stored notes lack it): 30 `people` put with ids from `seq("people", 1)`, 5 `notes`
//! put and appended to the feed `inbox`, and one reader on `inbox` that read one element and
//! was saved. Like redb's `backward_compatibility` test, it is committed and never rewritten:
//! every later format change must open it.

mod common;

use std::ops::Bound;

use common::TempDir;
use kvs::{Error, Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Address {
    street: String,
    zip: u32,
}

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "people", schema = "app")]
struct Person {
    #[kvs(key)]
    id: u64,
    #[kvs(index, unique)]
    email: String,
    #[kvs(index)]
    city: String,
    #[kvs(index)]
    age: u32,
    nick: Option<String>,
    tags: Vec<String>,
    address: Address,
}

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "notes", schema = "app")]
struct Note {
    #[kvs(key)]
    key: String,
    text: String,
    #[serde(default, alias = "feeling")]
    mood: Option<String>,
    stars: i64,
}

const CITIES: [&str; 3] = ["Oslo", "Bergen", "Tromsø"];

/// Person `id` as the fixture's writer made it.
fn person(id: u64) -> Person {
    Person {
        id,
        email: format!("p{id}@example.com"),
        city: CITIES[usize::try_from(id % 3).unwrap()].into(),
        age: 20 + u32::try_from(id % 7).unwrap(),
        nick: id.is_multiple_of(2).then(|| format!("n{id}")),
        tags: (0..id % 3).map(|t| format!("t{t}")).collect(),
        address: Address {
            street: format!("{id} Main St"),
            zip: 1000 + u32::try_from(id).unwrap(),
        },
    }
}

fn note(i: i64) -> Note {
    Note {
        key: format!("note-{i}"),
        text: format!("text {i}"),
        mood: (i % 2 == 0).then(|| "glad".to_owned()),
        stars: -i,
    }
}

/// A copy of the fixture in `dir`.
fn fixture(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.path().join("app.redb");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/format1/app.redb"
        ),
        &path,
    )
    .unwrap();
    path
}

/// The fixture's tables, and the feeds'.
fn app_url(path: &std::path::Path) -> String {
    format!("redb:{}?schemas=app,kvs_stream", path.display())
}

/// Everything the fixture holds, read through `kvs`.
fn check_contents(kvs: &Kvs) {
    let people = kvs.all::<Person>().unwrap();
    assert_eq!(people, (1..=30).map(person).collect::<Vec<_>>());
    assert_eq!(kvs.get::<Person>(&7).unwrap(), Some(person(7)));
    let oslo = kvs.index::<Person>(PersonField::City, "Oslo").unwrap();
    assert_eq!(oslo.len(), 10);
    assert!(oslo.iter().all(|p| p.city == "Oslo"));
    assert_eq!(
        kvs.index::<Person>(PersonField::Email, "p12@example.com")
            .unwrap(),
        [person(12)]
    );
    let young: Vec<u64> = kvs
        .index_range::<Person>(PersonField::Age, 20..22)
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(young, [7, 14, 21, 28, 1, 8, 15, 22, 29]);
    let notes = kvs.all::<Note>().unwrap();
    assert_eq!(notes, (1..=5).map(note).collect::<Vec<_>>());
    assert_eq!(
        kvs.feed::<Note>("inbox").unwrap(),
        (1..=5).map(note).collect::<Vec<_>>()
    );
    assert_eq!(kvs.writer("inbox").unwrap().count, 5);
}

#[test]
fn a_format_1_database_is_upgraded_at_open_and_reads_as_before() {
    let dir = TempDir::new();
    let path = fixture(&dir);
    let url = app_url(&path);
    {
        let kvs = Kvs::open(&url).unwrap();
        assert!(kvs.refused().is_empty(), "{:?}", kvs.refused());
        check_contents(&kvs);
        // Writes go on where format 1 left off.
        assert_eq!(kvs.seq("people", 1).unwrap(), 31);
        kvs.put(&person(31)).unwrap();
        let mut reader = kvs.load_reader::<Note>(1).unwrap();
        assert_eq!(kvs.next(&mut reader).unwrap(), Some(note(2)));
        kvs.append("inbox", &note(6)).unwrap();
        assert_eq!(kvs.writer("inbox").unwrap().count, 6);
        assert!(matches!(
            kvs.put(&Person {
                id: 32,
                ..person(3)
            }),
            Err(Error::Duplicate { .. })
        ));
    }
    // Every table is now of the current key type, every record positional, and the stored
    // header says format 2.
    let db = redb::ReadOnlyDatabase::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = txn
        .open_table(kvs::redb::table_definition("#meta"))
        .unwrap();
    let header: kvs::catalog::Header = rmp_serde::from_slice(
        redb::ReadableTable::get(&meta, b"kvs".as_slice())
            .unwrap()
            .unwrap()
            .value(),
    )
    .unwrap();
    assert_eq!(header.format, 2);
    drop(meta);
    let names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    assert!(names.len() >= 9, "{names:?}");
    for name in &names {
        txn.open_table(kvs::redb::table_definition(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let people = txn
        .open_table(kvs::redb::table_definition("people"))
        .unwrap();
    for entry in redb::ReadableTable::iter(&people).unwrap() {
        let (_, value) = entry.unwrap();
        assert_eq!(value.value()[0], 0x97, "seven fields, by position");
    }
    drop((people, txn, db));
    let kvs = Kvs::open(&url).unwrap();
    assert_eq!(kvs.count::<Person>().unwrap(), 31);
    assert_eq!(kvs.get::<Person>(&31).unwrap(), Some(person(31)));
}

/// Stores the note `record` (a map of named fields, as format 1 did) in the format-1 `notes`
/// table of the file at `path`, behind kvs's back.
fn poke_format_1_note(path: &std::path::Path, record: &serde_json::Value) {
    let key = kvs::Key::to_key_bytes(&record["key"].as_str().unwrap().to_owned());
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let legacy: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("notes");
        let mut t = txn.open_table(legacy).unwrap();
        let bytes = rmp_serde::to_vec_named(record).unwrap();
        t.insert(key.as_slice(), bytes.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn the_upgrade_reads_a_declared_table_as_its_type_did() {
    let dir = TempDir::new();
    let path = fixture(&dir);
    // Stored under an alias the type reads (`feeling` for `mood`): format 1 read it so.
    poke_format_1_note(
        &path,
        &serde_json::json!({"key": "note-8", "text": "t8", "feeling": "sad", "stars": 8}),
    );
    let kvs = Kvs::open(&app_url(&path)).unwrap();
    assert!(kvs.refused().is_empty(), "{:?}", kvs.refused());
    assert_eq!(
        kvs.get::<Note>("note-8").unwrap(),
        Some(Note {
            key: "note-8".into(),
            text: "t8".into(),
            mood: Some("sad".into()),
            stars: 8,
        })
    );
    assert_eq!(kvs.count::<Note>().unwrap(), 6);
}

#[test]
fn a_read_only_open_reads_a_format_1_database_without_changing_it() {
    let dir = TempDir::new();
    let path = fixture(&dir);
    let before = std::fs::read(&path).unwrap();
    {
        let kvs = Kvs::open(&format!("{}&read_only=true", app_url(&path))).unwrap();
        assert!(kvs.refused().is_empty(), "{:?}", kvs.refused());
        check_contents(&kvs);
        let newest: Vec<u64> = kvs
            .iter::<Person>((Bound::Excluded(25), Bound::Unbounded))
            .unwrap()
            .rev()
            .map(|p| p.unwrap().id)
            .collect();
        assert_eq!(newest, [30, 29, 28, 27, 26]);
        assert!(matches!(kvs.put(&person(40)), Err(Error::ReadOnly { .. })));
    }
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the file was changed"
    );
}

#[test]
fn a_record_the_upgrade_cannot_rewrite_refuses_the_open_and_changes_nothing() {
    let dir = TempDir::new();
    let path = fixture(&dir);
    // A format-1 note without `text`, which the type cannot read (so the table is rewritten by
    // its stored entry), and which is neither last nor an Option: format 2 cannot leave it
    // out, and its default is not known without the Rust type.
    poke_format_1_note(&path, &serde_json::json!({"key": "note-9", "stars": 1}));
    let url = app_url(&path);
    match Kvs::open(&url).unwrap_err() {
        Error::Schema { table, reason } => {
            assert_eq!(table, "notes");
            assert!(
                reason.contains("note-9")
                    && reason.contains("field text")
                    && reason.contains("kvs export"),
                "{reason}"
            );
        }
        other => panic!("expected Schema, got {other:?}"),
    }
    // Still format 1, whole: a read-only open reads it as before.
    let kvs = Kvs::open(&format!("{url}&read_only=true")).unwrap();
    assert_eq!(kvs.count::<Person>().unwrap(), 30);
    assert_eq!(kvs.get::<Note>("note-2").unwrap(), Some(note(2)));
    drop(kvs);
    let db = redb::ReadOnlyDatabase::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let legacy: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("people");
    assert!(
        txn.open_table(legacy).is_ok(),
        "people keeps its format-1 key type"
    );
}

/// Successive releases of one table, each in its own schema (as tests/catalog.rs does).
mod releases {
    use super::*;

    #[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[kvs(name = "items", schema = "r1")]
    pub struct R1 {
        #[kvs(key)]
        pub id: u64,
        pub name: String,
        pub qty: u32,
    }

    /// A field appended with a default, and `qty` widened.
    #[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[kvs(name = "items", schema = "r2")]
    pub struct R2 {
        #[kvs(key)]
        pub id: u64,
        pub name: String,
        pub qty: u64,
        #[serde(default)]
        pub note: Option<String>,
    }

    /// A field appended without a default.
    #[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[kvs(name = "items", schema = "r3")]
    pub struct R3 {
        #[kvs(key)]
        pub id: u64,
        pub name: String,
        pub qty: u32,
        pub price: u32,
    }

    /// `qty` removed.
    #[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[kvs(name = "items", schema = "r4")]
    pub struct R4 {
        #[kvs(key)]
        pub id: u64,
        pub name: String,
    }

    /// `name` and `qty` swapped.
    #[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[kvs(name = "items", schema = "r5")]
    pub struct R5 {
        #[kvs(key)]
        pub id: u64,
        pub qty: u32,
        pub name: String,
    }

    /// `name` renamed in storage.
    #[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[kvs(name = "items", schema = "r6")]
    pub struct R6 {
        #[kvs(key)]
        pub id: u64,
        #[serde(rename = "title")]
        pub name: String,
        pub qty: u32,
    }

    /// R2's `note` without its default.
    #[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[kvs(name = "items", schema = "r8")]
    pub struct R8 {
        #[kvs(key)]
        pub id: u64,
        pub name: String,
        pub qty: u64,
        pub note: Option<String>,
    }

    /// `qty` narrowed.
    #[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[kvs(name = "items", schema = "r7")]
    pub struct R7 {
        #[kvs(key)]
        pub id: u64,
        pub name: String,
        pub qty: u8,
    }
}

use releases::{R1, R2, R3, R4, R5, R6, R7, R8};

fn at(dir: &TempDir, schema: &str) -> String {
    format!("{}?schemas={schema}", dir.url("items.redb"))
}

fn seed_items(dir: &TempDir) {
    let kvs = Kvs::open(&at(dir, "r1")).unwrap();
    kvs.put(&R1 {
        id: 1,
        name: "bolt".into(),
        qty: 5,
    })
    .unwrap();
}

/// The refusal of `T`'s table at an open with `schema`.
fn refusal<T: Table>(dir: &TempDir, schema: &str) -> String {
    let kvs = Kvs::open(&at(dir, schema)).unwrap();
    match kvs.count::<T>().unwrap_err() {
        Error::Schema { table, reason } => {
            assert_eq!(table, "items");
            reason
        }
        other => panic!("expected Schema, got {other:?}"),
    }
}

#[test]
fn a_field_appended_with_a_default_reads_old_records_with_it() {
    let dir = TempDir::new();
    seed_items(&dir);
    let kvs = Kvs::open(&at(&dir, "r2")).unwrap();
    assert!(kvs.refused().is_empty(), "{:?}", kvs.refused());
    let old = kvs.get::<R2>(&1).unwrap().unwrap();
    assert_eq!((old.qty, old.note), (5, None));
    kvs.put(&R2 {
        id: 2,
        name: "nut".into(),
        qty: u64::from(u32::MAX) + 1,
        note: Some("big".into()),
    })
    .unwrap();
    assert_eq!(kvs.count::<R2>().unwrap(), 2);
    drop(kvs);
    // Dropping the default again would leave record 1 unreadable: refused, by name.
    let reason = refusal::<R8>(&dir, "r8");
    assert!(
        reason.contains("field note lost its #[serde(default)]"),
        "{reason}"
    );
}

#[test]
fn changes_that_would_misread_stored_records_are_refused_naming_the_field() {
    let dir = TempDir::new();
    seed_items(&dir);
    let cases = [
        (
            refusal::<R3>(&dir, "r3"),
            "field price was added without #[serde(default)]",
        ),
        (refusal::<R4>(&dir, "r4"), "field qty was removed"),
        (
            refusal::<R5>(&dir, "r5"),
            "field name moved from position 1 to 2",
        ),
        (
            refusal::<R6>(&dir, "r6"),
            "field name at position 1 is now title",
        ),
        (
            refusal::<R7>(&dir, "r7"),
            "field qty changed type from u32 to u8",
        ),
    ];
    for (reason, says) in cases {
        assert!(reason.contains(says), "{reason}");
        assert!(reason.contains("SCHEMA.md"), "{reason}");
    }
    // Each refusal left the table as it was.
    let kvs = Kvs::open(&at(&dir, "r1")).unwrap();
    assert!(kvs.refused().is_empty());
    assert_eq!(kvs.get::<R1>(&1).unwrap().unwrap().name, "bolt");
}

#[test]
fn an_empty_table_takes_any_change_of_fields() {
    let dir = TempDir::new();
    seed_items(&dir);
    {
        let kvs = Kvs::open(&at(&dir, "r1")).unwrap();
        assert!(kvs.delete::<R1>(&1).unwrap());
    }
    for schema in ["r5", "r4", "r3"] {
        let kvs = Kvs::open(&at(&dir, schema)).unwrap();
        assert!(kvs.refused().is_empty(), "{schema}: {:?}", kvs.refused());
    }
    let kvs = Kvs::open(&at(&dir, "r3")).unwrap();
    kvs.put(&R3 {
        id: 1,
        name: "bolt".into(),
        qty: 5,
        price: 3,
    })
    .unwrap();
    assert_eq!(kvs.get::<R3>(&1).unwrap().unwrap().price, 3);
}
