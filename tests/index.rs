//! Index exactness: after every update and delete the index tables hold exactly the entries of
//! the records, and unique indexes refuse a second holder with nothing written.

mod common;

use common::{backend_test, User, UserField};
use kvs::{Error, Kvs};

/// Checks every index against the records: each record is found under its values, and the
/// number of entries per value equals the number of records holding it.
fn assert_exact(kvs: &Kvs) {
    let users = kvs.all::<User>().unwrap();
    let mut cities: Vec<&str> = users.iter().map(|u| u.city.as_str()).collect();
    cities.sort_unstable();
    cities.dedup();
    let mut indexed = 0;
    for city in &cities {
        let hits = kvs.index::<User>(UserField::City, *city).unwrap();
        let expect: Vec<&User> = users.iter().filter(|u| u.city == *city).collect();
        assert_eq!(hits.iter().collect::<Vec<_>>(), expect, "city {city}");
        indexed += hits.len();
    }
    assert_eq!(indexed, users.len());
    for user in &users {
        assert_eq!(
            kvs.index::<User>(UserField::Email, &user.email).unwrap(),
            std::slice::from_ref(user)
        );
    }
    let dump = kvs.dump().unwrap();
    let elements = |name: &str| dump.rows.iter().find(|r| r.name == name).unwrap().elements;
    assert_eq!(
        elements("users#email"),
        users.len() as u64,
        "no stale unique entries"
    );
    assert_eq!(
        elements("users#city"),
        users.len() as u64,
        "no stale entries"
    );
}

backend_test! {
    #[test]
    fn updates_move_index_entries() {
        on_each_backend(|kvs| {
            kvs.put(&User::new(1, "a@x.io", "Oslo")).unwrap();
            kvs.put(&User::new(2, "b@x.io", "Oslo")).unwrap();
            assert_exact(kvs);
            kvs.put(&User::new(1, "a2@x.io", "Rome")).unwrap();
            assert_exact(kvs);
            assert!(kvs
                .index::<User>(UserField::Email, "a@x.io")
                .unwrap()
                .is_empty());
            assert_eq!(kvs.index::<User>(UserField::City, "Oslo").unwrap().len(), 1);
            // A same-valued rewrite keeps one entry.
            kvs.put(&User::new(1, "a2@x.io", "Rome")).unwrap();
            assert_exact(kvs);
            // Swapping unique values between records in one transaction.
            kvs.transaction(|tx| {
                tx.put(&User::new(1, "tmp@x.io", "Rome"))?;
                tx.put(&User::new(2, "a2@x.io", "Oslo"))?;
                tx.put(&User::new(1, "b@x.io", "Rome"))
            })
            .unwrap();
            assert_exact(kvs);
            assert_eq!(
                kvs.index::<User>(UserField::Email, "b@x.io").unwrap()[0].id,
                1
            );
        });
    }
}

backend_test! {
    #[test]
    fn deletes_remove_every_entry() {
        on_each_backend(|kvs| {
            for id in 1..=20u64 {
                let city = ["Oslo", "Rome", "Lima"][(id % 3) as usize];
                kvs.put(&User::new(id, &format!("{id}@x.io"), city))
                    .unwrap();
            }
            assert_exact(kvs);
            for id in (1..=20u64).step_by(2) {
                assert!(kvs.delete::<User>(&id).unwrap());
            }
            assert_exact(kvs);
            assert_eq!(kvs.count::<User>().unwrap(), 10);
            // The freed unique values can be taken again.
            kvs.put(&User::new(99, "1@x.io", "Oslo")).unwrap();
            assert_exact(kvs);
        });
    }
}

backend_test! {
    #[test]
    fn unique_violation_writes_nothing() {
        on_each_backend(|kvs| {
            kvs.put(&User::new(1, "ann@x.io", "Oslo")).unwrap();
            let err = kvs.put(&User::new(2, "ann@x.io", "Rome")).unwrap_err();
            match &err {
                Error::Duplicate { table, field } => {
                    assert_eq!((table.as_str(), field.as_str()), ("users", "email"));
                }
                other => panic!("expected Duplicate, got {other:?}"),
            }
            assert!(err.to_string().contains("users.email"), "{err}");
            assert_eq!(kvs.count::<User>().unwrap(), 1);
            assert!(kvs
                .index::<User>(UserField::City, "Rome")
                .unwrap()
                .is_empty());
            // An update that would take another record's value fails and keeps the old record.
            kvs.put(&User::new(2, "bob@x.io", "Rome")).unwrap();
            assert!(matches!(
                kvs.put(&User::new(2, "ann@x.io", "Lima")),
                Err(Error::Duplicate { .. })
            ));
            assert_eq!(
                kvs.get::<User>(&2).unwrap(),
                Some(User::new(2, "bob@x.io", "Rome"))
            );
            assert_exact(kvs);
        });
    }
}

