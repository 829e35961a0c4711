//! `netfwd docker-plugin [--name NAME]`: Docker Engine's network driver
//! (see `docker`), serving until SIGTERM or SIGINT.

use anyhow::Result;

use crate::docker;

pub async fn exec(name: &str) -> Result<()> {
    let socket = docker::socket_path(name)?;
    docker::serve(&socket).await
}
