//! The lab of the NAT tests on crafted packets (`prog_run_nat_*.rs`).
//! `bpf_fib_lookup` needs routes and a neighbour, so each test runs in a
//! thread that unshares a fresh network namespace of its own: an endpoint's
//! host-side veth, and an uplink 203.0.113.2/24 whose gateway 203.0.113.1
//! has a permanent neighbour entry (and, `dual_stack`, 2001:db8:f::2/64 with
//! its gateway 2001:db8:f::1). Nothing leaves that namespace.
#![allow(
    dead_code,
    reason = "each test file uses a different part; `expect` would fail where one uses it all"
)]

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    process::Command,
};

use crate::common::{PinDir, eth, ip_frame, network_config, network6_config, run, run_xdp};
use netfwd::loader::{
    DatapathMaps, Programs,
    nat_table::{self, Flow},
};
use netfwd_common::{
    counters::IfaceCounters,
    maps::EndpointEntry,
    names::{
        MAP_NAT, MAP_UNREPLIED_BY_SENDER, PROG_FROM_ENDPOINT, PROG_FROM_UPLINK,
        PROG_NAT_SWEEP_STEP, PROG_XDP_FROM_UPLINK,
    },
    nat::{
        DIR_INGRESS, FlowSender, Ipv6Bytes, NatConfig, NatEntry, NatKey, NatTimeouts, PublishKey,
        PublishTarget,
    },
};
use nix::{net::if_::if_nametoindex, sched::CloneFlags};

pub const TO_HOST: u32 = u32::MAX;
pub const TC_ACT_SHOT: u32 = 2;
pub const TC_ACT_REDIRECT: u32 = 7;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

pub const A_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 1);
pub const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa1];
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 5);
pub const UPLINK_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const B_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 2);
pub const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb2];
/// [`NatLab::dual_stack`]'s IPv6: A's prefix and address, the uplink's,
/// and a remote host beyond its router (`ROUTER_IP6`, at `ROUTER_MAC`).
pub const PREFIX6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 0);
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 1);
pub const A_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 2);
pub const UPLINK_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 2);
pub const ROUTER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 1);
pub const REMOTE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 7);

/// The datapath loaded in a namespace with endpoint A behind `hosta` and the
/// uplink `up0`.
pub struct NatLab {
    pub datapath: Programs,
    pub maps: DatapathMaps,
    pub host_a: u32,
    pub host_a_mac: [u8; 6],
    pub host_b: u32,
    pub uplink: u32,
    pub uplink_mac: [u8; 6],
    pub pins: PinDir,
}

/// Runs `test` on a fresh lab, in a thread inside a namespace of its own,
/// with NAT ports `ports`.
pub fn with_lab(tag: &str, ports: (u16, u16), test: impl FnOnce(&mut NatLab) + Send) {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).unwrap();
            let mut lab = NatLab::new(tag, ports);
            test(&mut lab);
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    });
}

pub fn ip(args: &str) {
    // Child processes start in the namespace of the thread that forks them.
    let status = Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .unwrap();
    assert!(status.success(), "ip {args}");
}

pub fn mac_of(ifname: &str) -> [u8; 6] {
    let out = Command::new("ip")
        .args(["-o", "link", "show", ifname])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.split("link/ether ").nth(1).unwrap();
    let mut mac = [0u8; 6];
    for (b, part) in mac.iter_mut().zip(hex[..17].split(':')) {
        *b = u8::from_str_radix(part, 16).unwrap();
    }
    mac
}

