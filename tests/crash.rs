//! Crash test: a child process writes records, index updates, deletes and counters in durable
//! commits, announcing each call before it starts and acknowledging it after it returns; the
//! parent kills it with SIGKILL at random moments and checks the reopened database.
//!
//! After each kill: redb's integrity check passes; the database holds every acknowledged
//! change and, of the call in flight, all or nothing; every index entry agrees with its
//! record; and the counter never goes back.
//!
//! The child is this test binary itself, run again with `crash_child` selected, so that it is
//! always built, and from the same sources, whatever cargo command runs the test.
//! `KVS_CRASH_ROUNDS` (default 60) sets the number of kills, `KVS_CRASH_SEED` the random seed
//! (printed by each run, to reproduce it).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use common::{audit_users, TempDir, User};
use kvs::Kvs;

const CHILD_ENV: &str = "KVS_CRASH_CHILD";
/// Marks the child's protocol lines among the test harness's own output.
const MARK: &str = "#kvs ";
const CITIES: [&str; 5] = ["Oslo", "Rome", "Lima", "Pune", "Kobe"];

fn fresh(id: u64) -> User {
    User::new(id, &format!("{id}@x.io"), CITIES[(id % 5) as usize])
}

fn moved(id: u64) -> User {
    User::new(
        id,
        &format!("{id}@moved.io"),
        CITIES[((id + 1) % 5) as usize],
    )
}

/// A call of the child, as announced (`try ...`) before it starts.
#[derive(Clone, Debug)]
enum Call {
    /// `seq("users", 1)`.
    Seq,
    /// `put(fresh(id))`.
    Put(u64),
    /// `put(moved(id))`: new values for both indexes.
    Move(u64),
    /// `delete(id)`.
    Delete(u64),
    /// One transaction: two `seq` and the two new records.
    Tx,
}

/// The child: writes until it is killed.
#[test]
#[ignore = "the child process of the crash test, which runs it"]
fn crash_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        eprintln!("run by sigkill_at_random_moments_loses_nothing, with {CHILD_ENV} set");
        return;
    };
    let out = std::io::stdout();
    let say = |line: &str| {
        let mut out = out.lock();
        writeln!(out, "\n{MARK}{line}").unwrap();
        out.flush().unwrap();
    };
    let kvs = Kvs::open(&url).unwrap();
    say("open");
    loop {
        say("try seq");
        let id = kvs.seq("users", 1).unwrap();
        say(&format!("ok {id}"));
        say(&format!("try put {id}"));
        kvs.put(&fresh(id)).unwrap();
        say("ok");
        if id.is_multiple_of(4) {
            say(&format!("try move {}", id - 2));
            kvs.put(&moved(id - 2)).unwrap();
            say("ok");
        }
        if id.is_multiple_of(7) {
            say(&format!("try delete {}", id - 3));
            kvs.delete::<User>(&(id - 3)).unwrap();
            say("ok");
        }
        if id.is_multiple_of(5) {
            say("try tx");
            let (a, b) = kvs
                .transaction(|tx| {
                    let a = tx.seq("users", 1)?;
                    let b = tx.seq("users", 1)?;
                    tx.put(&fresh(a))?;
                    tx.put(&fresh(b))?;
                    Ok((a, b))
                })
                .unwrap();
            say(&format!("ok {a} {b}"));
        }
    }
}

/// What the database holds: records by key, and the counter.
#[derive(Clone, Debug, Default, PartialEq)]
struct State {
    users: BTreeMap<u64, User>,
    counter: u64,
}

impl State {
    fn apply(&mut self, call: &Call) {
        match *call {
            Call::Seq => self.counter += 1,
            Call::Put(id) => drop(self.users.insert(id, fresh(id))),
            Call::Move(id) => drop(self.users.insert(id, moved(id))),
            Call::Delete(id) => drop(self.users.remove(&id)),
            Call::Tx => {
                for _ in 0..2 {
                    self.counter += 1;
                    self.users.insert(self.counter, fresh(self.counter));
                }
            }
        }
    }
}

