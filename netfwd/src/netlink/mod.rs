//! The rtnetlink calls netfwd makes, in one namespace per handle. Every device
//! fact comes from here: never from `/sys/class/net`, which belongs to
//! whoever mounted that sysfs.

mod link;
mod snapshot;

use std::{
    net::{IpAddr, Ipv4Addr},
    os::fd::{AsRawFd as _, BorrowedFd},
    path::Path,
};

use anyhow::{Context as _, Result};
use futures::TryStreamExt as _;
use ipnet::{IpNet, Ipv4Net};
use rtnetlink::{
    Handle, LinkGetRequest, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder,
    packet_route::{
        AddressFamily,
        address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage},
        link::{InfoData, InfoVeth, LinkExtentMask},
        route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope},
    },
};

pub use self::{
    link::{Link, Settings, format_mac, parse_unicast_mac},
    snapshot::Snapshot,
};
use crate::{netns, threads};

const EEXIST: i32 = nix::errno::Errno::EEXIST as i32;
const ENODEV: i32 = nix::errno::Errno::ENODEV as i32;
const ESRCH: i32 = nix::errno::Errno::ESRCH as i32;

/// The far end of a veth pair being made: its name, the namespace it is
/// made in (default: the handle's) and its MAC address (default: the
/// kernel's random one).
pub struct VethPeer<'a> {
    pub name: &'a str,
    pub netns: Option<BorrowedFd<'a>>,
    pub mac: Option<[u8; 6]>,
}

/// A collect-metadata (`external`) VXLAN device being made: whoever sends
/// through it sets each packet's tunnel key (far end, VNI), so it needs
/// no FDB and no device per far end.
pub struct VxlanDevice<'a> {
    pub name: &'a str,
    /// The UDP port it listens on and sends to.
    pub port: u16,
    /// The address it is reached at (the LAN's).
    pub local: Ipv4Addr,
    pub mtu: u32,
}

/// A route in the main table, of either family (its addresses of one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    /// Preferred source address.
    pub src: Option<IpAddr>,
    /// Directly reachable on `oif` (`scope link`), as opposed to global.
    pub scope_link: bool,
    /// The gateway is on `oif` even though no address of `oif` covers it.
    pub onlink: bool,
}

/// Creates namespace `name` with `lo` up, as `ip netns add` would. On failure
/// nothing of it is left.
pub async fn create_netns(name: &str) -> Result<()> {
    netns::create(name)?;
    let made = bring_up_lo(&netns::path(name)).await;
    if made.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = netns::delete(name);
    }
    made
}

async fn bring_up_lo(p: &Path) -> Result<()> {
    let nl = Netlink::in_netns(p)?;
    let lo = nl
        .link_by_name("lo")
        .await?
        .context("new netns has no lo")?;
    nl.set_up(lo.index).await
}

