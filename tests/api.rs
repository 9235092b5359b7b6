//! Every call of the user API, on every backend.

mod common;

use common::{backend_test, Temp, TempField, User, Word};
use kvs::{Error, Kvs};

backend_test! {
    #[test]
    fn put_get_delete() {
        on_each_backend(|kvs| {
            let ann = User::new(1, "ann@x.io", "Oslo");
            assert_eq!(kvs.get::<User>(&1).unwrap(), None);
            kvs.put(&ann).unwrap();
            assert_eq!(kvs.get::<User>(&1).unwrap(), Some(ann.clone()));
            assert_eq!(kvs.count::<User>().unwrap(), 1);
            assert!(kvs.delete::<User>(&1).unwrap());
            assert!(
                !kvs.delete::<User>(&1).unwrap(),
                "a missing key deletes nothing"
            );
            assert_eq!(kvs.get::<User>(&1).unwrap(), None);
            assert_eq!(kvs.count::<User>().unwrap(), 0);
        });
    }
}

backend_test! {
    #[test]
    fn put_replaces_the_record_with_the_same_key() {
        on_each_backend(|kvs| {
            kvs.put(&User::new(1, "ann@x.io", "Oslo")).unwrap();
            let moved = User::new(1, "ann@y.io", "Rome");
            kvs.put(&moved).unwrap();
            assert_eq!(kvs.count::<User>().unwrap(), 1);
            assert_eq!(kvs.get::<User>(&1).unwrap(), Some(moved));
        });
    }
}

backend_test! {
    #[test]
    fn index_lookups() {
        on_each_backend(|kvs| {
            kvs.put(&User::new(1, "ann@x.io", "Oslo")).unwrap();
            kvs.put(&User::new(2, "bob@x.io", "Bergen")).unwrap();
            kvs.put(&User::new(3, "cid@x.io", "Oslo")).unwrap();
            let oslo = kvs.index::<User>(common::UserField::City, "Oslo").unwrap();
            assert_eq!(oslo.iter().map(|u| u.id).collect::<Vec<_>>(), [1, 3]);
            let city = String::from("Bergen");
            assert_eq!(
                kvs.index::<User>(common::UserField::City, &city)
                    .unwrap()
                    .len(),
                1
            );
            assert_eq!(
                kvs.index::<User>(common::UserField::City, city)
                    .unwrap()
                    .len(),
                1
            );
            assert!(kvs
                .index::<User>(common::UserField::City, "Rome")
                .unwrap()
                .is_empty());
            let bob = kvs
                .index::<User>(common::UserField::Email, "bob@x.io")
                .unwrap();
            assert_eq!(bob, [User::new(2, "bob@x.io", "Bergen")]);
        });
    }
}

backend_test! {
    #[test]
    fn index_on_integers_options_and_tuples() {
        on_each_backend(|kvs| {
            let temp = |at: i64, celsius: i16, station: Option<&str>, place: (&str, u8)| Temp {
                at,
                celsius,
                station: station.map(str::to_owned),
                place: (place.0.to_owned(), place.1),
            };
            kvs.put(&temp(-10, -3, Some("north"), ("Oslo", 1))).unwrap();
            kvs.put(&temp(0, -3, None, ("Oslo", 2))).unwrap();
            kvs.put(&temp(10, 4, None, ("Oslo", 1))).unwrap();
            let keys: Vec<i64> = kvs.all::<Temp>().unwrap().iter().map(|t| t.at).collect();
            assert_eq!(keys, [-10, 0, 10], "negative keys sort first");
            assert_eq!(kvs.range::<Temp>(-10..0).unwrap().len(), 1);
            let cold = kvs.index::<Temp>(TempField::Celsius, -3).unwrap();
            assert_eq!(cold.iter().map(|t| t.at).collect::<Vec<_>>(), [-10, 0]);
            assert_eq!(
                kvs.index::<Temp>(TempField::Celsius, -3i16).unwrap().len(),
                2
            );
            assert!(
                kvs.index::<Temp>(TempField::Celsius, 40_000)
                    .unwrap()
                    .is_empty(),
                "out of i16 range"
            );
            let north = kvs.index::<Temp>(TempField::Station, "north").unwrap();
            assert_eq!(north.len(), 1);
            // Two records without a station: None is not indexed, so no unique clash.
            assert_eq!(kvs.count::<Temp>().unwrap(), 3);
            let oslo1 = kvs.index::<Temp>(TempField::Place, ("Oslo", 1)).unwrap();
            assert_eq!(oslo1.iter().map(|t| t.at).collect::<Vec<_>>(), [-10, 10]);
        });
    }
}

