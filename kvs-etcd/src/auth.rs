//! etcd authentication: the user a URL's `?user=NAME` names, its password from
//! `KVS_ETCD_PASSWORD`, and the auth token every request carries, fetched at open and again
//! whenever the cluster says it expired.
//!
//! It holds the credentials and the token; `client` sends the requests and asks
//! [`Auth::renew`] for a new token when a call fails for an old one.

use std::sync::{Arc, RwLock};

use tokio::sync::Mutex;

use kvs_core::{Config, Error, Result};
use tonic::metadata::AsciiMetadataValue;

use crate::etcdserverpb::AuthenticateRequest;

/// The environment variable that holds the etcd user's password: never the URL, which shows
/// up in logs and `ps`.
pub const PASSWORD_ENV: &str = "KVS_ETCD_PASSWORD";

/// The URL parameter naming the user.
pub(crate) const PARAMS: &[&str] = &["user"];

/// The token requests carry (etcd's `token` metadata), shared by every channel of a client.
/// It adds nothing while there is none (a cluster without auth).
#[derive(Clone, Default)]
pub(crate) struct Token(Arc<RwLock<Option<AsciiMetadataValue>>>);

impl Token {
    pub(crate) fn get(&self) -> Option<AsciiMetadataValue> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, token: AsciiMetadataValue) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token);
    }
}

impl tonic::service::Interceptor for Token {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = self.get() {
            request.metadata_mut().insert("token", token);
        }
        Ok(request)
    }
}

/// The credentials of one client, and its token.
pub(crate) struct Auth {
    pub(crate) user: String,
    password: String,
    pub(crate) token: Token,
    /// Held while a token is fetched, so that threads that meet one expired token fetch one
    /// new token between them.
    renewing: Mutex<()>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// The credentials `config` names: `None` without `?user=`; the password from
    /// [`PASSWORD_ENV`], which must then be set.
    pub(crate) fn from_config(config: &Config) -> Result<Option<Auth>> {
        let Some(user) = config
            .params
            .iter()
            .find(|(k, _)| k == "user")
            .map(|(_, v)| v.clone())
        else {
            return Ok(None);
        };
        if user.is_empty() {
            return Err(config.error("?user= names no user"));
        }
        let Ok(password) = std::env::var(PASSWORD_ENV) else {
            return Err(Error::Denied {
                reason: format!(
                    "etcd user {user:?}: {PASSWORD_ENV} does not hold its password (it is not \
                     set, or not UTF-8); kvs reads the password from there, never from the URL"
                ),
            });
        };
        Ok(Some(Auth {
            user,
            password,
            token: Token::default(),
            renewing: Mutex::new(()),
        }))
    }

    /// The request that asks a member for a token.
    pub(crate) fn request(&self) -> AuthenticateRequest {
        AuthenticateRequest {
            name: self.user.clone(),
            password: self.password.clone(),
        }
    }

    /// Keeps a token the cluster handed out.
    pub(crate) fn keep(&self, token: &str) -> Result<()> {
        let value = AsciiMetadataValue::try_from(token).map_err(|_| Error::Denied {
            reason: format!("etcd handed user {:?} a token that is not ASCII", self.user),
        })?;
        self.token.set(value);
        Ok(())
    }

    /// Runs `fetch` to get a new token unless another caller already replaced `stale`, the
    /// token a failed call carried: one renewal for all the calls that met one expiry.
    pub(crate) async fn renew(
        &self,
        stale: Option<&AsciiMetadataValue>,
        fetch: impl std::future::Future<Output = Result<()>>,
    ) -> Result<()> {
        let _one = self.renewing.lock().await;
        if self.token.get().as_ref() != stale {
            return Ok(());
        }
        fetch.await
    }
}

/// What etcd says of a request whose token or credentials it refused, and whether a new
/// token fixes it.
pub(crate) enum Refusal {
    /// The token expired, or the auth store changed since it was made: fetch a new one and
    /// send the request again (etcd refused it before applying it).
    Renew,
    /// The user name or password is wrong.
    Credentials,
    /// The cluster requires a user and the request named none.
    NoUser,
    /// The user may not touch these keys.
    Permission,
    /// A user was named, and the cluster has authentication off.
    AuthOff,
}

/// The refusal a failed call's status stands for, if any. etcd tells them apart by message
/// only (etcd's own Go client does the same, `rpctypes.ErrorDesc`).
pub(crate) fn refusal(status: &tonic::Status) -> Option<Refusal> {
    let message = status.message();
    if message.contains("invalid auth token") || message.contains("revision of auth store is old") {
        Some(Refusal::Renew)
    } else if message.contains("authentication failed") {
        Some(Refusal::Credentials)
    } else if message.contains("user name is empty") {
        Some(Refusal::NoUser)
    } else if message.contains("authentication is not enabled") {
        Some(Refusal::AuthOff)
    } else if status.code() == tonic::Code::PermissionDenied
        || message.contains("permission denied")
    {
        Some(Refusal::Permission)
    } else {
        None
    }
}
