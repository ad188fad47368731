//! How one Redis server is reached: its credentials, database and transport (TCP, or TLS
//! verified against the webpki roots or a CA file, with an optional client certificate), and
//! every connection opened within a connect timeout and bounded by an I/O timeout.
//!
//! There is no way to accept a certificate without verifying it: `#insecure` URLs are
//! refused when parsed, and the redis crate's `tls-rustls-insecure` is not enabled.

use super::target::{ServerAddr, Target};
use redis::{
    ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisConnectionInfo, RedisError,
};
use std::path::PathBuf;
use std::time::Duration;

/// Where the TLS material is, as files (PEM): the CA that signs the servers' certificates
/// (none: the webpki roots), and a client certificate with its key for mutual TLS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) cert_file: Option<PathBuf>,
    pub(crate) key_file: Option<PathBuf>,
}

impl TlsFiles {
    fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.cert_file.is_none() && self.key_file.is_none()
    }
}

/// Opens connections to servers of one target: same credentials, database and transport.
#[derive(Clone)]
pub(super) struct Dialer {
    redis: RedisConnectionInfo,
    tls: bool,
    #[cfg(feature = "redis-tls")]
    certificates: Option<redis::TlsCertificates>,
}

impl Dialer {
    /// A dialer for the data nodes of `target`; TLS material is read from `files` now, so a
    /// missing or malformed file is reported when the storage is built.
    pub(super) fn new(target: &Target, files: &TlsFiles) -> Result<Self, String> {
        if !target.tls && !files.is_empty() {
            return Err("Redis TLS files are set but the Redis target is not TLS \
                 (use rediss://, or REDIS_TLS=true with the host, Sentinel or Cluster settings)"
                .into());
        }
        let mut redis = RedisConnectionInfo::default().set_db(target.db);
        if let Some(username) = &target.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &target.password {
            redis = redis.set_password(password);
        }
        let dialer = Self {
            redis,
            tls: target.tls,
            #[cfg(feature = "redis-tls")]
            certificates: tls::certificates(files)?,
        };
        #[cfg(not(feature = "redis-tls"))]
        if target.tls {
            return Err("Redis over TLS needs miso-client's `redis-tls` feature".into());
        }
        Ok(dialer)
    }

    /// A dialer to the Sentinels next to these data nodes: the same transport, but database
    /// 0 and no credentials (Sentinels have their own, and usually none).
    pub(super) fn for_sentinels(&self) -> Self {
        Self {
            redis: RedisConnectionInfo::default(),
            ..self.clone()
        }
    }

    /// The same dialer speaking RESP3, which Redis needs to push invalidations on the
    /// connection that asked for them (the near cache's tracking connection).
    pub(super) fn resp3(&self) -> Self {
        Self {
            redis: self
                .redis
                .clone()
                .set_protocol(redis::ProtocolVersion::RESP3),
            ..self.clone()
        }
    }

    /// A client for the server at `endpoint`.
    pub(super) fn client(&self, endpoint: &ServerAddr) -> redis::RedisResult<redis::Client> {
        let addr = match endpoint {
            ServerAddr::Unix(path) => ConnectionAddr::Unix(path.clone()),
            ServerAddr::Tcp(host, port) if self.tls => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            },
            ServerAddr::Tcp(host, port) => ConnectionAddr::Tcp(host.clone(), *port),
        };
        let info: ConnectionInfo = addr
            .into_connection_info()?
            .set_redis_settings(self.redis.clone());
        #[cfg(feature = "redis-tls")]
        if let (true, Some(certificates)) = (self.tls, &self.certificates) {
            return redis::Client::build_with_tls(info, certificates.clone());
        }
        redis::Client::open(info)
    }

    /// One connection to `endpoint`: connected and set up (`AUTH`, `SELECT`, TLS handshake)
    /// within `connect_timeout`, then every read and write bounded by `io_timeout`.
    pub(super) fn connect(
        &self,
        endpoint: &ServerAddr,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> redis::RedisResult<redis::Connection> {
        connect(&self.client(endpoint)?, connect_timeout, io_timeout)
    }
}

/// One connection through `client`, with the timeouts of [`Dialer::connect`].
pub(super) fn connect(
    client: &redis::Client,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let conn = client
        .get_connection_with_timeout(connect_timeout)
        .map_err(|error| hint_tls(client, error))?;
    conn.set_read_timeout(Some(io_timeout))?;
    conn.set_write_timeout(Some(io_timeout))?;
    Ok(conn)
}

/// A plaintext connection that the server closes during the handshake is most often one to
/// a TLS-only port: the error says so.
fn hint_tls(client: &redis::Client, error: RedisError) -> RedisError {
    let plaintext = matches!(client.get_connection_info().addr(), ConnectionAddr::Tcp(..));
    let closed = error.is_connection_dropped() && !error.is_connection_refusal();
    if plaintext && closed && !error.is_timeout() {
        RedisError::from((
            ErrorKind::Io,
            "the server closed the connection during the handshake (a TLS-only port? use rediss://)",
            error.to_string(),
        ))
    } else {
        error
    }
}

#[cfg(feature = "redis-tls")]
mod tls {
    use super::TlsFiles;
    use redis::{ClientTlsConfig, TlsCertificates};
    use std::path::Path;

    /// The TLS material `files` names, read now; `None` when there is none (the webpki
    /// roots verify the server, and no client certificate is shown).
    pub(super) fn certificates(files: &TlsFiles) -> Result<Option<TlsCertificates>, String> {
        let client_tls = client_identity(files)?;
        let root_cert = files
            .ca_file
            .as_deref()
            .map(|ca| read(ca, "CA"))
            .transpose()?;
        if client_tls.is_none() && root_cert.is_none() {
            return Ok(None);
        }
        let certificates = TlsCertificates {
            client_tls,
            root_cert,
        };
        // Parsed once here, so that a malformed file is reported by `build()`.
        let probe = redis::ConnectionAddr::TcpTls {
            host: "localhost".into(),
            port: 6379,
            insecure: false,
            tls_params: None,
        };
        redis::Client::build_with_tls(probe, certificates.clone())
            .map_err(|error| format!("the Redis TLS files are not usable: {error}"))?;
        Ok(Some(certificates))
    }

    /// The client certificate and key for mutual TLS, if both are named.
    fn client_identity(files: &TlsFiles) -> Result<Option<ClientTlsConfig>, String> {
        match (&files.cert_file, &files.key_file) {
            (Some(cert), Some(key)) => Ok(Some(ClientTlsConfig {
                client_cert: read(cert, "client certificate")?,
                client_key: read(key, "client key")?,
            })),
            (None, None) => Ok(None),
            _ => Err(
                "a Redis TLS client certificate needs both its certificate file \
                 and its key file"
                    .into(),
            ),
        }
    }

    /// A file's bytes; the error names the file (a path, never its contents). A CA or
    /// certificate file must hold a certificate: the redis crate would skip anything else
    /// and leave an empty trust store, which fails only when connecting.
    fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
        let shown = path.display();
        let bytes = std::fs::read(path)
            .map_err(|error| format!("cannot read the Redis TLS {what} file {shown}: {error}"))?;
        let pem = String::from_utf8_lossy(&bytes);
        if what != "client key" && !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(format!(
                "the Redis TLS {what} file {shown} holds no PEM certificate"
            ));
        }
        Ok(bytes)
    }
}
