//! Shared pieces of the integration tests: record types, scratch directories, and the
//! backends every test runs on (`backend_test!`).
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

/// Declares tests that run on every backend under test, each as two: `NAME::local` and
/// `NAME::etcd`, the latter `#[ignore]`d so that without a cluster cargo reports it as ignored
/// rather than passing it unrun. `cargo test -- --ignored` runs it (`bash .ci/run` does, with
/// `KVS_TEST_ETCD` set).
///
/// ```ignore
/// backend_test! {
///     #[test]
///     fn put_get() {
///         on_each_backend(|kvs| { /* ... */ });
///     }
/// }
/// ```
///
/// Inside the body, `on_each_backend(|kvs| ...)` runs the closure on a fresh database of every
/// backend of that twin: in `local`, [`on_local_backends`] (`mem:` and a redb file, or
/// `KVS_TEST_URL` alone); in `etcd`, [`on_etcd`] (a fresh prefix on the `KVS_TEST_ETCD`
/// cluster, and a panic without one). There is no `on_each_backend` outside the macro, so a
/// test cannot skip etcd unawares. The whole body runs in each twin.
#[allow(unused_macros)] // not every test binary declares backend tests
macro_rules! backend_test {
    ($($(#[doc = $doc:expr])* #[test] fn $name:ident() $body:block)*) => {$(
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn local() {
                #[allow(unused_imports)]
                use crate::common::on_local_backends as on_each_backend;
                $body
            }

            #[test]
            #[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
            fn etcd() {
                #[allow(unused_imports)]
                use crate::common::on_etcd as on_each_backend;
                $body
            }
        }
    )*};
}
#[allow(unused_imports)] // likewise
pub(crate) use backend_test;

/// Runs `test` on a fresh database of each local backend, `mem:` and a redb file; or, when
/// `KVS_TEST_URL` is set, on that one URL alone (whose database must start empty of these
/// tables). `on_each_backend` in the `local` twin of a [`backend_test!`].
pub fn on_local_backends(test: impl Fn(&Kvs)) {
    if let Ok(url) = std::env::var("KVS_TEST_URL") {
        test(&Kvs::open(&url).expect("open KVS_TEST_URL"));
        return;
    }
    test(&Kvs::open("mem:").expect("open mem:"));
    let dir = TempDir::new();
    test(&Kvs::open(&dir.url("test.redb")).expect("open redb file"));
}

/// Runs `test` on a fresh prefix of the etcd cluster that `KVS_TEST_ETCD` names
/// (`etcd://HOST:PORT,...`, as `.ci/run` sets it), and panics, saying how to start one, when
/// it is not set. `on_each_backend` in the ignored `etcd` twin of a [`backend_test!`].
pub fn on_etcd(test: impl Fn(&Kvs)) {
    let url = etcd_url().expect(
        "KVS_TEST_ETCD names no etcd cluster; start one with `scripts/etcd-cluster.sh start` \
         and `export KVS_TEST_ETCD=\"$(scripts/etcd-cluster.sh url)\"` (bash .ci/run does both)",
    );
    test(&Kvs::open(&url).expect("open etcd"));
}

/// A fresh database on the etcd cluster named by `KVS_TEST_ETCD`, if any: a prefix no other
/// test (or run) uses.
pub fn etcd_url() -> Option<String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let cluster = std::env::var("KVS_TEST_ETCD").ok()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Under `app`, which the TLS test cluster's `kvs` user may use; where the cluster's URL
    // says `PREFIX` (the TLS cluster's, whose parameters follow the prefix), there.
    let path = format!(
        "app-kvs-test/{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let cluster = cluster.trim_end_matches('/');
    Some(if cluster.contains("/PREFIX") {
        cluster.replacen("/PREFIX", &format!("/{path}"), 1)
    } else {
        format!("{cluster}/{path}")
    })
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

/// A child process of a crash test: this test binary run again with only the ignored test
/// `name` selected and `env` set. The lines it prints after `mark` (its protocol, among the
/// test harness's own output) arrive on `lines` as they come.
pub struct Child {
    pub process: std::process::Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl Child {
    pub fn spawn(name: &str, env: &[(&str, &str)], mark: &'static str) -> Child {
        use std::io::{BufRead, BufReader};
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args([
                name,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut process = command.spawn().expect("spawn the child");
        let stdout = process.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(mark) {
                    if tx.send(line[at + mark.len()..].to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        Child {
            process,
            lines,
            reader,
        }
    }

    /// The next protocol line, or a panic with the child's stderr when it stops talking.
    pub fn next_line(&mut self) -> String {
        if let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(60)) {
            return line;
        }
        let _ = self.process.kill();
        let mut stderr = String::new();
        if let Some(mut err) = self.process.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        panic!("the child stopped talking: {stderr}")
    }

    /// SIGKILLs the child, and returns the protocol lines it printed that were not read.
    pub fn kill(mut self) -> Vec<String> {
        self.process.kill().expect("SIGKILL the child");
        let status = self.process.wait().unwrap();
        assert!(!status.success(), "the child ended on its own: {status}");
        self.reader.join().unwrap();
        self.lines.try_iter().collect()
    }
}
