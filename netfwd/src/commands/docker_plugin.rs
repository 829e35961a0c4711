//! `netfwd docker-plugin [--name NAME] [--metrics ADDR]`: Docker Engine's
//! network driver (see `docker`), serving until SIGTERM or SIGINT, and its
//! networks' metrics if asked.

use std::net::SocketAddr;

use anyhow::Result;

use crate::{docker, metrics};

pub async fn exec(name: &str, metrics_addr: Option<SocketAddr>) -> Result<()> {
    let socket = docker::socket_path(name)?;
    if let Some(addr) = metrics_addr {
        let listener = metrics::bind(addr).await?;
        log::info!("serving metrics on http://{addr}/metrics");
        tokio::spawn(metrics::serve(listener, metrics::Scope::Docker));
    }
    docker::serve(&socket).await
}