backend_test! {
    #[test]
    fn all_and_range_in_key_order() {
        on_each_backend(|kvs| {
            for id in [5u64, 1, 3, 2, 4] {
                kvs.put(&User::new(id, &format!("{id}@x.io"), "Oslo"))
                    .unwrap();
            }
            let ids = |users: Vec<User>| users.iter().map(|u| u.id).collect::<Vec<_>>();
            assert_eq!(ids(kvs.all::<User>().unwrap()), [1, 2, 3, 4, 5]);
            assert_eq!(ids(kvs.range::<User>(2..4).unwrap()), [2, 3]);
            assert_eq!(ids(kvs.range::<User>(2..=4).unwrap()), [2, 3, 4]);
            assert_eq!(ids(kvs.range::<User>(4..).unwrap()), [4, 5]);
            assert_eq!(ids(kvs.range::<User>(..2).unwrap()), [1]);
            #[allow(clippy::reversed_empty_ranges)]
            let backwards = kvs.range::<User>(4..2).unwrap();
            assert!(
                backwards.is_empty(),
                "an inverted range is empty, not a panic"
            );
        });
    }
}

backend_test! {
    #[test]
    fn seq_counts_per_name() {
        on_each_backend(|kvs| {
            assert_eq!(
                kvs.seq("users", 0).unwrap(),
                0,
                "incr 0 reads; a new counter is 0"
            );
            assert_eq!(kvs.seq("users", 1).unwrap(), 1);
            assert_eq!(kvs.seq("users", 1).unwrap(), 2);
            assert_eq!(kvs.seq("users", 10).unwrap(), 12);
            assert_eq!(kvs.seq("orders", 1).unwrap(), 1);
            assert_eq!(kvs.seq("users", 0).unwrap(), 12);
            assert_eq!(kvs.seq("big", u64::MAX).unwrap(), u64::MAX);
            assert!(matches!(kvs.seq("big", 1), Err(Error::SeqOverflow { .. })));
            assert_eq!(kvs.seq("big", 0).unwrap(), u64::MAX);
        });
    }
}

backend_test! {
    #[test]
    fn transactions_commit_all_or_nothing() {
        on_each_backend(|kvs| {
            let id = kvs
                .transaction(|tx| {
                    let id = tx.seq("users", 1)?;
                    tx.put(&User::new(id, "ann@x.io", "Oslo"))?;
                    assert_eq!(
                        tx.get::<User>(&id)?.map(|u| u.id),
                        Some(id),
                        "reads see own writes"
                    );
                    assert_eq!(tx.count::<User>()?, 1);
                    assert_eq!(tx.index::<User>(common::UserField::City, "Oslo")?.len(), 1);
                    Ok(id)
                })
                .unwrap();
            assert_eq!(id, 1);

            let failed: Result<(), Error> = kvs.transaction(|tx| {
                let id = tx.seq("users", 1)?;
                tx.put(&User::new(id, "bob@x.io", "Oslo"))?;
                tx.delete::<User>(&1)?;
                Err(Error::NotFound {
                    table: "users".into(),
                    key: "abort".into(),
                })
            });
            assert!(matches!(failed, Err(Error::NotFound { .. })));
            assert_eq!(kvs.seq("users", 0).unwrap(), 1, "seq rolled back");
            assert_eq!(
                kvs.all::<User>().unwrap(),
                [User::new(1, "ann@x.io", "Oslo")]
            );

            // An error from a call inside the transaction rolls back everything before it.
            let dup = kvs.transaction(|tx| {
                tx.put(&User::new(2, "cid@x.io", "Rome"))?;
                tx.seq("users", 1)?;
                tx.put(&User::new(3, "ann@x.io", "Rome"))
            });
            assert!(matches!(dup, Err(Error::Duplicate { .. })), "{dup:?}");
            assert_eq!(kvs.count::<User>().unwrap(), 1);
            assert_eq!(kvs.seq("users", 0).unwrap(), 1);
            assert!(kvs
                .index::<User>(common::UserField::City, "Rome")
                .unwrap()
                .is_empty());
        });
    }
}

