//! Bringing a network up and down, as a driver: validate (against what
//! exists), record (the state, before anything is made), set up (and a
//! fresh network that fails is rolled back whole), tear down (going on past
//! failures and reporting them all).

use std::{collections::HashSet, fmt};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::{
    endpoint,
    install::{apply_published, check_room, install_endpoint},
    peers, preflight, remotes,
    rollback::Rollback,
    tunnel,
};
use crate::{
    config::{self, Mode, Network, Peer},
    loader::{self, AttachOutcome, NetworkDatapath},
    name::NetworkName,
    netlink::{self, Link, Netlink, Snapshot},
    netns,
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
    let net = &match &previous {
        Some(previous) => previous.with_slots_kept(net)?,
        None => net.clone(),
    };
    preflight::check(net, previous.as_ref(), &here).await?;

    let fresh = previous.is_none();
    let old_peers = previous
        .as_ref()
        .map(|p| p.network.peers.clone())
        .unwrap_or_default();
    let mut st = record(net, previous, &here)?;
    let mut rollback = Rollback::new();
    if fresh {
        // Leave nothing of a network that never came up. What it created is
        // read back from its state, where each namespace is written down
        // before it is made; unreadable, the rest still goes.
        let (name, peers) = (net.name.clone(), net.peers.clone());
        rollback.push_async("cleaning up after a failed up", move || async move {
            let created_netns = match State::load(&name) {
                Ok(st) => st.map(|st| st.created_netns).unwrap_or_default(),
                Err(e) => {
                    log::warn!("cleaning up after a failed up: {e:#}");
                    Vec::new()
                }
            };
            let host = Netlink::current()?;
            remove(Some(&host), &name, &created_netns, &peers).await
        });
    }
    let report = apply(&host, &here, net, &old_peers, &mut st).await?;
    rollback.commit();
    Ok(report)
}

/// Writes down the network as it is being applied (its previous state
/// kept: what it created, what was attached and published).
fn record(net: &Network, previous: Option<State>, here: &netns::Here) -> Result<State> {
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
    Ok(st)
}

async fn apply(
    host: &Netlink,
    here: &netns::Here,
    net: &Network,
    old_peers: &[Peer],
    st: &mut State,
) -> Result<UpReport> {
    let mut datapath = NetworkDatapath::load(net)?;
    // `st` holds `net` since `record`.
    check_room(&datapath, st)?;
    datapath.set_network(net)?;
    // Read once: each endpoint is checked against it and written only
    // where it differs. The stale links it holds are deleted next, and
    // never looked up (no endpoint wants them).
    let known = Snapshot::read(host, net.ipv6.is_some()).await?;
    let removed = remove_stale((host, &known), net, st, &mut datapath).await?;

    endpoint::record_missing_netns(net.endpoints.iter().map(|e| e.netns.as_str()), st)?;
    let mut endpoints = Vec::with_capacity(net.endpoints.len());
    let insides = endpoint::configure_insides(&known, net, &net.endpoints);
    for (ep, inside) in net.endpoints.iter().zip(insides) {
        let facts = endpoint::ensure_named((host, Some(&known)), net, (ep, inside), st).await?;
        let (program, mode) = install_endpoint(net, &mut datapath, (ep.ip, ep.ip6), &facts)?;
        endpoints.push(EndpointReport {
            netns: ep.netns.clone(),
            ip: ep.ip.to_string(),
            host_ifname: net.host_ifname(ep.slot),
            created: facts.created,
            program,
            mode,
        });
    }
    for a in &st.attached {
        let facts =
            endpoint::ensure((host, Some(&known)), net, &endpoint::Placement::attached(a)).await?;
        install_endpoint(net, &mut datapath, (a.ip, a.ip6), &facts)?;
    }
    let uplink = match &net.uplink {
        Some(ifname) => Some(setup_uplink(host, net, ifname, &mut datapath).await?),
        None => {
            datapath.set_nat(&net.nat, None)?;
            None
        }
    };
    apply_published(net, &st.all_published(), &mut datapath)?;
    setup_lan(host, net, old_peers, &mut datapath).await?;
    tunnel::setup(host, net, &mut datapath).await?;
    remotes::refresh_all(host, here, Some(net)).await?;
    st.save()?;
    Ok(UpReport {
        network: net.name.clone(),
        endpoints,
        uplink,
        removed,
    })
}

