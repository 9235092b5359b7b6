//! Fault injection: redb runs on a storage that fails the Nth read, write or sync, for every N
//! that a workload reaches. Each failure must surface as an `Err` from kvs (never a panic),
//! and the database, reopened, must hold exactly what the successful calls committed.
//!
//! The storage is an in-memory disk that remembers what was synced. In "crash" mode the
//! injected fault kills the disk: that call and every later one fail, and the database is
//! reopened from what a crash would leave, both after a power loss (only synced bytes) and
//! after a process crash (every byte written). In "transient" mode only the Nth call fails and
//! the workload goes on with the same handle.
//!
//! `KVS_FAULT_STEP=k` tries every k-th N only (1, the default, tries all).

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{audit_users, User};
use kvs::{Config, Error, Kvs};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `read` and `len`.
    Read,
    /// `write` and `set_len`.
    Write,
    /// `sync_data`.
    Sync,
}

const KINDS: [Kind; 3] = [Kind::Read, Kind::Write, Kind::Sync];

#[derive(Clone, Copy, Debug)]
struct Plan {
    kind: Kind,
    /// 1-based: the call of `kind` that fails.
    at: u64,
    /// Whether the disk dies with the fault (every later call fails too).
    crash: bool,
}

/// The bytes of a disk: what the program sees, and what a power loss would leave.
#[derive(Clone, Default)]
struct Image {
    current: Vec<u8>,
    durable: Vec<u8>,
}

struct Disk {
    image: Mutex<Image>,
    calls: [AtomicU64; 3],
    plan: Option<Plan>,
    fired: AtomicBool,
    dead: AtomicBool,
}

impl Disk {
    fn new(bytes: Vec<u8>, plan: Option<Plan>) -> Arc<Disk> {
        Arc::new(Disk {
            image: Mutex::new(Image {
                current: bytes.clone(),
                durable: bytes,
            }),
            calls: Default::default(),
            plan,
            fired: AtomicBool::new(false),
            dead: AtomicBool::new(false),
        })
    }

    fn calls(&self, kind: Kind) -> u64 {
        self.calls[kind as usize].load(Ordering::SeqCst)
    }

    /// Counts a call and fails it if the plan says so.
    fn io(&self, kind: Kind) -> io::Result<()> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fault: the disk is gone"));
        }
        let n = self.calls[kind as usize].fetch_add(1, Ordering::SeqCst) + 1;
        match self.plan {
            Some(plan) if plan.kind == kind && plan.at == n => {
                self.fired.store(true, Ordering::SeqCst);
                if plan.crash {
                    self.dead.store(true, Ordering::SeqCst);
                }
                Err(io::Error::other(format!("injected fault: {kind:?} #{n}")))
            }
            _ => Ok(()),
        }
    }

    fn image(&self) -> Image {
        self.image.lock().unwrap().clone()
    }
}

/// The redb storage over a [`Disk`].
struct Storage(Arc<Disk>);

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Storage")
    }
}

