//! One namespace's links, addresses and main-table routes, read in one dump
//! each: an `up` that finds everything in place then writes nothing, where
//! asking link by link and writing every address and route again cost about
//! a dozen netlink round trips per endpoint.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use anyhow::{Context as _, Result};
use futures::TryStreamExt as _;
use ipnet::IpNet;
use rtnetlink::{
    RouteMessageBuilder,
    packet_route::route::{
        RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteScope, RouteType,
    },
};

use super::{Link, Netlink, Route, addresses_of};

/// What a namespace held when it was read. It goes stale as soon as
/// anything changes there: a link made after the read is not in it, so
/// callers ask the kernel again about what they make.
pub struct Snapshot {
    links: HashMap<String, Link>,
    addresses: HashSet<(u32, IpNet)>,
    routes: Vec<Route>,
}

impl Snapshot {
    /// Reads the namespace of `nl`: three dumps, four with IPv6 routes
    /// (without, every IPv6 route counts as missing).
    pub async fn read(nl: &Netlink, ipv6: bool) -> Result<Snapshot> {
        let links = nl
            .links()
            .await?
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let addresses = nl
            .handle
            .address()
            .get()
            .execute()
            .try_collect::<Vec<_>>()
            .await
            .context("listing addresses")?
            .iter()
            .flat_map(|m| addresses_of(m).map(move |(_, net)| (m.header.index, net)))
            .collect();
        let mut routes = Vec::new();
        let v6 = ipv6.then(|| RouteMessageBuilder::<Ipv6Addr>::new().build());
        for query in std::iter::once(RouteMessageBuilder::<Ipv4Addr>::new().build()).chain(v6) {
            let msgs: Vec<RouteMessage> = nl
                .handle
                .route()
                .get(query)
                .execute()
                .try_collect()
                .await
                .context("listing routes")?;
            routes.extend(msgs.iter().filter_map(main_table_route));
        }
        Ok(Snapshot {
            links,
            addresses,
            routes,
        })
    }

    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.values()
    }

    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.get(name)
    }

    /// The main table's unicast routes, as netfwd writes routes.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    pub fn has_address(&self, index: u32, addr: IpNet) -> bool {
        self.addresses.contains(&(index, addr))
    }

    /// Whether the main table holds `route` as `replace_route` would write
    /// it. IPv6 routes carry no scope (the kernel reports every one as
    /// global), so theirs is not compared.
    pub fn has_route(&self, route: &Route) -> bool {
        self.routes.iter().any(|found| {
            let scope_kept = route.dst.addr().is_ipv4();
            found.dst == route.dst
                && found.gateway == route.gateway
                && found.oif == route.oif
                && found.src == route.src
                && found.onlink == route.onlink
                && (!scope_kept || found.scope_link == route.scope_link)
        })
    }
}

/// A unicast route of the main table, as netfwd writes routes; `None` for
/// any other (local, broadcast, multicast, other tables).
fn main_table_route(msg: &RouteMessage) -> Option<Route> {
    let h = &msg.header;
    let table = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(h.table));
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) || h.kind != RouteType::Unicast {
        return None;
    }
    let ip = |a: &RouteAddress| match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    };
    let (mut dst, mut gateway, mut oif, mut src) = (None, None, None, None);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = ip(a),
            RouteAttribute::Gateway(a) => gateway = ip(a),
            RouteAttribute::Oif(index) => oif = Some(*index),
            RouteAttribute::PrefSource(a) => src = ip(a),
            _ => {}
        }
    }
    let dst = match dst {
        Some(dst) => dst,
        None if h.address_family == rtnetlink::packet_route::AddressFamily::Inet6 => {
            Ipv6Addr::UNSPECIFIED.into()
        }
        None => Ipv4Addr::UNSPECIFIED.into(),
    };
    Some(Route {
        dst: IpNet::new(dst, h.destination_prefix_length).ok()?,
        gateway,
        oif,
        src,
        scope_link: h.scope == RouteScope::Link,
        onlink: h.flags.contains(RouteFlags::Onlink),
    })
}
