//! One endpoint: a namespace, a veth pair whose inner end is its `eth0`, its
//! address and default route, and the host side (gateway address, host route).
//! Every step checks what is there first, so a second run changes nothing.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsFd as _,
    path::Path,
};

use anyhow::{Context as _, Result};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{
    config::{Endpoint, Kind, Mode, Network, Slot},
    ethtool,
    netlink::{self, Link, Netlink, Route, Settings, Snapshot, VethPeer},
    netns, procnet,
    state::{Attachment, State},
    threads,
};

/// The name every endpoint's interface has inside its namespace, unless an
/// attach names another.
pub const ENDPOINT_IFNAME: &str = "eth0";

/// Where an endpoint lives: the namespace file, the interface name inside,
/// its address. Config endpoints and attached ones differ only here.
pub struct Placement<'a> {
    pub ns_path: &'a Path,
    pub ifname: &'a str,
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    /// Its veth's.
    pub slot: Slot,
    /// Bring `lo` up: in namespaces netfwd names (as `ip netns` users
    /// expect), never in a process's own.
    pub lo_up: bool,
    /// Docker moves, renames and addresses the inner end itself: netfwd
    /// makes the pair in the host and leaves the inner end there, named
    /// `ifname`.
    pub handoff: bool,
    /// The inner end's MAC address; default: the kernel's random one.
    pub mac: Option<[u8; 6]>,
}

impl<'a> Placement<'a> {
    /// Where an attached endpoint lives (its namespace's `lo` is the
    /// process's own, left as it is).
    pub fn attached(a: &'a Attachment) -> Self {
        Placement {
            ns_path: &a.netns_path,
            ifname: &a.ifname,
            ip: a.ip,
            ip6: a.ip6,
            slot: a.slot,
            lo_up: false,
            handoff: a.handed_off,
            mac: a.mac,
        }
    }
}

/// What the datapath needs to know of a set-up endpoint.
pub struct EndpointFacts {
    pub host_ifname: String,
    pub host_ifindex: u32,
    pub host_mac: [u8; 6],
    /// The host-side veth's settings, as read before this call wrote any.
    pub host_settings: Settings,
    pub mac: [u8; 6],
    /// The veth pair was (re)made by this call.
    pub created: bool,
    /// The XDP program on the host-side veth now.
    pub host_xdp_prog_id: Option<u32>,
    /// `mode = "xdp"`: the endpoint's interface was made fit for XDP frames
    /// (full checksums, GRO); false in TC mode or if that failed.
    pub xdp_ready: bool,
}

/// A config endpoint: its named namespace (created if missing), then the
/// endpoint in it. `inside_done`: its interface, when
/// [`configure_insides`] found the pair and set the namespace's side.
pub async fn ensure_named(
    (host, host_known): (&Netlink, Option<&Snapshot>),
    net: &Network,
    (ep, inside_done): (&Endpoint, Option<Link>),
    st: &mut State,
) -> Result<EndpointFacts> {
    ensure_netns(&ep.netns, st).await?;
    let ns_path = netns::path(&ep.netns);
    let at = named_placement(ep, &ns_path);
    if let Some(known) = host_known
        && let Some((host_link, eth0)) =
            paired(known.link(&net.host_ifname(ep.slot)).cloned(), inside_done)
    {
        return finish((host, Some(known)), net, &at, (&host_link, &eth0), false).await;
    }
    ensure((host, host_known), net, &at).await
}

fn named_placement<'a>(ep: &Endpoint, ns_path: &'a Path) -> Placement<'a> {
    Placement {
        ns_path,
        ifname: ENDPOINT_IFNAME,
        ip: ep.ip,
        ip6: ep.ip6,
        slot: ep.slot,
        lo_up: true,
        handoff: false,
        mac: None,
    }
}

/// How many threads [`configure_insides`] reads namespaces from.
const INSIDE_THREADS: usize = 2;