backend_test! {
    #[test]
    fn a_failed_put_inside_a_committed_transaction_leaves_no_trace() {
        on_each_backend(|kvs| {
            kvs.put(&User::new(1, "ann@x.io", "Oslo")).unwrap();
            kvs.transaction(|tx| {
                tx.put(&User::new(2, "bob@x.io", "Rome"))?;
                // The caller handles the error and commits the rest.
                assert!(tx.put(&User::new(3, "ann@x.io", "Lima")).is_err());
                Ok(())
            })
            .unwrap();
            assert_eq!(kvs.count::<User>().unwrap(), 2);
            assert!(kvs
                .index::<User>(UserField::City, "Lima")
                .unwrap()
                .is_empty());
            assert_exact(kvs);
        });
    }
}

backend_test! {
    #[test]
    fn many_records_per_value() {
        on_each_backend(|kvs| {
            kvs.transaction(|tx| {
                for id in 0..500u64 {
                    let city = if id % 5 == 0 { "Oslo" } else { "Rome" };
                    tx.put(&User::new(id, &format!("{id}@x.io"), city))?;
                }
                Ok(())
            })
            .unwrap();
            let oslo = kvs.index::<User>(UserField::City, "Oslo").unwrap();
            assert_eq!(oslo.len(), 100);
            assert!(
                oslo.windows(2).all(|w| w[0].id < w[1].id),
                "hits come in key order"
            );
            assert_exact(kvs);
        });
    }
}

backend_test! {
    #[test]
    fn a_unique_violation_passed_on_rolls_the_whole_transaction_back() {
        on_each_backend(|kvs| {
            kvs.put(&User::new(1, "ann@x.io", "Oslo")).unwrap();
            let err = kvs
                .transaction(|tx| {
                    let id = tx.seq("users", 1)?;
                    tx.put(&User::new(id + 10, "new@x.io", "Rome"))?;
                    tx.delete::<User>(&1)?;
                    tx.put(&User::new(2, "bob@x.io", "Lima"))?;
                    tx.put(&User::new(3, "bob@x.io", "Kobe"))?; // fails, and the `?` passes it on
                    Ok(())
                })
                .unwrap_err();
            assert!(matches!(err, Error::Duplicate { .. }), "{err:?}");
            assert_eq!(kvs.seq("users", 0).unwrap(), 0, "the counter rolled back");
            let all: Vec<User> = kvs.all().unwrap();
            assert_eq!(all, [User::new(1, "ann@x.io", "Oslo")]);
            assert_exact(kvs);
        });
    }
}

/// A table with two unique indexes, for clashes found after another index was claimed.
#[derive(kvs::Table, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "handles")]
struct Handle {
    #[kvs(key)]
    id: u64,
    #[kvs(index, unique)]
    email: String,
    #[kvs(index, unique)]
    nick: String,
}

backend_test! {
    #[test]
    fn a_clash_on_a_later_unique_index_releases_the_earlier_ones() {
        on_each_backend(|kvs| {
            let h = |id: u64, email: &str, nick: &str| Handle {
                id,
                email: email.to_owned(),
                nick: nick.to_owned(),
            };
            kvs.put(&h(1, "ann@x.io", "ann")).unwrap();
            kvs.put(&h(2, "bob@x.io", "bob")).unwrap();
            kvs.transaction(|tx| {
                // A new record: its free email is claimed, then its nick clashes.
                assert!(matches!(
                    tx.put(&h(3, "cy@x.io", "ann")),
                    Err(Error::Duplicate { field, .. }) if field == "nick"
                ));
                // An update of record 2: the same, and record 2 must stay as it was.
                assert!(matches!(
                    tx.put(&h(2, "bob2@x.io", "ann")),
                    Err(Error::Duplicate { field, .. }) if field == "nick"
                ));
                Ok(())
            })
            .unwrap();
            assert_eq!(kvs.count::<Handle>().unwrap(), 2);
            assert_eq!(
                kvs.get::<Handle>(&2).unwrap(),
                Some(h(2, "bob@x.io", "bob"))
            );
            for (field, value, id) in [(0, "bob@x.io", 2), (1, "bob", 2), (0, "ann@x.io", 1)] {
                let found = if field == 0 {
                    kvs.index::<Handle>(HandleField::Email, value).unwrap()
                } else {
                    kvs.index::<Handle>(HandleField::Nick, value).unwrap()
                };
                assert_eq!(found.iter().map(|x| x.id).collect::<Vec<_>>(), [id]);
            }
            for free in ["cy@x.io", "bob2@x.io"] {
                assert!(kvs
                    .index::<Handle>(HandleField::Email, free)
                    .unwrap()
                    .is_empty());
            }
            // The released values are free for others.
            kvs.put(&h(4, "cy@x.io", "cy")).unwrap();
            kvs.put(&h(5, "bob2@x.io", "bob2")).unwrap();
            let dump = kvs.dump().unwrap();
            let elements = |name: &str| dump.rows.iter().find(|r| r.name == name).unwrap().elements;
            assert_eq!(
                (elements("handles#email"), elements("handles#nick")),
                (4, 4)
            );
        });
    }
}
