//! Endpoints in namespaces netfwd did not name (seeds 003 and 004: a
//! container started with `--net=none`): a running process's
//! `/proc/PID/ns/net`, or any namespace file. The endpoint is the same as one
//! from the config; it is recorded in the network's state, so `up` keeps it
//! and `detach` removes exactly what `attach` added — the namespace, its `lo`
//! and anything else of the process's own are left as they were.

use std::{
    collections::HashSet,
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use anyhow::Result;

use super::{
    endpoint,
    install::{check_room, install_endpoint},
    publish,
    rollback::Rollback,
};
use crate::{
    config::{self, Network},
    input_error,
    loader::{self, NetworkDatapath},
    name::NetworkName,
    netlink::Netlink,
    netns,
    state::{self, Attachment, State},
    subnet::Subnet as _,
};

/// Which namespace to attach or detach.
#[derive(Clone, Debug)]
pub enum Target {
    Pid(u32),
    Path(PathBuf),
    /// Detach only: the endpoint with this address.
    Ip(Ipv4Addr),
    /// Detach only: the endpoint a CNI ADD made for this container and
    /// interface name.
    Container {
        id: String,
        ifname: String,
    },
    /// Detach only: the endpoint handed to Docker for its endpoint `id`.
    Joined {
        id: String,
    },
}

impl Target {
    fn netns_path(&self) -> Option<(PathBuf, Option<u32>)> {
        match self {
            Target::Pid(pid) => Some((PathBuf::from(format!("/proc/{pid}/ns/net")), Some(*pid))),
            Target::Path(path) => Some((path.clone(), None)),
            Target::Ip(_) | Target::Container { .. } | Target::Joined { .. } => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Pid(pid) => format!("--pid: process {pid}"),
            Target::Path(path) => format!("--netns-path: {}", path.display()),
            Target::Ip(ip) => format!("--ip: {ip}"),
            Target::Container { id, ifname } => format!("container {id} ({ifname})"),
            Target::Joined { id } => format!("Docker endpoint {id}"),
        }
    }
}

/// What to attach: the namespace, and what the endpoint in it gets.
pub struct AttachRequest<'a> {
    pub target: &'a Target,
    /// Default: the lowest free address.
    pub ip: Option<Ipv4Addr>,
    /// A dual-stack network's: default, the lowest free one.
    pub ip6: Option<Ipv6Addr>,
    pub ifname: &'a str,
    pub container_id: Option<&'a str>,
    /// Docker's `Join`: the veth's inner end is left in the host under a
    /// name of netfwd's (`ifname` is not used), for Docker to move into
    /// the namespace, rename and address.
    pub handoff: bool,
    /// The interface's MAC address (Docker's `--mac-address`); default: the
    /// kernel's random one.
    pub mac: Option<[u8; 6]>,
}

/// Plugs the namespace into network `name`; attaching the same namespace
/// again changes nothing.
pub async fn attach(name: &NetworkName, req: &AttachRequest<'_>) -> Result<Attachment> {
    let AttachRequest {
        target,
        ip,
        ip6,
        ifname,
        container_id,
        handoff,
        mac,
    } = *req;
    let host = Netlink::current()?;
    let _lock = state::lock()?;
    let mut st = State::load_own(name)?;
    let Some((path, pid)) = target.netns_path() else {
        return Err(input_error!("attach needs --pid or --netns-path"));
    };
    if !handoff {
        config::validate_ifname("--ifname", ifname)?;
    }
    // Docker makes the namespace after Join; its endpoint is known by ID.
    let netns = if handoff {
        None
    } else {
        if !netns::is_netns_path(&path).unwrap_or(false) {
            return Err(input_error!(
                "{}: no such network namespace",
                target.describe()
            ));
        }
        let netns_id = netns::id_of(&path)?;
        if netns_id == st.host_netns {
            return Err(input_error!(
                "{}: that is the host's own network namespace",
                target.describe()
            ));
        }
        Some((netns_id, netns::cookie_of(&path)?))
    };
    let same = |a: &&Attachment| match netns {
        Some(_) => a.is_in(&path),
        None => a.handed_off && a.container_id.as_deref() == container_id,
    };
    if let Some(known) = st.attached.iter().find(same) {
        // Another container's endpoint is not this one's to take (its
        // address, its ports).
        if known.container_id.as_deref() != container_id {
            let owner = match &known.container_id {
                Some(id) => format!("container {id}"),
                None => "netfwd attach".to_owned(),
            };
            return Err(input_error!(
                "{}: attached to network {name} already, by {owner}",
                target.describe()
            ));
        }
        let known = known.clone();
        install(&host, &st.network, &known).await?;
        return Ok(known);
    }
    let ip = choose_ip(&st, ip)?;
    let ip6 = choose_ip6(&st, ip6)?;
    let slot = st.unused_slot()?;
    let ifname = if handoff {
        st.network.peer_tmp_ifname(slot)
    } else {
        let inner = Netlink::in_netns(&path)?;
        if inner.link_by_name(ifname).await?.is_some() {
            return Err(input_error!(
                "--ifname: {} already has an interface {ifname}",
                path.display()
            ));
        }
        ifname.to_owned()
    };
    let attachment = Attachment {
        ip,
        ip6,
        slot,
        ifname,
        netns_path: path,
        pid,
        netns_id: netns.map(|(id, _)| id),
        netns_cookie: netns.map(|(_, cookie)| cookie),
        container_id: container_id.map(str::to_owned),
        handed_off: handoff,
        mac,
    };
    // Written down first: a crash half-way leaves something `down` finds.
    st.attached.push(attachment.clone());
    check_room(&NetworkDatapath::open(name)?, &st)?;
    st.save()?;
    let mut rollback = Rollback::new();
    let (net, gone) = (st.network.clone(), attachment.clone());
    rollback.push("undoing a failed attach", move || {
        let mut st = State::load_own(&net.name)?;
        st.attached.retain(|a| a != &gone);
        st.save()
    });
    let (net, gone) = (st.network.clone(), attachment.clone());
    rollback.push_async("undoing a failed attach", move || async move {
        uninstall(&Netlink::current()?, &net, &gone).await
    });
    install(&host, &st.network, &attachment).await?;
    rollback.commit();
    Ok(attachment)
}