impl NatLab {
    pub fn new(tag: &str, (port_min, port_max): (u16, u16)) -> Self {
        ip("link set lo up");
        ip("link add hosta type veth peer name epa");
        ip("link add hostb type veth peer name epb");
        ip("link add up0 type veth peer name inet0");
        for dev in ["hosta", "epa", "hostb", "epb", "up0", "inet0"] {
            ip(&format!("link set {dev} up"));
        }
        ip("addr add 203.0.113.2/24 dev up0");
        ip("neigh replace 203.0.113.1 lladdr 02:00:00:00:00:01 dev up0 nud permanent");
        ip("route add default via 203.0.113.1");
        netfwd::procnet::enable_forwarding("hosta", &netfwd::netlink::Settings::default()).unwrap();

        let pins = PinDir::new(tag);
        let datapath = Programs::load_at(&pins.0, 1024, None)
            .map_err(|e| format!("{e:#}"))
            .unwrap();
        let mut maps = DatapathMaps::open(&pins.0).unwrap();
        let host_a = if_nametoindex("hosta").unwrap();
        let uplink = if_nametoindex("up0").unwrap();
        let host_a_mac = mac_of("hosta");
        let host_b = if_nametoindex("hostb").unwrap();
        maps.set_network(network_config(GATEWAY, 0)).unwrap();
        maps.set_endpoint(
            A_IP,
            EndpointEntry {
                host_ifindex: host_a,
                mac: A_MAC,
                host_mac: host_a_mac,
            },
        )
        .unwrap();
        maps.set_endpoint(
            B_IP,
            EndpointEntry {
                host_ifindex: host_b,
                mac: B_MAC,
                host_mac: mac_of("hostb"),
            },
        )
        .unwrap();
        maps.set_nat_config(NatConfig {
            uplink_ifindex: uplink,
            uplink_addr: UPLINK_IP.octets(),
            port_min,
            port_max,
            timeouts: NatTimeouts::DEFAULT,
            max_unreplied: 0,
            uplink_addr6: UPLINK_IP6.octets(),
        })
        .unwrap();
        maps.ensure_counters(host_a).unwrap();
        maps.ensure_counters(uplink).unwrap();
        NatLab {
            datapath,
            maps,
            host_a,
            host_a_mac,
            host_b,
            uplink,
            uplink_mac: mac_of("up0"),
            pins,
        }
    }

    /// An IPv4 or IPv6 packet from endpoint A (`A_IP`, `A_IP6`), through
    /// its host-side veth.
    pub fn send_from_a(
        &mut self,
        dst: impl Into<IpAddr>,
        proto: u8,
        l4: Vec<u8>,
    ) -> (u32, Vec<u8>) {
        let dst = dst.into();
        let src = match dst {
            IpAddr::V4(_) => IpAddr::V4(A_IP),
            IpAddr::V6(_) => IpAddr::V6(A_IP6),
        };
        let packet = ip_frame((self.host_a_mac, A_MAC), src, dst, proto, l4);
        self.run_tc(PROG_FROM_ENDPOINT, &packet, self.host_a)
    }

    /// An IPv6 packet (`ipv6_raw`, no Ethernet: extension headers and
    /// fragments as they are) from endpoint A, through its host-side veth.
    pub fn send6_from_a(&mut self, ipv6: &[u8]) -> (u32, Vec<u8>) {
        let packet = framed((self.host_a_mac, A_MAC), 0x86dd, ipv6);
        self.run_tc(PROG_FROM_ENDPOINT, &packet, self.host_a)
    }

    /// Runs the TC program `name` on `packet` as arriving on `ifindex`.
    fn run_tc(&mut self, name: &'static str, packet: &[u8], ifindex: u32) -> (u32, Vec<u8>) {
        run(self.datapath.program(name).unwrap(), packet, ifindex)
    }

    /// Makes the network dual-stack, A holding `A_IP6`, with `flags`
    /// (`NETWORK6_*`), and gives the uplink its IPv6 address and default
    /// route.
    pub fn dual_stack(&mut self, flags: u8) {
        ip("-6 addr add 2001:db8:f::2/64 dev up0 nodad");
        ip("-6 neigh replace 2001:db8:f::1 lladdr 02:00:00:00:00:01 dev up0 nud permanent");
        ip("-6 route add default via 2001:db8:f::1");
        let settings = netfwd::netlink::Settings::default();
        netfwd::procnet::enable_forwarding6("hosta", &settings).unwrap();
        self.maps
            .set_network6(network6_config(GATEWAY6, PREFIX6, flags))
            .unwrap();
        let a = self.maps.endpoints().unwrap()[&A_IP];
        self.maps.set_endpoint6(A_IP6, a).unwrap();
    }

