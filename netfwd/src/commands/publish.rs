//! `netfwd publish` / `netfwd unpublish`: open or close a host port to an
//! endpoint while the network runs.

use anyhow::Result;

use crate::{
    config::{self, Proto},
    name::NetworkName,
    network::{self, PortRequest},
};

pub async fn exec_publish(
    name: &NetworkName,
    proto: Proto,
    (host_ip, host_port): (&str, u16),
    endpoint: &str,
    port: u16,
) -> Result<()> {
    let req = PortRequest {
        proto,
        host_ip: config::host_ip("--host-ip", host_ip)?,
        host_ports: host_port..=host_port,
        endpoint,
        port,
    };
    let p = network::publish(name, &req).await?;
    println!(
        "published {:?} port {}:{} to {}:{} on network {name}",
        p.proto, p.host_ip, p.host_port, p.ip, p.port
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
