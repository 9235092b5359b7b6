//! The backend conformance suite (`kvs_core::testing`) on redb: on `mem:`, and on files in a
//! temporary directory.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use kvs_core::{testing, Backend, Config};

fn open(url: &str) -> Box<dyn Backend> {
    let config = Config::parse(url).unwrap_or_else(|e| panic!("bad URL {url}: {e}"));
    kvs_redb::open(&config).unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
}

#[test]
fn mem_keeps_the_backend_contract() {
    testing::conformance(&|| open("mem:"));
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "kvs-conformance-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn file_keeps_the_backend_contract() {
    let dir = TempDir::new("redb");
    let next = AtomicUsize::new(0);
    testing::conformance(&|| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        open(&format!(
            "redb:{}",
            dir.0.join(format!("{n}.redb")).display()
        ))
    });
}
