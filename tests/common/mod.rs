//! Shared pieces of the integration tests: record types, scratch directories, and the
//! backends every test runs on.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use kvs::{Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "users")]
pub struct User {
    #[kvs(key)]
    pub id: u64,
    #[kvs(index, unique)]
    pub email: String,
    #[kvs(index)]
    pub city: String,
    pub name: String,
}

impl User {
    pub fn new(id: u64, email: &str, city: &str) -> User {
        User {
            id,
            email: email.to_owned(),
            city: city.to_owned(),
            name: format!("user {id}"),
        }
    }
}

/// Signed keys, an optional unique index and a tuple index.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "temps")]
pub struct Temp {
    #[kvs(key)]
    pub at: i64,
    #[kvs(index)]
    pub celsius: i16,
    #[kvs(index, unique)]
    pub station: Option<String>,
    #[kvs(index)]
    pub place: (String, u8),
}

/// String keys.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Word {
    #[kvs(key)]
    pub text: String,
    pub count: u32,
}

/// A scratch directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "kvs-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create scratch dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn url(&self, file: &str) -> String {
        format!("redb:{}", self.0.join(file).display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `test` on a fresh database of every backend under test: `mem:`, a redb file, and, when
/// `KVS_TEST_ETCD` names a cluster (`etcd://HOST:PORT,...`, as `.ci/run` sets it), a fresh
/// prefix on that cluster. `KVS_TEST_URL` instead runs it on that one URL alone (whose
/// database must start empty of these tables).
pub fn on_each_backend(test: impl Fn(&Kvs)) {
    if let Ok(url) = std::env::var("KVS_TEST_URL") {
        test(&Kvs::open(&url).expect("open KVS_TEST_URL"));
        return;
    }
    test(&Kvs::open("mem:").expect("open mem:"));
    let dir = TempDir::new();
    test(&Kvs::open(&dir.url("test.redb")).expect("open redb file"));
    if let Some(url) = etcd_url() {
        test(&Kvs::open(&url).expect("open etcd"));
    }
}

/// A fresh database on the etcd cluster named by `KVS_TEST_ETCD`, if any: a prefix no other
/// test (or run) uses.
pub fn etcd_url() -> Option<String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let cluster = std::env::var("KVS_TEST_ETCD").ok()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Some(format!(
        "{}/kvs-test/{}-{nanos}-{}",
        cluster.trim_end_matches('/'),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Checks that the indexes of `users` agree exactly with its records, and returns the records.
///
/// Every record is found by its email and by its city, each city's entries are exactly the
/// records of that city, and each index table holds one entry per record: so no index entry
/// is missing, stale, or points at a missing record.
pub fn audit_users(kvs: &Kvs) -> Vec<User> {
    let all: Vec<User> = kvs.all().expect("all users");
    assert!(
        all.windows(2).all(|w| w[0].id < w[1].id),
        "all() is not in key order"
    );
    assert_eq!(kvs.count::<User>().expect("count"), all.len() as u64);
    for user in &all {
        let by_email = kvs
            .index::<User>(UserField::Email, &user.email)
            .expect("index by email");
        assert_eq!(
            by_email,
            std::slice::from_ref(user),
            "email index of {}",
            user.id
        );
    }
    let mut cities: Vec<&str> = all.iter().map(|u| u.city.as_str()).collect();
    cities.sort_unstable();
    cities.dedup();
    for city in cities {
        let want: Vec<User> = all.iter().filter(|u| u.city == city).cloned().collect();
        let got = kvs
            .index::<User>(UserField::City, city)
            .expect("index by city");
        assert_eq!(got, want, "city index of {city}");
    }
    let dump = kvs.dump().expect("dump");
    for table in ["users#email", "users#city"] {
        let row = dump.rows.iter().find(|r| r.name == table).expect(table);
        assert_eq!(
            row.elements,
            all.len() as u64,
            "{table} holds entries of no record"
        );
    }
    all
}
