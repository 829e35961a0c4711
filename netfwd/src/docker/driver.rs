//! The network driver's calls, each on netfwd's library: a Docker network is
//! `network::up`, a container's endpoint is `network::attach` (the code path
//! of `netfwd attach` and CNI ADD, split only where Docker moves the veth
//! into the container itself), `-p` is `network::publish`.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use anyhow::{Context as _, Result, anyhow};
use ipnet::Ipv4Net;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    ipam::Ipam,
    network::{self, DockerNetwork},
    protocol::{
        Activated, AddressSpaces, Capabilities, CreateEndpoint, CreateNetwork, EndpointCall,
        ExternalConnectivity, Failure, InterfaceName, IpamCapabilities, Join, Joined, MEDIA_TYPE,
        NetworkCall, OperInfo, PluginCall, PortBinding,
    },
    store::{DockerEndpoint, Store},
};
use crate::{
    config::{self, Network, Proto, Published},
    error::is_input_error,
    http::Response,
    input_error,
    name::NetworkName,
    netlink::{Netlink, parse_unicast_mac},
    network::{self as lib, AttachRequest, PortRequest, Rollback, Target},
    state::{self, State},
    subnet::Subnet,
};

/// Docker's key for `-p` bindings in `ProgramExternalConnectivity`.
const PORTMAP: &str = "com.docker.network.portmap";

/// The calls that change something, run one at a time by `worker` (each
/// takes netfwd's file locks, which block its thread).
pub struct Driver {
    store: Store,
    /// The cluster pools leased for Docker's IPAM calls.
    ipam: Ipam,
}

impl Driver {
    /// The driver, with the cluster pools it recorded held again.
    pub async fn new(store: Store) -> Driver {
        let ipam = Ipam::restore(&store).await;
        Driver { store, ipam }
    }

