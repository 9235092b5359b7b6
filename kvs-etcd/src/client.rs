//! The gRPC client: a channel to each cluster member (over TLS for `etcds://`), failover from
//! one member to the next, a new auth token when the cluster says the old one expired, and
//! what a failed call becomes as a kvs error.
//!
//! It owns `Etcd`'s connection state ([`Client`]: `members`, `current`, `auth`, `requests`)
//! and nothing of the key layout or of transactions: they send their requests through
//! [`Etcd::call`], or, replayed, through [`Client::send`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kvs_core::{Config, Error, Result};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::{self, Auth, Refusal, Token};
use crate::etcdserverpb::auth_client::AuthClient;
use crate::etcdserverpb::kv_client::KvClient;
use crate::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::etcdserverpb::{RangeRequest, RangeResponse, TxnRequest, TxnResponse};
use crate::tls::{self, Tls};
use crate::{storage, Etcd};

/// A member's KV service, each request carrying the client's auth token.
pub(crate) type Kv = KvClient<InterceptedService<Channel, Token>>;

/// The largest response accepted (a page of large values).
const MAX_MESSAGE: usize = 256 << 20;

/// One cluster member the client talks to.
pub(crate) struct Member {
    /// `HOST:PORT`, as the URL names it.
    pub(crate) host: String,
    /// The member's client URL (`http://HOST:PORT`, or `https://` over TLS).
    pub(crate) url: String,
    kv: Kv,
    pub(crate) maintenance: MaintenanceClient<InterceptedService<Channel, Token>>,
    auth: AuthClient<Channel>,
    /// Over TLS: raised when the member asked for a client certificate that the URL does not
    /// give, lowered when a call then succeeds (the member did not require one).
    asked_without_cert: Option<Arc<AtomicBool>>,
}

/// A client of each member at `hosts` (over TLS with `tls`), its requests carrying `token`,
/// on a channel of `runtime` that connects when first used (so that opening succeeds while
/// some members are down).
pub(crate) fn connect(
    runtime: &tokio::runtime::Runtime,
    hosts: &[&str],
    tls: Option<&Tls>,
    token: &Token,
    config: &Config,
) -> Result<Vec<Member>> {
    const CONNECT: Duration = Duration::from_secs(2);
    let mut members = Vec::new();
    for host in hosts {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{host}");
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| config.error(format!("bad member address {host:?}: {e}")))?
            .connect_timeout(CONNECT)
            // No channel-wide timeout: each request carries its own deadline (`timed`), and
            // tonic keeps the shorter of the two, so one would cap a large commit's.
            .tcp_nodelay(true);
        let (channel, asked_without_cert) = {
            let _guard = runtime.enter();
            match tls {
                Some(tls) => {
                    let (connector, asked) = tls.connector(host, CONNECT);
                    (endpoint.connect_with_connector_lazy(connector), Some(asked))
                }
                None => (endpoint.connect_lazy(), None),
            }
        };
        members.push(Member {
            host: (*host).to_owned(),
            url,
            kv: KvClient::with_interceptor(channel.clone(), token.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            maintenance: MaintenanceClient::with_interceptor(channel.clone(), token.clone()),
            auth: AuthClient::new(channel),
            asked_without_cert,
        });
    }
    Ok(members)
}

impl Member {
    fn asked_without_cert(&self) -> bool {
        self.asked_without_cert
            .as_ref()
            .is_some_and(|a| a.load(Ordering::Relaxed))
    }