backend_test! {
    #[test]
    fn string_keys() {
        on_each_backend(|kvs| {
            for (text, count) in [("b", 2), ("a", 1), ("", 0), ("ab", 3)] {
                kvs.put(&Word {
                    text: text.into(),
                    count,
                })
                .unwrap();
            }
            let words: Vec<String> = kvs
                .all::<Word>()
                .unwrap()
                .into_iter()
                .map(|w| w.text)
                .collect();
            assert_eq!(words, ["", "a", "ab", "b"]);
            assert_eq!(
                kvs.get::<Word>(&"ab".to_owned()).unwrap().map(|w| w.count),
                Some(3)
            );
            let from_a = kvs.range::<Word>("a".to_owned().."b".to_owned()).unwrap();
            assert_eq!(from_a.len(), 2);
        });
    }
}

backend_test! {
    #[test]
    fn dir_ver_dump() {
        on_each_backend(|kvs| {
            kvs.put(&User::new(1, "ann@x.io", "Oslo")).unwrap();
            let names: Vec<String> = kvs.dir().unwrap().into_iter().map(|t| t.name).collect();
            assert_eq!(
                names,
                ["temps", "users", "word", "#writer", "#reader"],
                "every registered table, by name, then the stream tables"
            );
            let users = kvs
                .dir()
                .unwrap()
                .into_iter()
                .find(|t| t.name == "users")
                .unwrap();
            assert_eq!(users.key_field, "id");
            assert_eq!(users.fields, ["id", "email", "city", "name"]);
            assert_eq!(users.indexes.len(), 2);
            assert!(users.indexes[0].unique && !users.indexes[1].unique);

            let ver = kvs.ver().to_string();
            let engine = kvs.ver().backend.engine;
            assert!(
                ver.contains(env!("CARGO_PKG_VERSION")) && ver.contains(engine),
                "{ver}"
            );
            assert!(["redb", "etcd"].contains(&engine));

            let dump = kvs.dump().unwrap().to_string();
            assert!(dump.starts_with("NAME"), "{dump}");
            for header in ["STORAGE", "TYPE", "MEMORY(MB)", "ELEMENTS"] {
                assert!(dump.lines().next().unwrap().contains(header), "{dump}");
            }
            let users_row = dump.lines().find(|l| l.starts_with("users ")).unwrap();
            assert!(users_row.ends_with(" 1"), "{users_row}");
            assert!(dump
                .lines()
                .any(|l| l.starts_with("users#email") && l.contains("unique")));
            assert!(dump
                .lines()
                .any(|l| l.starts_with("users#city") && l.contains("bag")));
        });
    }
}

#[test]
fn kvs_and_its_errors_cross_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    fn error<E: std::error::Error>() {}
    shareable::<Kvs>();
    shareable::<Error>();
    error::<Error>();
}

backend_test! {
    #[test]
    fn a_panic_inside_a_transaction_rolls_back_and_the_handle_goes_on() {
        on_each_backend(|kvs| {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                kvs.transaction(|tx| -> Result<(), Error> {
                    tx.put(&User::new(1, "ann@x.io", "Oslo"))?;
                    tx.seq("users", 1)?;
                    panic!("the application fails mid-transaction");
                })
            }));
            assert!(result.is_err());
            assert_eq!(kvs.count::<User>().unwrap(), 0);
            assert_eq!(kvs.seq("users", 0).unwrap(), 0);
            kvs.put(&User::new(1, "ann@x.io", "Oslo")).unwrap();
            assert_eq!(kvs.seq("users", 1).unwrap(), 1);
        });
    }
}
