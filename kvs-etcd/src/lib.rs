//! The etcd backend of kvs: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`, and over TLS
//! `etcds://HOST:PORT[,...]/PREFIX[?ca=PATH][&cert=PATH&key=PATH][&user=NAME]`.
//!
//! The same API as on redb, on a replicated engine (Raft, strictly serializable). Every kvs
//! table is a key range under `PREFIX`, so several databases share one cluster. Reads run on
//! one snapshot (an etcd revision); a write transaction reads at a snapshot, buffers its
//! writes, and commits them in one etcd transaction guarded by compares on what it read
//! (each key still at the revision it read, no new key in a range it scanned; or, for reads
//! no compare describes, the database's fence key, which every commit rewrites): a
//! transaction that read what another wrote since fails with [`Error::Conflict`] and writes
//! nothing (serializable). Commits that arrive together share one request when none writes
//! what another read or wrote. `Kvs`'s one-call writes (`put`, `delete`, `seq`, `append`, …)
//! retry a conflict by themselves; a `Kvs::transaction` returns it, and retrying it is safe.
//!
//! ```no_run
//! use kvs_core::Kvs;
//!
//! // With the `kvs` crate's `etcd` feature (on by default), any program opens it by URL:
//! let kvs = Kvs::open("etcd://127.0.0.1:2379,127.0.0.1:22379/myapp")?;
//! println!("{}", kvs.ver());
//! # Ok::<(), kvs_core::Error>(())
//! ```
//!
//! A secured cluster is reached by URL too. `etcds://` speaks TLS, trusting the CA bundle
//! `?ca=PATH` names (the system's roots without it); `?cert=PATH&key=PATH` give a client
//! certificate, for clusters run with `--client-cert-auth`; `?user=NAME` names an etcd user
//! (on `etcd://` too, where the password crosses the network in clear), whose password comes
//! from the `KVS_ETCD_PASSWORD` environment variable, never from the URL (kvs refuses a URL
//! with a password in it). The client fetches an auth token at open
//! and a new one whenever the cluster says it expired. A certificate that does not check out
//! is [`Error::Tls`] naming the member; wrong credentials, and keys outside what the user's
//! roles grant, are [`Error::Denied`]; neither is retried, and neither writes anything.
//!
//! From async code, `kvs::AsyncKvs` runs each call on the caller's task and awaits its
//! requests, with no thread per call: the call is replayed against a log of the cluster's
//! answers that grows by one awaited request per run (`replay.rs`; the sync calls send the
//! same requests through the same code, and wait for them).
//!
//! etcd's limits are its own, and a transaction that passes one fails as a whole with
//! [`Error::Limit`], naming it: `--max-txn-ops` (128 operations per transaction by default),
//! `--max-request-bytes` (1.5 MiB) and `--quota-backend-bytes` (2 GiB). kvs never splits a
//! transaction to fit.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kvs_core::{
    Backend, BackendFactory, BackendInfo, Config, Error, ReadTx, Replay, Result, WriteTx,
};

mod auth;
mod client;
mod commit;
mod compare;
#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod etcdserverpb;
mod layout;
mod read;
mod replay;
mod tls;
mod write;

use auth::Auth;
pub use auth::PASSWORD_ENV;

use client::Client;
use etcdserverpb::StatusRequest;
use read::EtcdRead;
use write::EtcdWrite;

