//! One network's datapath as the rest of netfwd sees it: opened once, with
//! verbs in netfwd's own terms. The map structs, their flags, the two
//! entries of a NAT flow and the pin paths stay behind it.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::{Context as _, Result};
use netfwd_common::{
    counters::IfaceCounters,
    maps::{
        EndpointEntry, NETWORK_NO_ICC, NETWORK6_NO_NAT, Network6Config, NetworkConfig,
        REMOTE_ISOLATED, REMOTE_LOCAL, REMOTE_ROUTE, REMOTE_TRUSTED, REMOTE_TUNNEL, TunnelConfig,
    },
    nat::{
        ENTRIES_PER_FLOW, Ipv6Bytes, NatConfig, NatSweep, PUBLISH_HOST_ONLY, PublishKey,
        PublishTarget, max_unreplied,
    },
};

use super::{
    AttachOutcome, DatapathMaps, Programs, Room,
    nat_table::{self, Census, Flow},
    pins::{pin_dir, unpin_socket_hooks, unpin_xdp_link, uplink_nat_dir},
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{
    config::{Mode, NatSettings, Network, Published},
    name::NetworkName,
    netlink::Link,
    netns,
};

/// A network's subnets as NAT flows are told apart by: its IPv4 one, and
/// its IPv6 prefix in a dual-stack network.
pub type Subnets = (IpNet, Option<IpNet>);

/// A network's datapath as the rest of netfwd sees it, with verbs in
/// netfwd's terms: its [`Programs`] (when loaded) and its [`DatapathMaps`].
pub struct NetworkDatapath {
    name: NetworkName,
    /// `None` when opened for its maps alone ([`NetworkDatapath::open`]).
    programs: Option<Programs>,
    maps: DatapathMaps,
}

/// An endpoint's veth as the datapath forwards to it.
pub struct EndpointVeth<'a> {
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    pub host_ifname: &'a str,
    pub host_ifindex: u32,
    /// The endpoint's own interface.
    pub mac: [u8; 6],
    /// The host-side veth.
    pub host_mac: [u8; 6],
}

/// What a network's datapath makes of a prefix beyond its own endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remote {
    /// A peer host's subnet: routed to, and its sources trusted.
    Peer,
    /// The LAN's own subnet: its sources trusted, nothing routed.
    Lan,
    /// Another network of this namespace that allows this one, and is
    /// allowed by it: routed to.
    Allowed,
    /// Another network of this namespace: isolated from this one.
    Isolated,
    /// Another cluster member's subnet behind the VXLAN tunnel, whose far
    /// end is the member's LAN address: reached encapsulated, its sources
    /// trusted from the tunnel only.
    Tunneled(Ipv4Addr),
}

impl Remote {
    fn flags(self) -> u8 {
        match self {
            Remote::Peer => REMOTE_ROUTE | REMOTE_TRUSTED,
            Remote::Lan => REMOTE_TRUSTED,
            Remote::Allowed => REMOTE_ROUTE | REMOTE_LOCAL,
            Remote::Isolated => REMOTE_ISOLATED | REMOTE_LOCAL,
            Remote::Tunneled(_) => REMOTE_TUNNEL,
        }
    }
}

impl NetworkDatapath {
    /// Loads `net`'s datapath in this namespace (pins made on first load,
    /// reused after), its NAT table the one of its uplink (shared by every
    /// network behind that uplink).
    pub fn load(net: &Network) -> Result<Self> {
        let shared_nat = match &net.uplink {
            Some(uplink) => Some(uplink_nat_dir(netns::cookie()?, uplink)),
            None => None,
        };
        let programs = Programs::load(&net.name, net.nat.max_flows, shared_nat.as_deref())?;
        let maps = DatapathMaps::open(&pin_dir(&net.name))?;
        Ok(Self {
            name: net.name.clone(),
            programs: Some(programs),
            maps,
        })
    }

    /// The pinned maps of network `name`, its programs left as they run
    /// (for reading, and for changes that attach nothing). An error if they
    /// are not pinned (never made, or torn down).
    pub fn open(name: &NetworkName) -> Result<Self> {
        Ok(Self {
            name: name.clone(),
            programs: None,
            maps: DatapathMaps::open(&pin_dir(name))?,
        })
    }

