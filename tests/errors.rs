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
fn a_truncated_file_is_an_error_not_a_panic() {
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
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 3).unwrap();
    drop(file);
    // redb may repair what is left or report corruption; either way no panic and no lie.
    match Kvs::open(&url) {
        Ok(kvs) => {
            let n = kvs.count::<User>().unwrap_or(0);
            assert!(n <= 200);
        }
        Err(e) => assert!(
            matches!(e, Error::NotKvs { .. } | Error::Storage { .. }),
            "{e:?}"
        ),
    }
}

#[test]
fn a_database_open_in_this_process_is_in_use() {
    let dir = TempDir::new();
    let url = dir.url("busy.redb");
    let _first = Kvs::open(&url).unwrap();
    match open_err(&url) {
        Error::InUse { location } => assert!(location.contains("busy.redb")),
        other => panic!("expected InUse, got {other:?}"),
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
        Err(Error::NotKvs { .. })
    ));
    assert!(!missing.exists());
    assert!(matches!(
        Kvs::open("mem:?read_only=maybe"),
        Err(Error::Url { .. })
    ));
}
