//! kvs on a secured cluster: TLS with client certificates and etcd users
//! (`scripts/etcd-cluster.sh start --tls`, which `.ci/run` does). Each bad certificate or
//! credential gives its typed error at once and writes nothing; a good one works, and keeps
//! working after its auth token expires.
//!
//! The tests need `KVS_TEST_ETCDS`, the secured cluster's URL (`scripts/etcd-cluster.sh
//! url`), and `KVS_ETCD_PASSWORD` (`scripts/etcd-cluster.sh env`); without them cargo reports
//! them as ignored, and `-- --ignored` fails, saying so. They take the other users' passwords
//! and the untrusted CA from the directory of the URL's `ca=` file, where the script made them.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod common;
use common::{at, fresh};
use kvs::backend::Backend;
use kvs::{Error, Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "notes")]
struct Note {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    topic: String,
}

fn note(id: u64) -> Note {
    Note {
        id,
        topic: format!("topic-{}", id % 3),
    }
}

const IGNORED: &str = "needs the TLS etcd cluster: set KVS_TEST_ETCDS and KVS_ETCD_PASSWORD";

/// The secured cluster's URL, with `PREFIX` where the prefix goes.
fn cluster() -> String {
    std::env::var("KVS_TEST_ETCDS").unwrap_or_else(|_| {
        panic!(
            "{IGNORED}: start it with `KVS_ETCD_CLUSTER=DIR KVS_ETCD_PORT_BASE=N \
             scripts/etcd-cluster.sh start --tls`, then export KVS_TEST_ETCDS=\"$(... url)\" \
             and eval \"$(... env)\" (bash .ci/run does)"
        )
    })
}

/// The directory where the script keeps the cluster's certificates and passwords.
fn tls_dir(cluster: &str) -> PathBuf {
    let ca = cluster
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("ca="))
        .expect("the secured cluster's URL names its CA with ?ca=");
    PathBuf::from(ca).parent().unwrap().to_owned()
}

fn password_of(cluster: &str, user: &str) -> String {
    let file = tls_dir(cluster).join(format!("{user}.password"));
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .to_owned()
}

/// `url` with parameter `name` set to `value` (`None`: removed).
fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(name))
        .map(str::to_owned)
        .collect();
    if let Some(value) = value {
        pairs.push(format!("{name}={value}"));
    }
    format!("{head}?{}", pairs.join("&"))
}

/// `KVS_ETCD_PASSWORD` is the process's: the tests here take turns with it, and each puts
/// back what it found, even when it fails.
struct Password {
    saved: Option<String>,
    _turn: MutexGuard<'static, ()>,
}

impl Password {
    fn take_turn() -> Password {
        static TURN: Mutex<()> = Mutex::new(());
        let turn = TURN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Password {
            saved: std::env::var(kvs::etcd::PASSWORD_ENV).ok(),
            _turn: turn,
        }
    }

    /// Sets the password; `&self` shows that the caller holds the turn.
    #[allow(clippy::unused_self)]
    fn set(&self, password: Option<&str>) {
        match password {
            Some(p) => std::env::set_var(kvs::etcd::PASSWORD_ENV, p),
            None => std::env::remove_var(kvs::etcd::PASSWORD_ENV),
        }
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.set(self.saved.clone().as_deref());
    }
}

#[test]
#[ignore = "needs the TLS etcd cluster: set KVS_TEST_ETCDS and KVS_ETCD_PASSWORD"]
fn the_kvs_user_works_over_tls_and_no_secret_is_shown() {
    let cluster = cluster();
    let password = Password::take_turn();
    let secret = password.saved.clone().expect("KVS_ETCD_PASSWORD is set");
    let url = fresh(&cluster, "secure");
    let kvs = Kvs::open(&url).unwrap();
    for id in 1..=6 {
        kvs.put(&note(id)).unwrap();
    }
    assert_eq!(kvs.get::<Note>(&4).unwrap(), Some(note(4)));
    assert_eq!(
        kvs.index::<Note>(NoteField::Topic, "topic-1").unwrap(),
        vec![note(1), note(4)]
    );
    assert_eq!(kvs.seq("notes", 1).unwrap(), 1);
    assert!(kvs.url().starts_with("etcds://"));
    for shown in [
        kvs.url().to_owned(),
        kvs.ver().to_string(),
        format!("{:?}", kvs.dump()),
    ] {
        assert!(!shown.contains(&secret), "the password shows in {shown}");
    }
    // A password in the URL is refused, and the error does not show it.
    match Kvs::open(&with_param(&url, "password", Some(&secret))) {
        Err(Error::Url { url, reason }) => {
            assert!(!url.contains(&secret) && !reason.contains(&secret));
        }
        other => panic!("expected Error::Url, got {:?}", other.map(|_| ())),
    }
}

