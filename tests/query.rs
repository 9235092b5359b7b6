//! Queries beyond exact match, on every backend: index ranges of every bound shape, counts of
//! a value, lazy iteration from both ends, and snapshots.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound::{self, Excluded, Included, Unbounded};

use common::{backend_test, TempDir};
use kvs::{Kvs, Table};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "people")]
struct Person {
    #[kvs(key)]
    id: u32,
    #[kvs(index)]
    age: u32,
    #[kvs(index)]
    balance: i64,
    #[kvs(index)]
    city: String,
    #[kvs(index)]
    place: (String, u8),
    #[kvs(index, unique)]
    badge: Option<u8>,
}

fn person(id: u32, age: u32, city: &str) -> Person {
    Person {
        id,
        age,
        balance: i64::from(age) * 10 - 300,
        city: city.to_owned(),
        place: (city.to_owned(), u8::try_from(age % 7).unwrap()),
        badge: u8::try_from(id).ok().filter(|_| id.is_multiple_of(3)),
    }
}

fn is_send<T: Send>(_: &T) {}

fn ids(people: &[Person]) -> Vec<u32> {
    people.iter().map(|p| p.id).collect()
}

/// 40 people, ages 10..=49 in a shuffled order of ids, so that (value, key) order differs from
/// key order; two people share each age from 30 on.
fn seed(kvs: &Kvs) -> Vec<Person> {
    let cities = ["Oslo", "Rome", "Lima", "Bergen"];
    let people: Vec<Person> = (1..=40)
        .map(|id| {
            let age = if id > 30 {
                30 + (id * 7) % 10
            } else {
                10 + (id * 13) % 40
            };
            person(id, age, cities[(id % 4) as usize])
        })
        .collect();
    for p in &people {
        kvs.put(p).unwrap();
    }
    people
}

/// The model's answer: records with `value(p)` in the range, ordered by (value, key).
fn expect<V: Ord + Clone>(
    people: &[Person],
    value: impl Fn(&Person) -> V,
    range: (Bound<V>, Bound<V>),
) -> Vec<u32> {
    let mut hits: Vec<(V, u32)> = people
        .iter()
        .filter(|p| std::ops::RangeBounds::contains(&range, &value(p)))
        .map(|p| (value(p), p.id))
        .collect();
    hits.sort();
    hits.into_iter().map(|(_, id)| id).collect()
}