/// A netlink connection bound to one network namespace.
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// A connection in the namespace the calling thread is in. Must be called
    /// inside the tokio runtime.
    pub fn current() -> Result<Netlink> {
        let (conn, handle, _) = rtnetlink::new_connection().context("opening a netlink socket")?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// A connection in the namespace at `path`. A netlink socket stays in the
    /// namespace it was made in, so the thread steps in, makes it, and steps
    /// back; nothing else runs on the thread meanwhile.
    pub fn in_netns(path: &Path) -> Result<Netlink> {
        netns::within(path, Netlink::current)?
            .with_context(|| format!("netlink in netns {}", path.display()))
    }

    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        let found = without_stats(self.handle.link().get())
            .match_name(name.to_owned())
            .execute()
            .try_next()
            .await;
        match found {
            Ok(msg) => msg.map(Link::try_from).transpose(),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("looking up link {name}")),
        }
    }

    pub async fn links(&self) -> Result<Vec<Link>> {
        let msgs: Vec<_> = without_stats(self.handle.link().get())
            .execute()
            .try_collect()
            .await
            .context("listing links")?;
        msgs.into_iter().map(Link::try_from).collect()
    }

    /// Creates veth pair `name`/`peer.name` with `mtu` on both ends, the
    /// peer made straight in its namespace: moving a link between
    /// namespaces waits for the kernel's RCU (about 20 ms a move here).
    pub async fn create_veth(&self, name: &str, peer: &VethPeer<'_>, mtu: u32) -> Result<()> {
        let mut peer_link = LinkUnspec::new_with_name(peer.name).mtu(mtu);
        if let Some(mac) = peer.mac {
            peer_link = peer_link.address(mac.to_vec());
        }
        if let Some(netns) = peer.netns {
            peer_link = peer_link.setns_by_fd(netns.as_raw_fd());
        }
        let builder = LinkVeth::new(name, peer.name)
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_link.build())));
        self.handle
            .link()
            .add(builder.build())
            .execute()
            .await
            .with_context(|| format!("creating veth pair {name}/{}", peer.name))
    }

    /// Creates VXLAN device `dev` (down). Its own VNI is 0, as an external
    /// device's must be: it takes packets of every VNI, and sends each
    /// with the one its tunnel key names.
    pub async fn create_vxlan(&self, dev: &VxlanDevice<'_>) -> Result<()> {
        let builder = LinkVxlan::new(dev.name, 0)
            .collect_metadata(true)
            .learning(false)
            .port(dev.port)
            .local(dev.local)
            .mtu(dev.mtu);
        self.handle
            .link()
            .add(builder.build())
            .execute()
            .await
            .with_context(|| format!("creating VXLAN device {}", dev.name))
    }

    pub async fn set_up(&self, index: u32) -> Result<()> {
        self.set(link::by_index(index).up()).await
    }

    async fn set(
        &self,
        builder: rtnetlink::LinkMessageBuilder<rtnetlink::LinkUnspec>,
    ) -> Result<()> {
        self.handle
            .link()
            .set(builder.build())
            .execute()
            .await
            .map_err(anyhow::Error::from)
    }

    /// Deletes link `index`; a link already gone is fine.
    pub async fn delete_link(&self, index: u32) -> Result<()> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting link {index}")),
        }
    }

    /// Adds interface address `addr` (address and prefix length, of either
    /// family) to link `index`; already there is fine.
    /// An IPv6 address is usable at once: netfwd gives every address of its
    /// links, so no duplicate address detection holds it tentative.
    pub async fn add_address(&self, index: u32, addr: IpNet) -> Result<()> {
        let mut request = self
            .handle
            .address()
            .add(index, addr.addr(), addr.prefix_len());
        if addr.addr().is_ipv6() {
            let message = request.message_mut();
            message.header.flags |= AddressHeaderFlags::Nodad;
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match request.execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("adding {addr} to link {index}")),
        }
    }

    /// The IPv4 addresses of link `index` (address and prefix length),
    /// primary ones first, in the kernel's order.
    pub async fn ipv4_addresses(&self, index: u32) -> Result<Vec<Ipv4Net>> {
        Ok(self
            .addresses(index)
            .await?
            .into_iter()
            .filter_map(|a| match a {
                IpNet::V4(v4) => Some(v4),
                IpNet::V6(_) => None,
            })
            .collect())
    }

    /// The addresses of link `index`, of both families, primary ones first,
    /// in the kernel's order.
    pub async fn addresses(&self, index: u32) -> Result<Vec<IpNet>> {
        let msgs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .with_context(|| format!("listing addresses of link {index}"))?;
        let mut addrs: Vec<(bool, IpNet)> = msgs
            .iter()
            .filter(|m| m.header.index == index)
            .flat_map(addresses_of)
            .collect();
        // Stable: keeps the kernel's order within primaries and secondaries.
        addrs.sort_by_key(|(secondary, _)| *secondary);
        Ok(addrs.into_iter().map(|(_, net)| net).collect())
    }

    /// Brings `link` up unless it is up already.
    pub async fn ensure_up(&self, link: &Link) -> Result<()> {
        if link.up {
            return Ok(());
        }
        self.set_up(link.index).await
    }

    /// Adds `addr` to link `index` unless `known` (this namespace, read
    /// since the link was made) shows it there; `None` knows nothing.
    pub async fn ensure_address(
        &self,
        known: Option<&Snapshot>,
        index: u32,
        addr: IpNet,
    ) -> Result<()> {
        if known.is_some_and(|k| k.has_address(index, addr)) {
            return Ok(());
        }
        self.add_address(index, addr).await
    }

    /// Writes `route` unless `known` shows it there, as `ensure_address`.
    pub async fn ensure_route(&self, known: Option<&Snapshot>, route: &Route) -> Result<()> {
        if known.is_some_and(|k| k.has_route(route)) {
            return Ok(());
        }
        self.replace_route(route).await
    }

    /// Adds the route or replaces the one with the same destination.
    pub async fn replace_route(&self, route: &Route) -> Result<()> {
        self.handle
            .route()
            .add(route_message(route)?)
            .replace()
            .execute()
            .await
            .with_context(|| format!("setting route {}", route.dst))
    }
}