    /// An IPv4 or IPv6 frame arriving on the uplink from `src`.
    pub fn uplink_frame(
        &self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        proto: u8,
        l4: Vec<u8>,
    ) -> Vec<u8> {
        ip_frame(
            (self.uplink_mac, ROUTER_MAC),
            src.into(),
            dst.into(),
            proto,
            l4,
        )
    }

    /// An IPv4 or IPv6 packet arriving on the uplink from `src`, through TC.
    pub fn send_from_uplink(
        &mut self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        proto: u8,
        l4: Vec<u8>,
    ) -> (u32, Vec<u8>) {
        let packet = self.uplink_frame(src, dst, proto, l4);
        self.run_tc(PROG_FROM_UPLINK, &packet, self.uplink)
    }

    /// An IPv6 packet (`ipv6_raw`, no Ethernet) arriving on the uplink,
    /// through TC.
    pub fn send6_from_uplink(&mut self, ipv6: &[u8]) -> (u32, Vec<u8>) {
        let packet = framed((self.uplink_mac, ROUTER_MAC), 0x86dd, ipv6);
        self.run_tc(PROG_FROM_UPLINK, &packet, self.uplink)
    }

    /// As `send_from_uplink`, through the uplink's XDP program.
    pub fn send_from_uplink_xdp(
        &mut self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        proto: u8,
        l4: Vec<u8>,
    ) -> (u32, Vec<u8>) {
        let packet = self.uplink_frame(src, dst, proto, l4);
        let prog = self.datapath.xdp(PROG_XDP_FROM_UPLINK).unwrap();
        run_xdp(prog, &packet, self.uplink)
    }

    /// Flows in the NAT table (two entries each).
    pub fn nat_flows(&self) -> usize {
        self.maps.nat_entries().unwrap().len() / 2
    }

    /// Flows in the NAT table and NAT66's (`NAT6`).
    pub fn all_nat_flows(&self) -> usize {
        self.nat_flows() + self.maps.nat6_entries().unwrap().len() / 2
    }

    /// The flow (in `NAT` or `NAT6`) with the remote side `remote:port`, as
    /// `nat list` shows it.
    pub fn flow(&self, remote: impl Into<IpAddr>, port: u16) -> Option<Flow> {
        let now = nat_table::now_ns().unwrap();
        let timeouts = self.maps.nat_config().unwrap().timeouts;
        let remote = SocketAddr::new(remote.into(), port).to_string();
        nat_table::flows(&self.maps.nat_entries().unwrap(), &timeouts, now)
            .into_iter()
            .chain(nat_table::flows(
                &self.maps.nat6_entries().unwrap(),
                &timeouts,
                now,
            ))
            .find(|f| f.remote == remote)
    }