    /// Routes what the cluster members changed to, on the networks made on
    /// cluster pools.
    pub async fn follow_clusters(&mut self) {
        self.ipam.follow().await;
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What `netfwd daemon` does for a network, between calls.
    pub async fn maintained(&self, name: &NetworkName) -> Result<()> {
        let done = lib::maintain(name).await?;
        for ip in done.endpoints_gone {
            log::info!("{name}: endpoint {ip}'s container is gone; removed it");
        }
        Ok(())
    }

    /// The answer to one call: 200 with its result, 404 for a call this
    /// driver does not know, 400 for a bad request and 500 for a failure,
    /// each with `{"Err": …}`, which Docker shows the user.
    pub async fn call(&mut self, req: &PluginCall) -> Response {
        match self.dispatch(&req.call, &req.body).await {
            Ok(Some(body)) => success(&body),
            Ok(None) => failure(404, &format!("{}: not a call of this driver", req.call)),
            Err(e) => {
                let status = if is_input_error(&e) { 400 } else { 500 };
                log::warn!("{}: {e:#}", req.call);
                failure(status, &format!("{e:#}"))
            }
        }
    }

    async fn dispatch(&mut self, call: &str, body: &[u8]) -> Result<Option<Value>> {
        let store = &self.store;
        let answer = match call {
            "IpamDriver.RequestPool" => self.ipam.request_pool(store, &parse(call, body)?).await?,
            "IpamDriver.ReleasePool" => self.ipam.release_pool(store, &parse(call, body)?).await?,
            "IpamDriver.RequestAddress" => self.ipam.request_address(store, &parse(call, body)?)?,
            "IpamDriver.ReleaseAddress" => self.ipam.release_address(store, &parse(call, body)?)?,
            "NetworkDriver.CreateNetwork" => self.create_network(&parse(call, body)?).await?,
            "NetworkDriver.DeleteNetwork" => self.delete_network(&parse(call, body)?).await?,
            "NetworkDriver.CreateEndpoint" => self.create_endpoint(&parse(call, body)?).await?,
            "NetworkDriver.DeleteEndpoint" => self.delete_endpoint(&parse(call, body)?).await?,
            "NetworkDriver.Join" => self.join(&parse(call, body)?).await?,
            "NetworkDriver.Leave" => self.leave(&parse(call, body)?).await?,
            "NetworkDriver.ProgramExternalConnectivity" => {
                self.program_ports(&parse(call, body)?).await?
            }
            "NetworkDriver.RevokeExternalConnectivity" => {
                self.revoke_ports(&parse(call, body)?).await?
            }
            "NetworkDriver.EndpointOperInfo" => self.oper_info(&parse(call, body)?)?,
            _ => return Ok(None),
        };
        Ok(Some(answer))
    }

    async fn create_network(&mut self, req: &CreateNetwork) -> Result<Value> {
        let host = Netlink::current()?;
        let default_uplink = host.default_route_ifname().await?;
        // A pool this plugin's IPAM leased: the network is the cluster's.
        let leased = req
            .ipv4_data
            .first()
            .and_then(|pool| crate::subnet::parse::<Ipv4Net>(&pool.pool).ok())
            .filter(|subnet| self.ipam.cluster_file(*subnet).is_some());
        let cluster = leased.and_then(|subnet| self.ipam.cluster_file(subnet));
        let (docker, mut net) = network::from_request(req, default_uplink.as_deref(), cluster)?;
        if self.store.network(&req.network_id)?.is_some() {
            return Ok(json!({}));
        }
        let _lock = state::network_lock(&net.name)?;
        if State::load(&net.name)?.is_some() {
            return Err(input_error!(
                "NetworkID: netfwd already has a network {} (from another Docker network or a config); remove it first",
                net.name
            ));
        }
        if let Some(subnet) = leased {
            net.peers.extend(self.ipam.peers(subnet));
        }
        lib::up(&net).await?;
        let mut rollback = Rollback::new();
        let name = net.name.clone();
        rollback.push_async(
            "removing the network of a failed CreateNetwork",
            move || async move { lib::down(&name).await },
        );
        self.store.save_network(&docker)?;
        if let Some(subnet) = leased {
            self.ipam.bind(&self.store, subnet, &net.name)?;
        }
        rollback.commit();
        Ok(json!({}))
    }

    async fn delete_network(&mut self, req: &NetworkCall) -> Result<Value> {
        if let Some(docker) = self.store.network(&req.network_id)? {
            self.ipam.unbind(&self.store, &docker.name)?;
            lib::down(&docker.name).await?;
            self.store.remove_network(&req.network_id)?;
        }
        Ok(json!({}))
    }

    async fn create_endpoint(&self, req: &CreateEndpoint) -> Result<Value> {
        network::check_id("EndpointID", &req.endpoint_id)?;
        let (_, net) = self.network(&req.network_id)?;
        let iface = req.interface.as_ref().context("Interface: missing")?;
        // --mac-address: the veth's inner end is made with it at Join.
        let mac = match iface.mac_address.as_str() {
            "" => None,
            text => Some(parse_unicast_mac(text).ok_or_else(|| {
                input_error!("Interface.MacAddress: {text:?} is not a unicast MAC address")
            })?),
        };
        let ip = endpoint_addr("Interface.Address", &iface.address, &net.subnet)?;
        let ip6 = endpoint_ip6(&iface.address_ipv6, &net)?;
        self.store.save_endpoint(&DockerEndpoint {
            endpoint_id: req.endpoint_id.clone(),
            network_id: req.network_id.clone(),
            ip,
            ip6,
            mac,
            published: Vec::new(),
        })?;
        // Docker keeps the veth's MAC address (its own, or the one asked
        // for): nothing to answer.
        Ok(json!({}))
    }

    async fn delete_endpoint(&self, req: &EndpointCall) -> Result<Value> {
        if let Some(ep) = self.store.endpoint(&req.endpoint_id)? {
            // Leave may never have come (a failed Join): the veth, which
            // Docker moves back to the host under its first name, goes here.
            let (docker, _) = self.network(&req.network_id)?;
            lib::detach(&docker.name, &joined(&ep)).await?;
        }
        self.store.remove_endpoint(&req.endpoint_id)?;
        Ok(json!({}))
    }

    async fn join(&self, req: &Join) -> Result<Value> {
        let (docker, net) = self.network(&req.network_id)?;
        let ep = self.endpoint(&req.endpoint_id)?;
        let target = Target::Path(PathBuf::from(&req.sandbox_key));
        let attachment = lib::attach(
            &docker.name,
            &AttachRequest {
                target: &target,
                ip: Some(ep.ip),
                ip6: ep.ip6,
                ifname: "",
                container_id: Some(&req.endpoint_id),
                handoff: true,
                mac: ep.mac,
            },
        )
        .await?;
        Ok(json!(Joined {
            interface_name: InterfaceName {
                src_name: attachment.ifname,
                dst_prefix: docker.iface_prefix.clone(),
            },
            gateway: network::join_gateway(&docker, &net),
            gateway_ipv6: network::join_gateway6(&docker, &net),
            static_routes: network::join_routes(&net),
            disable_gateway_service: docker.internal,
        }))
    }

    async fn leave(&self, req: &EndpointCall) -> Result<Value> {
        let (docker, _) = self.network(&req.network_id)?;
        let ep = self.endpoint(&req.endpoint_id)?;
        lib::detach(&docker.name, &joined(&ep)).await?;
        Ok(json!({}))
    }

    async fn program_ports(&self, req: &ExternalConnectivity) -> Result<Value> {
        let (docker, _) = self.network(&req.network_id)?;
        let mut ep = self.endpoint(&req.endpoint_id)?;
        // A second call replaces the first's ports, which are withdrawn
        // here: the store keeps one set, all that Revoke withdraws.
        withdraw_ports(&docker.name, &mut ep).await?;
        self.store.save_endpoint(&ep)?;
        let bindings: Vec<PortBinding> = match req.options.get(PORTMAP) {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v.clone())
                .with_context(|| format!("Options.{PORTMAP}"))
                .map_err(|e| input_error!("{e:#}"))?,
        };
        if bindings.is_empty() {
            return Ok(json!({}));
        }
        if docker.internal {
            return Err(input_error!("-p: an --internal network publishes no ports"));
        }
        let mut rollback = Rollback::new();
        let mut published = Vec::new();
        let endpoint = ep.ip.to_string();
        for b in &bindings {
            let req = port_request(b, docker.host_binding, &endpoint)?;
            let p = lib::publish(&docker.name, &req).await?;
            let name = docker.name.clone();
            rollback.push_async("withdrawing a port of a failed -p", move || async move {
                lib::unpublish(&name, p.proto, p.host_port).await.map(drop)
            });
            published.push(p);
        }
        ep.published = published;
        self.store.save_endpoint(&ep)?;
        rollback.commit();
        Ok(json!({}))
    }

