//! What a new user met in the first hour, through the typed API: a handle used inside its own
//! transaction, application errors out of transactions, retried transactions, borrowed keys,
//! enum indexes, and errors that name what they concern.

mod common;

use common::{backend_test, TempDir, User, Word};
use kvs::{Error, KeyEnum, Kvs, Table};
use serde::{Deserialize, Serialize};

backend_test! {
    #[test]
    fn the_handle_inside_its_own_transaction_fails_at_once_and_stays_usable() {
        on_each_backend(|kvs| {
            let result = kvs.transaction(|tx| {
                tx.put(&User::new(1, "a@x", "Oslo"))?;
                // Each of these would wait for the transaction that is running.
                for err in [
                    kvs.put(&User::new(2, "b@x", "Oslo")).unwrap_err(),
                    kvs.get::<User>(&1).map(drop).unwrap_err(),
                    kvs.seq("ids", 1).map(drop).unwrap_err(),
                    kvs.count::<User>().map(drop).unwrap_err(),
                    kvs.transaction(|_| Ok(())).unwrap_err(),
                ] {
                    match &err {
                        Error::InTransaction { .. } => {
                            assert!(err.to_string().contains("use `tx`"), "{err}");
                        }
                        other => panic!("expected InTransaction, got {other:?}"),
                    }
                }
                kvs.put(&User::new(3, "c@x", "Oslo"))?;
                Ok(())
            });
            assert!(matches!(result, Err(Error::InTransaction { .. })));
            // Rolled back whole, and the handle works.
            assert_eq!(kvs.count::<User>().unwrap(), 0);
            kvs.put(&User::new(4, "d@x", "Oslo")).unwrap();
            assert_eq!(kvs.count::<User>().unwrap(), 1);
            // Another handle inside the transaction is fine (a different database).
            let other = Kvs::open("mem:").unwrap();
            kvs.transaction(|tx| {
                tx.put(&User::new(5, "e@x", "Oslo"))?;
                other.put(&User::new(5, "e@x", "Oslo"))
            })
            .unwrap();
            assert_eq!(other.count::<User>().unwrap(), 1);
        });
    }
}

#[test]
fn a_panicking_transaction_leaves_the_handle_usable() {
    let kvs = Kvs::open("mem:").unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = kvs.transaction(|tx| -> kvs::Result<()> {
            tx.put(&User::new(1, "a@x", "Oslo"))?;
            panic!("boom");
        });
    }));
    assert!(panicked.is_err());
    kvs.put(&User::new(2, "b@x", "Oslo")).unwrap();
    assert_eq!(kvs.count::<User>().unwrap(), 1);
}

#[derive(Debug)]
enum ShopError {
    OutOfStock { left: u64 },
    Store(Error),
}

impl From<Error> for ShopError {
    fn from(e: Error) -> Self {
        ShopError::Store(e)
    }
}

backend_test! {
    #[test]
    fn a_transaction_hands_back_the_applications_own_error() {
        on_each_backend(|kvs| {
            kvs.seq("stock", 2).unwrap();
            let sell = |n: u64| {
                kvs.try_transaction(|tx| {
                    let left = tx.seq("stock", 0)?;
                    tx.put(&User::new(n, &format!("{n}@x"), "Oslo"))?;
                    if left < n {
                        return Err(ShopError::OutOfStock { left });
                    }
                    tx.seq("sold", n)?;
                    Ok(left - n)
                })
            };
            assert!(matches!(sell(1), Ok(1)));
            assert!(matches!(sell(5), Err(ShopError::OutOfStock { left: 2 })));
            // The failed one wrote nothing.
            assert_eq!(kvs.count::<User>().unwrap(), 1);
            assert_eq!(kvs.seq("sold", 0).unwrap(), 1);
            // kvs's own errors come through From.
            let dup = kvs.try_transaction(|tx| tx.put(&User::new(9, "1@x", "Rome")).map_err(ShopError::from));
            assert!(matches!(dup, Err(ShopError::Store(Error::Duplicate { .. }))));
            // Today's callers compile and behave as before.
            let n: u64 = kvs.transaction(|tx| tx.seq("n", 1)).unwrap();
            assert_eq!(n, 1);
        });
    }
}

backend_test! {
    #[test]
    fn a_retried_transaction_runs_again_after_a_conflict_and_not_after_other_errors() {
        on_each_backend(|kvs| {
            let mut runs = 0;
            let value = kvs
                .transaction_retry(|tx| {
                    runs += 1;
                    tx.seq("retried", 1)?;
                    if runs < 3 {
                        return Err(Error::Conflict {
                            reason: "simulated".into(),
                        });
                    }
                    Ok(runs)
                })
                .unwrap();
            assert_eq!(value, 3);
            // Each failed run was rolled back: the counter moved once.
            assert_eq!(kvs.seq("retried", 0).unwrap(), 1);
            let mut runs = 0;
            let err = kvs
                .transaction_retry(|_| -> Result<(), ShopError> {
                    runs += 1;
                    Err(ShopError::OutOfStock { left: 0 })
                })
                .unwrap_err();
            assert!(matches!(err, ShopError::OutOfStock { left: 0 }));
            assert_eq!(runs, 1);
        });
    }
}

