//! Bad input gets a clear, typed error and changes nothing: bad URLs, files that are not kvs
//! databases, a database in use, tables left out by `schemas`.

mod common;

use common::{TempDir, User, UserField};
use kvs::{Error, Kvs};

fn open_err(url: &str) -> Error {
    Kvs::open(url).expect_err(url)
}

#[test]
fn bad_urls_are_url_errors() {
    for url in [
        "",
        "app.redb",
        "nosuch:x",
        "redb:",
        "redb:x.redb?durability=maybe",
        "redb:x.redb?cache=1",
        "mem:somewhere",
        "mem:?schemas=",
        "mem:?durability",
        "mem:?durability=none&&schemas",
        "mem:?x=1",
        " mem:",
        "redb",
        "redb//x.redb",
    ] {
        match open_err(url) {
            Error::Url { url: got, reason } => {
                assert_eq!(got, url);
                assert!(!reason.is_empty());
            }
            other => panic!("{url}: expected Error::Url, got {other:?}"),
        }
    }
    let msg = open_err("nosuch:x").to_string();
    assert!(
        msg.contains("nosuch") && msg.contains("redb") && msg.contains("mem"),
        "{msg}"
    );
}

#[test]
fn a_file_that_is_not_redb_is_not_kvs_and_untouched() {
    let dir = TempDir::new();
    let path = dir.path().join("notes.txt");
    let content = b"these are my notes, not a database\n".repeat(100);
    std::fs::write(&path, &content).unwrap();
    let err = open_err(&format!("redb:{}", path.display()));
    assert!(matches!(err, Error::NotKvs { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert!(
        std::fs::read(&path).unwrap() == content,
        "the foreign file was modified"
    );
}

#[test]
fn a_redb_file_of_another_program_is_not_kvs_and_untouched() {
    let dir = TempDir::new();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("scores");
            let mut table = txn.open_table(def).unwrap();
            table.insert("ann", &3).unwrap();
        }
        txn.commit().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = open_err(&format!("redb:{}", path.display()));
    match &err {
        Error::NotKvs { reason, .. } => assert!(reason.contains("scores"), "{reason}"),
        other => panic!("expected NotKvs, got {other:?}"),
    }
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the foreign file was modified"
    );
}

#[test]
fn a_truncated_file_is_not_kvs_and_untouched() {
    let dir = TempDir::new();
    let url = dir.url("cut.redb");
    {
        let kvs = Kvs::open(&url).unwrap();
        for id in 0..200 {
            kvs.put(&User::new(id, &format!("{id}@x.io"), "Oslo"))
                .unwrap();
        }
    }
    let path = dir.path().join("cut.redb");
    let whole = std::fs::read(&path).unwrap();
    // Every 50th of the file, from the first byte to the last one: a typed error, no panic,
    // and nothing written. (Cut to nothing, it is an empty file: a new database.)
    for cut in 1..50 {
        let len = whole.len() * cut / 50;
        std::fs::write(&path, &whole[..len]).unwrap();
        match Kvs::open(&url) {
            Err(Error::NotKvs { location, reason }) => {
                assert!(location.contains("cut.redb"), "{location}");
                assert!(reason.contains("truncated"), "{len} bytes: {reason}");
            }
            other => panic!("{len} bytes of {}: {other:?}", whole.len()),
        }
        assert!(std::fs::read(&path).unwrap() == whole[..len], "modified");
    }
    std::fs::write(&path, &whole).unwrap();
    assert_eq!(Kvs::open(&url).unwrap().count::<User>().unwrap(), 200);
}

#[test]
fn a_failed_open_creates_no_file() {
    let dir = TempDir::new();
    let path = dir.path().join("never.redb");
    for query in [
        "?schemas=nosuch",
        "?durability=maybe",
        "?cache=1",
        "?schemas=",
    ] {
        let url = format!("redb:{}{query}", path.display());
        assert!(Kvs::open(&url).is_err(), "{url}");
        assert!(!path.exists(), "{url} created the file");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_database_open_in_this_process_is_already_open() {
    let dir = TempDir::new();
    let url = dir.url("busy.redb");
    let _first = Kvs::open(&url).unwrap();
    // Not "in use by another process": the other handle is this process's own.
    match open_err(&url) {
        Error::AlreadyOpen { location } => assert!(location.contains("busy.redb")),
        other => panic!("expected AlreadyOpen, got {other:?}"),
    }
    match open_err(&format!("{url}?read_only=true")) {
        Error::AlreadyOpen { location } => assert!(location.contains("busy.redb")),
        other => panic!("expected AlreadyOpen, got {other:?}"),
    }
}

#[test]
fn schemas_restrict_the_open_tables() {
    let kvs = Kvs::open("mem:?schemas=users").unwrap();
    let names: Vec<String> = kvs.dir().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["users"]);
    kvs.put(&User::new(1, "a@x.io", "Oslo")).unwrap();
    match kvs.count::<common::Word>() {
        Err(Error::Schema { table, reason }) => {
            assert_eq!(table, "word");
            assert!(reason.contains("not open"), "{reason}");
        }
        other => panic!("expected Schema, got {other:?}"),
    }
    match open_err("mem:?schemas=users,nosuch") {
        Error::Schema { table, .. } => assert_eq!(table, "nosuch"),
        other => panic!("expected Schema, got {other:?}"),
    }
}

#[test]
fn schemas_can_be_set_in_code() {
    let mut config = kvs::Config::parse("mem:").unwrap();
    config.schemas = Some(vec!["word".to_owned()]);
    let kvs = Kvs::open_with(config).unwrap();
    let names: Vec<String> = kvs.dir().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["word"]);
}

#[test]
fn an_index_of_a_table_left_out_is_a_typed_error() {
    let kvs = Kvs::open("mem:?schemas=word").unwrap();
    let err = kvs
        .index::<User>(common::UserField::City, "Oslo")
        .unwrap_err();
    assert!(matches!(err, Error::Schema { .. }), "{err:?}");
    let err = kvs.put(&User::new(1, "a@x.io", "Oslo")).unwrap_err();
    assert!(matches!(err, Error::Schema { .. }), "{err:?}");
}

#[test]
fn a_read_only_open_reads_and_refuses_writes() {
    let dir = TempDir::new();
    let url = dir.url("ro.redb");
    Kvs::open(&url)
        .unwrap()
        .put(&User::new(1, "a@x.io", "Oslo"))
        .unwrap();
    let ro = Kvs::open(&format!("{url}?read_only=true")).unwrap();
    assert_eq!(ro.count::<User>().unwrap(), 1);
    assert_eq!(ro.index::<User>(UserField::City, "Oslo").unwrap().len(), 1);
    match ro.put(&User::new(2, "b@x.io", "Oslo")) {
        Err(Error::ReadOnly { location }) => assert!(location.ends_with("ro.redb")),
        other => panic!("expected ReadOnly, got {other:?}"),
    }
    assert!(matches!(ro.seq("ids", 1), Err(Error::ReadOnly { .. })));
    // Read-only never creates a file.
    let missing = dir.path().join("missing.redb");
    assert!(matches!(
        Kvs::open(&format!("redb:{}?read_only=true", missing.display())),
        Err(Error::Missing { .. })
    ));
    assert!(!missing.exists());
    assert!(matches!(
        Kvs::open("mem:?read_only=maybe"),
        Err(Error::Url { .. })
    ));
}

/// redb 4.6 panics on some corrupted pages (in 63 of these 200 files, at open or the first
/// reads, or walking the table); kvs-redb turns each such panic into an error, so none
/// reaches the caller.
#[test]
fn a_file_with_corrupted_bytes_is_an_error_not_a_panic() {
    let dir = TempDir::new();
    let url = dir.url("flipped.redb");
    {
        let kvs = Kvs::open(&url).unwrap();
        for id in 0..300 {
            kvs.put(&User::new(id, &format!("{id}@x.io"), "Oslo"))
                .unwrap();
        }
    }
    let path = dir.path().join("flipped.redb");
    let whole = std::fs::read(&path).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut panics = 0;
    for _ in 0..200 {
        let mut bytes = whole.clone();
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = usize::try_from(x % bytes.len() as u64).unwrap();
            bytes[at] ^= 0xFF;
        }
        std::fs::write(&path, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| {
            if let Ok(kvs) = Kvs::open(&url) {
                let _ = kvs.all::<User>();
                let _ = kvs.index::<User>(common::UserField::City, "Oslo");
                // The lazy walks, from both ends: a cursor lends redb's bytes.
                let _ = kvs.iter::<User>(..).map(Iterator::count);
                let _ = kvs.iter::<User>(..).map(|walk| walk.rev().count());
            }
        });
        panics += usize::from(outcome.is_err());
    }
    assert_eq!(
        panics, 0,
        "redb panicked on {panics} of 200 corrupted files"
    );
}
