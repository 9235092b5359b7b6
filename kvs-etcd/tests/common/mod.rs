//! What the cluster test files share: the cluster under test and fresh databases on it.
#![allow(dead_code)] // each test file uses a different part

use std::sync::atomic::{AtomicUsize, Ordering};

/// The cluster that `KVS_TEST_ETCD` names; panics, saying how to start one, when it is not set.
pub fn cluster() -> String {
    let url = std::env::var("KVS_TEST_ETCD").expect(
        "KVS_TEST_ETCD names no etcd cluster; start one with `scripts/etcd-cluster.sh start` \
         and `export KVS_TEST_ETCD=\"$(scripts/etcd-cluster.sh url)\"` (bash .ci/run does both)",
    );
    url.trim_end_matches('/').to_owned()
}

/// The database at `path` on `cluster`: the cluster URL with `path` where it says `PREFIX`
/// (the TLS cluster's URL, whose parameters follow the prefix), else with `/path` appended.
pub fn at(cluster: &str, path: &str) -> String {
    if cluster.contains("/PREFIX") {
        cluster.replacen("/PREFIX", &format!("/{path}"), 1)
    } else {
        format!("{cluster}/{path}")
    }
}

/// `url` with the parameter `pair` (`NAME=VALUE`) added.
pub fn with(url: &str, pair: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{pair}")
}

/// A fresh database (prefix) on the cluster. Its prefix starts with `app`, which the TLS
/// test cluster's `kvs` user may use (`scripts/etcd-cluster.sh start --tls`).
pub fn fresh(cluster: &str, name: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    at(
        cluster,
        &format!(
            "app-kvs-etcd-test/{name}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
    )
}
