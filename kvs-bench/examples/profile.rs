//! One read workload in a loop, on kvs or on raw redb, for a profiler: the commits that make a
//! read faster quote its instruction counts, which (unlike times on a shared machine) repeat
//! to the instruction.
//!
//! ```sh
//! cargo build --release -p kvs-bench --example profile
//! # instructions per call of `get` on kvs (and `redb` for raw redb's):
//! REPS=100 valgrind --tool=callgrind --collect-atstart=no --toggle-collect='profile::measure*' \
//!     target/release/examples/profile get kvs
//! ```
//!
//! Workloads, on kvs-bench's own record and inputs (`src/data.rs`), 100,000 records: `get`
//! (`REPS` × 1,000 random keys), `unique` (as many lookups on a unique index), `index` (`REPS`
//! × 20 lookups on a plain index, 100 hits each), `range` (`REPS` × 20 ranges of an integer
//! index, 100 hits each), `page` (`REPS` × 20 pages of the newest 50 records) and `scan`
//! (`REPS` / 50 walks of the whole table). `index_flat`, on raw redb only, runs `index`'s
//! lookups through an index laid out as kvs lays out its own (a plain table of `city ++ 0 ++
//! id` keys) instead of a multimap: the difference between the two raw runs is what kvs's
//! index layout costs, the rest of kvs's difference is its layer's. Only `measure` is the
//! loop: the load before it is left out by `--toggle-collect`. Divide callgrind's total by the
//! calls to get a call's cost.

use std::path::Path;
use std::time::{Duration, Instant};

use kvs::Kvs;
use redb::{Database, MultimapTableDefinition, ReadableDatabase, ReadableTable, TableDefinition};

// The bench's own record and inputs: what is profiled here is what kvs-bench times.
#[path = "../src/data.rs"]
#[allow(dead_code)] // the bench's other inputs
mod data;

use data::{User, UserField};

