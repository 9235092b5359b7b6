//! The backend conformance suite (`kvs_core::testing`) on etcd, each check on a fresh prefix
//! of the cluster that `KVS_TEST_ETCD` names (`scripts/etcd-cluster.sh start` starts one;
//! `.ci/run` does). Without a cluster, cargo reports the test as ignored; run with
//! `-- --ignored`, it fails, saying so, when `KVS_TEST_ETCD` is not set.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use kvs_core::{testing, Config};

/// The cluster that `KVS_TEST_ETCD` names; panics, saying how to start one, when it is not set.
fn cluster() -> String {
    let url = std::env::var("KVS_TEST_ETCD").expect(
        "KVS_TEST_ETCD names no etcd cluster; start one with `scripts/etcd-cluster.sh start` \
         and `export KVS_TEST_ETCD=\"$(scripts/etcd-cluster.sh url)\"` (bash .ci/run does both)",
    );
    url.trim_end_matches('/').to_owned()
}

#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn etcd_keeps_the_backend_contract() {
    let cluster = cluster();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let run = format!("{cluster}/conformance/{}-{nanos}", std::process::id());
    let next = AtomicUsize::new(0);
    testing::conformance(&|| {
        let url = format!("{run}-{}", next.fetch_add(1, Ordering::Relaxed));
        let config = Config::parse(&url).unwrap_or_else(|e| panic!("bad URL {url}: {e}"));
        kvs_etcd::open(&config).unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
    });
}