    async fn revoke_ports(&self, req: &EndpointCall) -> Result<Value> {
        let (docker, _) = self.network(&req.network_id)?;
        let Some(mut ep) = self.store.endpoint(&req.endpoint_id)? else {
            return Ok(json!({}));
        };
        withdraw_ports(&docker.name, &mut ep).await?;
        self.store.save_endpoint(&ep)?;
        Ok(json!({}))
    }

    /// The endpoint's ports (with those `-P` chose), under the bridge
    /// driver's key.
    fn oper_info(&self, req: &EndpointCall) -> Result<Value> {
        let published = self
            .store
            .endpoint(&req.endpoint_id)?
            .map(|ep| ep.published)
            .unwrap_or_default();
        let mut value = std::collections::BTreeMap::new();
        if !published.is_empty() {
            value.insert(PORTMAP.to_owned(), json!(port_bindings(&published)));
        }
        Ok(json!(OperInfo { value }))
    }

    /// The Docker network `id` and the netfwd network it is.
    fn network(&self, id: &str) -> Result<(DockerNetwork, Network)> {
        let docker = self
            .store
            .network(id)?
            .ok_or_else(|| input_error!("NetworkID: {id} is not a network of this driver"))?;
        let st = State::load(&docker.name)?
            .ok_or_else(|| anyhow!("network {} is gone from netfwd's state", docker.name))?;
        Ok((docker, st.network))
    }

