//! TLS for `etcds://` URLs: the rustls client configuration that the `ca`, `cert` and `key`
//! parameters name, the connector that opens a TLS connection to a member, and telling a
//! failed handshake apart from an unreachable member.
//!
//! It reads the files the URL names and nothing else. `client` gives each member's channel a
//! [`Connector`] made here; the connector notes when a member asked for a client certificate
//! that the URL does not give, since under TLS 1.3 the member's refusal comes after the
//! handshake, as an alert the client may never read (the member closes the connection while
//! the client writes its first request).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use kvs_core::{Config, Result};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};

/// The URL parameters of TLS.
pub(crate) const PARAMS: &[&str] = &["ca", "cert", "key"];

/// The TLS side of a client: one configuration for every member.
pub(crate) struct Tls {
    config: Arc<ClientConfig>,
    /// The client certificate, if the URL gives one.
    identity: Option<Arc<CertifiedKey>>,
}

impl Tls {
    /// The TLS configuration of `config`'s URL: `None` for `etcd://` (which refuses TLS
    /// parameters), else trusting the CA bundle `?ca=PATH` names (the system's roots without
    /// it), with the client certificate `?cert=PATH&key=PATH` names (both or neither).
    pub(crate) fn from_config(config: &Config) -> Result<Option<Tls>> {
        let param = |name: &str| {
            config
                .params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if config.scheme != "etcds" {
            if let Some(name) = PARAMS.iter().find(|name| param(name).is_some()) {
                return Err(config.error(format!(
                    "?{name}= is a TLS parameter: use etcds:// for a cluster reached over TLS"
                )));
            }
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        if let Some(path) = param("ca") {
            let pem = read(config, "ca", path)?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| config.error(format!("?ca={path}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| config.error(format!("?ca={path}: {e}")))?;
            }
            if roots.is_empty() {
                return Err(config.error(format!("?ca={path}: no PEM certificate in it")));
            }
        } else {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(config.error(
                    "no ?ca= given, and this system has no CA certificates to trust \
                     (install ca-certificates, or name the cluster's CA with ?ca=PATH)",
                ));
            }
        }
        let identity = match (param("cert"), param("key")) {
            (Some(cert), Some(key)) => {
                let certs: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(&read(config, "cert", cert)?)
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|e| config.error(format!("?cert={cert}: {e}")))?;
                if certs.is_empty() {
                    return Err(config.error(format!("?cert={cert}: no PEM certificate in it")));
                }
                let der = PrivateKeyDer::from_pem_slice(&read(config, "key", key)?)
                    .map_err(|e| config.error(format!("?key={key}: no private key in it: {e}")))?;
                let signing = provider
                    .key_provider
                    .load_private_key(der)
                    .map_err(|e| config.error(format!("?key={key}: {e}")))?;
                let identity = CertifiedKey::new(certs, signing);
                identity
                    .keys_match()
                    .map_err(|e| config.error(format!("?cert={cert} and ?key={key}: {e}")))?;
                Some(Arc::new(identity))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(config.error("?cert= needs ?key= (the certificate's private key)"))
            }
            (None, Some(_)) => {
                return Err(config.error("?key= needs ?cert= (the client certificate)"))
            }
        };
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config.error(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Tls {
            config: Arc::new(client),
            identity,
        }))
    }

    /// A connector to `host` (`HOST:PORT`), and the flag it raises when the member asks for a
    /// client certificate the URL does not give.
    pub(crate) fn connector(&self, host: &str, timeout: Duration) -> (Connector, Arc<AtomicBool>) {
        let asked = Arc::new(AtomicBool::new(false));
        let mut config = (*self.config).clone();
        config.client_auth_cert_resolver = Arc::new(ClientCert {
            identity: self.identity.clone(),
            asked_without: asked.clone(),
        });
        let connector = Connector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            host: host.to_owned(),
            timeout,
        };
        (connector, asked)
    }
}