impl redb::StorageBackend for Storage {
    fn len(&self) -> io::Result<u64> {
        self.0.io(Kind::Read)?;
        Ok(self.0.image.lock().unwrap().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.io(Kind::Read)?;
        let image = self.0.image.lock().unwrap();
        let start = usize::try_from(offset).unwrap();
        let bytes = image
            .current
            .get(start..start + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.io(Kind::Write)?;
        let mut image = self.0.image.lock().unwrap();
        image.current.resize(usize::try_from(len).unwrap(), 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.io(Kind::Sync)?;
        let image = &mut *self.0.image.lock().unwrap();
        image.durable.clone_from(&image.current);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.io(Kind::Write)?;
        let mut image = self.0.image.lock().unwrap();
        let start = usize::try_from(offset).unwrap();
        let end = start + data.len();
        if image.current.len() < end {
            image.current.resize(end, 0);
        }
        image.current[start..end].copy_from_slice(data);
        Ok(())
    }
}

fn open(disk: &Arc<Disk>) -> kvs::Result<Kvs> {
    let backend = kvs::redb::Redb::with_storage(
        Storage(Arc::clone(disk)),
        redb::Durability::Immediate,
        "faulty disk",
    )?;
    Kvs::with_backend(Box::new(backend), Config::parse("faulty:").unwrap())
}

/// What the successful calls committed.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    users: BTreeMap<u64, User>,
    seq: u64,
}

impl Model {
    fn holds_email(&self, user: &User) -> bool {
        self.users
            .values()
            .any(|u| u.email == user.email && u.id != user.id)
    }

    /// Applies a put; `false` if it must fail as a duplicate.
    fn put(&mut self, user: &User) -> bool {
        if self.holds_email(user) {
            return false;
        }
        self.users.insert(user.id, user.clone());
        true
    }
}

enum Step {
    Put(User),
    Delete(u64),
    Seq(u64),
    /// Puts and deletes in one transaction, committed or not.
    Tx {
        puts: Vec<User>,
        delete: u64,
        commit: bool,
    },
    /// `get`, `index`, `all` and `count`.
    Read(u64),
    /// Drops the handle and opens the disk again (with a cold cache, so that reads reach it).
    Reopen,
}

fn user(id: u64, email: u64, city: &str) -> User {
    User::new(id, &format!("{email}@x.io"), city)
}

/// A workload of every kind of call: new records, updates that move index entries, deletes,
/// counters, a unique clash, committed and aborted transactions, reads.
fn workload() -> Vec<Step> {
    let cities = ["Oslo", "Rome", "Lima"];
    let mut steps = Vec::new();
    for id in 1..=6 {
        steps.push(Step::Seq(1));
        steps.push(Step::Put(user(id, id, cities[(id % 3) as usize])));
    }
    steps.push(Step::Reopen);
    steps.push(Step::Read(2));
    steps.push(Step::Put(user(2, 20, "Lima")));
    steps.push(Step::Put(user(7, 3, "Oslo"))); // email of 3: a duplicate
    steps.push(Step::Delete(1));
    steps.push(Step::Tx {
        puts: vec![user(8, 8, "Rome"), user(3, 30, "Rome")],
        delete: 4,
        commit: true,
    });
    steps.push(Step::Tx {
        puts: vec![user(9, 9, "Oslo")],
        delete: 5,
        commit: false,
    });
    steps.push(Step::Reopen);
    steps.push(Step::Read(8));
    steps.push(Step::Seq(5));
    steps.push(Step::Delete(6));
    steps.push(Step::Put(user(6, 6, "Oslo")));
    steps
}

/// Runs `step`, updating `model` if it succeeded; returns the call's error.
fn run(kvs: &Kvs, step: &Step, model: &mut Model) -> Result<(), Error> {
    match step {
        Step::Put(u) => {
            let mut next = model.clone();
            match kvs.put(u) {
                Ok(()) => {
                    assert!(next.put(u), "put {u:?} succeeded, the model says duplicate");
                    *model = next;
                }
                Err(Error::Duplicate { .. }) => {
                    assert!(!next.put(u), "put {u:?}: duplicate, the model disagrees");
                }
                Err(e) => return Err(e),
            }
        }
        Step::Delete(id) => {
            let existed = kvs.delete::<User>(id)?;
            assert_eq!(existed, model.users.remove(id).is_some(), "delete {id}");
        }
        Step::Seq(incr) => {
            let value = kvs.seq("ids", *incr)?;
            model.seq += incr;
            assert_eq!(value, model.seq);
        }
        Step::Tx {
            puts,
            delete,
            commit,
        } => {
            let mut next = model.clone();
            let result = kvs.transaction(|tx| {
                for u in puts {
                    tx.put(u)?;
                    assert!(next.put(u));
                }
                tx.delete::<User>(delete)?;
                next.users.remove(delete);
                next.seq = tx.seq("ids", 1)?;
                if *commit {
                    Ok(())
                } else {
                    Err(Error::Conflict {
                        reason: "abort".to_owned(),
                    })
                }
            });
            match result {
                Ok(()) => *model = next,
                Err(Error::Conflict { reason }) if reason == "abort" && !commit => {}
                Err(e) => return Err(e),
            }
        }
        Step::Reopen => unreachable!("run_workload reopens"),
        Step::Read(id) => {
            let got = kvs.get::<User>(id)?;
            assert_eq!(got.as_ref(), model.users.get(id));
            if let Some(u) = got {
                let by_city = kvs.index::<User>(common::UserField::City, &u.city)?;
                assert!(by_city.contains(&u));
            }
            let all: Vec<User> = kvs.all()?;
            assert_eq!(all, model.users.values().cloned().collect::<Vec<_>>());
            assert_eq!(kvs.count::<User>()?, model.users.len() as u64);
        }
    }
    Ok(())
}

/// Reopens `bytes` and checks that it holds one of `models`, with exact indexes; returns
/// which.
fn reopen_and_check(bytes: Vec<u8>, models: &[&Model], what: &str) -> usize {
    if !bytes.is_empty() && !bytes.starts_with(b"redb") {
        // redb was creating the database and had not yet written its magic number, which it
        // writes last: redb refuses such storage. (On a file, kvs creates the database under
        // another name and links it into place, so this never reaches a user's path.)
        assert_eq!(
            *models[0],
            Model::default(),
            "{what}: a commit before creation"
        );
        return 0;
    }
    if std::env::var("PROBE").is_ok() {
        eprintln!(
            "{what}: len {} nonzero {} head {:?}",
            bytes.len(),
            bytes.iter().filter(|b| **b != 0).count(),
            &bytes[..bytes.len().min(16)]
        );
    }
    let disk = Disk::new(bytes, None);
    {
        let mut db = redb::Builder::new()
            .create_with_backend(Storage(Arc::clone(&disk)))
            .unwrap_or_else(|e| panic!("{what}: redb cannot reopen: {e}"));
        assert!(
            db.check_integrity()
                .unwrap_or_else(|e| panic!("{what}: {e}")),
            "{what}: redb's integrity check failed (after its repair on open)"
        );
    }
    let kvs = open(&disk).unwrap_or_else(|e| panic!("{what}: kvs cannot reopen: {e}"));
    let users = audit_users(&kvs);
    let seq = kvs.seq("ids", 0).unwrap();
    let found = Model {
        users: users.into_iter().map(|u| (u.id, u)).collect(),
        seq,
    };
    models
        .iter()
        .position(|m| **m == found)
        .unwrap_or_else(|| panic!("{what}: reopened {found:?}, expected one of {models:?}"))
}

struct Outcome {
    /// The model as of the last successful call.
    model: Model,
    /// The model with the failed call applied, had it succeeded, while its outcome is open.
    failed_step: Option<Model>,
    /// Calls that succeeded after the fault.
    calls_after_fault: u64,
    disk: Arc<Disk>,
}

/// Runs the workload on a disk with `plan`; in crash mode, until the first failure.
fn run_workload(plan: Option<Plan>) -> Outcome {
    let disk = Disk::new(Vec::new(), plan);
    let fired = || disk.fired.load(Ordering::SeqCst);
    let mut out = Outcome {
        model: Model::default(),
        failed_step: None,
        calls_after_fault: 0,
        disk: Arc::clone(&disk),
    };
    let mut kvs = match open(&disk) {
        Ok(kvs) => Some(kvs),
        Err(e) => {
            assert!(fired(), "open failed: {e}");
            None
        }
    };
    for step in workload() {
        if let Step::Reopen = step {
            drop(kvs.take());
            // A transient fault may hit the open itself; it fails once.
            let reopened = open(&disk).or_else(|_| open(&disk));
            match reopened {
                Ok(k) => kvs = Some(k),
                Err(e) if fired() => {
                    assert!(plan.is_some_and(|p| p.crash), "reopen failed twice: {e}");
                    break;
                }
                Err(e) => panic!("reopen failed without a fault: {e}"),
            }
            if let Some(post) = out.failed_step.take() {
                // The failed call's outcome is settled by what the reopened handle finds.
                let image = disk.image().current;
                let which =
                    reopen_and_check(image, &candidates(&out.model, Some(&post), plan), "reopen");
                if which == 1 {
                    out.model = post;
                }
            }
            continue;
        }
        let Some(k) = &kvs else { break };
        let before = out.model.clone();
        match run(k, &step, &mut out.model) {
            Ok(()) if fired() => {
                assert!(
                    out.failed_step.is_none()
                        || !matches!(
                            plan,
                            Some(Plan {
                                kind: Kind::Sync,
                                ..
                            })
                        ),
                    "a call succeeded on a handle whose failed commit has an unknown outcome"
                );
                out.calls_after_fault += 1;
            }
            Ok(()) => {}
            Err(e) => {
                assert!(fired(), "an error without an injected fault: {e}");
                assert!(
                    matches!(e, Error::Storage { .. }),
                    "an injected fault surfaced as {e:?}"
                );
                if out.failed_step.is_none() {
                    // What the call would have committed, from a run without faults.
                    let mut after = before.clone();
                    let shadow = Kvs::open("mem:").unwrap();
                    for u in after.users.values() {
                        shadow.put(u).unwrap();
                    }
                    shadow.seq("ids", after.seq).unwrap();
                    run(&shadow, &step, &mut after).unwrap();
                    out.failed_step = Some(after);
                }
                if plan.is_some_and(|p| p.crash) {
                    break;
                }
            }
        }
    }
    drop(kvs);
    out
}

/// The states a reopened database may hold: the last successful commit, or, after a failed
/// sync, the failed call's commit too (it may have been written before the sync failed: its
/// outcome is unknown, as in every database). A failed read or write leaves no doubt.
fn candidates<'m>(pre: &'m Model, post: Option<&'m Model>, plan: Option<Plan>) -> Vec<&'m Model> {
    match (post, plan) {
        (
            Some(post),
            Some(Plan {
                kind: Kind::Sync, ..
            }),
        ) => vec![pre, post],
        _ => vec![pre],
    }
}

/// Sweeps every N of every kind in one mode; returns the number of faults injected.
fn sweep(crash: bool) -> u64 {
    let clean = run_workload(None);
    assert!(clean.failed_step.is_none());
    let step = std::env::var("KVS_FAULT_STEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1u64);
    let mut injected = 0;
    let mut after_fault = 0;
    for kind in KINDS {
        let total = clean.disk.calls(kind);
        assert!(total > 0, "the workload makes no {kind:?} call");
        // One beyond the last call too: a plan that never fires must change nothing.
        for at in (1..=total + 1).step_by(usize::try_from(step).unwrap()) {
            let plan = Plan { kind, at, crash };
            let out = run_workload(Some(plan));
            let fired = out.disk.fired.load(Ordering::SeqCst);
            assert_eq!(
                fired,
                at <= total,
                "{plan:?}: the workload is not deterministic"
            );
            injected += u64::from(fired);
            let what = format!("{plan:?}");
            let image = out.disk.image();
            let pre = &out.model;
            if crash {
                // A power loss keeps what was synced: exactly the last successful commit.
                reopen_and_check(image.durable, &[pre], &format!("{what}, power loss"));
            }
            // A process crash keeps everything written.
            let models = candidates(pre, out.failed_step.as_ref(), Some(plan));
            reopen_and_check(image.current, &models, &format!("{what}, process crash"));
            after_fault += out.calls_after_fault;
        }
        eprintln!(
            "{} mode: {kind:?} faults at N = 1..={total}",
            if crash { "crash" } else { "transient" }
        );
    }
    eprintln!("{after_fault} calls succeeded after a fault (on a reopened handle)");
    injected
}

#[test]
fn every_fault_of_a_dying_disk_is_an_error_and_loses_no_commit() {
    let injected = sweep(true);
    eprintln!("crash mode: {injected} faults injected");
}

#[test]
fn a_transient_fault_fails_one_call_and_loses_no_commit() {
    let injected = sweep(false);
    eprintln!("transient mode: {injected} faults injected");
}