backend_test! {
    #[test]
    fn index_ranges_of_every_bound_shape() {
        on_each_backend(|kvs| {
            let people = seed(kvs);
            let age = |p: &Person| p.age;
            let got = |r: Vec<Person>| ids(&r);
            assert_eq!(got(kvs.index_range::<Person>(PersonField::Age, 18..30).unwrap()),
                expect(&people, age, (Included(18), Excluded(30))));
            assert_eq!(got(kvs.index_range::<Person>(PersonField::Age, 18..=30).unwrap()),
                expect(&people, age, (Included(18), Included(30))));
            assert_eq!(got(kvs.index_range::<Person>(PersonField::Age, 40..).unwrap()),
                expect(&people, age, (Included(40), Unbounded)));
            assert_eq!(got(kvs.index_range::<Person>(PersonField::Age, ..15).unwrap()),
                expect(&people, age, (Unbounded, Excluded(15))));
            assert_eq!(got(kvs.index_range::<Person>(PersonField::Age, ..=15).unwrap()),
                expect(&people, age, (Unbounded, Included(15))));
            assert_eq!(got(kvs.index_range::<Person>(PersonField::Age, ..).unwrap()),
                expect(&people, age, (Unbounded, Unbounded)));
            assert_eq!(
                got(kvs.index_range::<Person>(PersonField::Age, (Excluded(30), Included(35))).unwrap()),
                expect(&people, age, (Excluded(30), Included(35)))
            );
            // Ties are ordered by key.
            let thirties = kvs.index_range::<Person>(PersonField::Age, 30..40).unwrap();
            assert!(thirties.windows(2).all(|w| (w[0].age, w[0].id) < (w[1].age, w[1].id)));
            // Any integer type, and bounds outside the field's type clamp.
            assert_eq!(kvs.index_range::<Person>(PersonField::Age, ..300u64).unwrap().len(), 40);
            assert_eq!(kvs.index_range::<Person>(PersonField::Age, -5i8..).unwrap().len(), 40);
            assert!(kvs.index_range::<Person>(PersonField::Age, 5_000_000_000u64..).unwrap().is_empty());
            assert!(kvs.index_range::<Person>(PersonField::Age, ..-1).unwrap().is_empty());
            // Empty and inverted ranges.
            assert!(kvs.index_range::<Person>(PersonField::Age, 30..30).unwrap().is_empty());
            #[allow(clippy::reversed_empty_ranges)]
            let inverted = kvs.index_range::<Person>(PersonField::Age, 40..20).unwrap();
            assert!(inverted.is_empty());
            // Negative values order before positive ones.
            let bal = |p: &Person| p.balance;
            assert_eq!(got(kvs.index_range::<Person>(PersonField::Balance, -200..50).unwrap()),
                expect(&people, bal, (Included(-200), Excluded(50))));
            // Strings, and tuples.
            let city = |p: &Person| p.city.clone();
            assert_eq!(got(kvs.index_range::<Person>(PersonField::City, "Lima"..="Oslo").unwrap()),
                expect(&people, city, (Included("Lima".to_owned()), Included("Oslo".to_owned()))));
            let place = |p: &Person| p.place.clone();
            assert_eq!(
                got(kvs.index_range::<Person>(PersonField::Place, ("Oslo", 0)..("Oslo", 4)).unwrap()),
                expect(&people, place, (Included(("Oslo".to_owned(), 0)), Excluded(("Oslo".to_owned(), 4))))
            );
            assert_eq!(
                got(kvs.index_range::<Person>(PersonField::Place, ("Oslo", 0)..("Oslo", 300)).unwrap()),
                expect(&people, place, (Included(("Oslo".to_owned(), 0)), Excluded(("Oslo".to_owned(), 255))))
                    .into_iter()
                    .chain(people.iter().filter(|p| p.place == ("Oslo".to_owned(), 255)).map(|p| p.id))
                    .collect::<Vec<_>>()
            );
            // An optional unique index never yields its None records.
            let badges = kvs.index_range::<Person>(PersonField::Badge, ..).unwrap();
            assert_eq!(ids(&badges), (1..=40).filter(|id| id % 3 == 0).collect::<Vec<_>>());
        });
    }

    #[test]
    fn counts_of_a_value_read_index_keys_only() {
        on_each_backend(|kvs| {
            let people = seed(kvs);
            for city in ["Oslo", "Rome", "Lima", "Bergen", "Nowhere"] {
                let n = people.iter().filter(|p| p.city == city).count() as u64;
                assert_eq!(kvs.index_count::<Person>(PersonField::City, city).unwrap(), n);
            }
            assert_eq!(kvs.index_count::<Person>(PersonField::Badge, 3u8).unwrap(), 1);
            assert_eq!(kvs.index_count::<Person>(PersonField::Badge, 4u8).unwrap(), 0);
            assert_eq!(kvs.index_count::<Person>(PersonField::Age, 1_000u32).unwrap(), 0);
        });
    }

    #[test]
    fn lazy_iteration_from_both_ends() {
        on_each_backend(|kvs| {
            for id in 1..=500 {
                kvs.put(&person(id, id % 50, "Oslo")).unwrap();
            }
            let all: Vec<u32> = kvs.iter::<Person>(..).unwrap().map(|p| p.unwrap().id).collect();
            assert_eq!(all, (1..=500).collect::<Vec<_>>());
            let newest: Vec<Person> = kvs
                .iter::<Person>(..)
                .unwrap()
                .rev()
                .take(50)
                .collect::<kvs::Result<_>>()
                .unwrap();
            assert_eq!(ids(&newest), (451..=500).rev().collect::<Vec<_>>());
            // Keyset pages.
            let page2: Vec<u32> = kvs
                .iter::<Person>((Excluded(50), Unbounded))
                .unwrap()
                .take(50)
                .map(|p| p.unwrap().id)
                .collect();
            assert_eq!(page2, (51..=100).collect::<Vec<_>>());
            // Both ends at once meet in the middle, neither repeating nor skipping.
            let mut it = kvs.iter::<Person>(100..=399).unwrap();
            let mut seen = Vec::new();
            loop {
                match (it.next(), it.next_back()) {
                    (None, None) => break,
                    (a, b) => seen.extend(a.into_iter().chain(b).map(|p| p.unwrap().id)),
                }
            }
            seen.sort_unstable();
            assert_eq!(seen, (100..=399).collect::<Vec<_>>());
            // In (value, key) order, both ways.
            let by_age: Vec<(u32, u32)> = kvs
                .index_iter::<Person>(PersonField::Age, 45..)
                .unwrap()
                .map(|p| p.map(|p| (p.age, p.id)).unwrap())
                .collect();
            let mut want: Vec<(u32, u32)> = (1..=500).filter(|id| id % 50 >= 45).map(|id| (id % 50, id)).collect();
            want.sort_unstable();
            assert_eq!(by_age, want);
            let oldest_first: Vec<(u32, u32)> = kvs
                .index_iter::<Person>(PersonField::Age, ..)
                .unwrap()
                .rev()
                .take(3)
                .map(|p| p.map(|p| (p.age, p.id)).unwrap())
                .collect();
            assert_eq!(oldest_first, [(49, 499), (49, 449), (49, 399)]);
        });
    }

    #[test]
    fn a_write_goes_through_right_after_a_half_read_iterator() {
        on_each_backend(|kvs| {
            seed(kvs);
            let mut it = kvs.iter::<Person>(..).unwrap();
            assert!(it.next().is_some());
            let mut by_age = kvs.index_iter::<Person>(PersonField::Age, ..).unwrap();
            assert!(by_age.next_back().is_some());
            drop((it, by_age));
            kvs.put(&person(99, 1, "Oslo")).unwrap();
            // And while one is alive: it holds back no writer.
            let mut it = kvs.iter::<Person>(..).unwrap();
            assert_eq!(it.next().unwrap().unwrap().id, 1);
            kvs.put(&person(100, 1, "Oslo")).unwrap();
            assert_eq!(it.count(), 40, "the iterator reads the state it started on");
        });
    }

    #[test]
    fn a_snapshot_sees_one_committed_state() {
        on_each_backend(|kvs| {
            seed(kvs);
            let snap = kvs.snapshot().unwrap();
            kvs.put(&person(41, 20, "Oslo")).unwrap();
            kvs.delete::<Person>(&1).unwrap();
            assert_eq!(snap.count::<Person>().unwrap(), 40);
            assert_eq!(kvs.count::<Person>().unwrap(), 40);
            assert!(snap.get::<Person>(&41).unwrap().is_none());
            assert!(kvs.get::<Person>(&41).unwrap().is_some());
            assert!(snap.get::<Person>(&1).unwrap().is_some());
            let oslo_then = snap.index_count::<Person>(PersonField::City, "Oslo").unwrap();
            let oslo_now = kvs.index_count::<Person>(PersonField::City, "Oslo").unwrap();
            assert_eq!(oslo_now, oslo_then + 1);
            assert_eq!(snap.iter::<Person>(..).unwrap().count(), 40);
            assert_eq!(snap.index_range::<Person>(PersonField::Age, ..).unwrap().len(), 40);
            is_send(&snap);
            drop(snap);
            kvs.put(&person(42, 20, "Oslo")).unwrap();
        });
    }

    #[test]
    fn a_transaction_sees_its_own_writes_in_ranges_and_iteration() {
        on_each_backend(|kvs| {
            seed(kvs);
            kvs.transaction(|tx| {
                tx.put(&person(41, 99, "Oslo"))?;
                tx.delete::<Person>(&2)?;
                let old = tx.index_range::<Person>(PersonField::Age, 99..)?;
                assert_eq!(ids(&old), [41]);
                assert_eq!(tx.iter::<Person>(..)?.count(), 40);
                assert_eq!(tx.iter::<Person>(..)?.next_back().unwrap()?.id, 41);
                assert_eq!(tx.index_count::<Person>(PersonField::Age, 99)?, 1);
                assert_eq!(
                    tx.index_iter::<Person>(PersonField::Age, ..)?.next_back().unwrap()?.id,
                    41
                );
                Ok(())
            })
            .unwrap();
        });
    }

    #[test]
    fn ranges_stay_exact_after_updates_and_deletes() {
        on_each_backend(|kvs| {
            let mut people = seed(kvs);
            // Move records across the bound 30, and delete some.
            for p in people.iter_mut().filter(|p| p.id % 5 == 0) {
                p.age = if p.age < 30 { p.age + 20 } else { p.age - 20 };
                kvs.put(p).unwrap();
            }
            for id in [3, 6, 9] {
                kvs.delete::<Person>(&id).unwrap();
            }
            people.retain(|p| ![3, 6, 9].contains(&p.id));
            let age = |p: &Person| p.age;
            assert_eq!(
                ids(&kvs.index_range::<Person>(PersonField::Age, ..30).unwrap()),
                expect(&people, age, (Unbounded, Excluded(30)))
            );
            assert_eq!(
                ids(&kvs.index_range::<Person>(PersonField::Age, 30..).unwrap()),
                expect(&people, age, (Included(30), Unbounded))
            );
        });
    }
}

