//! Bringing a network up and down: validate against what exists, write down
//! what will be made, make it, and on failure of a fresh network remove it.
//! Teardown keeps going past failures and reports them all.

mod attach;
mod endpoint;
mod maintain;
mod preflight;
mod publish;
mod remotes;

pub use attach::{AttachRequest, Target, attach, detach};
pub use maintain::{Maintained, maintain};
pub use publish::{publish, unpublish};

use std::{collections::HashSet, path::PathBuf};

use anyhow::{Context as _, Result, bail};
use netfwd_common::{
    maps::{EndpointEntry, NETWORK_NO_ICC, NetworkConfig},
    nat::{NatConfig, PublishKey, PublishTarget},
};
use serde::Serialize;

use crate::{
    cgroup,
    config::{self, Mode, Network, Peer, Published},
    loader::{
        self, AttachOutcome, Datapath, DatapathMaps,
        nat_table::{self, NatTable as _},
    },
    name::NetworkName,
    netlink::{Netlink, Route},
    netns, procnet,
    state::{self, Attachment, State},
};

/// What `up` did to each endpoint.
#[derive(Debug, Serialize)]
pub struct UpReport {
    pub network: NetworkName,
    pub endpoints: Vec<EndpointReport>,
    pub uplink: Option<UplinkReport>,
    pub removed: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct UplinkReport {
    pub ifname: String,
    pub addr: String,
    pub program: AttachOutcome,
    pub mode: Mode,
}

#[derive(Debug, Serialize)]
pub struct EndpointReport {
    pub netns: String,
    pub ip: String,
    pub host_ifname: String,
    pub created: bool,
    pub program: AttachOutcome,
    /// Where the datapath runs on its veth (XDP falls back to TC).
    pub mode: Mode,
}

/// Creates or completes the network. Running it again with the same config
/// changes nothing.
pub async fn up(net: &Network) -> Result<UpReport> {
    let host = Netlink::current()?;
    let here = netns::Here::current()?;
    let _lock = state::lock()?;
    let previous = State::load(&net.name)?;
    preflight::check(net, previous.as_ref(), &here).await?;

    let fresh = previous.is_none();
    let old_peers = previous
        .as_ref()
        .map(|p| p.network.peers.clone())
        .unwrap_or_default();
    let mut st = previous.unwrap_or_else(|| State {
        network: net.clone(),
        host_netns: here.id,
        host_netns_cookie: Some(here.cookie),
        created_netns: Vec::new(),
        attached: Vec::new(),
        published: Vec::new(),
    });
    st.network = net.clone();
    // A state of an older netfwd lacks it; this is its namespace (checked).
    st.host_netns_cookie = Some(here.cookie);
    st.save()?;
    match apply(&host, &here, net, &old_peers, &mut st).await {
        Ok(report) => Ok(report),
        Err(err) if fresh => {
            // Leave nothing of a network that never came up.
            if let Err(cleanup) =
                teardown(Some(&host), &net.name, &st.created_netns, &net.peers).await
            {
                log::warn!("cleaning up after a failed up: {cleanup:#}");
            }
            Err(err)
        }
        Err(err) => Err(err),
    }
}

async fn apply(
    host: &Netlink,
    here: &netns::Here,
    net: &Network,
    old_peers: &[Peer],
    st: &mut State,
) -> Result<UpReport> {
    let mut datapath = load_datapath(net)?;
    let mut maps = DatapathMaps::open(&loader::pin_dir(&net.name))?;
    maps.set_network(NetworkConfig {
        gateway: net.gateway.octets(),
        subnet: net.subnet.addr().octets(),
        prefix_len: net.subnet.prefix_len(),
        flags: if net.icc { 0 } else { NETWORK_NO_ICC },
        _pad: [0; 2],
    })?;
    let removed = remove_stale(host, net, st, &mut maps).await?;

    let mut endpoints = Vec::with_capacity(net.endpoints.len());
    for ep in &net.endpoints {
        let facts = endpoint::ensure_named(host, net, ep, st).await?;
        let (program, mode) = install_endpoint(net, &mut datapath, &mut maps, ep.ip, &facts)?;
        endpoints.push(EndpointReport {
            netns: ep.netns.clone(),
            ip: ep.ip.to_string(),
            host_ifname: net.host_ifname(ep.ip),
            created: facts.created,
            program,
            mode,
        });
    }
    for a in &st.attached {
        let facts = endpoint::ensure(host, net, &endpoint::Placement::attached(a)).await?;
        install_endpoint(net, &mut datapath, &mut maps, a.ip, &facts)?;
    }
    let uplink = match &net.uplink {
        Some(ifname) => Some(setup_uplink(host, net, ifname, &mut datapath, &mut maps).await?),
        None => {
            maps.set_nat_config(nat_config(net, 0, [0; 4]))?;
            None
        }
    };
    apply_published(net, &st.all_published(), &mut datapath, &mut maps)?;
    setup_lan(host, net, old_peers, &mut datapath, &mut maps).await?;
    remotes::refresh_all(host, here, Some(net)).await?;
    st.save()?;
    Ok(UpReport {
        network: net.name.clone(),
        endpoints,
        uplink,
        removed,
    })
}

/// Enters a set-up endpoint into the datapath: its counters, its forwarding
/// entry, its programs; returns the TC program's outcome and the mode that
/// runs on its veth.
fn install_endpoint(
    net: &Network,
    datapath: &mut Datapath,
    maps: &mut DatapathMaps,
    ip: std::net::Ipv4Addr,
    facts: &endpoint::EndpointFacts,
) -> Result<(AttachOutcome, Mode)> {
    let host_ifname = net.host_ifname(ip);
    maps.ensure_counters(facts.host_ifindex)?;
    // The program first: until it runs, the endpoint's packets meet the
    // host stack unchecked (no anti-spoofing, no NAT), and with forwarding
    // on they would be routed out with their private source. Without its
    // entry the program drops them as spoofed, which is safe.
    let program = datapath.attach_from_endpoint(&host_ifname)?;
    maps.set_endpoint(
        ip,
        EndpointEntry {
            host_ifindex: facts.host_ifindex,
            mac: facts.mac,
            host_mac: facts.host_mac,
        },
    )?;
    if net.uplink.is_some() || net.lan.is_some() {
        procnet::enable_forwarding(&host_ifname)?;
    }
    maps.set_xdp_target(facts.host_ifindex, facts.xdp_ready)?;
    let mode = xdp_in_front(
        net,
        datapath,
        &host_ifname,
        facts.host_xdp_prog_id,
        Datapath::attach_xdp_from_endpoint,
    )?;
    Ok((program, mode))
}

/// `mode = "xdp"`: the XDP program in front of the TC one on `ifname`, or,
/// where it cannot attach, TC alone with a one-line warning. TC mode: no
/// XDP program of ours there. Returns the mode `ifname` runs in.
fn xdp_in_front(
    net: &Network,
    datapath: &mut Datapath,
    ifname: &str,
    running: Option<u32>,
    attach: fn(&mut Datapath, &str, Option<u32>) -> Result<AttachOutcome>,
) -> Result<Mode> {
    if net.mode != Mode::Xdp {
        loader::unpin_xdp_link(&net.name, ifname)?;
        return Ok(Mode::Tc);
    }
    match attach(datapath, ifname, running) {
        Ok(_) => Ok(Mode::Xdp),
        Err(e) => {
            log::warn!(
                "{ifname}: XDP cannot attach ({}); TC only there",
                e.root_cause()
            );
            Ok(Mode::Tc)
        }
    }
}

/// Attaches reverse NAT to the uplink and points the datapath's NAT at it.
async fn setup_uplink(
    host: &Netlink,
    net: &Network,
    ifname: &str,
    datapath: &mut Datapath,
    maps: &mut DatapathMaps,
) -> Result<UplinkReport> {
    let link = host
        .link_by_name(ifname)
        .await?
        .with_context(|| format!("uplink {ifname} vanished"))?;
    let addr = preflight::uplink_address(host, ifname, link.index).await?;
    if net.mtu > link.mtu {
        log::warn!(
            "network {}: endpoint MTU {} is above uplink {ifname}'s {}: larger datagrams leave \
             fragmented (translated first), or with DF set are answered \
             \"fragmentation needed\"",
            net.name,
            net.mtu,
            link.mtu
        );
    }
    maps.ensure_counters(link.index)?;
    // Config before program: the program passes everything while NAT is off.
    maps.set_nat_config(nat_config(net, link.index, addr.octets()))?;
    let program = datapath.attach_from_uplink(ifname)?;
    let mode = xdp_in_front(
        net,
        datapath,
        ifname,
        link.xdp_prog_id,
        Datapath::attach_xdp_from_uplink,
    )?;
    Ok(UplinkReport {
        ifname: ifname.to_owned(),
        addr: addr.to_string(),
        program,
        mode,
    })
}

/// Routes to the peer hosts' subnets, the programs on the LAN and the
/// interface trusted sources arrive on.
async fn setup_lan(
    host: &Netlink,
    net: &Network,
    old_peers: &[Peer],
    datapath: &mut Datapath,
    maps: &mut DatapathMaps,
) -> Result<()> {
    for gone in old_peers.iter().filter(|p| !net.peers.contains(p)) {
        host.delete_route(&peer_route(gone)).await?;
    }
    if let Some(lan) = &net.lan
        && net.uplink.as_ref() != Some(lan)
    {
        let link = host
            .link_by_name(lan)
            .await?
            .with_context(|| format!("LAN interface {lan} vanished"))?;
        maps.ensure_counters(link.index)?;
        datapath.attach_from_uplink(lan)?;
    }
    // Trusted sources come in where the peers are: the LAN, else the
    // uplink. Arriving anywhere else, their address proves nothing.
    let trusted = match net.lan.as_ref().or(net.uplink.as_ref()) {
        Some(ifname) => host.link_by_name(ifname).await?.map_or(0, |l| l.index),
        None => 0,
    };
    maps.set_trusted_iface(trusted)?;
    for peer in &net.peers {
        host.replace_route(&peer_route(peer))
            .await
            .with_context(|| format!("routing {} via {}", peer.subnet, peer.via))?;
    }
    Ok(())
}

fn peer_route(peer: &Peer) -> Route {
    Route {
        dst: peer.subnet.addr(),
        prefix_len: peer.subnet.prefix_len(),
        gateway: Some(peer.via),
        oif: None,
        src: None,
        scope_link: false,
        onlink: false,
    }
}

/// Points the datapath at the published ports. The host's own connections
/// to them go through a socket hook on its cgroup, scoped to this namespace.
fn apply_published(
    net: &Network,
    published: &[Published],
    datapath: &mut Datapath,
    maps: &mut DatapathMaps,
) -> Result<()> {
    maps.set_published(&published_entries(published))?;
    if published.is_empty() {
        return loader::unpin_connect4(&net.name);
    }
    let cgroup = match &net.host_cgroup {
        Some(path) => path.clone(),
        None => match cgroup::v2_root()? {
            Some(root) => root,
            None => {
                log::warn!(
                    "no cgroup v2 hierarchy: the host's own connections to published ports are not translated"
                );
                return Ok(());
            }
        },
    };
    maps.set_host_netns(netns::cookie()?)?;
    datapath.attach_connect4(&cgroup)?;
    Ok(())
}

/// The `PUBLISHED` entries of published ports.
fn published_entries(published: &[Published]) -> Vec<(PublishKey, PublishTarget)> {
    published
        .iter()
        .map(|p| {
            (
                PublishKey {
                    port: p.host_port.to_be_bytes(),
                    proto: p.proto.number(),
                    _pad: 0,
                },
                PublishTarget {
                    addr: p.ip.octets(),
                    port: p.port.to_be_bytes(),
                    _pad: [0; 2],
                },
            )
        })
        .collect()
}

fn nat_config(net: &Network, uplink_ifindex: u32, uplink_addr: [u8; 4]) -> NatConfig {
    NatConfig {
        uplink_ifindex,
        uplink_addr,
        port_min: net.nat.port_min,
        port_max: net.nat.port_max,
        timeouts: net.nat.timeouts,
    }
}

/// Removes what an earlier `up` made for endpoints that are no longer in the
/// config. Returns the host-side interfaces it removed.
async fn remove_stale(
    host: &Netlink,
    net: &Network,
    st: &mut State,
    maps: &mut DatapathMaps,
) -> Result<Vec<String>> {
    // Attached endpoints whose process is gone went with their namespace;
    // their ports go too (`up` applies the published set afterwards).
    st.attached.retain(Attachment::present);
    st.withdraw_orphan_ports();
    let wanted_ips: HashSet<_> = net
        .endpoints
        .iter()
        .map(|e| e.ip)
        .chain(st.attached.iter().map(|a| a.ip))
        .collect();
    let wanted_ifnames: HashSet<String> =
        wanted_ips.iter().map(|ip| net.host_ifname(*ip)).collect();
    let mut wanted_pins = wanted_ifnames.clone();
    wanted_pins.extend(net.uplink.iter().cloned());
    wanted_pins.extend(net.lan.iter().cloned());
    let wanted_netns: HashSet<&str> = net.endpoints.iter().map(|e| e.netns.as_str()).collect();

    let mut removed = Vec::new();
    let mut live_ifindexes = HashSet::new();
    for link in our_links(host, &net.name).await? {
        if wanted_ifnames.contains(&link.name) {
            live_ifindexes.insert(link.index);
            continue;
        }
        loader::unpin_link(&net.name, &link.name)?;
        host.delete_link(link.index).await?;
        removed.push(link.name);
    }
    for ifname in loader::pinned_links(&net.name)? {
        if !wanted_pins.contains(&ifname) {
            loader::unpin_link(&net.name, &ifname)?;
        }
    }
    for ip in maps.endpoints()?.into_keys() {
        if !wanted_ips.contains(&ip) {
            maps.remove_endpoint(ip)?;
        }
    }
    for external in net.uplink.iter().chain(&net.lan) {
        if let Some(link) = host.link_by_name(external).await? {
            live_ifindexes.insert(link.index);
        }
    }
    for ifindex in maps.counter_ifindexes()? {
        if !live_ifindexes.contains(&ifindex) {
            maps.remove_counters(ifindex)?;
        }
    }
    let (keep, gone): (Vec<String>, Vec<String>) = std::mem::take(&mut st.created_netns)
        .into_iter()
        .partition(|ns| wanted_netns.contains(ns.as_str()));
    st.created_netns = keep;
    for ns in gone {
        netns::delete(&ns)?;
    }
    st.save()?;
    Ok(removed)
}

/// Every link in the host namespace named by this network.
async fn our_links(host: &Netlink, network: &NetworkName) -> Result<Vec<crate::netlink::Link>> {
    let prefixes = config::ifname_prefixes(network);
    Ok(host
        .links()
        .await?
        .into_iter()
        .filter(|l| prefixes.iter().any(|p| l.name.starts_with(p.as_str())))
        .collect())
}

/// Removes everything netfwd made for the network `name` in this namespace:
/// pins (which detaches the programs), veths, the namespaces it created, its
/// state. Ok if there was nothing; with no record (a crash lost it) it still
/// sweeps what the name alone identifies. An orphan — a network whose host
/// namespace is gone (see [`State::is_orphan`]), and its veths and routes with
/// it — is removed from any namespace: its pins, the namespaces it created,
/// its state.
pub async fn down(name: &NetworkName) -> Result<()> {
    let host = Netlink::current()?;
    let here = netns::Here::current()?;
    let _lock = state::lock()?;
    let (created_netns, peers) = match State::load(name)? {
        Some(st) if !st.lives_in(&here) => {
            if !st.is_orphan()? {
                bail!(crate::error::InputError(format!(
                    "network {name} lives in another network namespace; run `netfwd --netns <that namespace> down` there"
                )));
            }
            teardown(None, name, &st.created_netns, &[]).await?;
            return prune_uplink_nat();
        }
        Some(st) => {
            forget_flows(&st.network)?;
            (st.created_netns, st.network.peers)
        }
        None => (Vec::new(), Vec::new()),
    };
    teardown(Some(&host), name, &created_netns, &peers).await?;
    prune_uplink_nat()?;
    // The other networks stop isolating themselves from this one.
    remotes::refresh_all(&host, &here, None).await
}

/// Removes the network's routes to peers and its veths from `host` (`None`
/// for an orphan: they went with its namespace), its pins, the namespaces
/// it created and its state, going on past failures.
async fn teardown(
    host: Option<&Netlink>,
    name: &NetworkName,
    created_netns: &[String],
    peers: &[Peer],
) -> Result<()> {
    let mut failures = Vec::new();
    if let Some(host) = host {
        for peer in peers {
            if let Err(e) = host.delete_route(&peer_route(peer)).await {
                failures.push(format!("{e:#}"));
            }
        }
    }
    if let Err(e) = loader::remove_pins(name) {
        failures.push(format!("{e:#}"));
    }
    if let Some(host) = host {
        match our_links(host, name).await {
            Ok(links) => {
                for link in links {
                    if let Err(e) = host.delete_link(link.index).await {
                        failures.push(format!("deleting {}: {e:#}", link.name));
                    }
                }
            }
            Err(e) => failures.push(format!("listing links: {e:#}")),
        }
    }
    for ns in created_netns {
        if let Err(e) = netns::delete(ns) {
            failures.push(format!("{e:#}"));
        }
    }
    if failures.is_empty() {
        return State::remove(name);
    }
    Err(anyhow::anyhow!(failures.join("; ")))
        .with_context(|| format!("tearing down network {name}"))
}

/// Loads `net`'s datapath in this namespace, its NAT table the one of its
/// uplink (shared by every network behind that uplink).
fn load_datapath(net: &Network) -> Result<Datapath> {
    let shared_nat = match &net.uplink {
        Some(uplink) => Some(loader::uplink_nat_dir(netns::cookie()?, uplink)),
        None => None,
    };
    Datapath::load(&net.name, net.nat.max_flows, shared_nat.as_deref())
}

/// Removes the flows of `net`'s endpoints from its uplink's shared NAT
/// table (the other networks' flows stay), before its pins go.
fn forget_flows(net: &Network) -> Result<()> {
    if net.uplink.is_none() {
        return Ok(());
    }
    let Ok(mut maps) = DatapathMaps::open(&loader::pin_dir(&net.name)) else {
        return Ok(());
    };
    for (key, _) in nat_table::of_subnet(maps.nat_entries()?, &net.subnet) {
        maps.remove(&key)?;
    }
    Ok(())
}

/// Unpins the shared NAT tables of uplinks no recorded network uses any more.
fn prune_uplink_nat() -> Result<()> {
    let used: Vec<PathBuf> = State::all()?
        .iter()
        .filter_map(|st| {
            let uplink = st.network.uplink.as_ref()?;
            // A state from before cookies were recorded predates shared
            // tables too.
            Some(loader::uplink_nat_dir(st.host_netns_cookie?, uplink))
        })
        .collect();
    for dir in loader::uplink_nat_dirs()? {
        if !used.contains(&dir) {
            loader::remove_uplink_nat(&dir)?;
        }
    }
    Ok(())
}

/// The recorded state of network `name`, which must live in this namespace
/// (for commands that change one network in place).
fn own_state(name: &NetworkName) -> Result<State> {
    let Some(st) = State::load(name)? else {
        return Err(crate::input_error!("--name: no network {name}"));
    };
    if !st.lives_in(&netns::Here::current()?) {
        return Err(crate::input_error!(
            "--name: network {name} lives in another network namespace"
        ));
    }
    Ok(st)
}