/// The namespace side of every config endpoint whose pair is complete (its
/// host veth in `host_known`, paired with the namespace's interface), read
/// and written where it differs, from a few threads at once: one namespace's
/// reads wait for nothing of another's, and at 1000 endpoints they were
/// most of a no-op `up`. Returns each endpoint's interface where that was
/// done, else `None`: a namespace or pair still to make, or a failure,
/// which [`ensure_named`] then meets on its own and reports.
pub fn configure_insides(
    host_known: &Snapshot,
    net: &Network,
    endpoints: &[Endpoint],
) -> Vec<Option<Link>> {
    let configure = async |part: &[Endpoint]| {
        let mut done = Vec::with_capacity(part.len());
        for ep in part {
            let inside = configure_inside_of(host_known, net, ep).await;
            done.push(inside.ok().flatten());
        }
        Ok(done)
    };
    threads::on_threads(endpoints, INSIDE_THREADS, configure, |_, _| None)
}

async fn configure_inside_of(
    host_known: &Snapshot,
    net: &Network,
    ep: &Endpoint,
) -> Result<Option<Link>> {
    if !netns::exists(&ep.netns)? {
        return Ok(None);
    }
    let ns_path = netns::path(&ep.netns);
    let at = named_placement(ep, &ns_path);
    let inner = Netlink::in_netns(&ns_path)?;
    let inside = Snapshot::read(&inner, net.ipv6.is_some()).await?;
    let Some((_, eth0)) = paired(
        host_known.link(&net.host_ifname(ep.slot)).cloned(),
        inside.link(at.ifname).cloned(),
    ) else {
        return Ok(None);
    };
    configure_inside(&inner, &inside, net, &at, &eth0).await?;
    Ok(Some(eth0))
}

/// The veth pair, addresses and routes of one endpoint. `host_known`, the
/// host namespace read at the start of an `up` (`None`: ask the kernel),
/// and one read of the endpoint's namespace decide what is written: an
/// endpoint found complete costs no write.
pub async fn ensure(
    (host, host_known): (&Netlink, Option<&Snapshot>),
    net: &Network,
    at: &Placement<'_>,
) -> Result<EndpointFacts> {
    if at.handoff {
        return ensure_handed_off((host, host_known), net, at).await;
    }
    let inner = Netlink::in_netns(at.ns_path)?;
    let host_ifname = net.host_ifname(at.slot);
    let ipv6 = net.ipv6.is_some();
    let inside = Snapshot::read(&inner, ipv6).await?;
    let host_link = match host_known {
        Some(known) => known.link(&host_ifname).cloned(),
        None => host.link_by_name(&host_ifname).await?,
    };
    let (host_link, eth0, inside, host_known, created) =
        match paired(host_link, inside.link(at.ifname).cloned()) {
            Some((host_link, eth0)) => (host_link, eth0, inside, host_known, false),
            None => {
                create_pair(host, &inner, net, at).await?;
                // What was read before knows nothing of the new pair.
                let inside = Snapshot::read(&inner, ipv6).await?;
                let (host_link, eth0) = paired(
                    host.link_by_name(&host_ifname).await?,
                    inside.link(at.ifname).cloned(),
                )
                .with_context(|| format!("veth {host_ifname} vanished while being set up"))?;
                (host_link, eth0, inside, None, true)
            }
        };

    configure_inside(&inner, &inside, net, at, &eth0)
        .await
        .with_context(|| format!("configuring {} in {}", at.ifname, at.ns_path.display()))?;
    finish((host, host_known), net, at, (&host_link, &eth0), created).await
}

/// The host side of an endpoint whose namespace side is set, and XDP's
/// needs in it.
async fn finish(
    (host, host_known): (&Netlink, Option<&Snapshot>),
    net: &Network,
    at: &Placement<'_>,
    (host_link, eth0): (&Link, &Link),
    created: bool,
) -> Result<EndpointFacts> {
    configure_host_side((host, host_known), net, at, host_link)
        .await
        .with_context(|| format!("configuring {}", host_link.name))?;
    let xdp_ready = net.mode == Mode::Xdp && prepare_for_xdp(at);
    Ok(EndpointFacts::of(host_link, eth0, created, xdp_ready))
}

