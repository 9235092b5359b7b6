//! Eight threads on one `Kvs` handle, mixing writes, reads and `seq`: every `seq` value is
//! handed out once, and every read (each call reads one snapshot; a transaction that only
//! reads is one too) sees records and index entries that agree.

mod common;

use std::sync::Arc;
use std::thread;

use common::{audit_users, TempDir, User, UserField};
use kvs::{Error, Kvs};

const THREADS: u64 = 8;
const ROUNDS: u64 = 120;
const CITIES: [&str; 4] = ["Oslo", "Rome", "Lima", "Pune"];

/// A user created together with `partner` in one transaction.
fn paired(id: u64, partner: u64) -> User {
    User {
        name: format!("pair:{partner}"),
        ..User::new(id, &format!("{id}@x.io"), CITIES[(id % 4) as usize])
    }
}

/// Checks one snapshot's worth of reads: whatever the writers do meanwhile, an index never
/// returns a record that does not hold the value, nor one record twice.
fn check_reads(kvs: &Kvs, city: &str) {
    let in_city = kvs.index::<User>(UserField::City, city).unwrap();
    assert!(in_city.iter().all(|u| u.city == city), "a stale city entry");
    assert!(
        in_city.windows(2).all(|w| w[0].id < w[1].id),
        "city entries out of key order"
    );
    for shared in 0..3 {
        let email = format!("shared-{shared}@x.io");
        let holders = kvs.index::<User>(UserField::Email, email.as_str()).unwrap();
        assert!(holders.len() <= 1, "two holders of a unique value");
        assert!(
            holders.iter().all(|u| u.email == email),
            "a stale email entry"
        );
    }
    // Records created in one transaction are seen together or not at all.
    let all: Vec<User> = kvs.all().unwrap();
    for user in &all {
        if let Some(partner) = user.name.strip_prefix("pair:") {
            let partner: u64 = partner.parse().unwrap();
            assert!(
                all.iter().any(|u| u.id == partner),
                "half of a transaction: {} without {partner}",
                user.id
            );
        }
    }
}

/// In one transaction that only reads: the records, the count and every city's index
/// entries agree exactly.
fn check_snapshot(kvs: &Kvs) {
    kvs.transaction(|tx| {
        let all: Vec<User> = tx.all()?;
        assert_eq!(tx.count::<User>()?, all.len() as u64);
        let mut indexed = 0;
        for city in CITIES {
            let got = tx.index::<User>(UserField::City, city)?;
            let want: Vec<User> = all.iter().filter(|u| u.city == city).cloned().collect();
            assert_eq!(got, want, "{city}");
            indexed += got.len();
        }
        assert_eq!(indexed, all.len());
        for user in &all {
            let got = tx.index::<User>(UserField::Email, user.email.as_str())?;
            assert_eq!(got, std::slice::from_ref(user));
        }
        Ok(())
    })
    .unwrap();
}

/// One thread's work; returns the `seq` values it was handed.
fn worker(kvs: &Kvs, t: u64) -> Vec<u64> {
    let mut handed = Vec::new();
    let mut mine: Vec<u64> = Vec::new();
    for i in 0..ROUNDS {
        match (i + t) % 6 {
            0 | 1 => {
                let id = kvs.seq("ids", 1).unwrap();
                handed.push(id);
                kvs.put(&User::new(
                    id,
                    &format!("{id}@x.io"),
                    CITIES[(i % 4) as usize],
                ))
                .unwrap();
                mine.push(id);
            }
            2 => {
                // Move one of mine to another city and email, or claim a shared email.
                let Some(&id) = mine.last() else { continue };
                let email = if i % 4 == 0 {
                    format!("shared-{}@x.io", i % 3)
                } else {
                    format!("{id}-{i}@x.io")
                };
                match kvs.put(&User::new(id, &email, CITIES[((i + 1) % 4) as usize])) {
                    Ok(()) | Err(Error::Duplicate { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            3 => {
                if i % 2 == 0 {
                    if let Some(id) = mine.pop() {
                        assert!(kvs.delete::<User>(&id).unwrap(), "mine to delete");
                    }
                }
                check_reads(kvs, CITIES[(i % 4) as usize]);
            }
            4 => {
                let (a, b) = kvs
                    .transaction(|tx| {
                        let a = tx.seq("ids", 1)?;
                        let b = tx.seq("ids", 1)?;
                        tx.put(&paired(a, b))?;
                        tx.put(&paired(b, a))?;
                        Ok((a, b))
                    })
                    .unwrap();
                handed.extend([a, b]);
            }
            _ => check_snapshot(kvs),
        }
    }
    handed
}

fn hammer(kvs: &Arc<Kvs>) {
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let kvs = Arc::clone(kvs);
            thread::spawn(move || worker(&kvs, t))
        })
        .collect();
    let mut handed: Vec<u64> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    handed.sort_unstable();
    let n = handed.len();
    handed.dedup();
    assert_eq!(handed.len(), n, "a seq value was handed out twice");
    assert_eq!(
        kvs.seq("ids", 0).unwrap(),
        n as u64,
        "a seq value was skipped"
    );
    audit_users(kvs);
    check_snapshot(kvs);
}

#[test]
fn eight_threads_in_memory() {
    hammer(&Arc::new(Kvs::open("mem:").unwrap()));
}

#[test]
fn eight_threads_on_a_file() {
    let dir = TempDir::new();
    hammer(&Arc::new(
        Kvs::open(&format!("{}?durability=none", dir.url("threads.redb"))).unwrap(),
    ));
    audit_users(&Kvs::open(&dir.url("threads.redb")).unwrap());
}
