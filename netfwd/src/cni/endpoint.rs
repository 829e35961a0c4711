//! ADD, DEL, CHECK and GC: a container's endpoint on the network, made and
//! removed by the library's `attach`/`detach` under a lock per network, so a
//! runtime starting twenty containers at once gets twenty endpoints.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::{Value, json};

use super::{
    Env,
    conf::{NetConf, PortMapping},
    error::{CniError, CniResult, code},
    ipam, require_version,
};
use crate::{
    config::{self, Network, Proto},
    loader::{self, NetworkDatapath},
    name::NetworkName,
    netlink::{Netlink, format_mac},
    netns,
    network::{self, AttachRequest, PortRequest, Rollback, Target},
    state::{self, Attachment, State},
};

fn lib<T>(result: anyhow::Result<T>) -> CniResult<T> {
    result.map_err(|e| CniError::from_anyhow(&e))
}

/// ADD: the network on first use, an address from IPAM, the endpoint, its
/// published ports; undone in reverse if a step fails.
pub async fn add(conf: &NetConf, env: &Env, stdin: &[u8]) -> CniResult<Value> {
    let container_id = env.container_id()?;
    let ifname = env.ifname()?;
    let netns_path = env.netns()?;
    if !netns::is_netns_path(netns_path).unwrap_or(false) {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!(
                "CNI_NETNS: {} is not a network namespace",
                netns_path.display()
            ),
        ));
    }
    let net = conf.network()?;
    let _lock = lib(state::network_lock(&net.name))?;
    let created = ensure_network(&net).await?;
    let mut rollback = Rollback::new();
    if created {
        // The first ADD failed: no network is left half-used.
        let name = net.name.clone();
        rollback.push_async(
            "removing the network of a failed first ADD",
            move || async move { network::down(&name).await },
        );
    }
    let added = add_endpoint(
        conf,
        env,
        stdin,
        &net,
        (container_id, netns_path, ifname),
        &mut rollback,
    )
    .await?;
    rollback.commit();
    Ok(added)
}

/// ADD once the network is up: the endpoint, or the one made before. The
/// endpoint is the container's ID, its namespace and its interface name;
/// each step pushes its undo to `rollback`.
async fn add_endpoint(
    conf: &NetConf,
    env: &Env,
    stdin: &[u8],
    net: &Network,
    (container_id, netns_path, ifname): (&str, &std::path::Path, &str),
    rollback: &mut Rollback,
) -> CniResult<Value> {
    if let Some(known) = find(&net.name, container_id, ifname)? {
        return result(conf, net, &known, None).await;
    }
    let ipam_type = conf.ipam_type()?;
    let lease = match ipam_type {
        Some(plugin) => Some(ipam::lease(plugin, &env.path, stdin, net)?),
        None => None,
    };
    if let Some(plugin) = ipam_type {
        let (plugin, cni_path, stdin) = (plugin.to_owned(), env.path.clone(), stdin.to_owned());
        rollback.push("releasing the address of a failed ADD", move || {
            ipam::delegate(&plugin, "DEL", &cni_path, &stdin)
                .map(drop)
                .map_err(|e| anyhow::anyhow!("{e}"))
        });
    }
    let target = Target::Path(netns_path.to_owned());
    let req = AttachRequest {
        target: &target,
        ip: lease.as_ref().map(|l| l.ip),
        ip6: lease.as_ref().and_then(|l| l.ip6),
        ifname,
        container_id: Some(container_id),
        handoff: false,
        mac: None,
    };
    let attachment = lib(network::attach(&net.name, &req).await)?;
    // detach also drops the ports published so far.
    let (name, target) = (
        net.name.clone(),
        Target::Container {
            id: container_id.to_owned(),
            ifname: ifname.to_owned(),
        },
    );
    rollback.push_async("undoing a failed ADD", move || async move {
        network::detach(&name, &target).await.map(drop)
    });
    publish(net, &conf.runtime_config.port_mappings, attachment.ip).await?;
    result(conf, net, &attachment, lease.and_then(|l| l.dns)).await
}

/// DEL: best effort and idempotent; the endpoint (and its published ports)
/// if it is there, then the IPAM lease.
pub async fn del(conf: &NetConf, env: &Env, stdin: &[u8]) -> CniResult<()> {
    let target = Target::Container {
        id: env.container_id()?.to_owned(),
        ifname: env.ifname()?.to_owned(),
    };
    let net = conf.network()?;
    let _lock = lib(state::network_lock(&net.name))?;
    if lib(State::load(&net.name))?.is_some() {
        lib(network::detach(&net.name, &target).await)?;
    }
    if let Some(plugin) = conf.ipam_type()? {
        ipam::delegate(plugin, "DEL", &env.path, stdin)?;
    }
    Ok(())
}