impl EndpointFacts {
    fn of(host_link: &Link, inside: &Link, created: bool, xdp_ready: bool) -> Self {
        EndpointFacts {
            host_ifname: host_link.name.clone(),
            host_ifindex: host_link.index,
            host_mac: host_link.mac,
            host_settings: host_link.settings,
            mac: inside.mac,
            created,
            host_xdp_prog_id: host_link.xdp_prog_id,
            xdp_ready,
        }
    }
}

/// A pair whose inner end Docker moves (`Placement::handoff`): made in the
/// host if missing, found again wherever the inner end is (still in the
/// host, or in the container under Docker's name). Docker's frames reach
/// the endpoint through TC; XDP is not prepared inside a namespace whose
/// interface Docker names.
async fn ensure_handed_off(
    (host, host_known): (&Netlink, Option<&Snapshot>),
    net: &Network,
    at: &Placement<'_>,
) -> Result<EndpointFacts> {
    let host_ifname = net.host_ifname(at.slot);
    let (pair, created) = match handed_off_pair(host, at, &host_ifname).await? {
        Some(pair) => (pair, false),
        None => {
            make_pair_in_host(host, net, &host_ifname, (at.ifname, at.mac)).await?;
            let pair = handed_off_pair(host, at, &host_ifname)
                .await?
                .with_context(|| format!("veth {host_ifname} vanished while being set up"))?;
            (pair, true)
        }
    };
    let (host_link, inside) = pair;
    let host_known = if created { None } else { host_known };
    configure_host_side((host, host_known), net, at, &host_link)
        .await
        .with_context(|| format!("configuring {host_ifname}"))?;
    Ok(EndpointFacts::of(&host_link, &inside, created, false))
}

/// The host-side veth and its peer, in the host under the name netfwd gave
/// it or in the namespace under Docker's.
async fn handed_off_pair(
    host: &Netlink,
    at: &Placement<'_>,
    host_ifname: &str,
) -> Result<Option<(Link, Link)>> {
    let Some(host_link) = host.link_by_name(host_ifname).await? else {
        return Ok(None);
    };
    let Some(peer_index) = host_link.peer_index else {
        return Ok(None);
    };
    let is_peer = |l: &Link| l.index == peer_index && l.peer_index == Some(host_link.index);
    if let Some(here) = host.link_by_name(at.ifname).await?
        && is_peer(&here)
    {
        return Ok(Some((host_link, here)));
    }
    let inner = Netlink::in_netns(at.ns_path)?;
    let moved = inner.links().await?.into_iter().find(|l| is_peer(l));
    Ok(moved.map(|inside| (host_link, inside)))
}

/// What XDP frames into the endpoint need (see `ethtool`); without it the
/// endpoint is reached through TC alone, said in one line.
fn prepare_for_xdp(at: &Placement<'_>) -> bool {
    match ethtool::prepare_for_xdp(at.ns_path, at.ifname) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("{e:#}; XDP will not redirect to this endpoint, TC does");
            false
        }
    }
}

/// Records as netfwd's the namespaces of `names` that do not exist yet, in
/// one save before any is made (as `ensure_netns` records one): a save an
/// endpoint, each rewriting a state of every endpoint, made the first `up`
/// of a large network quadratic.
pub fn record_missing_netns<'a>(
    names: impl IntoIterator<Item = &'a str>,
    st: &mut State,
) -> Result<()> {
    let mut recorded: HashSet<String> = st.created_netns.iter().cloned().collect();
    let mut missing = false;
    for name in names {
        if !recorded.contains(name) && !netns::exists(name)? {
            recorded.insert(name.to_owned());
            st.created_netns.push(name.to_owned());
            missing = true;
        }
    }
    if missing {
        st.save()?;
    }
    Ok(())
}

