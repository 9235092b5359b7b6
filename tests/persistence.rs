//! What is committed to a redb file is there after reopening it.

mod common;

use common::{TempDir, User, UserField};
use kvs::Kvs;

#[test]
fn records_indexes_and_counters_survive_reopen() {
    let dir = TempDir::new();
    let url = dir.url("app.redb");
    {
        let kvs = Kvs::open(&url).unwrap();
        for _ in 0..3 {
            let id = kvs.seq("users", 1).unwrap();
            kvs.put(&User::new(id, &format!("{id}@x.io"), "Oslo"))
                .unwrap();
        }
        kvs.delete::<User>(&2).unwrap();
    }
    let kvs = Kvs::open(&url).unwrap();
    assert_eq!(kvs.count::<User>().unwrap(), 2);
    assert_eq!(
        kvs.get::<User>(&3).unwrap(),
        Some(User::new(3, "3@x.io", "Oslo"))
    );
    assert_eq!(kvs.get::<User>(&2).unwrap(), None);
    assert_eq!(kvs.index::<User>(UserField::City, "Oslo").unwrap().len(), 2);
    assert_eq!(
        kvs.seq("users", 1).unwrap(),
        4,
        "the counter goes on where it stopped"
    );
}

#[test]
fn durability_none_is_visible_and_survives_a_clean_close() {
    let dir = TempDir::new();
    let url = format!("{}?durability=none", dir.url("fast.redb"));
    {
        let kvs = Kvs::open(&url).unwrap();
        kvs.put(&User::new(1, "ann@x.io", "Oslo")).unwrap();
        assert_eq!(kvs.count::<User>().unwrap(), 1);
    }
    let kvs = Kvs::open(&dir.url("fast.redb")).unwrap();
    assert_eq!(kvs.count::<User>().unwrap(), 1);
}

#[test]
fn from_env_reads_kvs_url() {
    let dir = TempDir::new();
    let url = dir.url("env.redb");
    // The only test in this binary that touches the environment.
    std::env::set_var(kvs::KVS_URL, &url);
    let kvs = Kvs::from_env().unwrap();
    assert_eq!(kvs.url(), url);
    assert!(dir.path().join("env.redb").exists());
}