fn parse_try(rest: &str) -> Call {
    let mut words = rest.split(' ');
    let verb = words.next().unwrap();
    let id = || -> u64 { rest.rsplit(' ').next().unwrap().parse().unwrap() };
    match verb {
        "seq" => Call::Seq,
        "put" => Call::Put(id()),
        "move" => Call::Move(id()),
        "delete" => Call::Delete(id()),
        "tx" => Call::Tx,
        other => panic!("unknown call {other}"),
    }
}

/// A small deterministic generator (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Totals of a run, for docs/RELIABILITY.md.
#[derive(Debug, Default)]
struct Totals {
    kills: u64,
    killed_before_open: u64,
    in_flight_committed: u64,
    in_flight_lost: u64,
    acknowledged: u64,
}

/// One life of a database file: `rounds` kills, the first perhaps while the child creates
/// the file.
fn life(dir: &TempDir, name: &str, rounds: u64, rng: &mut Rng, totals: &mut Totals) {
    let url = dir.url(name);
    let path = dir.path().join(name);
    let mut state = State::default();
    for round in 0..rounds {
        let mut child = common::Child::spawn("crash_child", &[(CHILD_ENV, url.as_str())], MARK);
        // Random moments: after 0 to 12 acknowledged calls, then 0 to 3 ms more; the first
        // round of a life often lands in the child's start, while it creates the file.
        let wait_for = if round == 0 { 0 } else { rng.below(13) };
        let mut seen = Vec::new();
        let mut acks = 0;
        while acks < wait_for {
            let line = child.next_line();
            acks += u64::from(line.starts_with("ok"));
            seen.push(line);
        }
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        seen.extend(child.kill());
        totals.kills += 1;

        // What the child announced and acknowledged.
        let mut pending: Option<Call> = None;
        let mut opened = false;
        for line in &seen {
            if line == "open" {
                opened = true;
            } else if let Some(rest) = line.strip_prefix("try ") {
                assert!(pending.is_none(), "two calls in flight");
                pending = Some(parse_try(rest));
            } else if let Some(rest) = line.strip_prefix("ok") {
                let call = pending.take().expect("an ok without a call");
                state.apply(&call);
                totals.acknowledged += 1;
                if matches!(call, Call::Seq) {
                    assert_eq!(rest.trim().parse::<u64>().unwrap(), state.counter);
                }
            }
        }
        totals.killed_before_open += u64::from(!opened);

        // redb finds nothing to repair after its own recovery on open.
        if path.exists() {
            let mut db = redb::Database::open(&path)
                .unwrap_or_else(|e| panic!("round {round}: redb cannot open the file: {e}"));
            assert!(
                db.check_integrity().unwrap(),
                "round {round}: integrity check failed"
            );
        }
        let kvs = Kvs::open(&url)
            .unwrap_or_else(|e| panic!("round {round}: kvs cannot open the file: {e}"));
        let found = State {
            users: audit_users(&kvs).into_iter().map(|u| (u.id, u)).collect(),
            counter: kvs.seq("users", 0).unwrap(),
        };
        drop(kvs);
        let mut committed = state.clone();
        if let Some(call) = &pending {
            committed.apply(call);
        }
        if found == state {
            totals.in_flight_lost += u64::from(pending.is_some());
        } else if found == committed {
            totals.in_flight_committed += 1;
            state = committed;
        } else {
            panic!(
                "round {round}: after the kill in {pending:?}, the database holds\n{found:?}\nbut acknowledged calls left\n{state:?}"
            );
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let rounds: u64 = std::env::var("KVS_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(60);
    let seed = std::env::var("KVS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            now.as_secs() ^ u64::from(now.subsec_nanos()) << 32 | 1
        });
    eprintln!("crash test: KVS_CRASH_SEED={seed} KVS_CRASH_ROUNDS={rounds}");
    let mut rng = Rng(seed);
    let mut totals = Totals::default();
    let dir = TempDir::new();
    // Several lives of 10 rounds, each starting from no file.
    let mut life_no = 0;
    let mut left = rounds;
    while left > 0 {
        let n = left.min(10);
        life(
            &dir,
            &format!("crash-{life_no}.redb"),
            n,
            &mut rng,
            &mut totals,
        );
        left -= n;
        life_no += 1;
    }
    eprintln!("crash test: {totals:?}");
    assert_eq!(totals.kills, rounds);
}
