//! Empty and very large keys, indexed values and records: stored and read back exactly, on
//! every backend and across a reopen.

mod common;

use common::{backend_test, TempDir, User, UserField, Word};
use kvs::Kvs;

/// 16 MiB, with a zero byte (which the key encoding escapes) in every kibibyte.
fn big(fill: char) -> String {
    let kib: String = std::iter::once('\0')
        .chain(std::iter::repeat_n(fill, 1023))
        .collect();
    kib.repeat(16 * 1024)
}

backend_test! {
    #[test]
    fn empty_keys_and_values() {
        on_each_backend(|kvs| {
            let word = Word {
                text: String::new(),
                count: 0,
            };
            kvs.put(&word).unwrap();
            kvs.put(&Word {
                text: "\0".into(),
                count: 1,
            })
            .unwrap();
            assert_eq!(kvs.get::<Word>(&String::new()).unwrap(), Some(word.clone()));
            let all: Vec<Word> = kvs.all().unwrap();
            assert_eq!(all.iter().map(|w| w.count).collect::<Vec<_>>(), [0, 1]);
            assert_eq!(kvs.range::<Word>(..String::from("\0")).unwrap(), [word]);
            assert!(kvs.delete::<Word>(&String::new()).unwrap());
            assert_eq!(kvs.count::<Word>().unwrap(), 1);

            let nobody = User {
                id: 0,
                email: String::new(),
                city: String::new(),
                name: String::new(),
            };
            kvs.put(&nobody).unwrap();
            assert_eq!(
                kvs.index::<User>(UserField::Email, "").unwrap(),
                std::slice::from_ref(&nobody)
            );
            assert_eq!(
                kvs.index::<User>(UserField::City, "").unwrap(),
                std::slice::from_ref(&nobody)
            );
            // The empty value is held: a second holder is a duplicate.
            let again = User { id: 1, ..nobody };
            assert!(matches!(kvs.put(&again), Err(kvs::Error::Duplicate { .. })));
        });
    }
}

fn check_big(kvs: &Kvs, key: &str, value: &str) {
    let word = kvs
        .get::<Word>(&key.to_owned())
        .unwrap()
        .expect("the big key");
    assert!(word.text == key && word.count == 7);
    let by_city = kvs.index::<User>(UserField::City, value).unwrap();
    assert_eq!(by_city.len(), 1);
    assert!(by_city[0].city == value && by_city[0].name == value);
    assert_eq!(kvs.count::<User>().unwrap(), 2);
}

/// Stores a 16 MiB key and a user whose indexed city (and name) is a 16 MiB value.
fn store_big(kvs: &Kvs, key: &str, value: &str) {
    kvs.put(&Word {
        text: key.to_owned(),
        count: 7,
    })
    .unwrap();
    kvs.put(&User::new(1, "small@x.io", "Oslo")).unwrap();
    kvs.put(&User {
        id: 2,
        email: "big@x.io".into(),
        city: value.to_owned(),
        name: value.to_owned(),
    })
    .unwrap();
}

backend_test! {
    #[test]
    fn sixteen_mebibyte_keys_values_and_indexed_values() {
        let (key, value) = (big('k'), big('v'));
        on_each_backend(|kvs| {
            store_big(kvs, &key, &value);
            check_big(kvs, &key, &value);
            assert!(kvs.delete::<User>(&2).unwrap());
            assert!(kvs
                .index::<User>(UserField::City, &value)
                .unwrap()
                .is_empty());
            assert!(kvs.delete::<Word>(&key).unwrap());
        });
    }
}

#[test]
fn sixteen_mebibyte_keys_and_values_survive_a_reopen() {
    let (key, value) = (big('k'), big('v'));
    let dir = TempDir::new();
    drop({
        let kvs = Kvs::open(&dir.url("big.redb")).unwrap();
        store_big(&kvs, &key, &value);
        kvs
    });
    check_big(&Kvs::open(&dir.url("big.redb")).unwrap(), &key, &value);
}
