//! Schema changes on the cluster: an index added to a table that holds records is built at
//! open. Its own test binary, since its two versions of one table would clash with the
//! other tests' opens, which select no schema.

mod common;

use common::{cluster, fresh, with};
use kvs::{Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "notes", schema = "notes-v1")]
struct NoteV1 {
    #[kvs(key)]
    id: u64,
    text: String,
}

/// The same table with an index added.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "notes", schema = "notes-v2")]
struct NoteV2 {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    text: String,
}

/// An index added to a table that holds records is built at open on etcd (it failed with
/// "duplicate key given in txn request" when the index table was dropped and written in one
/// transaction).
#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn an_index_added_over_existing_records_is_built_at_open() {
    let cluster = cluster();
    let db = fresh(&cluster, "new-index");
    {
        let kvs = Kvs::open(&with(&db, "schemas=notes-v1")).unwrap();
        kvs.transaction(|tx| {
            for id in 0..300 {
                tx.put(&NoteV1 {
                    id,
                    text: format!("t{}", id % 10),
                })?;
            }
            Ok(())
        })
        .unwrap();
    }
    let kvs = Kvs::open(&with(&db, "schemas=notes-v2")).unwrap();
    assert!(kvs.refused().is_empty());
    assert_eq!(
        kvs.index::<NoteV2>(NoteV2Field::Text, "t3").unwrap().len(),
        30
    );
    assert_eq!(
        kvs.index_count::<NoteV2>(NoteV2Field::Text, "t9").unwrap(),
        30
    );
}
