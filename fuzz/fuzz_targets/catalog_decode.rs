//! Arbitrary bytes stored as kvs's own data (a catalog entry, the header, a counter): opening
//! the database and reading them fails with a typed error or succeeds, never panics.
#![no_main]
#![forbid(unsafe_code)]

use std::sync::{Arc, OnceLock};

use kvs::catalog::{self, CATALOG_TABLE, HEADER_KEY, META_TABLE, SEQ_TABLE};
use kvs::redb::Redb;
use kvs::{Error, Table};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[path = "shared.rs"]
mod shared;

#[derive(Table, Serialize, Deserialize, Debug)]
#[kvs(name = "people")]
struct Person {
    #[kvs(key)]
    id: (String, i64),
    #[kvs(index, unique)]
    email: String,
}

/// One database for all inputs, restored after each.
static DB: OnceLock<Arc<Redb>> = OnceLock::new();

fuzz_target!(|input: (u8, &[u8])| {
    let (which, bytes) = input;
    let redb = DB.get_or_init(|| {
        let (redb, kvs) = shared::open();
        drop(kvs.unwrap());
        redb
    });
    let (table, key): (&str, &[u8]) = match which % 3 {
        0 => (CATALOG_TABLE, b"people"),
        1 => (META_TABLE, HEADER_KEY),
        _ => (SEQ_TABLE, b"n"),
    };
    let pristine = shared::poke(redb, table, key, Some(bytes));

    kvs::backend::Backend::read(&**redb, &mut |r| {
        let _ = catalog::read_entry(r, "people");
        let _ = catalog::read_header(r, "fuzz");
        Ok(())
    })
    .unwrap();
    // Reopen: reconciles the catalog (rewriting an unreadable entry is refused).
    let reopened = kvs::Kvs::with_backend(
        Box::new(shared::Shared(Arc::clone(redb))),
        kvs::Config::parse("fuzz:").unwrap(),
    );
    match reopened {
        Ok(kvs) => {
            match kvs.seq("n", 1) {
                Ok(_) | Err(Error::Schema { .. } | Error::SeqOverflow { .. }) => {}
                Err(e) => panic!("seq: {e:?}"),
            }
            let _ = kvs.count::<Person>().unwrap();
        }
        Err(Error::Schema { .. } | Error::NotKvs { .. }) => {}
        Err(e) => panic!("open: {e:?}"),
    }
    shared::poke(redb, table, key, pristine.as_deref());
    shared::poke(redb, SEQ_TABLE, b"n", None);
});