    pub fn state(&self, remote: impl Into<IpAddr>, port: u16) -> &'static str {
        self.flow(remote, port).map_or("none", |f| f.state)
    }

    /// One step of the NAT table's expiry sweep (a walk, or the removal of
    /// what the last walk marked), as the sweep's timer runs it.
    pub fn sweep_step(&mut self) {
        let prog = self.datapath.program(PROG_NAT_SWEEP_STEP).unwrap();
        run(prog, &[0u8; 64], 0);
    }

    /// Makes every entry of the NAT table look `secs` older, as if no
    /// packet had come for that long.
    pub fn age_flows(&self, secs: u64) {
        let mut nat = self.raw_map::<NatKey, NatEntry>(MAP_NAT);
        let ago = secs * 1_000_000_000;
        for (key, mut entry) in self.maps.nat_entries().unwrap() {
            entry.created_ns = entry.created_ns.saturating_sub(ago);
            entry.last_seen_ns = entry.last_seen_ns.saturating_sub(ago);
            nat.insert(key, entry, 0).unwrap();
        }
    }

    /// Refreshes every flow in place as a packet would (`last_seen_ns` now),
    /// without running the datapath.
    pub fn refresh_flows(&self) {
        let mut nat = self.raw_map::<NatKey, NatEntry>(MAP_NAT);
        let now = nat_table::now_ns().unwrap();
        for (key, mut entry) in self.maps.nat_entries().unwrap() {
            if key.dir == DIR_INGRESS {
                entry.last_seen_ns = now;
                nat.insert(key, entry, 0).unwrap();
            }
        }
    }

    /// Removes one entry from the NAT table behind the datapath's back.
    pub fn remove_entry(&self, key: &NatKey) {
        self.raw_map::<NatKey, NatEntry>(MAP_NAT)
            .remove(key)
            .unwrap();
    }

    /// The unanswered flows `sender` holds, as the datapath counts them.
    pub fn unreplied(&self, sender: &FlowSender) -> u32 {
        self.raw_map::<FlowSender, u32>(MAP_UNREPLIED_BY_SENDER)
            .get(sender, 0)
            .unwrap_or(0)
    }

    fn raw_map<K: aya::Pod, V: aya::Pod>(
        &self,
        name: &str,
    ) -> aya::maps::HashMap<aya::maps::MapData, K, V> {
        let data = aya::maps::MapData::from_pin(self.pins.0.join(name)).unwrap();
        aya::maps::HashMap::try_from(aya::maps::Map::from_map_data(data).unwrap()).unwrap()
    }

    pub fn counters(&self, ifindex: u32) -> IfaceCounters {
        self.maps
            .counters()
            .unwrap()
            .get(&ifindex)
            .copied()
            .unwrap_or_default()
    }
}

/// A frame from MAC `from` to `to` around `packet` of `ether_type`.
fn framed((to, from): ([u8; 6], [u8; 6]), ether_type: u16, packet: &[u8]) -> Vec<u8> {
    let mut frame = eth(to, from, ether_type);
    frame.extend_from_slice(packet);
    frame
}

/// A `PUBLISHED` entry: `host_port` of `proto` to `ip:port`.
pub fn published(
    proto: u8,
    host_port: u16,
    ip: Ipv4Addr,
    port: u16,
) -> (PublishKey, PublishTarget) {
    (
        PublishKey {
            port: host_port.to_be_bytes(),
            proto,
            _pad: 0,
        },
        PublishTarget {
            addr: ip.octets(),
            port: port.to_be_bytes(),
            flags: 0,
            _pad: 0,
        },
    )
}

/// A `PUBLISHED6` entry: `host_port` of `proto` to `[ip]:port`.
pub fn published6(
    proto: u8,
    host_port: u16,
    ip: Ipv6Addr,
    port: u16,
) -> (PublishKey, PublishTarget<Ipv6Bytes>) {
    let (key, target) = published(proto, host_port, Ipv4Addr::UNSPECIFIED, port);
    (
        key,
        PublishTarget {
            addr: Ipv6Bytes(ip.octets()),
            port: target.port,
            flags: target.flags,
            _pad: target._pad,
        },
    )
}

/// An IPv6 address in `packet` at `at`.
pub fn addr6(packet: &[u8], at: usize) -> Ipv6Addr {
    let octets: [u8; 16] = packet[at..at + 16].try_into().unwrap();
    Ipv6Addr::from(octets)
}

/// Offsets in an Ethernet + IPv6 (no extension headers) packet.
pub const SRC6: usize = 14 + 8;
pub const HOP_LIMIT6: usize = 14 + 7;
pub const DST6: usize = 14 + 24;
pub const SPORT6: usize = 14 + 40;
pub const DPORT6: usize = 14 + 42;

pub fn addr(packet: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3])
}

pub fn port(packet: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([packet[at], packet[at + 1]])
}

/// Offsets in an Ethernet + IPv4 (no options) packet.
pub const SRC: usize = 14 + 12;
pub const DST: usize = 14 + 16;
pub const TTL: usize = 14 + 8;
pub const SPORT: usize = 34;
pub const DPORT: usize = 36;

/// TCP flags.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;
