//! `netfwd publish` / `netfwd unpublish`: open or close a host port to an
//! endpoint while the network runs.

use anyhow::Result;

use crate::{config::Proto, name::NetworkName, network};

pub async fn exec_publish(
    name: &NetworkName,
    proto: Proto,
    host_port: u16,
    endpoint: &str,
    port: u16,
) -> Result<()> {
    let p = network::publish(name, proto, host_port, endpoint, port).await?;
    println!(
        "published {:?} port {} to {}:{} on network {name}",
        p.proto, p.host_port, p.ip, p.port
    );
    Ok(())
}

pub async fn exec_unpublish(name: &NetworkName, proto: Proto, host_port: u16) -> Result<()> {
    if network::unpublish(name, proto, host_port).await? {
        println!("unpublished {proto:?} port {host_port} of network {name}");
    } else {
        println!("{proto:?} port {host_port} is not published on network {name}; nothing to do");
    }
    Ok(())
}