    /// A call succeeded: whatever the member asked for, it did not require it.
    pub(crate) fn answered(&self) {
        if let Some(asked) = &self.asked_without_cert {
            asked.store(false, Ordering::Relaxed);
        }
    }
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
    // etcd's overload refusal shares `ResourceExhausted` with a message too large: a busy
    // cluster, refused before anything applied, not a limit of the request.
    if message.contains("too many requests") {
        return Error::Unavailable {
            backend: "etcd",
            reason: message.to_owned(),
        };
    }
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

/// How long a request of a few bytes may take before it counts as unanswered
/// ([`Error::Unavailable`]).
const DEADLINE: Duration = Duration::from_secs(10);

/// How much longer each MiB of a request may take: a commit of 16 MiB values, whose key also
/// sits in each index entry, carries tens of MiB, which on a loaded machine and over TLS took
/// more than the plain deadline; its commit then timed out after it was sent, and the write
/// was retried over its own result.
const PER_MIB: Duration = Duration::from_secs(1);

/// `message` as a request with a deadline for its size.
pub(crate) fn timed<T: prost::Message>(message: T) -> tonic::Request<T> {
    let mib = u32::try_from(message.encoded_len() >> 20).unwrap_or(u32::MAX);
    let mut request = tonic::Request::new(message);
    request.set_timeout(DEADLINE.saturating_add(PER_MIB.saturating_mul(mib)));
    request
}

/// A request to a member's KV service: what the backend sends (`Etcd::call`), and what a
/// replayed call's log records (`replay`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Rpc {
    /// A read of one key or range.
    Range(RangeRequest),
    /// A batch of reads, or a guarded commit.
    Txn(TxnRequest),
}

/// A member's answer to an [`Rpc`] of the same kind.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    Range(RangeResponse),
    Txn(TxnResponse),
}

impl Reply {
    pub(crate) fn range(self) -> Result<RangeResponse> {
        match self {
            Reply::Range(reply) => Ok(reply),
            Reply::Txn(_) => Err(storage("etcd answered a read with a transaction")),
        }
    }

    pub(crate) fn txn(self) -> Result<TxnResponse> {
        match self {
            Reply::Txn(reply) => Ok(reply),
            Reply::Range(_) => Err(storage("etcd answered a transaction with a read")),
        }
    }
}

impl Rpc {
    /// Sends it to `kv`, with a deadline for its size.
    async fn send(&self, mut kv: Kv) -> std::result::Result<Reply, tonic::Status> {
        Ok(match self {
            Rpc::Range(request) => {
                Reply::Range(kv.range(timed(request.clone())).await?.into_inner())
            }
            Rpc::Txn(request) => Reply::Txn(kv.txn(timed(request.clone())).await?.into_inner()),
        })
    }
}

/// The connection state of an [`Etcd`], shared (an `Arc`) so that a request in flight owns
/// what it needs: the sync calls hand it to the client's runtime whole.
pub(crate) struct Client {
    pub(crate) members: Vec<Member>,
    /// The member requests go to first; moves on when one is unreachable.
    pub(crate) current: AtomicUsize,
    /// The etcd user and its token (`?user=`), if any.
    pub(crate) auth: Option<Auth>,
    /// Requests sent, for [`Etcd::requests`].
    pub(crate) requests: AtomicU64,
    /// The key prefix of the database, and its URL, for error messages.
    pub(crate) root: Vec<u8>,
    pub(crate) location: String,
}

impl Etcd {
    /// Sends `rpc` and waits for the answer, from any thread (see [`Etcd::wait`]). Inside a
    /// replayed call ([`crate::replay`]) the answer comes from the call's log instead, and a
    /// request the log does not hold yet is left for the log's owner to send.
    pub(crate) fn call(&self, idempotent: bool, rpc: Rpc) -> Result<Reply> {
        if let Some(answer) = crate::replay::answer(self, idempotent, &rpc) {
            return answer;
        }
        let client = self.client.clone();
        self.wait(async move { client.send(idempotent, rpc).await })?
    }

    pub(crate) fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.call(true, Rpc::Range(request))?.range()
    }
}