    fn endpoint(&self, id: &str) -> Result<DockerEndpoint> {
        self.store
            .endpoint(id)?
            .ok_or_else(|| input_error!("EndpointID: {id} is not an endpoint of this driver"))
    }
}

/// The answer to a call that reads and changes nothing, given at once by the
/// accepting side, however long the driver's current call waits for a lock;
/// `None` for a call the driver answers.
pub fn answer_at_once(call: &str) -> Option<Response> {
    let answer = match call {
        "Plugin.Activate" => json!(Activated {
            implements: &["NetworkDriver", "IpamDriver"]
        }),
        "IpamDriver.GetCapabilities" => json!(IpamCapabilities {
            requires_mac_address: false,
            requires_request_replay: false,
        }),
        "IpamDriver.GetDefaultAddressSpaces" => json!(AddressSpaces {
            local_default_address_space: "netfwd",
            global_default_address_space: "netfwd-global",
        }),
        "NetworkDriver.GetCapabilities" => json!(Capabilities {
            scope: "local",
            connectivity_scope: "local",
        }),
        // Global-scope and discovery calls: nothing for a local driver.
        "NetworkDriver.AllocateNetwork"
        | "NetworkDriver.FreeNetwork"
        | "NetworkDriver.DiscoverNew"
        | "NetworkDriver.DiscoverDelete" => json!({}),
        _ => return None,
    };
    Some(success(&answer))
}

/// Withdraws the ports the endpoint has published; the caller saves it.
async fn withdraw_ports(name: &NetworkName, ep: &mut DockerEndpoint) -> Result<()> {
    for p in std::mem::take(&mut ep.published) {
        lib::unpublish(name, p.proto, p.host_port).await?;
    }
    Ok(())
}

/// The endpoint's attachment as `detach` finds it: by its endpoint ID.
fn joined(ep: &DockerEndpoint) -> Target {
    Target::Joined {
        id: ep.endpoint_id.clone(),
    }
}

/// Docker's `ADDRESS/PREFIX` of an endpoint (`10.77.0.2/24`): a host
/// address of `subnet`, with its prefix length.
fn endpoint_addr<N: Subnet>(field: &str, address: &str, subnet: &N) -> Result<N::Addr> {
    let iface: N = address
        .parse()
        .map_err(|_| input_error!("{field}: {address:?} is not an ADDRESS/PREFIX of {subnet}"))?;
    let ip = iface.addr();
    if iface.prefix_len() != subnet.prefix_len() || !subnet.is_host(ip) {
        return Err(input_error!(
            "{field}: {address} is not a host address of {subnet}"
        ));
    }
    Ok(ip)
}

/// The endpoint's IPv6 address in a dual-stack network (Docker gives one
/// with `--ipv6`), none in an IPv4-only one.
fn endpoint_ip6(address: &str, net: &Network) -> Result<Option<Ipv6Addr>> {
    let field = "Interface.AddressIPv6";
    match (address, &net.ipv6) {
        ("", _) => Ok(None),
        (_, Some(v6)) => endpoint_addr(field, address, &v6.subnet).map(Some),
        (_, None) => Err(input_error!(
            "{field}: {address} given, but the network has no IPv6 prefix"
        )),
    }
}

