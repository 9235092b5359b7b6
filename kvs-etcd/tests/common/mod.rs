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

/// A fresh database (prefix) on the cluster.
pub fn fresh(cluster: &str, name: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{cluster}/kvs-etcd-test/{name}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