/// Creates the namespace if missing, recording it first so a crash between
/// the two still lets `down` find it.
async fn ensure_netns(name: &str, st: &mut State) -> Result<()> {
    if netns::exists(name)? {
        return Ok(());
    }
    if !st.created_netns.iter().any(|n| n == name) {
        st.created_netns.push(name.to_owned());
        st.save()?;
    }
    netlink::create_netns(name)
        .await
        .with_context(|| format!("creating netns {name}"))
}

/// The host-side veth and the endpoint's interface, if both exist and are
/// the two ends of one pair.
fn paired(host_link: Option<Link>, eth0: Option<Link>) -> Option<(Link, Link)> {
    let (host_link, eth0) = (host_link?, eth0?);
    let paired = host_link.kind.as_deref() == Some("veth")
        && eth0.kind.as_deref() == Some("veth")
        && host_link.peer_index == Some(eth0.index)
        && eth0.peer_index == Some(host_link.index);
    paired.then_some((host_link, eth0))
}

/// Removes the host's links of these names: the leftovers of a half-made
/// pair (a crash, or a namespace deleted under us).
async fn remove_leftovers(host: &Netlink, names: [&str; 2]) -> Result<()> {
    for name in names {
        if let Some(link) = host.link_by_name(name).await? {
            host.delete_link(link.index).await?;
        }
    }
    Ok(())
}

/// A new veth pair in the host, after the leftovers of a half-made one,
/// its inner end with the MAC address asked for (else the kernel's random
/// one).
async fn make_pair_in_host(
    host: &Netlink,
    net: &Network,
    host_ifname: &str,
    (peer_ifname, peer_mac): (&str, Option<[u8; 6]>),
) -> Result<()> {
    remove_leftovers(host, [host_ifname, peer_ifname]).await?;
    let peer = VethPeer {
        name: peer_ifname,
        netns: None,
        mac: peer_mac,
    };
    host.create_veth(host_ifname, &peer, net.mtu)
        .await
        .with_context(|| format!("creating veth {host_ifname}"))
}

/// A new veth pair whose inner end is made in the endpoint's namespace
/// under its own name, after the leftovers of a half-made one.
async fn create_pair(
    host: &Netlink,
    inner: &Netlink,
    net: &Network,
    at: &Placement<'_>,
) -> Result<()> {
    let host_ifname = net.host_ifname(at.slot);
    if let Some(stale) = inner.link_by_name(at.ifname).await? {
        // Preflight refused namespaces with a foreign interface of that
        // name; this is our own inner end whose host side is gone.
        inner.delete_link(stale.index).await?;
    }
    // A pair an older netfwd left half-moved has its inner end here.
    remove_leftovers(host, [&host_ifname, &net.peer_tmp_ifname(at.slot)]).await?;
    let ns_file = netns::open(at.ns_path)?;
    let peer = VethPeer {
        name: at.ifname,
        netns: Some(ns_file.as_fd()),
        mac: at.mac,
    };
    host.create_veth(&host_ifname, &peer, net.mtu)
        .await
        .with_context(|| {
            format!(
                "creating veth {host_ifname} with {} in {}",
                at.ifname,
                at.ns_path.display()
            )
        })
}

