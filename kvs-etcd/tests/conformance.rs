//! The backend conformance suite (`kvs_core::testing`) on etcd, each check on a fresh prefix
//! of the cluster that `KVS_TEST_ETCD` names (`scripts/etcd-cluster.sh start` starts one;
//! `.ci/run` does). Without a cluster, cargo reports the test as ignored; run with
//! `-- --ignored`, it fails, saying so, when `KVS_TEST_ETCD` is not set.
#![forbid(unsafe_code)]

use kvs_core::{testing, Config};

mod common;
use common::{cluster, fresh};

#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn etcd_keeps_the_backend_contract() {
    let cluster = cluster();
    testing::conformance(&|| {
        let url = fresh(&cluster, "conformance");
        let config = Config::parse(&url).unwrap_or_else(|e| panic!("bad URL {url}: {e}"));
        kvs_etcd::open(&config).unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
    });
}