/// CHECK: the interface, its address and default route in the container,
/// the host side with its program, and the datapath's entry all as ADD made
/// them; then the IPAM plugin's own check.
pub async fn check(conf: &NetConf, env: &Env, stdin: &[u8]) -> CniResult<()> {
    let container_id = env.container_id()?;
    let ifname = env.ifname()?;
    let netns_path = env.netns()?;
    let net = conf.network()?;
    let Some(st) = lib(State::load(&net.name))? else {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("network {} is not up", net.name),
        ));
    };
    if st.network != net {
        return Err(changed_config(&net));
    }
    let Some(a) = st.attached.iter().find(|a| a.is_cni(container_id, ifname)) else {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!(
                "container {container_id} ({ifname}) has no endpoint on {}",
                net.name
            ),
        ));
    };
    if !a.present() || !a.is_in(netns_path) {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("container {container_id}: its namespace is not the one attached"),
        ));
    }
    let problems = lib(endpoint_problems(&net, a).await)?;
    if !problems.is_empty() {
        return Err(CniError::new(
            code::DATAPATH_FAILED,
            format!("container {container_id}: {}", problems.join("; ")),
        ));
    }
    if let Some(plugin) = conf.ipam_type()? {
        ipam::delegate(plugin, "CHECK", &env.path, stdin)?;
    }
    Ok(())
}

/// GC (1.1): every CNI endpoint of the network the runtime no longer lists
/// goes, with its lease (an IPAM DEL for that container); then the IPAM
/// plugin's own GC if it speaks 1.1 (Debian 12's host-local does not).
pub async fn gc(conf: &NetConf, env: &Env, stdin: &[u8]) -> CniResult<()> {
    require_version(conf, (1, 1), "GC")?;
    let ipam_type = conf.ipam_type()?;
    let net = conf.network()?;
    // Without the list there is nothing to keep by, and taking its absence
    // for "none is valid" would remove every container of the network.
    let valid = conf.valid_attachments.clone().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "GC needs cni.dev/valid-attachments (an empty list removes every attachment)",
        )
    })?;
    let _lock = lib(state::network_lock(&net.name))?;
    if let Some(st) = lib(State::load(&net.name))? {
        // A network of that name up with another configuration is not the
        // runtime's: its endpoints are not in the runtime's list to judge.
        if st.network != net {
            return Err(changed_config(&net));
        }
        for a in &st.attached {
            // Only what a CNI ADD made: `netfwd attach` records no container,
            // Docker's endpoints are handed off.
            let Some(id) = a.container_id.as_ref().filter(|_| !a.handed_off) else {
                continue;
            };
            if valid
                .iter()
                .any(|v| &v.container_id == id && v.ifname == a.ifname)
            {
                continue;
            }
            let target = Target::Container {
                id: id.clone(),
                ifname: a.ifname.clone(),
            };
            lib(network::detach(&net.name, &target).await)?;
            if let Some(plugin) = ipam_type {
                let vars = [("CNI_CONTAINERID", id.as_str()), ("CNI_IFNAME", &a.ifname)];
                ipam::delegate_as(plugin, "DEL", &env.path, stdin, &vars)?;
            }
        }
    }
    if let Some(plugin) = ipam_type
        && ipam::speaks(plugin, &env.path, "1.1.0")?
    {
        ipam::delegate(plugin, "GC", &env.path, stdin)?;
    }
    Ok(())
}

/// The first ADD brings the network up (true); later ones find it as
/// configured.
async fn ensure_network(net: &Network) -> CniResult<bool> {
    match lib(State::load(&net.name))? {
        None => lib(network::up(net).await).map(|_| true),
        Some(st) if st.network == *net => Ok(false),
        Some(_) => Err(changed_config(net)),
    }
}

fn changed_config(net: &Network) -> CniError {
    CniError::new(
        code::INVALID_CONFIG,
        format!(
            "network {} is up with another configuration; remove its containers and run `netfwd down --name {}` first",
            net.name, net.name
        ),
    )
}

fn find(name: &NetworkName, container_id: &str, ifname: &str) -> CniResult<Option<Attachment>> {
    Ok(lib(State::load(name))?.and_then(|st| {
        st.attached
            .into_iter()
            .find(|a| a.is_cni(container_id, ifname))
    }))
}