const RECORDS: u64 = 100_000;
const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
const SCORE: MultimapTableDefinition<u64, u64> = MultimapTableDefinition::new("users_score");
const EMAIL: TableDefinition<&str, u64> = TableDefinition::new("users_email");
const CITY: MultimapTableDefinition<&str, u64> = MultimapTableDefinition::new("users_city");
const CITY_FLAT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("users_city_flat");

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workload, system] = args.as_slice() else {
        return Err("usage: profile get|unique|index|index_flat|range|page|scan kvs|redb".into());
    };
    let reps: usize = std::env::var("REPS").map_or(Ok(1000), |v| v.parse())?;
    let dir = std::env::temp_dir().join(format!("kvs-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(workload, system, reps, &dir);
    std::fs::remove_dir_all(&dir)?;
    result
}

fn run(workload: &str, system: &str, reps: usize, dir: &Path) -> Res<()> {
    let users: Vec<User> = (1..=RECORDS).map(|id| data::user(id, RECORDS)).collect();
    let mut rng = data::Rng::new(12345);
    let keys: Vec<u64> = (0..reps * 1000).map(|_| rng.id(RECORDS)).collect();
    let (sum, took) = match system {
        "kvs" => {
            let kvs = Kvs::open(&format!("redb:{}", dir.join("kvs.redb").display()))?;
            kvs.transaction(|tx| users.iter().try_for_each(|u| tx.put(u)))?;
            timed(|| on_kvs(&kvs, workload, reps, &keys))?
        }
        "redb" => {
            let db = Database::create(dir.join("raw.redb"))?;
            let write = db.begin_write()?;
            {
                let mut records = write.open_table(USERS)?;
                let mut scores = write.open_multimap_table(SCORE)?;
                let mut emails = write.open_table(EMAIL)?;
                let mut cities = write.open_multimap_table(CITY)?;
                // Only for the run that reads it: the others' figures stay those of the same
                // file as before.
                let mut flat = (workload == "index_flat")
                    .then(|| write.open_table(CITY_FLAT))
                    .transpose()?;
                for u in &users {
                    records.insert(u.id, bincode::serialize(u)?.as_slice())?;
                    scores.insert(u.score, u.id)?;
                    emails.insert(u.email.as_str(), u.id)?;
                    cities.insert(u.city.as_str(), u.id)?;
                    if let Some(flat) = &mut flat {
                        flat.insert(flat_key(&u.city, u.id).as_slice(), &[][..])?;
                    }
                }
            }
            write.commit()?;
            timed(|| on_redb(&db, workload, reps, &keys))?
        }
        _ => return Err(format!("unknown system {system}").into()),
    };
    println!("{system} {workload}: {took:?} (checksum {sum})");
    Ok(())
}

/// Runs the loop `f` in [`measure`], and how long it took.
fn timed(f: impl FnOnce() -> Res<u64>) -> Res<(u64, Duration)> {
    let start = Instant::now();
    let sum = measure(f)?;
    Ok((sum, start.elapsed()))
}

/// The measured loop (callgrind's `--toggle-collect` names it).
#[inline(never)]
fn measure<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// A range of `SCORE_SPAN` score values (100 records) picked by `key`.
fn score_range(key: u64) -> std::ops::Range<u64> {
    let lo = key % (data::scores(RECORDS) - data::SCORE_SPAN);
    lo..lo + data::SCORE_SPAN
}

/// The city of the user `key`.
fn city(key: u64) -> String {
    data::city(key % data::cities(RECORDS))
}

/// The key of user `id`'s entry in `CITY_FLAT`: the city, a 0 byte, the id big-endian.
fn flat_key(city: &str, id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(city.len() + 9);
    key.extend_from_slice(city.as_bytes());
    key.push(0);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

fn on_kvs(kvs: &Kvs, workload: &str, reps: usize, keys: &[u64]) -> Res<u64> {
    let mut sum = 0;
    match workload {
        "get" => {
            for key in keys {
                sum += kvs.get::<User>(key)?.ok_or("missing")?.id;
            }
        }
        "unique" => {
            for key in keys {
                let email = data::email(*key);
                sum += kvs.index::<User>(UserField::Email, email.as_str())?[0].id;
            }
        }
        "index" => {
            for key in &keys[..reps * 20] {
                let city = city(*key);
                sum += kvs.index::<User>(UserField::City, city.as_str())?.len() as u64;
            }
        }
        "range" => {
            for &key in &keys[..reps * 20] {
                let found = kvs.index_range::<User>(UserField::Score, score_range(key))?;
                sum += found.len() as u64;
            }
        }
        "page" => {
            for _ in 0..reps * 20 {
                let mut page = Vec::with_capacity(50);
                for u in kvs.iter::<User>(..)?.rev().take(50) {
                    page.push(u?);
                }
                sum += page.iter().map(|u| u.id).sum::<u64>();
            }
        }
        "scan" => {
            for _ in 0..reps / 50 {
                for u in kvs.iter::<User>(..)? {
                    sum += u?.id;
                }
            }
        }
        _ => return Err(format!("unknown workload {workload}").into()),
    }
    Ok(sum)
}

fn on_redb(db: &Database, workload: &str, reps: usize, keys: &[u64]) -> Res<u64> {
    let decode = |bytes: &[u8]| bincode::deserialize::<User>(bytes);
    let mut sum = 0;
    match workload {
        "get" => {
            for key in keys {
                let r = db.begin_read()?;
                let t = r.open_table(USERS)?;
                sum += decode(t.get(key)?.ok_or("missing")?.value())?.id;
            }
        }
        "unique" => {
            for key in keys {
                let email = data::email(*key);
                let r = db.begin_read()?;
                let id = r
                    .open_table(EMAIL)?
                    .get(email.as_str())?
                    .ok_or("missing")?
                    .value();
                let t = r.open_table(USERS)?;
                sum += decode(t.get(id)?.ok_or("missing")?.value())?.id;
            }
        }
        "index" => {
            for key in &keys[..reps * 20] {
                let city = city(*key);
                let r = db.begin_read()?;
                let ix = r.open_multimap_table(CITY)?;
                let t = r.open_table(USERS)?;
                let mut found = Vec::new();
                for id in ix.get(city.as_str())? {
                    found.push(decode(t.get(id?.value())?.ok_or("missing")?.value())?);
                }
                sum += found.len() as u64;
            }
        }
        "index_flat" => {
            for key in &keys[..reps * 20] {
                let city = city(*key);
                let r = db.begin_read()?;
                let ix = r.open_table(CITY_FLAT)?;
                let t = r.open_table(USERS)?;
                let (lo, hi) = (flat_key(&city, 0), flat_key(&city, u64::MAX));
                let mut found = Vec::new();
                for entry in ix.range(lo.as_slice()..=hi.as_slice())? {
                    let entry = entry?.0;
                    let (_, id) = entry.value().split_last_chunk::<8>().ok_or("short key")?;
                    let id = u64::from_be_bytes(*id);
                    found.push(decode(t.get(id)?.ok_or("missing")?.value())?);
                }
                sum += found.len() as u64;
            }
        }
        "range" => {
            for &key in &keys[..reps * 20] {
                let r = db.begin_read()?;
                let ix = r.open_multimap_table(SCORE)?;
                let t = r.open_table(USERS)?;
                let mut found = Vec::new();
                for entry in ix.range(score_range(key))? {
                    for id in entry?.1 {
                        found.push(decode(t.get(id?.value())?.ok_or("missing")?.value())?);
                    }
                }
                sum += found.len() as u64;
            }
        }
        "page" => {
            for _ in 0..reps * 20 {
                let r = db.begin_read()?;
                let t = r.open_table(USERS)?;
                let mut page = Vec::with_capacity(50);
                for entry in t.iter()?.rev().take(50) {
                    page.push(decode(entry?.1.value())?);
                }
                sum += page.iter().map(|u| u.id).sum::<u64>();
            }
        }
        "scan" => {
            for _ in 0..reps / 50 {
                let r = db.begin_read()?;
                for entry in r.open_table(USERS)?.iter()? {
                    sum += decode(entry?.1.value())?.id;
                }
            }
        }
        _ => return Err(format!("unknown workload {workload}").into()),
    }
    Ok(sum)
}