#[derive(Debug, Clone)]
enum Step {
    Put(u32, u32),
    Delete(u32),
    Range(u32, u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u32..60, 0u32..20).prop_map(|(id, age)| Step::Put(id, age)),
        1 => (0u32..60).prop_map(Step::Delete),
        2 => (0u32..22, 0u32..22).prop_map(|(a, b)| Step::Range(a, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Random puts, deletes and range reads against a `BTreeMap<(value, key), record>`.
    #[test]
    fn ranges_follow_a_model(steps in proptest::collection::vec(step(), 1..60)) {
        let dir = TempDir::new();
        let kvs = Kvs::open(&dir.url("model.redb")).unwrap();
        let mut model: BTreeMap<(u32, u32), Person> = BTreeMap::new();
        let mut ages: BTreeMap<u32, u32> = BTreeMap::new();
        for step in steps {
            match step {
                Step::Put(id, age) => {
                    let p = Person { badge: None, ..person(id, age, "Oslo") };
                    kvs.put(&p).unwrap();
                    if let Some(old) = ages.insert(id, age) {
                        model.remove(&(old, id));
                    }
                    model.insert((age, id), p);
                }
                Step::Delete(id) => {
                    kvs.delete::<Person>(&id).unwrap();
                    if let Some(old) = ages.remove(&id) {
                        model.remove(&(old, id));
                    }
                }
                Step::Range(a, b) => {
                    let want: Vec<u32> = model
                        .range((a, 0)..(b.max(a), 0))
                        .map(|(_, p)| p.id)
                        .collect();
                    let got = ids(&kvs.index_range::<Person>(PersonField::Age, a..b.max(a)).unwrap());
                    prop_assert_eq!(&got, &want);
                    let back: Vec<u32> = kvs
                        .index_iter::<Person>(PersonField::Age, a..b.max(a))
                        .unwrap()
                        .rev()
                        .map(|p| p.unwrap().id)
                        .collect();
                    prop_assert_eq!(back, want.into_iter().rev().collect::<Vec<_>>());
                }
            }
        }
    }
}