/// The PEM file at `path` that parameter `name` names.
fn read(config: &Config, name: &str, path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| config.error(format!("?{name}={path}: cannot read it: {e}")))
}

/// Offers the URL's client certificate when a member asks for one, and notes a request that
/// finds none.
#[derive(Debug)]
struct ClientCert {
    identity: Option<Arc<CertifiedKey>>,
    asked_without: Arc<AtomicBool>,
}

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _issuers: &[&[u8]],
        _schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        if self.identity.is_none() {
            self.asked_without.store(true, Ordering::Relaxed);
        }
        self.identity.clone()
    }

    fn has_certs(&self) -> bool {
        self.identity.is_some()
    }
}

/// Opens a TCP connection to one member and runs the TLS handshake on it, for a tonic
/// channel (`Endpoint::connect_with_connector_lazy`).
#[derive(Clone)]
pub(crate) struct Connector {
    tls: tokio_rustls::TlsConnector,
    host: String,
    timeout: Duration,
}

type Io = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

impl tower_service::Service<http::Uri> for Connector {
    type Response = Io;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Io>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let (tls, host, timeout) = (self.tls.clone(), self.host.clone(), self.timeout);
        Box::pin(async move {
            let name = host
                .rsplit_once(':')
                .map_or(host.as_str(), |(name, _)| name)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let server = ServerName::try_from(name).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host}: {e}"))
            })?;
            // One bound for the TCP connect and the handshake: a member that stalls in either
            // is one that never got a request (a timed-out connect, to the caller).
            let connect = async {
                let tcp = tokio::net::TcpStream::connect(&host).await?;
                tcp.set_nodelay(true)?;
                tls.connect(server, tcp).await
            };
            let stream = tokio::time::timeout(timeout, connect)
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

/// The TLS failure under a failed call, if the call failed in a handshake or on an alert
/// rather than for want of a server, said for people: a rustls error in the status's chain of
/// sources, or the I/O error of kind `InvalidData` that rustls makes of an alert the member
/// sent. `asked_without` is whether the member asked for a client certificate that the URL
/// does not give: then a connection that the member closed is its refusal too.
pub(crate) fn failure(status: &tonic::Status, asked_without: bool) -> Option<String> {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(explain(tls));
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                return Some(explain(tls));
            }
            if io.kind() == std::io::ErrorKind::InvalidData {
                return Some(format!(
                    "{io}: the member refused the connection; if it requires client \
                     certificates (--client-cert-auth), give ?cert=PATH&key=PATH, signed by a CA \
                     it trusts"
                ));
            }
        }
        source = error.source();
    }
    // The connection failed under the call (hyper reports a closed connection as `Unknown` or
    // `Cancelled`, a refused one as `Unavailable`), not the server's answer.
    let connection = matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    ) && std::error::Error::source(status).is_some();
    (asked_without && connection).then(|| {
        format!(
            "the member asked for a client certificate, the URL gives none, and the member \
             closed the connection ({}): give ?cert=PATH&key=PATH (clusters run with \
             --client-cert-auth require one)",
            status.message()
        )
    })
}

/// A rustls error with what to check.
fn explain(error: &rustls::Error) -> String {
    use rustls::{AlertDescription as Alert, Error as E};
    let hint = match error {
        E::InvalidCertificate(_) => {
            "the member's certificate is not trusted: check ?ca= (the CA that signed the \
             members' certificates) and that the certificate names the host in the URL"
        }
        E::AlertReceived(Alert::CertificateRequired | Alert::HandshakeFailure) => {
            "the member requires a client certificate: give ?cert=PATH&key=PATH"
        }
        E::AlertReceived(Alert::BadCertificate | Alert::UnknownCA | Alert::CertificateUnknown) => {
            "the member does not accept the client certificate (?cert=): check which CA signed it"
        }
        E::AlertReceived(_) => "the member ended the handshake",
        _ => "check the member's TLS configuration against ?ca=, ?cert= and ?key=",
    };
    format!("{error}: {hint}")
}