impl Client {
    /// Sends `rpc` to the current member, moving on to the next one while members are
    /// unreachable. `idempotent` requests (reads) also move on after other failures of the
    /// connection; a commit does only when it surely never left. A request refused for an
    /// expired auth token is sent again with a new one (etcd refuses it before applying it).
    ///
    /// This is the one place a request is sent: the sync calls wait for it ([`Etcd::call`]),
    /// and `AsyncKvs` awaits it on the caller's task ([`crate::replay`]).
    pub(crate) async fn send(&self, idempotent: bool, rpc: Rpc) -> Result<Reply> {
        let n = self.members.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let at = (start + i) % n;
            let member = &self.members[at];
            let mut renewals = 0;
            let status = loop {
                let carried = self.auth.as_ref().and_then(|a| a.token.get());
                self.requests.fetch_add(1, Ordering::Relaxed);
                match rpc.send(member.kv.clone()).await {
                    Ok(reply) => {
                        member.answered();
                        if i > 0 {
                            self.current.store(at, Ordering::Relaxed);
                        }
                        return Ok(reply);
                    }
                    Err(status) => {
                        if let (Some(auth), Some(Refusal::Renew)) =
                            (&self.auth, auth::refusal(&status))
                        {
                            if renewals < 3 {
                                renewals += 1;
                                auth.renew(carried.as_ref(), self.authenticate()).await?;
                                continue;
                            }
                        }
                        break status;
                    }
                }
            };
            let error = self.error(&status, member);
            let movable = match error {
                // Another member may hold a certificate this client trusts; but a commit
                // moves on only when it surely never left (a TLS error can come after it).
                Error::Tls { .. } => idempotent,
                Error::Unavailable { .. } => never_sent(&status) || idempotent,
                _ => false,
            };
            if !movable {
                return Err(error);
            }
            // A TLS failure says more than a member that then dropped the connection.
            if !matches!(last, Some(Error::Tls { .. })) {
                last = Some(error);
            }
        }
        Err(last.unwrap_or_else(|| storage("no members")))
    }

    /// Fetches an auth token for the URL's user from the first member that answers, starting
    /// at the current one. Without a user, does nothing.
    pub(crate) async fn authenticate(&self) -> Result<()> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let n = self.members.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let member = &self.members[(start + i) % n];
            let mut client = member.auth.clone();
            match client.authenticate(timed(auth.request())).await {
                Ok(reply) => {
                    member.answered();
                    return auth.keep(&reply.into_inner().token);
                }
                Err(status) => match self.error(&status, member) {
                    error @ (Error::Tls { .. } | Error::Unavailable { .. }) => last = Some(error),
                    error => return Err(error),
                },
            }
        }
        Err(last.unwrap_or_else(|| storage("no members")))
    }

    /// What a failed call to `member` becomes: [`Error::Tls`] for a failed handshake,
    /// [`Error::Denied`] for refused credentials or permissions, else [`status_error`].
    pub(crate) fn error(&self, status: &tonic::Status, member: &Member) -> Error {
        // Over TLS only. A connection refused or timed out is an unreachable member, whatever
        // it asked for on an earlier connection.
        let tls_failure = member
            .asked_without_cert
            .is_some()
            .then(|| tls::failure(status, member.asked_without_cert() && !never_sent(status)))
            .flatten();
        if let Some(reason) = tls_failure {
            return Error::Tls {
                member: member.host.clone(),
                reason,
            };
        }
        let user = self.auth.as_ref().map(|a| a.user.as_str());
        let prefix = String::from_utf8_lossy(&self.root);
        let reason = match auth::refusal(status) {
            None => return status_error(status),
            Some(Refusal::Credentials) => format!(
                "etcd user {:?}: wrong user name or password (the password comes from {})",
                user.unwrap_or_default(),
                auth::PASSWORD_ENV
            ),
            Some(Refusal::NoUser) => format!(
                "the cluster has authentication on: name an etcd user with ?user=NAME and give \
                 its password in {}",
                auth::PASSWORD_ENV
            ),
            Some(Refusal::AuthOff) => {
                return Error::Url {
                    url: self.location.clone(),
                    reason: "?user= names an etcd user, but the cluster has authentication \
                             off: leave ?user= out"
                        .to_owned(),
                }
            }
            Some(Refusal::Permission) => match user {
                Some(user) => format!(
                    "etcd user {user:?} may not read or write the key range of this database, \
                     the keys starting with {prefix:?}: grant one of its roles readwrite on \
                     that prefix (etcdctl role grant-permission ROLE readwrite --prefix \
                     {prefix:?})"
                ),
                None => format!(
                    "the cluster refuses access to the keys starting with {prefix:?}: name an \
                     etcd user with ?user=NAME"
                ),
            },
            Some(Refusal::Renew) => format!(
                "etcd refused the auth token of user {:?} again after fetching new ones",
                user.unwrap_or_default()
            ),
        };
        Error::Denied { reason }
    }
}