impl Etcd {
    /// Runs `future` on the client's runtime and waits for it, from any thread: a plain
    /// thread blocks on the runtime directly; a thread inside another tokio runtime (an async
    /// service calling the sync API, or its blocking pool) hands the future to the client's
    /// runtime and waits on a channel, since entering a runtime from within one panics.
    /// Waiting blocks the calling thread either way: async code calls `AsyncKvs`, which awaits
    /// the requests instead.
    fn wait<F>(&self, future: F) -> Result<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.runtime();
        if tokio::runtime::Handle::try_current().is_err() {
            return Ok(runtime.block_on(future));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv()
            .map_err(|_| storage("the etcd client's task ended without an answer"))
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime is taken only while the client is dropped")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // Dropping a runtime blocks on its tasks, which panics inside another runtime (a
        // `Kvs` dropped in an async function); shutting it down in the background does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::storage("etcd", e.to_string())
}

/// A kvs backend on an etcd cluster.
pub struct Etcd {
    /// The client's own runtime; `None` only while it is dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    /// The connections to the members, and the user.
    client: Arc<Client>,
    /// The key prefix of this database.
    root: Vec<u8>,
    info: BackendInfo,
    /// The commits of concurrent write transactions, sent together.
    commits: commit::Commits,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What one member says of itself ([`Etcd::status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberStatus {
    /// The client URL it was reached at.
    pub url: String,
    /// Its member id.
    pub id: u64,
    /// The member id it believes leads.
    pub leader: u64,
    /// Its etcd version.
    pub version: String,
}

/// Opens the backend an `etcd://` or `etcds://` URL names.
pub fn open(config: &Config) -> Result<Box<dyn Backend>> {
    Ok(Box::new(Etcd::open(config)?))
}

kvs_core::__private::inventory::submit! { BackendFactory { scheme: "etcd", open } }
kvs_core::__private::inventory::submit! { BackendFactory { scheme: "etcds", open } }

impl Etcd {
    /// Connects to the cluster `config` names (`etcd://HOST:PORT[,HOST:PORT...]/PREFIX`, or
    /// `etcds://` with its TLS and user parameters), checks that a member answers, and with
    /// `?user=` fetches an auth token.
    pub fn open(config: &Config) -> Result<Etcd> {
        let known: Vec<&str> = tls::PARAMS.iter().chain(auth::PARAMS).copied().collect();
        config.expect_params(&known)?;
        let scheme = config.scheme.as_str();
        let rest = config.location.strip_prefix("//").ok_or_else(|| {
            config.error(format!(
                "expected {scheme}://HOST:PORT[,HOST:PORT...]/PREFIX"
            ))
        })?;
        let (hosts, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let hosts: Vec<&str> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        if hosts.is_empty() {
            return Err(config.error("no HOST:PORT given"));
        }
        if prefix.contains('\0') {
            return Err(config.error("the prefix must not contain NUL"));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kvs-etcd")
            .enable_time()
            .enable_io()
            .build()
            .map_err(storage)?;
        let tls = tls::Tls::from_config(config)?;
        let auth = Auth::from_config(config)?;
        let token = auth.as_ref().map(|a| a.token.clone()).unwrap_or_default();
        let members = client::connect(&runtime, &hosts, tls.as_ref(), &token, config)?;
        let mut etcd = Etcd {
            runtime: Some(runtime),
            client: Arc::new(Client {
                members,
                current: AtomicUsize::new(0),
                auth,
                requests: AtomicU64::new(0),
                root: prefix.as_bytes().to_vec(),
                location: config.url.clone(),
            }),
            root: prefix.as_bytes().to_vec(),
            info: BackendInfo {
                engine: "etcd",
                version: "unknown",
                storage: "cluster",
                location: config.url.clone(),
            },
            commits: commit::Commits::default(),
        };
        let statuses = etcd.status();
        let Some(version) = statuses
            .iter()
            .find_map(|s| s.as_ref().ok())
            .map(|s| s.version.clone())
        else {
            // A member that answered with a TLS or access error tells more than "unavailable".
            let mut errors: Vec<Error> = statuses
                .into_iter()
                .filter_map(std::result::Result::err)
                .collect();
            if let Some(i) = errors.iter().position(|e| {
                matches!(
                    e,
                    Error::Tls { .. } | Error::Denied { .. } | Error::Url { .. }
                )
            }) {
                return Err(errors.swap_remove(i));
            }
            let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Err(Error::Unavailable {
                backend: "etcd",
                reason: format!(
                    "no member of {} answers: {}",
                    hosts.join(","),
                    reasons.join("; ")
                ),
            });
        };
        etcd.info.version = version_str(&version);
        let client = etcd.client.clone();
        etcd.wait(async move { client.authenticate().await })??;
        Ok(etcd)
    }

    /// What each member says of itself, in the order of the URL (an error for a member that
    /// does not answer). The member whose `leader` is its own `id` leads.
    pub fn status(&self) -> Vec<Result<MemberStatus>> {
        self.client
            .members
            .iter()
            .map(|m| {
                let mut client = m.maintenance.clone();
                let reply = self
                    .wait(async move {
                        tokio::time::timeout(
                            Duration::from_secs(3),
                            client.status(StatusRequest {}),
                        )
                        .await
                    })?
                    .map_err(|_| Error::Unavailable {
                        backend: "etcd",
                        reason: format!("{} did not answer in 3 s", m.url),
                    })?
                    .map_err(|s| self.client.error(&s, m))?
                    .into_inner();
                m.answered();
                Ok(MemberStatus {
                    url: m.url.clone(),
                    id: reply.header.map_or(0, |h| h.member_id),
                    leader: reply.leader,
                    version: reply.version,
                })
            })
            .collect()
    }

    /// The number of key-value requests sent so far (round trips to the cluster), to check
    /// and measure batching.
    pub fn requests(&self) -> u64 {
        self.client.requests.load(Ordering::Relaxed)
    }
}

/// The server's version as the `&'static str` that `BackendInfo` holds: each distinct version
/// is kept once for the life of the program (a cluster has one or two), not once per open.
fn version_str(version: &str) -> &'static str {
    static SEEN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = seen.iter().find(|v| **v == version) {
        return known;
    }
    let kept: &'static str = Box::leak(version.to_owned().into_boxed_str());
    seen.push(kept);
    kept
}

impl Backend for Etcd {
    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn read(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<()>) -> Result<()> {
        f(&EtcdRead::new(self))
    }

    fn snapshot(&self) -> Result<Box<dyn ReadTx + Send + '_>> {
        Ok(Box::new(EtcdRead::pinned(self)?))
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()> {
        let mut w = EtcdWrite::new(self);
        f(&mut w)?;
        w.commit(self)
    }

    fn batch_writes(&self) -> Option<usize> {
        // 16 puts of a record with a few indexes stay well within etcd's default 128
        // operations (and 128 compares) per transaction; a group that does not fails with
        // `Error::Limit`, and its writes then run alone.
        Some(16)
    }

    fn batch_reads(&self) -> usize {
        // A commit compares up to 100 keys and ranges it read (`compare::COMPARE_BUDGET`),
        // past which one compare on the fence stands for them and conflicts with any write:
        // a batch's declared reads stay well under it, leaving room for the reads no write
        // declares (the scans of a `delete` or a `remove`).
        80
    }

    fn replay(&self) -> Option<Box<dyn Replay + '_>> {
        Some(Box::new(replay::EtcdReplay::new(self)))
    }
}
