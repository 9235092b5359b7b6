//! Crash test with concurrent writers: a child process runs 8 threads, each putting records in
//! durable one-call writes and transactions (which share fsyncs when they meet: group commit)
//! and acknowledging each after it returns; the parent kills it with SIGKILL at random
//! moments.
//!
//! After each kill: redb's integrity check passes; every acknowledged record is there; of
//! each thread's call in flight, the record is there or not, and nothing past it is; and the
//! indexes agree with the records. `KVS_CRASH_ROUNDS` (default 20) sets the number of kills.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use common::{audit_users, TempDir, User};
use kvs::Kvs;

const CHILD_ENV: &str = "KVS_CRASH_THREADS_CHILD";
const ROUND_ENV: &str = "KVS_CRASH_THREADS_ROUND";
const MARK: &str = "#kvs ";
const THREADS: usize = 8;

/// The record thread `t` writes `n`-th in round `round`.
fn record(round: u64, t: usize, n: u64) -> User {
    let id = round * 100_000_000 + u64::try_from(t).unwrap() * 1_000_000 + n;
    User::new(
        id,
        &format!("{id}@x.io"),
        ["Oslo", "Rome", "Lima"][(n % 3) as usize],
    )
}

/// The child: 8 threads writing until it is killed.
#[test]
#[ignore = "the child process of the concurrent crash test, which runs it"]
fn crash_threads_child() {
    let (Ok(url), Ok(round)) = (std::env::var(CHILD_ENV), std::env::var(ROUND_ENV)) else {
        eprintln!("run by concurrent_writers_lose_nothing_acknowledged, with {CHILD_ENV} set");
        return;
    };
    let round: u64 = round.parse().unwrap();
    let kvs = Kvs::open(&url).unwrap();
    let say = |line: &str| {
        let out = std::io::stdout();
        let mut out = out.lock();
        writeln!(out, "\n{MARK}{line}").unwrap();
        out.flush().unwrap();
    };
    say("open");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (kvs, say) = (&kvs, &say);
            s.spawn(move || {
                for n in 1.. {
                    let user = record(round, t, n);
                    // Every third write a transaction: grouped with the one-call writes.
                    if n % 3 == 0 {
                        kvs.transaction(|tx| tx.put(&user)).unwrap();
                    } else {
                        kvs.put(&user).unwrap();
                    }
                    say(&format!("ok {t} {n}"));
                }
            });
        }
    });
}

#[test]
fn concurrent_writers_lose_nothing_acknowledged() {
    let rounds: u64 = std::env::var("KVS_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let dir = TempDir::new();
    let url = dir.url("threads.redb");
    let path = dir.path().join("threads.redb");
    let (mut acknowledged, mut in_flight_committed) = (0u64, 0u64);
    let started = Instant::now();
    for round in 1..=rounds {
        let round_text = round.to_string();
        let mut child = common::Child::spawn(
            "crash_threads_child",
            &[(CHILD_ENV, url.as_str()), (ROUND_ENV, round_text.as_str())],
            MARK,
        );
        // Kill after 20 to 400 acknowledgements, then a moment more.
        let wait_for = usize::try_from(20 + (round * 7919) % 380).unwrap();
        let mut seen = Vec::new();
        while seen
            .iter()
            .filter(|l: &&String| l.starts_with("ok"))
            .count()
            < wait_for
        {
            seen.push(child.next_line());
        }
        std::thread::sleep(Duration::from_micros((round * 104_729) % 2000));
        seen.extend(child.kill());

        // The last acknowledged n of each thread.
        let mut last = [0u64; THREADS];
        for line in &seen {
            if let Some(rest) = line.strip_prefix("ok ") {
                let (t, n) = rest.split_once(' ').unwrap();
                let (t, n): (usize, u64) = (t.parse().unwrap(), n.parse().unwrap());
                assert_eq!(n, last[t] + 1, "thread {t} acknowledged out of order");
                last[t] = n;
                acknowledged += 1;
            }
        }

        let mut db = redb::Database::open(&path)
            .unwrap_or_else(|e| panic!("round {round}: redb cannot open the file: {e}"));
        assert!(db.check_integrity().unwrap(), "round {round}: integrity");
        drop(db);
        let kvs = Kvs::open(&url).unwrap();
        let found: BTreeSet<u64> = audit_users(&kvs).into_iter().map(|u| u.id).collect();
        for (t, &acked) in last.iter().enumerate() {
            for n in 1..=acked {
                let id = record(round, t, n).id;
                assert!(
                    found.contains(&id),
                    "round {round}: acknowledged {id} is lost"
                );
            }
            // The call in flight may have committed; nothing after it was ever made.
            let next = record(round, t, acked + 1).id;
            in_flight_committed += u64::from(found.contains(&next));
            assert!(
                !found.contains(&record(round, t, acked + 2).id),
                "round {round}: thread {t} has a record past its call in flight"
            );
        }
    }
    eprintln!(
        "concurrent crash test: {rounds} kills of 8 writer threads, {acknowledged} acknowledged \
         puts, none lost; {in_flight_committed} calls in flight found committed; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