    fn programs(&mut self) -> Result<&mut Programs> {
        self.programs.as_mut().with_context(|| {
            format!(
                "network {}'s datapath was opened without its programs",
                self.name
            )
        })
    }

    /// Points the datapath at `net`'s subnets, gateways, ICC and NAT66
    /// settings.
    pub fn set_network(&mut self, net: &Network) -> Result<()> {
        self.maps.set_network(NetworkConfig {
            gateway: net.gateway.octets(),
            subnet: net.subnet.addr().octets(),
            prefix_len: net.subnet.prefix_len(),
            flags: if net.icc { 0 } else { NETWORK_NO_ICC },
            _pad: [0; 2],
        })?;
        self.maps.set_network6(
            net.ipv6
                .map_or_else(Network6Config::default, |v6| Network6Config {
                    gateway: v6.gateway.octets(),
                    subnet: v6.subnet.addr().octets(),
                    prefix_len: v6.subnet.prefix_len(),
                    flags: if v6.nat { 0 } else { NETWORK6_NO_NAT },
                    _pad: [0; 2],
                }),
        )
    }

    /// Enters a set-up endpoint: its counters, its program, then its
    /// forwarding entry. The program first: until it runs, the endpoint's
    /// packets meet the host stack unchecked (no anti-spoofing, no NAT).
    /// Without its entry the program drops them as spoofed, which is safe.
    pub fn install_endpoint(&mut self, veth: &EndpointVeth<'_>) -> Result<AttachOutcome> {
        self.maps.ensure_counters(veth.host_ifindex)?;
        let program = self
            .programs()?
            .attach_from_endpoint(veth.host_ifname, veth.host_ifindex)?;
        let entry = EndpointEntry {
            host_ifindex: veth.host_ifindex,
            mac: veth.mac,
            host_mac: veth.host_mac,
        };
        self.maps.set_endpoint(veth.ip, entry)?;
        if let Some(ip6) = veth.ip6 {
            self.maps.set_endpoint6(ip6, entry)?;
        }
        Ok(program)
    }

    /// Puts `mode` in force on an endpoint's host-side veth: XDP may
    /// redirect to it once its endpoint end is ready for XDP frames, and in
    /// XDP mode our XDP program runs in front of TC. Returns the mode it
    /// runs in.
    pub fn set_endpoint_mode(
        &mut self,
        mode: Mode,
        host_ifname: &str,
        host_ifindex: u32,
        xdp_ready: bool,
        running_xdp: Option<u32>,
    ) -> Result<Mode> {
        self.maps.set_xdp_target(host_ifindex, xdp_ready)?;
        self.xdp_in_front(
            mode,
            host_ifname,
            running_xdp,
            Programs::attach_xdp_from_endpoint,
        )
    }