impl Netlink {
    /// The gateway of the main table's IPv4 default route, if there is one.
    pub async fn default_gateway(&self) -> Result<Option<Ipv4Addr>> {
        Ok(self.default_routes().await?.iter().find_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(gw)) => Some(*gw),
                _ => None,
            })
        }))
    }

    /// The interface of the main table's IPv4 default route, if there is one.
    pub async fn default_route_ifname(&self) -> Result<Option<String>> {
        let oif = self.default_routes().await?.iter().find_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(index) => Some(*index),
                _ => None,
            })
        });
        let Some(oif) = oif else {
            return Ok(None);
        };
        Ok(self
            .links()
            .await?
            .into_iter()
            .find(|l| l.index == oif)
            .map(|l| l.name))
    }

    async fn default_routes(&self) -> Result<Vec<RouteMessage>> {
        let msgs: Vec<RouteMessage> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .context("listing routes")?;
        Ok(msgs
            .into_iter()
            .filter(|m| m.header.destination_prefix_length == 0)
            .collect())
    }

    /// Deletes the route; one already gone is fine.
    pub async fn delete_route(&self, route: &Route) -> Result<()> {
        match self
            .handle
            .route()
            .del(route_message(route)?)
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ESRCH) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting route {}", route.dst)),
        }
    }
}

/// The route as netlink's message; a gateway or source of the other family
/// than the destination is refused here, not by the kernel.
fn route_message(route: &Route) -> Result<RouteMessage> {
    let invalid = || format!("route {}", route.dst);
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.dst.network(), route.dst.prefix_len())
        .with_context(invalid)?;
    if let Some(gw) = route.gateway {
        b = b.gateway(gw).with_context(invalid)?;
    }
    if let Some(oif) = route.oif {
        b = b.output_interface(oif);
    }
    if let Some(src) = route.src {
        b = b.pref_source(src).with_context(invalid)?;
    }
    if route.scope_link {
        b = b.scope(RouteScope::Link);
    }
    if route.onlink {
        b = b.onlink();
    }
    Ok(b.build())
}

/// A link request that leaves out the counters (netfwd reads none of them):
/// filling a veth's is most of the kernel's work for a dump of the host's
/// links.
fn without_stats(request: LinkGetRequest) -> LinkGetRequest {
    request.set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats])
}

/// The addresses an address message carries, each with whether it is a
/// secondary one.
fn addresses_of(m: &AddressMessage) -> impl Iterator<Item = (bool, IpNet)> + '_ {
    let secondary = m.header.flags.contains(AddressHeaderFlags::Secondary);
    let prefix_len = m.header.prefix_len;
    // IPv4's local address is the interface's own (`Address` is the peer's
    // on point-to-point links); IPv6 carries only `Address`.
    m.attributes.iter().filter_map(move |a| match a {
        AddressAttribute::Local(ip @ IpAddr::V4(_))
        | AddressAttribute::Address(ip @ IpAddr::V6(_)) => {
            IpNet::new(*ip, prefix_len).ok().map(|net| (secondary, net))
        }
        _ => None,
    })
}

/// The positive errno of a netlink error reply, if it is one.
fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
        _ => None,
    }
}

/// How many sockets delete links at once (see [`delete_links`]): at 1,000
/// veths, 8 took `down` from 32.6 s to 15.8 s, 32 to 12.1 s; what is left
/// is the part of each deletion under rtnl (TCX's own RCU wait).
const PARALLEL_DELETIONS: usize = 32;

/// Deletes `links` of the calling thread's namespace, from several sockets
/// at once, each on a thread of its own (made in that namespace). A
/// deletion waits for RCU after it drops rtnl, about 35 ms a veth with its
/// programs: one after another, `down` of 1,000 endpoints took half a
/// minute; the waits of different sockets overlap. Returns the failures,
/// each with its link's name.
pub fn delete_links(links: &[Link]) -> Vec<(String, anyhow::Error)> {
    let delete = async |part: &[Link]| {
        let netlink = Netlink::current()?;
        let mut failures = Vec::with_capacity(part.len());
        for link in part {
            let failed = netlink.delete_link(link.index).await.err();
            failures.push(failed.map(|e| (link.name.clone(), e)));
        }
        Ok(failures)
    };
    let lost = |link: &Link, e: &anyhow::Error| Some((link.name.clone(), anyhow::anyhow!("{e:#}")));
    threads::on_threads(links, PARALLEL_DELETIONS, delete, lost)
        .into_iter()
        .flatten()
        .collect()
}
