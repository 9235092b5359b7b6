//! A kvs database whose raw storage the targets can write behind kvs's back.

use std::sync::Arc;

use kvs::backend::{Backend, BackendInfo, ReadTx, WriteTx};
use kvs::redb::Redb;
use kvs::Result;

/// A backend shared between a `Kvs` and the target, which writes raw bytes into it.
pub struct Shared(pub Arc<Redb>);

impl Backend for Shared {
    fn info(&self) -> BackendInfo {
        self.0.info()
    }

    fn read(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<()>) -> Result<()> {
        self.0.read(f)
    }

    fn snapshot(&self) -> Result<Box<dyn ReadTx + Send + '_>> {
        self.0.snapshot()
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()> {
        self.0.write(f)
    }

    fn serial_writes(&self) -> bool {
        self.0.serial_writes()
    }
}

/// A new in-memory database, and a `Kvs` on it.
pub fn open() -> (Arc<Redb>, kvs::Result<kvs::Kvs>) {
    let redb = Arc::new(Redb::in_memory(redb::Durability::Immediate).unwrap());
    let kvs = kvs::Kvs::with_backend(
        Box::new(Shared(Arc::clone(&redb))),
        kvs::Config::parse("fuzz:").unwrap(),
    );
    (redb, kvs)
}

/// Writes `value` under `key` in `table` (or removes it, for `None`), behind kvs's back;
/// returns what was there.
pub fn poke(redb: &Redb, table: &str, key: &[u8], value: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut old = None;
    redb.write(&mut |w| {
        old = match value {
            Some(value) => w.insert(table, key, value)?,
            None => w.remove(table, key)?,
        };
        Ok(())
    })
    .unwrap();
    old
}