backend_test! {
    #[test]
    fn concurrent_read_modify_write_with_transaction_retry_loses_no_update() {
        on_each_backend(|kvs| {
            std::thread::scope(|s| {
                for t in 0..4 {
                    s.spawn(move || {
                        for i in 0..10 {
                            kvs.transaction_retry(|tx| {
                                let mut w = tx.get::<Word>("total")?.unwrap_or(Word {
                                    text: "total".into(),
                                    count: 0,
                                });
                                w.count += 1;
                                tx.put(&w)?;
                                tx.put(&Word {
                                    text: format!("t{t}-{i}"),
                                    count: 1,
                                })
                            })
                            .unwrap();
                        }
                    });
                }
            });
            assert_eq!(kvs.get::<Word>("total").unwrap().unwrap().count, 40);
        });
    }
}

backend_test! {
    #[test]
    fn keys_are_taken_borrowed() {
        on_each_backend(|kvs| {
            kvs.put(&Word {
                text: "A1".into(),
                count: 3,
            })
            .unwrap();
            assert_eq!(kvs.get::<Word>("A1").unwrap().unwrap().count, 3);
            let owned = String::from("A1");
            assert_eq!(kvs.get::<Word>(&owned).unwrap().unwrap().count, 3);
            assert!(kvs.delete::<Word>("A1").unwrap());
            assert!(kvs.get::<Word>("A1").unwrap().is_none());
        });
    }
}

#[derive(KeyEnum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Status {
    Active,
    OnHold,
    Closed,
}

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "tickets")]
struct Ticket {
    #[kvs(key)]
    id: u32,
    #[kvs(index)]
    status: Status,
    #[kvs(index, unique)]
    pinned: Option<Status>,
}

backend_test! {
    #[test]
    fn unit_enums_are_indexed() {
        on_each_backend(|kvs| {
            for (id, status) in [(1, Status::Closed), (2, Status::Active), (3, Status::OnHold), (4, Status::Active)] {
                kvs.put(&Ticket {
                    id,
                    status,
                    pinned: (id == 3).then_some(Status::OnHold),
                })
                .unwrap();
            }
            let ids = |s: Status| -> Vec<u32> {
                kvs.index::<Ticket>(TicketField::Status, s)
                    .unwrap()
                    .iter()
                    .map(|t| t.id)
                    .collect()
            };
            assert_eq!(ids(Status::Active), [2, 4]);
            assert_eq!(ids(Status::Closed), [1]);
            assert_eq!(
                kvs.index::<Ticket>(TicketField::Pinned, Status::OnHold).unwrap()[0].id,
                3
            );
            let clash = Ticket {
                id: 9,
                status: Status::Active,
                pinned: Some(Status::OnHold),
            };
            assert!(matches!(kvs.put(&clash), Err(Error::Duplicate { .. })));
            // The catalog names the variants as serde stores them.
            let info = kvs.dir().unwrap();
            let tickets = info.iter().find(|t| t.name == "tickets").unwrap();
            assert_eq!(
                tickets.indexes[0].value_type,
                kvs::KeyType::Enum(vec!["active".into(), "on_hold".into(), "closed".into()])
            );
            // Stored in declaration order.
            assert!(Status::Active.to_key_bytes_for_test() < Status::Closed.to_key_bytes_for_test());
        });
    }
}

trait KeyBytes {
    fn to_key_bytes_for_test(&self) -> Vec<u8>;
}

impl<K: kvs::Key> KeyBytes for K {
    fn to_key_bytes_for_test(&self) -> Vec<u8> {
        self.to_key_bytes()
    }
}

#[test]
fn a_second_open_in_one_process_says_so() {
    let dir = TempDir::new();
    let url = dir.url("twice.redb");
    let first = Kvs::open(&url).unwrap();
    match Kvs::open(&url).unwrap_err() {
        err @ Error::AlreadyOpen { .. } => {
            assert!(err.to_string().contains("Arc<Kvs>"), "{err}");
        }
        other => panic!("expected AlreadyOpen, got {other:?}"),
    }
    drop(first);
    Kvs::open(&url).unwrap();
}

#[test]
fn file_errors_name_the_file() {
    let dir = TempDir::new();
    let missing_dir = dir.url("nope/x.redb");
    let err = Kvs::open(&missing_dir).unwrap_err().to_string();
    assert!(err.contains("nope/x.redb"), "{err}");
    let err = Kvs::open(&format!("redb:{}", dir.path().display())).unwrap_err();
    assert!(matches!(err, Error::NotKvs { .. }), "{err:?}");
    assert!(err.to_string().contains("directory"), "{err}");
    let err = Kvs::open("mem:?durability=none&durability=immediate").unwrap_err();
    assert!(err.to_string().contains("more than once"), "{err}");
    let err = Kvs::open(&format!("{}?share=multi&share=single", dir.url("s.redb"))).unwrap_err();
    assert!(matches!(err, Error::Url { .. }), "{err:?}");
    assert!(!dir.path().join("s.redb").exists());
}

#[test]
fn an_empty_file_is_a_new_database() {
    let dir = TempDir::new();
    let path = dir.path().join("empty.redb");
    std::fs::write(&path, b"").unwrap();
    let kvs = Kvs::open(&dir.url("empty.redb")).unwrap();
    kvs.put(&User::new(1, "a@x", "Oslo")).unwrap();
    assert_eq!(kvs.count::<User>().unwrap(), 1);
}
