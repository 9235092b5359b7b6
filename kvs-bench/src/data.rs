//! The record types and the inputs every system receives, generated before any timing.

use kvs::Table;
use serde::{Deserialize, Serialize};

/// Records per city: the non-unique index holds about this many hits per value.
pub const PER_CITY: u64 = 100;
/// Records per score: the integer index holds about this many records per value.
pub const PER_SCORE: u64 = 10;
/// Score values per range of `index_range`: about `PER_SCORE * SCORE_SPAN` hits a range.
pub const SCORE_SPAN: u64 = 10;
/// The number of ranges of `index_range`.
pub const RANGES: usize = 1_000;
/// Records per page of `iter_page`: the newest this many by key.
pub const ITER_PAGE: usize = 50;
/// The number of pages of `iter_page`.
pub const ITER_PAGES: usize = 10_000;

/// The benchmark's record, as kvs declares it; raw redb and `SQLite` store the same fields.
#[derive(Table, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kvs(name = "users")]
pub struct User {
    #[kvs(key)]
    pub id: u64,
    #[kvs(index, unique)]
    pub email: String,
    #[kvs(index)]
    pub city: String,
    /// An integer derived from the key, for the range workloads: `id % scores(n)`.
    #[kvs(index)]
    pub score: u64,
    pub name: String,
}

/// The element of the stream workloads: a chat message, no index.
#[derive(Table, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kvs(name = "msgs")]
pub struct Msg {
    #[kvs(key)]
    pub id: u64,
    pub text: String,
}

/// The number of cities for `n` records.
pub fn cities(n: u64) -> u64 {
    (n / PER_CITY).max(1)
}

/// The name of city `c`, fixed width so that no city name is a prefix of another.
pub fn city(c: u64) -> String {
    format!("city-{c:07}")
}

/// The number of score values for `n` records.
pub fn scores(n: u64) -> u64 {
    (n / PER_SCORE).max(1)
}

/// The score of user `id` in a table of `n` records.
pub fn score(id: u64, n: u64) -> u64 {
    id % scores(n)
}

/// The email of user `id`.
pub fn email(id: u64) -> String {
    format!("user{id}@example.com")
}

/// The user `id` of a table of `n` records as the bulk load writes it.
pub fn user(id: u64, n: u64) -> User {
    User {
        id,
        email: email(id),
        city: city(id % cities(n)),
        score: score(id, n),
        name: format!("User Number {id}"),
    }
}