/// Removes what `attach` added for the target, and the ports published to
/// it; Ok if it was not attached.
pub async fn detach(name: &NetworkName, target: &Target) -> Result<Option<Attachment>> {
    let host = Netlink::current()?;
    let _lock = state::lock()?;
    let mut st = State::load_own(name)?;
    let found = match target {
        Target::Ip(ip) => st.attached.iter().position(|a| a.ip == *ip),
        Target::Pid(pid) => st.attached.iter().position(|a| a.pid == Some(*pid)),
        Target::Path(path) => st
            .attached
            .iter()
            .position(|a| &a.netns_path == path || a.is_in(path)),
        Target::Container { id, ifname } => st.attached.iter().position(|a| a.is_cni(id, ifname)),
        Target::Joined { id } => st
            .attached
            .iter()
            .position(|a| a.handed_off && a.container_id.as_deref() == Some(id)),
    };
    let Some(index) = found else {
        return Ok(None);
    };
    let gone = st.attached.remove(index);
    let ports_withdrawn = st.withdraw_orphan_ports();
    // Written down first: a crash before the veth goes leaves one that no
    // attachment claims, which the next `up` removes as stale; the other
    // way round, it would plug the container in again.
    st.save()?;
    if ports_withdrawn {
        publish::apply(&st)?;
    }
    uninstall(&host, &st.network, &gone).await?;
    Ok(Some(gone))
}

/// The requested address if it is free, else the lowest free one.
fn choose_ip(st: &State, wanted: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
    let net = &st.network;
    let taken = |ip: Ipv4Addr| {
        ip == net.gateway
            || net.endpoints.iter().any(|e| e.ip == ip)
            || st.attached.iter().any(|a| a.ip == ip)
    };
    match wanted {
        Some(ip) if !net.subnet.is_host(ip) => Err(input_error!(
            "--ip: {ip} is not a host address of subnet {}",
            net.subnet
        )),
        Some(ip) if taken(ip) => Err(input_error!("--ip: {ip} is in use")),
        Some(ip) => Ok(ip),
        None => net
            .subnet
            .hosts()
            .find(|ip| !taken(*ip))
            .ok_or_else(|| input_error!("--ip: subnet {} has no free address", net.subnet)),
    }
}

/// A dual-stack network's address for a new endpoint: `wanted`, checked,
/// or the lowest free one; none in an IPv4-only network.
fn choose_ip6(st: &State, wanted: Option<Ipv6Addr>) -> Result<Option<Ipv6Addr>> {
    let Some(v6) = st.network.ipv6 else {
        return match wanted {
            Some(_) => Err(input_error!(
                "--ip6: network {} has no IPv6 (network.subnet6)",
                st.network.name
            )),
            None => Ok(None),
        };
    };
    let taken: HashSet<Ipv6Addr> = std::iter::once(v6.gateway)
        .chain(st.network.endpoints.iter().filter_map(|e| e.ip6))
        .chain(st.attached.iter().filter_map(|a| a.ip6))
        .collect();
    match wanted {
        Some(ip6) if !v6.subnet.is_host(ip6) => Err(input_error!(
            "--ip6: {ip6} is not a host address of {}",
            v6.subnet
        )),
        Some(ip6) if taken.contains(&ip6) => Err(input_error!("--ip6: {ip6} is in use")),
        Some(ip6) => Ok(Some(ip6)),
        None => config::lowest_free_ip6(v6.subnet, &taken).map(Some),
    }
}

/// Makes the attached endpoint and its datapath entries (again).
pub async fn install(host: &Netlink, net: &Network, a: &Attachment) -> Result<()> {
    let mut datapath = NetworkDatapath::load(net)?;
    let facts = endpoint::ensure((host, None), net, &endpoint::Placement::attached(a)).await?;
    install_endpoint(net, &mut datapath, (a.ip, a.ip6), &facts)?;
    Ok(())
}

/// Removes the attached endpoint's veth (its inner end, address and routes
/// go with it) and datapath entries.
pub async fn uninstall(host: &Netlink, net: &Network, a: &Attachment) -> Result<()> {
    let host_ifname = net.host_ifname(a.slot);
    loader::unpin_link(&net.name, &host_ifname)?;
    // The pins may be gone already (a `down` raced us, or never made).
    let mut datapath = NetworkDatapath::open(&net.name).ok();
    if let Some(link) = host.link_by_name(&host_ifname).await? {
        host.delete_link(link.index).await?;
        if let Some(datapath) = &mut datapath {
            datapath.forget_counters(link.index)?;
        }
    }
    match &mut datapath {
        Some(datapath) => datapath.forget_endpoint(a.ip, a.ip6),
        None => Ok(()),
    }
}