/// The endpoint's side, written where `known` (the namespace, read since
/// the pair was made) differs.
async fn configure_inside(
    inner: &Netlink,
    known: &Snapshot,
    net: &Network,
    at: &Placement<'_>,
    eth0: &Link,
) -> Result<()> {
    if at.lo_up
        && let Some(lo) = known.link("lo")
    {
        inner.ensure_up(lo).await?;
    }
    // Routed endpoints own just their address: everything, other endpoints
    // included, goes through the gateway, reached on-link.
    let (prefix_len, onlink) = match net.kind {
        Kind::Bridge => (net.subnet.prefix_len(), false),
        Kind::Routed => (32, true),
    };
    inner
        .ensure_address(
            Some(known),
            eth0.index,
            Ipv4Net::new(at.ip, prefix_len)?.into(),
        )
        .await?;
    if let (Some(_), Some(ip6)) = (net.ipv6, at.ip6) {
        // Its address alone (a /128): every packet to another endpoint goes
        // to the gateway's MAC, the host-side veth's, where the datapath
        // takes it; no neighbour discovery between endpoints is needed.
        inner
            .ensure_address(Some(known), eth0.index, Ipv6Net::from(ip6).into())
            .await?;
    }
    inner.ensure_up(eth0).await?;
    let wanted = gateway_routes(net, at, eth0.index, onlink);
    ensure_gateway_routes(inner, known, eth0.index, &wanted).await
}

/// The routes an endpoint's interface `eth0` has through its network's
/// gateways: IPv4's default route (`onlink4`: a routed endpoint's), and a
/// dual-stack endpoint's IPv6 reach (`Network::ipv6_reach`: everything, or
/// its prefix alone), on-link to the gateway no address of it covers.
fn gateway_routes(net: &Network, at: &Placement<'_>, eth0: u32, onlink4: bool) -> Vec<Route> {
    let via = |dst: IpNet, gateway: IpAddr, onlink: bool| Route {
        dst,
        gateway: Some(gateway),
        oif: Some(eth0),
        src: None,
        scope_link: false,
        onlink,
    };
    let mut routes = vec![via(Ipv4Net::default().into(), net.gateway.into(), onlink4)];
    if let (Some(v6), Some(reach), Some(_)) = (net.ipv6, net.ipv6_reach(), at.ip6) {
        routes.push(via(reach.into(), v6.gateway.into(), true));
    }
    routes
}

/// Writes `wanted` (routes through the gateways on link `eth0`) where
/// `known` lacks them, then deletes the other routes `known` shows through
/// one of those gateways on `eth0`: netfwd's, for a config that wanted
/// another destination. One rule for both families: IPv4's route keeps its
/// destination (a new gateway replaces it in place), IPv6's reach narrows
/// to the prefix once the uplink and the last IPv6 peer are gone, and
/// widens again.
async fn ensure_gateway_routes(
    inner: &Netlink,
    known: &Snapshot,
    eth0: u32,
    wanted: &[Route],
) -> Result<()> {
    for route in wanted {
        inner.ensure_route(Some(known), route).await?;
    }
    let stale = known.routes().filter(|found| {
        found.oif == Some(eth0)
            && wanted.iter().any(|w| w.gateway == found.gateway)
            && !wanted.iter().any(|w| w.dst == found.dst)
    });
    for route in stale {
        inner.delete_route(route).await?;
    }
    Ok(())
}

/// The host owns the gateway address (a /32 on each host-side veth, so it
/// exists as long as any endpoint does) and reaches each endpoint by a host
/// route: host<->endpoint traffic takes the ordinary stack.
async fn configure_host_side(
    (host, known): (&Netlink, Option<&Snapshot>),
    net: &Network,
    at: &Placement<'_>,
    link: &Link,
) -> Result<()> {
    procnet::refuse_endpoint_router_config(&link.name, &link.settings)?;
    host.ensure_up(link).await?;
    let mut addresses = vec![(IpNet::from(Ipv4Net::from(net.gateway)), IpAddr::from(at.ip))];
    if let (Some(v6), Some(ip6)) = (net.ipv6, at.ip6) {
        addresses.push((Ipv6Net::from(v6.gateway).into(), ip6.into()));
    }
    for (gateway, endpoint) in addresses {
        host.ensure_address(known, link.index, gateway).await?;
        host.ensure_route(
            known,
            &Route {
                dst: IpNet::from(endpoint),
                gateway: None,
                oif: Some(link.index),
                src: Some(gateway.addr()),
                scope_link: true,
                onlink: false,
            },
        )
        .await?;
    }
    Ok(())
}
