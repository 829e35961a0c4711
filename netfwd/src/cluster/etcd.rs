//! Connecting to etcd as `[cluster]` says: one of its URLs at a time (the
//! agent moves to the next when one fails, so a member cut off from the
//! others is left behind at once), TLS if given, and short timeouts, so an
//! unreachable etcd is noticed in seconds and the agent falls back to
//! retrying instead of hanging.

use std::time::Duration;

use anyhow::{Context as _, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::config::Cluster;

/// Longest wait for one request (a keep-alive, a claim, a read).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to `cluster.etcd[endpoint % len]`.
pub async fn connect(cluster: &Cluster, endpoint: usize) -> Result<Client> {
    let url = &cluster.etcd[endpoint % cluster.etcd.len()];
    let mut options = ConnectOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(CONNECT_TIMEOUT)
        // Above etcd's `--grpc-keepalive-min-time` (5 s), which answers
        // pings more frequent than that by closing the connection.
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        // A member cut off from the majority answers nothing rather than
        // stale reads.
        .with_require_leader(true);
    if let Some(tls) = &cluster.tls {
        let read = |path: &std::path::Path| {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        };
        let mut config = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(config);
    }
    Client::connect([url], Some(options))
        .await
        .with_context(|| format!("connecting to etcd at {url}"))
}