/// One `-p` binding as a port to publish to `endpoint`: a host port of 0
/// (`-P`) or a range (`-p 8000-8010:80`) takes the first free one; one that
/// names no host address takes the network's `host_binding`.
fn port_request<'a>(
    b: &PortBinding,
    host_binding: Ipv4Addr,
    endpoint: &'a str,
) -> Result<PortRequest<'a>> {
    let field = format!("-p {}:{}", b.host_port, b.port);
    let proto = match b.proto {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        other => {
            return Err(input_error!(
                "{field}: protocol {other}: tcp and udp are published"
            ));
        }
    };
    let last = b.host_port_end.max(b.host_port);
    let host_ip = match b.host_ip.as_str() {
        "" => host_binding,
        named => config::host_ip(&field, named)?,
    };
    Ok(PortRequest {
        proto,
        host_ip,
        host_ports: b.host_port..=last,
        endpoint,
        port: b.port,
    })
}

/// The ports an endpoint has, as Docker's `types.PortBinding`s.
fn port_bindings(published: &[Published]) -> Vec<PortBinding> {
    published
        .iter()
        .map(|p| PortBinding {
            proto: p.proto.number(),
            ip: p.ip.to_string(),
            port: p.port,
            host_ip: p.host_ip.to_string(),
            host_port: p.host_port,
            host_port_end: p.host_port,
        })
        .collect()
}

fn parse<T: DeserializeOwned>(call: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| input_error!("{call}: {e}"))
}

fn success(body: &Value) -> Response {
    Response {
        status: 200,
        content_type: MEDIA_TYPE,
        body: body.to_string().into_bytes(),
    }
}

pub(super) fn failure(status: u16, err: &str) -> Response {
    Response {
        status,
        content_type: MEDIA_TYPE,
        body: json!(Failure {
            err: err.to_owned()
        })
        .to_string()
        .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(host_ip: &str, host_port: u16, host_port_end: u16, proto: u8) -> PortBinding {
        PortBinding {
            proto,
            ip: String::new(),
            port: 80,
            host_ip: host_ip.to_owned(),
            host_port,
            host_port_end,
        }
    }

    #[test]
    fn each_p_form_becomes_its_port_request() {
        let every = Ipv4Addr::UNSPECIFIED;
        let req = port_request(&binding("", 8080, 8080, 6), every, "10.0.0.2").unwrap();
        assert_eq!((req.proto, req.host_ip), (Proto::Tcp, every));
        assert_eq!(req.host_ports, 8080..=8080);
        // -P sends 0; -p 8000-8010:80 a range.
        let req = port_request(&binding("", 0, 0, 17), every, "10.0.0.2").unwrap();
        assert_eq!((req.proto, req.host_ports), (Proto::Udp, 0..=0));
        let req = port_request(&binding("", 8000, 8010, 6), every, "10.0.0.2").unwrap();
        assert_eq!(req.host_ports, 8000..=8010);
        // -p 127.0.0.1:…, and a network whose host_binding_ipv4 says so.
        let req = port_request(&binding("127.0.0.1", 8080, 0, 6), every, "x").unwrap();
        assert_eq!(req.host_ip, Ipv4Addr::LOCALHOST);
        let req = port_request(&binding("", 8080, 0, 6), Ipv4Addr::LOCALHOST, "x").unwrap();
        assert_eq!(req.host_ip, Ipv4Addr::LOCALHOST);
    }

    #[test]
    fn a_p_netfwd_cannot_honour_is_refused_naming_it() {
        let every = Ipv4Addr::UNSPECIFIED;
        for (b, says) in [
            (binding("", 8080, 0, 132), "protocol 132"),
            (binding("192.0.2.1", 8080, 0, 6), "\"192.0.2.1\""),
            (binding("::1", 8080, 0, 6), "\"::1\""),
        ] {
            let err = format!("{:#}", port_request(&b, every, "x").err().unwrap());
            assert!(err.contains("-p 8080:80") && err.contains(says), "{err}");
        }
    }
}