    /// `mode = "xdp"`: the XDP program in front of the TC one on `ifname`, or,
    /// where it cannot attach, TC alone with a one-line warning. TC mode: no
    /// XDP program of ours there. Returns the mode `ifname` runs in.
    fn xdp_in_front(
        &mut self,
        mode: Mode,
        ifname: &str,
        running: Option<u32>,
        attach: fn(&mut Programs, &str, Option<u32>) -> Result<AttachOutcome>,
    ) -> Result<Mode> {
        if mode != Mode::Xdp {
            unpin_xdp_link(&self.name, ifname)?;
            return Ok(Mode::Tc);
        }
        let programs = self.programs()?;
        programs.load_xdp()?;
        match attach(programs, ifname, running) {
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

    /// Sets source NAT to `nat`, masquerading behind `uplink` (its ifindex
    /// and address), and (re)arms the NAT table's expiry sweep in the
    /// kernel with these timeouts and this release's code; `None`: NAT off.
    pub fn set_nat(&mut self, nat: &NatSettings, uplink: Option<(u32, Ipv4Addr)>) -> Result<()> {
        let (uplink_ifindex, uplink_addr) = uplink.map_or((0, [0; 4]), |(i, a)| (i, a.octets()));
        self.maps.set_nat_config(NatConfig {
            uplink_ifindex,
            uplink_addr,
            port_min: nat.port_min,
            port_max: nat.port_max,
            timeouts: nat.timeouts.into(),
            max_unreplied: max_unreplied(nat.max_flows, nat.max_unreplied_share),
        })?;
        if uplink.is_some() {
            self.programs()?.arm_nat_sweep()?;
        }
        Ok(())
    }

    /// Records the uplink's address as it is now (it changed under a
    /// running network); says whether it differed.
    pub fn set_uplink_addr(&mut self, addr: Ipv4Addr) -> Result<bool> {
        let config = self.maps.nat_config()?;
        if addr.octets() == config.uplink_addr {
            return Ok(false);
        }
        self.maps.set_nat_config(NatConfig {
            uplink_addr: addr.octets(),
            ..config
        })?;
        Ok(true)
    }

    /// Attaches reverse NAT to the uplink `link`, in `mode`; returns the TC
    /// program's outcome and the mode the uplink runs in.
    pub fn attach_uplink(&mut self, link: &Link, mode: Mode) -> Result<(AttachOutcome, Mode)> {
        self.maps.ensure_counters(link.index)?;
        let program = self
            .programs()?
            .attach_from_uplink(&link.name, link.index)?;
        let mode = self.xdp_in_front(
            mode,
            &link.name,
            link.xdp_prog_id,
            Programs::attach_xdp_from_uplink,
        )?;
        Ok((program, mode))
    }

    /// Attaches the uplink program to a LAN interface of its own (TC only).
    pub fn attach_lan(&mut self, link: &Link) -> Result<()> {
        self.maps.ensure_counters(link.index)?;
        self.programs()?
            .attach_from_uplink(&link.name, link.index)?;
        Ok(())
    }

    /// Trusts sources of peer and LAN prefixes arriving on `ifindex` only
    /// (0: nowhere).
    pub fn trust_remotes_on(&mut self, ifindex: u32) -> Result<()> {
        self.maps.set_trusted_iface(ifindex)
    }

    /// Makes the datapath's remote prefixes exactly `wanted`. The tunnel's
    /// far ends are written first, so a prefix being added is never
    /// flagged tunneled without one (one being withdrawn is dropped, as
    /// `policy`, in the moment between).
    pub fn set_remotes(
        &mut self,
        wanted: &[(Ipv4Net, Remote)],
        wanted6: &[(Ipv6Net, Remote)],
    ) -> Result<()> {
        let far_ends: Vec<(Ipv4Net, Ipv4Addr)> = wanted
            .iter()
            .filter_map(|(n, r)| match r {
                Remote::Tunneled(far_end) => Some((*n, *far_end)),
                _ => None,
            })
            .collect();
        let flags: Vec<(Ipv4Net, u8)> = wanted.iter().map(|(n, r)| (*n, r.flags())).collect();
        self.maps.set_tunnel_peers(&far_ends)?;
        self.maps.set_remotes(&flags)?;
        let flags6: Vec<(Ipv6Net, u8)> = wanted6.iter().map(|(n, r)| (*n, r.flags())).collect();
        self.maps.set_remotes6(&flags6)
    }

    /// Attaches the uplink program to the network's VXLAN device `link`
    /// (TC only: what it brings in is delivered to endpoints, never NATed)
    /// and points the datapath's encapsulation at it with `vni`.
    pub fn attach_tunnel(&mut self, link: &Link, vni: u32) -> Result<()> {
        self.maps.ensure_counters(link.index)?;
        self.programs()?
            .attach_from_uplink(&link.name, link.index)?;
        self.maps.set_tunnel(Some(TunnelConfig {
            ifindex: link.index,
            vni,
        }))
    }

    /// The network has no tunnel (any more).
    pub fn no_tunnel(&mut self) -> Result<()> {
        self.maps.set_tunnel(None)
    }

    /// Makes the datapath's published ports exactly `published`: over
    /// IPv4, and over IPv6 to the same endpoints' IPv6 addresses (those of
    /// a dual-stack network have one), as Docker's `-p` publishes on both.
    pub fn set_published(&mut self, published: &[Published]) -> Result<()> {
        let key = |p: &Published| PublishKey {
            port: p.host_port.to_be_bytes(),
            proto: p.proto.number(),
            _pad: 0,
        };
        let entries: Vec<(PublishKey, PublishTarget)> = published
            .iter()
            .map(|p| (key(p), publish_target(p.ip.octets(), p)))
            .collect();
        self.maps.set_published(&entries)?;
        // An endpoint's two addresses, joined by its veth.
        let ip6_of_veth: BTreeMap<u32, Ipv6Addr> = self
            .maps
            .endpoints6()?
            .into_iter()
            .map(|(ip6, ep)| (ep.host_ifindex, ip6))
            .collect();
        let endpoints = self.maps.endpoints()?;
        let entries6: Vec<(PublishKey, PublishTarget<Ipv6Bytes>)> = published
            .iter()
            .filter_map(|p| {
                let ip6 = ip6_of_veth.get(&endpoints.get(&p.ip)?.host_ifindex)?;
                Some((key(p), publish_target(Ipv6Bytes(ip6.octets()), p)))
            })
            .collect();
        self.maps.set_published6(&entries6)
    }

    /// Translates the connections the processes of `cgroup` in this
    /// namespace make to published ports, and refuses their binds to them
    /// (the socket hooks).
    pub fn translate_host_connections(&mut self, cgroup: &Path) -> Result<()> {
        self.maps.set_host_netns(netns::cookie()?)?;
        self.programs()?.attach_socket_hooks(cgroup)
    }

    /// Stops translating the host's own connections (nothing is published).
    pub fn stop_translating_host_connections(&self) -> Result<()> {
        unpin_socket_hooks(&self.name)
    }

    /// The endpoints the datapath forwards to, with their MAC addresses.
    pub fn endpoint_macs(&self) -> Result<BTreeMap<Ipv4Addr, [u8; 6]>> {
        Ok(self
            .maps
            .endpoints()?
            .into_iter()
            .map(|(ip, e)| (ip, e.mac))
            .collect())
    }

    /// Stops forwarding to endpoint `ip` (and `ip6`); Ok if it was not there.
    pub fn forget_endpoint(&mut self, ip: Ipv4Addr, ip6: Option<Ipv6Addr>) -> Result<()> {
        if let Some(ip6) = ip6 {
            self.maps.remove_endpoint6(ip6)?;
        }
        if !self.maps.endpoints()?.contains_key(&ip) {
            return Ok(());
        }
        self.maps.remove_endpoint(ip)?;
        self.maps
            .forget_senders(|sender| sender == ip || ip6.is_some_and(|ip6| sender == ip6))
    }

    /// Stops forwarding to the IPv6 addresses `keep` refuses.
    pub fn retain_endpoints6(&mut self, keep: impl Fn(Ipv6Addr) -> bool) -> Result<()> {
        let mut gone = Vec::new();
        for ip6 in self.maps.endpoints6()?.into_keys() {
            if !keep(ip6) {
                self.maps.remove_endpoint6(ip6)?;
                gone.push(IpAddr::from(ip6));
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        self.maps.forget_senders(|sender| gone.contains(&sender))
    }

    /// Stops forwarding to the endpoints `keep` refuses.
    pub fn retain_endpoints(&mut self, keep: impl Fn(Ipv4Addr) -> bool) -> Result<()> {
        let mut gone = Vec::new();
        for ip in self.maps.endpoints()?.into_keys() {
            if !keep(ip) {
                self.maps.remove_endpoint(ip)?;
                gone.push(IpAddr::from(ip));
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        self.maps.forget_senders(|sender| gone.contains(&sender))
    }

    /// Counters of every interface, summed over CPUs.
    pub fn counters(&self) -> Result<BTreeMap<u32, IfaceCounters>> {
        self.maps.counters()
    }

    /// Drops the counters of interface `ifindex`; Ok if it had none.
    pub fn forget_counters(&mut self, ifindex: u32) -> Result<()> {
        self.maps.remove_counters(ifindex)
    }

    /// Drops the counters of the interfaces `keep` refuses.
    pub fn retain_counters(&mut self, keep: impl Fn(u32) -> bool) -> Result<()> {
        for ifindex in self.maps.counter_ifindexes()? {
            if !keep(ifindex) {
                self.maps.remove_counters(ifindex)?;
            }
        }
        Ok(())
    }

    /// The NAT flows of `subnets`' endpoints (IPv4's, and IPv6's in a
    /// dual-stack network; the tables may be shared by other networks on
    /// the uplink), their lifetimes by `nat`'s timeouts, as of `now` (see
    /// [`nat_table::now_ns`]).
    pub fn flows(&self, subnets: Subnets, nat: &NatSettings, now: u64) -> Result<Vec<Flow>> {
        let timeouts = nat.timeouts.into();
        let (subnet, subnet6) = subnets;
        let mut flows = nat_table::flows(
            &nat_table::of_subnet(self.maps.nat_entries()?, &subnet),
            &timeouts,
            now,
        );
        if let Some(subnet6) = subnet6 {
            flows.extend(nat_table::flows(
                &nat_table::of_subnet(self.maps.nat6_entries()?, &subnet6),
                &timeouts,
                now,
            ));
        }
        Ok(flows)
    }

    /// How many NAT flows `subnets`' endpoints have, and both tables'
    /// flows by kind: one read of each table for both.
    pub fn flow_census(&self, (subnet, subnet6): Subnets) -> Result<Census> {
        Ok(Census::of(
            &self.maps.nat_entries()?,
            &self.maps.nat6_entries()?,
            &subnet,
            subnet6.as_ref(),
        ))
    }

    /// How many endpoints and published ports the network has room for.
    pub fn room(&self) -> Result<Room> {
        self.maps.room()
    }

    /// What the kernel charges for the NAT table, and how many flows it
    /// holds at most.
    pub fn nat_capacity(&self) -> Result<(u64, u32)> {
        let (memory, max_entries) = self.maps.nat_memory()?;
        Ok((memory, max_entries / ENTRIES_PER_FLOW))
    }

    /// How full the NAT table is, 0 to 1: its entries, every network's on
    /// a shared uplink counted, over its room.
    pub fn nat_fill(&self) -> Result<f64> {
        let (_, max_entries) = self.maps.nat_memory()?;
        if max_entries == 0 {
            return Ok(0.0);
        }
        #[expect(clippy::cast_precision_loss, reason = "a ratio")]
        let used = self.maps.nat_entries()?.len() as f64;
        Ok(used / f64::from(max_entries))
    }

    /// Removes the NAT flows of `subnets`' endpoints (the other networks'
    /// flows in a shared table stay).
    pub fn forget_flows(&mut self, (subnet, subnet6): Subnets) -> Result<()> {
        for (key, _) in nat_table::of_subnet(self.maps.nat_entries()?, &subnet) {
            self.maps.remove_nat_entry(&key)?;
        }
        if let Some(subnet6) = subnet6 {
            for (key, _) in nat_table::of_subnet(self.maps.nat6_entries()?, &subnet6) {
                self.maps.remove_nat6_entry(&key)?;
            }
        }
        self.maps.forget_senders(|sender| {
            subnet.contains(&sender) || subnet6.is_some_and(|s| s.contains(&sender))
        })
    }

    /// What the NAT table's expiry sweep (in the kernel) has done, if the
    /// network has one.
    pub fn nat_sweep(&self) -> Result<Option<NatSweep>> {
        self.maps.nat_sweep()
    }
}

/// Where published port `p` leads, at the endpoint's address `addr` of
/// either family.
fn publish_target<A>(addr: A, p: &Published) -> PublishTarget<A> {
    PublishTarget {
        addr,
        port: p.port.to_be_bytes(),
        flags: if p.host_only() { PUBLISH_HOST_ONLY } else { 0 },
        _pad: 0,
    }
}
