//! The gRPC client: a channel to each cluster member, failover from one member to the next,
//! and what a failed call becomes as a kvs error.
//!
//! It owns `Etcd`'s connection state (`runtime`, `members`, `current`, `requests`) and nothing
//! of the key layout or of transactions: they send their requests through [`Etcd::call`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use kvs_core::{Config, Error, Result};
use tonic::transport::{Channel, Endpoint};

use crate::etcdserverpb::kv_client::KvClient;
use crate::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::etcdserverpb::{RangeRequest, RangeResponse};
use crate::{storage, Etcd};

/// The largest response accepted (a page of large values).
const MAX_MESSAGE: usize = 256 << 20;

/// One cluster member the client talks to.
pub(crate) struct Member {
    pub(crate) url: String,
    kv: KvClient<Channel>,
    pub(crate) maintenance: MaintenanceClient<Channel>,
}

/// A client of each member at `hosts`, on a channel of `runtime` that connects when first
/// used (so that opening succeeds while some members are down).
pub(crate) fn connect(
    runtime: &tokio::runtime::Runtime,
    hosts: &[&str],
    config: &Config,
) -> Result<Vec<Member>> {
    let mut members = Vec::new();
    for host in hosts {
        let url = if host.contains("://") {
            (*host).to_owned()
        } else {
            format!("http://{host}")
        };
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| config.error(format!("bad member address {host:?}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        let channel = {
            let _guard = runtime.enter();
            endpoint.connect_lazy()
        };
        members.push(Member {
            url,
            kv: KvClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            maintenance: MaintenanceClient::new(channel),
        });
    }
    Ok(members)
}

/// Maps a gRPC status to a kvs error: limits by name, an unreachable or leaderless cluster as
/// [`Error::Unavailable`], the rest as storage errors.
///
/// etcd's protocol tells its limits apart only by message: several share one gRPC code
/// (`InvalidArgument` for too many operations and for a request too large), and etcd's own Go
/// client recognises them by their text too (`rpctypes.ErrorDesc`). This is the one place kvs
/// reads an error's text, and it reads etcd's, never kvs's own.
pub(crate) fn status_error(status: &tonic::Status) -> Error {
    let message = status.message();
    let limit = |limit: &str, reason: &str| Error::Limit {
        backend: "etcd",
        limit: limit.to_owned(),
        reason: format!("{reason} ({message})"),
    };
    if message.contains("too many operations in txn request") {
        return limit(
            "--max-txn-ops",
            "the transaction has more operations than the cluster allows; raise the limit on every member or make the transaction smaller",
        );
    }
    if message.contains("request is too large")
        || status.code() == tonic::Code::ResourceExhausted
        || status.code() == tonic::Code::OutOfRange
    {
        return limit(
            "--max-request-bytes",
            "the transaction is larger than the cluster accepts; raise the limit on every member or write less at once",
        );
    }
    if message.contains("database space exceeded") {
        return limit(
            "--quota-backend-bytes",
            "the cluster's storage quota is full; compact and defragment it, or raise the quota",
        );
    }
    match status.code() {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled
        | tonic::Code::Unknown
            if !message.contains("compacted") =>
        {
            Error::Unavailable {
                backend: "etcd",
                reason: message.to_owned(),
            }
        }
        _ => storage(format!("{:?}: {message}", status.code())),
    }
}

/// Whether the request never reached a server (so sending it again cannot apply it twice): the
/// connection itself was refused or could not be made (a connect that timed out included), as
/// the I/O error under the status says.
fn never_sent(status: &tonic::Status) -> bool {
    use std::io::ErrorKind;
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::TimedOut
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::NotConnected
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
            );
        }
        source = error.source();
    }
    false
}

impl Etcd {
    /// Sends a request built by `call` to the current member, moving on to the next one while
    /// members are unreachable. `idempotent` requests (reads) also move on after other
    /// failures of the connection; a commit does only when it surely never left.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        idempotent: bool,
        call: impl Fn(
            KvClient<Channel>,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = std::result::Result<tonic::Response<T>, tonic::Status>,
                    > + Send,
            >,
        >,
    ) -> Result<T> {
        let n = self.members.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let at = (start + i) % n;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let result = self.wait(call(self.members[at].kv.clone()))?;
            match result {
                Ok(reply) => {
                    if i > 0 {
                        self.current.store(at, Ordering::Relaxed);
                    }
                    return Ok(reply.into_inner());
                }
                Err(status) => {
                    let movable = never_sent(&status)
                        || (idempotent
                            && matches!(status_error(&status), Error::Unavailable { .. }));
                    if !movable {
                        return Err(status_error(&status));
                    }
                    last = Some(status);
                }
            }
        }
        Err(last.map_or_else(|| storage("no members"), |s| status_error(&s)))
    }

    pub(crate) fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.call(true, move |mut kv| {
            let request = request.clone();
            Box::pin(async move { kv.range(request).await })
        })
    }
}