/// A bad case: what it is, a URL on a fresh prefix, the password to use, and the error it
/// must give.
type Case = (&'static str, String, Option<String>, fn(&Error) -> bool);

/// Nothing was written at `url`'s prefix: root, who may read every key, finds no table there.
fn assert_nothing_written(cluster: &str, password: &Password, url: &str, what: &str) {
    let dir = tls_dir(cluster);
    let file = |name: &str| dir.join(name).display().to_string();
    let mut check = with_param(url, "user", Some("root"));
    for (name, path) in [
        ("ca", "ca.pem"),
        ("cert", "client.pem"),
        ("key", "client-key.pem"),
    ] {
        check = with_param(&check, name, Some(&file(path)));
    }
    password.set(Some(&password_of(cluster, "root")));
    let root = kvs::etcd::Etcd::open(&kvs::Config::parse(&check).unwrap());
    password.set(password.saved.as_deref());
    let mut tables = Vec::new();
    root.unwrap()
        .read(&mut |r| {
            tables = r.tables()?;
            Ok(())
        })
        .unwrap();
    assert!(tables.is_empty(), "{what}: tables were written: {tables:?}");
}

#[test]
#[ignore = "needs the TLS etcd cluster: set KVS_TEST_ETCDS and KVS_ETCD_PASSWORD"]
fn bad_certificates_and_credentials_are_typed_errors_and_write_nothing() {
    let cluster = cluster();
    let password = Password::take_turn();
    let good = password.saved.clone().expect("KVS_ETCD_PASSWORD is set");
    let other_ca = tls_dir(&cluster).join("other-ca.pem").display().to_string();

    let tls =
        |e: &Error| matches!(e, Error::Tls { member, .. } if member.starts_with("127.0.0.1:"));
    let denied = |e: &Error| matches!(e, Error::Denied { .. });
    let url = |name: &str| fresh(&cluster, name);
    let cases: Vec<Case> = vec![
        (
            "a CA that did not sign the members' certificates",
            with_param(&url("wrong-ca"), "ca", Some(&other_ca)),
            Some(good.clone()),
            tls,
        ),
        (
            "the system's roots, which do not hold the test CA",
            with_param(&url("system-roots"), "ca", None),
            Some(good.clone()),
            tls,
        ),
        (
            "no client certificate",
            with_param(&with_param(&url("no-cert"), "cert", None), "key", None),
            Some(good.clone()),
            tls,
        ),
        (
            "a wrong password",
            url("wrong-password"),
            Some(format!("{good}x")),
            denied,
        ),
        (
            "no password in KVS_ETCD_PASSWORD",
            url("no-password"),
            None,
            denied,
        ),
        (
            "no user: the certificate alone",
            with_param(&url("no-user"), "user", None),
            Some(good.clone()),
            denied,
        ),
        (
            "an unknown user",
            with_param(&url("unknown-user"), "user", Some("mallory")),
            Some(good.clone()),
            denied,
        ),
        (
            "a user without rights",
            with_param(&url("nobody"), "user", Some("nobody")),
            Some(password_of(&cluster, "nobody")),
            denied,
        ),
        (
            "the kvs user outside its prefix",
            at(&cluster, &format!("outside-app/{}", std::process::id())),
            Some(good.clone()),
            denied,
        ),
    ];
    let n = cases.len();
    for (what, url, secret, expected) in cases {
        password.set(secret.as_deref());
        let start = Instant::now();
        let result = Kvs::open(&url);
        let took = start.elapsed();
        password.set(Some(&good));
        match result {
            Err(e) if expected(&e) => {
                eprintln!("{what}: {e}");
                let message = e.to_string();
                assert!(
                    !message.contains(&good),
                    "{what}: the password shows: {message}"
                );
            }
            Err(e) => panic!("{what}: unexpected error {e:?}"),
            Ok(_) => panic!("{what}: opened"),
        }
        assert!(
            took < Duration::from_secs(10),
            "{what}: took {took:?}, retried?"
        );
        assert_nothing_written(&cluster, &password, &url, what);
    }
    eprintln!("{n} bad-certificate and bad-credential cases: each a typed error, nothing written");
}

#[test]
#[ignore = "needs the TLS etcd cluster: set KVS_TEST_ETCDS and KVS_ETCD_PASSWORD"]
fn an_expired_auth_token_is_renewed() {
    let cluster = cluster();
    let _password = Password::take_turn();
    let kvs = std::sync::Arc::new(Kvs::open(&fresh(&cluster, "token")).unwrap());
    kvs.put(&note(1)).unwrap();
    // The test cluster's tokens live 5 s unused (--auth-token-ttl 5).
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(kvs.get::<Note>(&1).unwrap(), Some(note(1)));
    std::thread::sleep(Duration::from_secs(7));
    // Many threads meet the expired token at once; each call works.
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let kvs = kvs.clone();
            std::thread::spawn(move || {
                let id = kvs.seq("notes", 1).unwrap();
                kvs.put(&note(100 + t)).unwrap();
                id
            })
        })
        .collect();
    let mut ids: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>());
    assert_eq!(kvs.count::<Note>().unwrap(), 9);
}