/// Attaches reverse NAT to the uplink and points the datapath's NAT at it.
async fn setup_uplink(
    host: &Netlink,
    net: &Network,
    ifname: &str,
    datapath: &mut NetworkDatapath,
) -> Result<UplinkReport> {
    let link = host
        .link_by_name(ifname)
        .await?
        .with_context(|| format!("uplink {ifname} vanished"))?;
    let addrs = preflight::uplink_addresses(host, ifname, link.index).await?;
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
    // Config before program: the program passes everything while NAT is off.
    datapath.set_nat(&net.nat, Some((link.index, addrs)))?;
    let (program, mode) = datapath.attach_uplink(&link, net.mode)?;
    Ok(UplinkReport {
        ifname: ifname.to_owned(),
        addr: addrs.v4.to_string(),
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
    datapath: &mut NetworkDatapath,
) -> Result<()> {
    if let Some(lan) = &net.lan
        && net.uplink.as_ref() != Some(lan)
    {
        let link = host
            .link_by_name(lan)
            .await?
            .with_context(|| format!("LAN interface {lan} vanished"))?;
        datapath.attach_lan(&link)?;
    }
    // Trusted sources come in where the peers are: the LAN, else the
    // uplink. Arriving anywhere else, their address proves nothing.
    let trusted = match net.lan.as_ref().or(net.uplink.as_ref()) {
        Some(ifname) => host.link_by_name(ifname).await?.map_or(0, |l| l.index),
        None => 0,
    };
    datapath.trust_remotes_on(trusted)?;
    peers::route(host, old_peers, &net.peers).await
}

/// Removes what an earlier `up` made for endpoints that are no longer in the
/// config. Returns the host-side interfaces it removed.
async fn remove_stale(
    (host, known): (&Netlink, &Snapshot),
    net: &Network,
    st: &mut State,
    datapath: &mut NetworkDatapath,
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
    let mut wanted_ifnames: HashSet<String> = net
        .endpoints
        .iter()
        .map(|e| e.slot)
        .chain(st.attached.iter().map(|a| a.slot))
        .map(|slot| net.host_ifname(slot))
        .collect();
    if net.vxlan.is_some() {
        wanted_ifnames.insert(net.vxlan_ifname());
    }
    let mut wanted_pins = wanted_ifnames.clone();
    wanted_pins.extend(net.uplink.iter().cloned());
    wanted_pins.extend(net.lan.iter().cloned());
    let wanted_netns: HashSet<&str> = net.endpoints.iter().map(|e| e.netns.as_str()).collect();

    let mut removed = Vec::new();
    let mut live_ifindexes = HashSet::new();
    for link in ours(known.links().cloned(), &net.name) {
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
    datapath.retain_endpoints(|ip| wanted_ips.contains(&ip))?;
    let wanted_ip6s: HashSet<_> = net
        .endpoints
        .iter()
        .filter_map(|e| e.ip6)
        .chain(st.attached.iter().filter_map(|a| a.ip6))
        .collect();
    datapath.retain_endpoints6(|ip6| wanted_ip6s.contains(&ip6))?;
    for external in net.uplink.iter().chain(&net.lan) {
        if let Some(link) = known.link(external) {
            live_ifindexes.insert(link.index);
        }
    }
    datapath.retain_counters(|ifindex| live_ifindexes.contains(&ifindex))?;
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
async fn our_links(host: &Netlink, network: &NetworkName) -> Result<Vec<Link>> {
    Ok(ours(host.links().await?.into_iter(), network))
}

/// The links of `links` named by this network.
fn ours(links: impl Iterator<Item = Link>, network: &NetworkName) -> Vec<Link> {
    let prefixes = config::ifname_prefixes(network);
    links
        .filter(|l| prefixes.iter().any(|p| l.name.starts_with(p.as_str())))
        .collect()
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
            remove(None, name, &st.created_netns, &[]).await?;
            return prune_uplink_nat();
        }
        Some(st) => {
            forget_flows(&st.network)?;
            (st.created_netns, st.network.peers)
        }
        None => (Vec::new(), Vec::new()),
    };
    remove(Some(&host), name, &created_netns, &peers).await?;
    prune_uplink_nat()?;
    // The other networks stop isolating themselves from this one.
    remotes::refresh_all(&host, &here, None).await
}

/// Removes the network: see [`teardown`]; its state goes once all of it
/// has.
async fn remove(
    host: Option<&Netlink>,
    name: &NetworkName,
    created_netns: &[String],
    peers: &[Peer],
) -> Result<()> {
    teardown(host, name, created_netns, peers)
        .await
        .with_context(|| format!("tearing down network {name}"))?;
    State::remove(name)
}

/// What one step of a teardown failed at; the teardown went on.
#[derive(Debug)]
pub enum TeardownFailure {
    PeerRoute(anyhow::Error),
    Pins(anyhow::Error),
    ListingLinks(anyhow::Error),
    DeletingLink {
        ifname: String,
        error: anyhow::Error,
    },
    Netns(anyhow::Error),
}

impl fmt::Display for TeardownFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerRoute(e) | Self::Pins(e) | Self::Netns(e) => write!(f, "{e:#}"),
            Self::ListingLinks(e) => write!(f, "listing links: {e:#}"),
            Self::DeletingLink { ifname, error } => write!(f, "deleting {ifname}: {error:#}"),
        }
    }
}