/// Writes `users` through `kvs` in transactions of `batch` records (the sections on a
/// cluster keep each within etcd's default limit of 128 operations per transaction).
pub fn load(kvs: &kvs::Kvs, users: &[User], batch: usize) -> kvs::Result<()> {
    for chunk in users.chunks(batch) {
        kvs.transaction(|tx| {
            for u in chunk {
                tx.put(u)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// The message `id`.
pub fn msg(id: u64) -> Msg {
    Msg {
        id,
        text: format!("message {id}: the quick brown fox jumps over the lazy dog"),
    }
}

/// A small deterministic generator (splitmix64), so that every system gets the same inputs.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `1..=n`.
    pub fn id(&mut self, n: u64) -> u64 {
        self.next_u64() % n + 1
    }
}

/// Everything a run of the main workloads needs, built once and shared by all systems.
pub struct Inputs {
    /// The number of records of the bulk load.
    pub n: u64,
    /// The bulk load: users `1..=n`, in key order.
    pub bulk: Vec<User>,
    /// The durable inserts: 1,000 users after `n`.
    pub durable: Vec<User>,
    /// Random keys for `get`.
    pub get_ids: Vec<u64>,
    /// Random emails, each held by exactly one user.
    pub emails: Vec<String>,
    /// Random cities, and the number of users each holds after the bulk load.
    pub cities: Vec<(String, u64)>,
    /// Updates that move 10,000 distinct users to another city.
    pub updates: Vec<User>,
    /// Distinct keys to delete (n/10 of them).
    pub deletes: Vec<u64>,
    /// Random half-open ranges of scores, `SCORE_SPAN` values wide.
    pub ranges: Vec<(u64, u64)>,
    /// The records over all of `ranges` after the bulk load, and the sum of their keys.
    pub range_hits: (u64, u64),
}

/// The number of durable inserts.
pub const DURABLE: u64 = 1_000;
/// The number of lookups of each kind, of updates, and of `count` calls.
pub const LOOKUPS: usize = 10_000;
/// The number of `seq` calls in one transaction.
pub const SEQ: usize = 100_000;
/// The number of durable `seq` calls.
pub const SEQ_DURABLE: usize = 1_000;

impl Inputs {
    /// The inputs for `n` records.
    pub fn new(n: u64) -> Inputs {
        let mut rng = Rng::new(n);
        let ncities = cities(n);
        let mut counts = vec![0u64; usize::try_from(ncities).unwrap_or(0)];
        for id in 1..=n {
            counts[usize::try_from(id % ncities).unwrap_or(0)] += 1;
        }
        let shuffled = |rng: &mut Rng, k: usize| -> Vec<u64> {
            // Distinct random keys: a random permutation's prefix (Fisher-Yates on 1..=n).
            let mut ids: Vec<u64> = (1..=n).collect();
            for i in 0..k.min(ids.len()) {
                let j = i + usize::try_from(rng.next_u64() % (ids.len() - i) as u64).unwrap_or(0);
                ids.swap(i, j);
            }
            ids.truncate(k);
            ids
        };
        let updates = shuffled(&mut rng, LOOKUPS)
            .into_iter()
            .map(|id| {
                let mut u = user(id, n);
                u.city = city((id + 1 + rng.next_u64() % (ncities - 1).max(1)) % ncities);
                u.name = format!("Moved User {id}");
                u
            })
            .collect();
        let deletes = shuffled(&mut rng, usize::try_from(n / 10).unwrap_or(0));
        let (ranges, range_hits) = score_ranges(n);
        Inputs {
            n,
            bulk: (1..=n).map(|id| user(id, n)).collect(),
            durable: (n + 1..=n + DURABLE).map(|id| user(id, n)).collect(),
            get_ids: (0..n).map(|_| rng.id(n)).collect(),
            emails: (0..LOOKUPS).map(|_| email(rng.id(n))).collect(),
            cities: (0..LOOKUPS)
                .map(|_| {
                    let c = rng.next_u64() % ncities;
                    (city(c), counts[usize::try_from(c).unwrap_or(0)])
                })
                .collect(),
            updates,
            deletes,
            ranges,
            range_hits,
        }
    }
}

/// `RANGES` random ranges of `SCORE_SPAN` scores, from a generator of their own (the other
/// inputs stay what they were before this workload existed), and the records they hold after
/// the bulk load with the sum of their keys.
fn score_ranges(n: u64) -> (Vec<(u64, u64)>, (u64, u64)) {
    let nscores = scores(n);
    let mut per_score = vec![(0u64, 0u64); usize::try_from(nscores).unwrap_or(0)];
    for id in 1..=n {
        let s = &mut per_score[usize::try_from(score(id, n)).unwrap_or(0)];
        s.0 += 1;
        s.1 += id;
    }
    let mut rng = Rng::new(n ^ 0x0053_C0AE);
    let starts = nscores.saturating_sub(SCORE_SPAN) + 1;
    let ranges: Vec<(u64, u64)> = (0..RANGES)
        .map(|_| {
            let lo = rng.next_u64() % starts;
            (lo, lo + SCORE_SPAN)
        })
        .collect();
    let mut hits = (0, 0);
    for &(lo, hi) in &ranges {
        for s in lo..hi.min(nscores) {
            let (count, sum) = per_score[usize::try_from(s).unwrap_or(0)];
            hits.0 += count;
            hits.1 += sum;
        }
    }
    (ranges, hits)
}