/// The TLS and user parameters are checked before anything connects, each misuse an
/// `Error::Url` naming the parameter; an unreachable secured cluster is `Unavailable` at once.
#[test]
fn tls_and_user_parameters_are_checked_before_connecting() {
    let dir = std::env::temp_dir().join(format!("kvs-secure-params-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let not_pem = not_pem.display().to_string();
    for (url, names) in [
        ("etcd://127.0.0.1:1/app?ca=/x.pem".to_owned(), "ca"),
        (
            "etcd://127.0.0.1:1/app?cert=/x.pem&key=/y.pem".to_owned(),
            "cert",
        ),
        (
            "etcds://127.0.0.1:1/app?ca=/nonexistent/ca.pem".to_owned(),
            "ca",
        ),
        (format!("etcds://127.0.0.1:1/app?ca={not_pem}"), "ca"),
        (format!("etcds://127.0.0.1:1/app?cert={not_pem}"), "key"),
        (format!("etcds://127.0.0.1:1/app?key={not_pem}"), "cert"),
        ("etcds://127.0.0.1:1/app?user=".to_owned(), "user"),
        (
            "etcds://127.0.0.1:1/app?token=t0ps3cret".to_owned(),
            "password",
        ),
        (
            "etcds://kvs:t0ps3cret@127.0.0.1:1/app".to_owned(),
            "password",
        ),
    ] {
        match Kvs::open(&url) {
            Err(Error::Url { url: shown, reason }) => {
                assert!(reason.contains(names), "{url}: {reason}");
                assert!(!shown.contains("t0ps3cret") && !reason.contains("t0ps3cret"));
            }
            other => panic!("{url}: expected Error::Url, got {:?}", other.map(|_| ())),
        }
    }
    let start = Instant::now();
    let ca = dir.join("ca.pem");
    // Any certificate will do: nothing listens there.
    std::fs::write(&ca, OTHER_PEM).unwrap();
    match Kvs::open(&format!(
        "etcds://127.0.0.1:1,127.0.0.1:2/app?ca={}",
        ca.display()
    )) {
        Err(Error::Unavailable { .. }) => {}
        other => panic!("expected Unavailable, got {:?}", other.map(|_| ())),
    }
    assert!(start.elapsed() < Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(dir);
}

/// A self-signed CA certificate whose key was thrown away, to give `?ca=` a well-formed file.
const OTHER_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBnjCCAUWgAwIBAgIUasQSD1i/YCKetiKSQVUiiaAL7m8wCgYIKoZIzj0EAwIw
JTEjMCEGA1UEAwwaa3ZzIHRlc3Q6IGEgQ0Egbm9ib2R5IHVzZXMwHhcNMjYxMjAz
MDI0MzU2WhcNMzYxMTMwMDI0MzU2WjAlMSMwIQYDVQQDDBprdnMgdGVzdDogYSBD
QSBub2JvZHkgdXNlczBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABKSMwesJmIkv
gN0LX9xjT/uYkaONOxl0i230y3I1TTVhN7ezX5PiMenp7C19JKUbFUR2B9FJ0ton
l7ceeZHdtICjUzBRMB0GA1UdDgQWBBT2suKirOM7bptNjOBVNvFzJ3InCzAfBgNV
HSMEGDAWgBT2suKirOM7bptNjOBVNvFzJ3InCzAPBgNVHRMBAf8EBTADAQH/MAoG
CCqGSM49BAMCA0cAMEQCIAQKEzXlWsSAQ75LNYUIx/bAz9/7Q6qTaqdvqY3pbJOB
AiAQGR0lN6QH3srabmqIMEd+DC2Yk6oCrgfxj8pBvD2e0g==
-----END CERTIFICATE-----
";