/// The runtime's port mappings as published ports of the endpoint.
async fn publish(net: &Network, mappings: &[PortMapping], ip: Ipv4Addr) -> CniResult<()> {
    let endpoint = ip.to_string();
    for m in mappings {
        let proto = match m.protocol.as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            other => {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    format!("portMappings: protocol {other:?} (tcp and udp are)"),
                ));
            }
        };
        let host_ip = config::host_ip("portMappings: hostIP", &m.host_ip)
            .map_err(|e| CniError::new(code::UNSUPPORTED_FIELD, format!("{e:#}")))?;
        let req = PortRequest {
            proto,
            host_ip,
            host_ports: m.host_port..=m.host_port,
            endpoint: &endpoint,
            port: m.container_port,
        };
        lib(network::publish(&net.name, &req).await)?;
    }
    Ok(())
}

/// What differs between the endpoint and what ADD made.
async fn endpoint_problems(net: &Network, a: &Attachment) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let inner = Netlink::in_netns(&a.netns_path)?;
    let Some(link) = inner.link_by_name(&a.ifname).await? else {
        return Ok(vec![format!("no interface {}", a.ifname)]);
    };
    let want = Ipv4Net::new(a.ip, net.subnet.prefix_len())?;
    if !inner.ipv4_addresses(link.index).await?.contains(&want) {
        problems.push(format!("{} lacks {want}", a.ifname));
    }
    // A dual-stack endpoint holds its IPv6 address alone (its prefix is
    // routed via the gateway).
    if let Some(ip6) = a.ip6 {
        let want6 = IpNet::V6(Ipv6Net::new(ip6, 128)?);
        if !inner.addresses(link.index).await?.contains(&want6) {
            problems.push(format!("{} lacks {want6}", a.ifname));
        }
    }
    if inner.default_gateway().await? != Some(net.gateway) {
        problems.push(format!("no default route via {}", net.gateway));
    }
    let host_ifname = net.host_ifname(a.slot);
    let host = Netlink::current()?;
    if host.link_by_name(&host_ifname).await?.is_none() {
        problems.push(format!("no host interface {host_ifname}"));
    } else if loader::attached(&net.name, &host_ifname)?.is_none() {
        problems.push(format!("no program on {host_ifname}"));
    }
    let datapath = NetworkDatapath::open(&net.name)?;
    match datapath.endpoint_macs()?.get(&a.ip) {
        Some(mac) if *mac == link.mac => {}
        Some(_) => problems.push(format!("the datapath has another MAC for {}", a.ip)),
        None => problems.push(format!("the datapath has no entry for {}", a.ip)),
    }
    Ok(problems)
}

/// The result of an ADD, in the caller's version: both veth ends, the
/// address, the default route.
async fn result(
    conf: &NetConf,
    net: &Network,
    a: &Attachment,
    dns: Option<Value>,
) -> CniResult<Value> {
    let host_ifname = net.host_ifname(a.slot);
    let host_mac = lib(lib(Netlink::current())?.link_by_name(&host_ifname).await)?
        .map(|l| format_mac(l.mac))
        .unwrap_or_default();
    let inner = lib(Netlink::in_netns(&a.netns_path))?;
    let mac = lib(inner.link_by_name(&a.ifname).await)?
        .map(|l| format_mac(l.mac))
        .unwrap_or_default();
    let mut ips = vec![json!({
        "address": format!("{}/{}", a.ip, net.subnet.prefix_len()),
        "gateway": net.gateway.to_string(),
        "interface": 1,
    })];
    let mut routes = vec![json!({ "dst": "0.0.0.0/0", "gw": net.gateway.to_string() })];
    if let (Some(v6), Some(reach), Some(ip6)) = (&net.ipv6, net.ipv6_reach(), a.ip6) {
        ips.push(json!({
            "address": format!("{ip6}/{}", v6.subnet.prefix_len()),
            "gateway": v6.gateway.to_string(),
            "interface": 1,
        }));
        routes.push(json!({ "dst": reach.to_string(), "gw": v6.gateway.to_string() }));
    }
    if !conf.version_at_least(1, 0) {
        for ip in &mut ips {
            let family = if ip["address"].as_str().is_some_and(|a| a.contains(':')) {
                "6"
            } else {
                "4"
            };
            ip["version"] = json!(family);
        }
    }
    Ok(json!({
        "cniVersion": conf.cni_version,
        "interfaces": [
            { "name": host_ifname, "mac": host_mac },
            { "name": a.ifname, "mac": mac, "sandbox": a.netns_path.display().to_string() },
        ],
        "ips": ips,
        "routes": routes,
        "dns": dns.or_else(|| conf.dns.clone()).unwrap_or_else(|| json!({})),
    }))
}