/// Every failure of a teardown, in the order met.
#[derive(Debug)]
pub struct TeardownFailures(pub Vec<TeardownFailure>);

impl fmt::Display for TeardownFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TeardownFailures {}

/// Removes the network's routes to peers and its veths from `host` (`None`
/// for an orphan: they went with its namespace), its pins and the
/// namespaces it created, going on past failures.
async fn teardown(
    host: Option<&Netlink>,
    name: &NetworkName,
    created_netns: &[String],
    peers: &[Peer],
) -> Result<(), TeardownFailures> {
    let mut failures = Vec::new();
    if let Some(host) = host {
        for peer in peers::routed(peers) {
            if let Err(e) = host.delete_route(&peers::peer_route(peer)).await {
                failures.push(TeardownFailure::PeerRoute(e));
            }
        }
    }
    if let Err(e) = loader::remove_pins(name) {
        failures.push(TeardownFailure::Pins(e));
    }
    if let Some(host) = host {
        // `host` is this thread's namespace's (both callers make it so),
        // where `delete_links` deletes.
        match our_links(host, name).await {
            Ok(links) => failures.extend(
                netlink::delete_links(&links)
                    .into_iter()
                    .map(|(ifname, error)| TeardownFailure::DeletingLink { ifname, error }),
            ),
            Err(e) => failures.push(TeardownFailure::ListingLinks(e)),
        }
    }
    for ns in created_netns {
        if let Err(e) = netns::delete(ns) {
            failures.push(TeardownFailure::Netns(e));
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(TeardownFailures(failures))
}

/// Removes the flows of `net`'s endpoints from its uplink's shared NAT
/// table (the other networks' flows stay), before its pins go.
fn forget_flows(net: &Network) -> Result<()> {
    if net.uplink.is_none() {
        return Ok(());
    }
    let Ok(mut datapath) = NetworkDatapath::open(&net.name) else {
        return Ok(());
    };
    datapath.forget_flows(net.flow_subnets())
}

/// Unpins the shared NAT tables of uplinks no recorded network uses any more.
fn prune_uplink_nat() -> Result<()> {
    loader::prune_uplink_nat(State::all()?.into_iter().filter_map(|st| {
        let uplink = st.network.uplink?;
        // A state from before cookies were recorded predates shared
        // tables too.
        Some((st.host_netns_cookie?, uplink))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Teardown failures read as they did when they were strings: each
    /// step's error, joined by `; `.
    #[test]
    fn teardown_failures_read_as_one_line_in_the_order_met() {
        let failures = TeardownFailures(vec![
            TeardownFailure::PeerRoute(anyhow::anyhow!("no route")),
            TeardownFailure::DeletingLink {
                ifname: "nfdemo-2".into(),
                error: anyhow::anyhow!("busy").context("netlink"),
            },
            TeardownFailure::ListingLinks(anyhow::anyhow!("closed")),
        ]);
        assert_eq!(
            failures.to_string(),
            "no route; deleting nfdemo-2: netlink: busy; listing links: closed"
        );
    }
}
