//! Source NAT on crafted packets with BPF_PROG_TEST_RUN. `bpf_fib_lookup`
//! needs routes and a neighbour, so each test runs in a thread that
//! unshares a fresh network namespace of its own: an endpoint's host-side
//! veth, and an uplink 203.0.113.2/24 whose gateway 203.0.113.1 has a
//! permanent neighbour entry. Nothing leaves that namespace.
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;

use std::{net::Ipv4Addr, process::Command};

use common::{
    ICMP, PinDir, TCP, UDP, checksum, checksums_ok, eth, icmp_echo, ipv4, run, run_xdp, tcp,
    tcp_seq, udp,
};
use netfwd::loader::{
    Datapath, DatapathMaps,
    nat_table::{self, Flow},
};
use netfwd_common::{
    counters::IfaceCounters,
    drop::DropReason,
    maps::{
        EndpointEntry, NetworkConfig, REMOTE_ISOLATED, REMOTE_LOCAL, REMOTE_ROUTE, REMOTE_TRUSTED,
    },
    names::{PROG_FROM_ENDPOINT, PROG_FROM_UPLINK, PROG_XDP_FROM_ENDPOINT, PROG_XDP_FROM_UPLINK},
    nat::{NatConfig, NatEntry, NatTimeouts, PUBLISH_HOST_ONLY, PublishKey, PublishTarget},
};
use nix::{net::if_::if_nametoindex, sched::CloneFlags};

const TO_HOST: u32 = u32::MAX;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

const A_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 1);
const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa1];
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 5);
const UPLINK_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const B_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 2);
const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb2];

/// The datapath loaded in a namespace with endpoint A behind `hosta` and the
/// uplink `up0`.
struct NatLab {
    datapath: Datapath,
    maps: DatapathMaps,
    host_a: u32,
    host_a_mac: [u8; 6],
    host_b: u32,
    uplink: u32,
    uplink_mac: [u8; 6],
    _pins: PinDir,
}

/// Runs `test` on a fresh lab, in a thread inside a namespace of its own,
/// with NAT ports `ports`.
fn with_lab(tag: &str, ports: (u16, u16), test: impl FnOnce(&mut NatLab) + Send) {
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

fn ip(args: &str) {
    // Child processes start in the namespace of the thread that forks them.
    let status = Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .unwrap();
    assert!(status.success(), "ip {args}");
}

fn mac_of(ifname: &str) -> [u8; 6] {
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
    fn new(tag: &str, (port_min, port_max): (u16, u16)) -> Self {
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
        netfwd::procnet::enable_forwarding("hosta").unwrap();

        let pins = PinDir::new(tag);
        let datapath = Datapath::load_at(&pins.0, 1024, None)
            .map_err(|e| format!("{e:#}"))
            .unwrap();
        let mut maps = DatapathMaps::open(&pins.0).unwrap();
        let host_a = if_nametoindex("hosta").unwrap();
        let uplink = if_nametoindex("up0").unwrap();
        let host_a_mac = mac_of("hosta");
        let host_b = if_nametoindex("hostb").unwrap();
        maps.set_network(NetworkConfig {
            gateway: GATEWAY.octets(),
            subnet: [192, 168, 28, 0],
            prefix_len: 24,
            flags: 0,
            _pad: [0; 2],
        })
        .unwrap();
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
            _pins: pins,
        }
    }

    /// An IPv4 packet from endpoint A, through its host-side veth.
    fn send_from_a(&mut self, dst: Ipv4Addr, proto: u8, l4: Vec<u8>) -> (u32, Vec<u8>) {
        let mut packet = eth(self.host_a_mac, A_MAC, 0x0800);
        packet.extend(ipv4(A_IP, dst, proto, l4));
        let prog = self.datapath.program(PROG_FROM_ENDPOINT).unwrap();
        run(prog, &packet, self.host_a)
    }

    /// An IPv4 frame arriving on the uplink from `src`.
    fn outside_frame(&self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: Vec<u8>) -> Vec<u8> {
        let mut packet = eth(self.uplink_mac, ROUTER_MAC, 0x0800);
        packet.extend(ipv4(src, dst, proto, l4));
        packet
    }

    /// An IPv4 packet arriving on the uplink from `src`, through TC.
    fn send_from_outside(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        l4: Vec<u8>,
    ) -> (u32, Vec<u8>) {
        let packet = self.outside_frame(src, dst, proto, l4);
        let prog = self.datapath.program(PROG_FROM_UPLINK).unwrap();
        run(prog, &packet, self.uplink)
    }

    /// As `send_from_outside`, through the uplink's XDP program.
    fn send_from_outside_xdp(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        l4: Vec<u8>,
    ) -> (u32, Vec<u8>) {
        let packet = self.outside_frame(src, dst, proto, l4);
        let prog = self.datapath.xdp(PROG_XDP_FROM_UPLINK).unwrap();
        run_xdp(prog, &packet, self.uplink)
    }

    /// Flows in the NAT table (two entries each).
    fn nat_flows(&self) -> usize {
        self.maps.nat_entries().unwrap().len() / 2
    }

    /// The flow with the remote side `remote:port`, as `nat list` shows it.
    fn flow(&self, remote: Ipv4Addr, port: u16) -> Option<Flow> {
        let now = nat_table::now_ns().unwrap();
        let timeouts = self.maps.nat_config().unwrap().timeouts;
        nat_table::flows(&self.maps.nat_entries().unwrap(), &timeouts, now)
            .into_iter()
            .find(|f| f.remote == format!("{remote}:{port}"))
    }

    fn state(&self, remote: Ipv4Addr, port: u16) -> &'static str {
        self.flow(remote, port).map_or("none", |f| f.state)
    }

    fn counters(&self, ifindex: u32) -> IfaceCounters {
        self.maps
            .counters()
            .unwrap()
            .get(&ifindex)
            .copied()
            .unwrap_or_default()
    }
}

/// A `PUBLISHED` entry: `host_port` of `proto` to `ip:port`.
fn published(proto: u8, host_port: u16, ip: Ipv4Addr, port: u16) -> (PublishKey, PublishTarget) {
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

fn addr(packet: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3])
}

fn port(packet: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([packet[at], packet[at + 1]])
}

/// Offsets in an Ethernet + IPv4 (no options) packet.
const SRC: usize = 14 + 12;
const DST: usize = 14 + 16;
const TTL: usize = 14 + 8;
const SPORT: usize = 34;
const DPORT: usize = 36;

/// TCP flags.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

#[test]
fn tcp_to_the_outside_leaves_by_the_uplink_masqueraded_and_its_reply_comes_back() {
    with_lab("tcp", (61000, 65535), |lab| {
        let (action, out) = lab.send_from_a(REMOTE, TCP, tcp(40000, 80, 0x02, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(&out[0..6], &ROUTER_MAC, "to the next hop");
        assert_eq!(&out[6..12], &lab.uplink_mac, "from the uplink");
        assert_eq!(addr(&out, SRC), UPLINK_IP);
        assert_eq!(addr(&out, DST), REMOTE);
        assert_eq!(out[TTL], 63);
        let outside_port = port(&out, SPORT);
        assert!((61000..=65535).contains(&outside_port), "{outside_port}");
        assert!(checksums_ok(&out[14..]), "checksums after SNAT");
        assert_eq!(lab.counters(lab.host_a).translated, 1);

        let (action, back) =
            lab.send_from_outside(REMOTE, UPLINK_IP, TCP, tcp(80, outside_port, 0x12, b"hi"));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(&back[0..6], &A_MAC);
        assert_eq!(&back[6..12], &lab.host_a_mac);
        assert_eq!(addr(&back, DST), A_IP);
        assert_eq!(port(&back, DPORT), 40000);
        assert!(checksums_ok(&back[14..]), "checksums after reverse NAT");
        assert_eq!(lab.counters(lab.uplink).translated, 1);

        // The flow keeps its port.
        let (_, again) = lab.send_from_a(REMOTE, TCP, tcp(40000, 80, 0x10, b"data"));
        assert_eq!(port(&again, SPORT), outside_port);
    });
}

#[test]
fn a_zero_udp_checksum_stays_zero_and_a_set_one_stays_valid() {
    with_lab("udp", (61000, 65535), |lab| {
        for (sport, with_checksum) in [(5353, false), (5354, true)] {
            let (action, out) =
                lab.send_from_a(REMOTE, UDP, udp(sport, 53, b"query", with_checksum));
            assert_eq!(action, TC_ACT_REDIRECT);
            assert_eq!(out[40..42] == [0, 0], !with_checksum, "UDP checksum field");
            assert!(checksums_ok(&out[14..]));
            let outside_port = port(&out, SPORT);
            let (action, back) = lab.send_from_outside(
                REMOTE,
                UPLINK_IP,
                UDP,
                udp(53, outside_port, b"answer", with_checksum),
            );
            assert_eq!(action, TC_ACT_REDIRECT);
            assert_eq!((addr(&back, DST), port(&back, DPORT)), (A_IP, sport));
            assert_eq!(back[40..42] == [0, 0], !with_checksum);
            assert!(checksums_ok(&back[14..]));
        }
    });
}

#[test]
fn icmp_echo_identifier_is_translated_like_a_port() {
    with_lab("icmp", (61000, 65535), |lab| {
        let (action, out) = lab.send_from_a(REMOTE, ICMP, icmp_echo(8, 0x1234, 1));
        assert_eq!(action, TC_ACT_REDIRECT);
        let outside_id = port(&out, 38);
        assert!((61000..=65535).contains(&outside_id));
        assert!(checksums_ok(&out[14..]));
        let (action, back) =
            lab.send_from_outside(REMOTE, UPLINK_IP, ICMP, icmp_echo(0, outside_id, 1));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((addr(&back, DST), port(&back, 38)), (A_IP, 0x1234));
        assert!(checksums_ok(&back[14..]));
    });
}

#[test]
fn fragmentation_needed_about_a_flow_reaches_the_endpoint_translated() {
    with_lab("pmtu", (61000, 65535), |lab| {
        let (_, out) = lab.send_from_a(REMOTE, TCP, tcp(40000, 80, 0x10, &[0; 64]));
        // A router on the way quotes the translated packet's header + 8 bytes.
        let quoted = &out[14..14 + 28];
        let mut error = vec![3, 4, 0, 0, 0, 0, 0x05, 0x00];
        error.extend_from_slice(quoted);
        let (action, back) = lab.send_from_outside(ROUTER_IP, UPLINK_IP, ICMP, error);
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(addr(&back, DST), A_IP, "outer destination");
        let inner = &back[14 + 20 + 8..];
        assert_eq!(addr(inner, 12), A_IP, "quoted source");
        assert_eq!(port(inner, 20), 40000, "quoted source port");
        assert_eq!(port(inner, 22), 80);
        assert_eq!(common::checksum(&inner[..20], 0), 0, "quoted IP checksum");
        assert!(checksums_ok(&back[14..]), "outer IP and ICMP checksums");
    });
}

#[test]
fn unsolicited_packets_to_an_endpoint_are_dropped_as_policy() {
    with_lab("policy", (61000, 65535), |lab| {
        let (action, _) = lab.send_from_outside(REMOTE, A_IP, TCP, tcp(5555, 22, 0x02, b""));
        assert_eq!(action, TC_ACT_SHOT);
        assert_eq!(lab.counters(lab.uplink).drops[DropReason::Policy.slot()], 1);
    });
}

#[test]
fn packets_of_no_flow_go_to_the_host_unchanged() {
    with_lab("hostflow", (61000, 65535), |lab| {
        let (action, _) = lab.send_from_outside(REMOTE, UPLINK_IP, TCP, tcp(80, 40000, 0x12, b""));
        assert_eq!(action, TO_HOST);
        let (action, _) = lab.send_from_outside(REMOTE, UPLINK_IP, ICMP, icmp_echo(8, 7, 1));
        assert_eq!(action, TO_HOST, "a ping of the host itself");
        assert_eq!(lab.counters(lab.uplink).to_host, 2);
    });
}

#[test]
fn a_full_port_range_drops_new_flows_as_no_port_and_keeps_the_old_ones() {
    with_lab("noport", (61000, 61000), |lab| {
        let (action, first) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"a", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(port(&first, SPORT), 61000);
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(1001, 53, b"b", true));
        assert_eq!(action, TC_ACT_SHOT, "no port left for this remote");
        assert_eq!(lab.counters(lab.host_a).drops[DropReason::NoPort.slot()], 1);
        let (action, again) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"c", true));
        assert_eq!(action, TC_ACT_REDIRECT, "the live flow keeps working");
        assert_eq!(port(&again, SPORT), 61000);
        let (action, other) = lab.send_from_a(REMOTE, UDP, udp(1001, 54, b"d", true));
        assert_eq!(
            action, TC_ACT_REDIRECT,
            "ports are shared across remote ports"
        );
        assert_eq!(port(&other, SPORT), 61000);
    });
}

/// The lab's table holds 1024 flows: 16 to each of 64 remote ports, with 16
/// outside ports (as many as a new flow tries), each answered (an unanswered one would give its room to
/// a new flow). A new flow to another remote port is refused and counted,
/// the ones in the table go on both ways; once they have expired, a new flow
/// to one of their remote ports takes an expired one's place.
#[test]
fn a_full_table_refuses_new_flows_as_nat_full_and_keeps_the_old_ones() {
    with_lab("natfull", (61000, 61015), |lab| {
        let mut first = 0;
        for dport in 100..164u16 {
            for i in 0..16u16 {
                let sport = 1000 + (dport - 100) * 16 + i;
                let (action, out) = lab.send_from_a(REMOTE, UDP, udp(sport, dport, b"q", true));
                assert_eq!(action, TC_ACT_REDIRECT, "flow {sport} -> {dport}");
                let answer = udp(dport, port(&out, SPORT), b"a", true);
                let (action, _) = lab.send_from_outside(REMOTE, UPLINK_IP, UDP, answer);
                assert_eq!(action, TC_ACT_REDIRECT, "answer to {sport}");
                if sport == 1000 {
                    first = port(&out, SPORT);
                }
            }
        }
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(5000, 53, b"q", true));
        assert_eq!(action, TC_ACT_SHOT, "no room for a 1025th flow");
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::NatFull.slot()],
            1
        );
        let (action, again) = lab.send_from_a(REMOTE, UDP, udp(1000, 100, b"r", true));
        assert_eq!(action, TC_ACT_REDIRECT, "a flow in the table goes on");
        assert_eq!(port(&again, SPORT), first);
        let (action, _) =
            lab.send_from_outside(REMOTE, UPLINK_IP, UDP, udp(100, first, b"a", true));
        assert_eq!(action, TC_ACT_REDIRECT, "and its replies come back");

        let mut config = lab.maps.nat_config().unwrap();
        config.timeouts.udp = 1;
        lab.maps.set_nat_config(config).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(5000, 101, b"q", true));
        assert_eq!(action, TC_ACT_REDIRECT, "an expired flow made room");
    });
}

#[test]
fn spoofed_sources_and_untranslatable_protocols_are_dropped() {
    with_lab("spoof", (61000, 65535), |lab| {
        let mut packet = eth(lab.host_a_mac, A_MAC, 0x0800);
        packet.extend(ipv4(
            Ipv4Addr::new(192, 168, 28, 9),
            REMOTE,
            UDP,
            udp(1, 2, b"x", true),
        ));
        let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
        let (action, _) = run(prog, &packet, lab.host_a);
        assert_eq!(action, TC_ACT_SHOT);
        let (action, _) = lab.send_from_a(REMOTE, 47, vec![0; 8]);
        assert_eq!(action, TC_ACT_SHOT, "GRE");
        let c = lab.counters(lab.host_a);
        assert_eq!(c.drops[DropReason::IpSpoofed.slot()], 1);
        assert_eq!(c.drops[DropReason::Unsupported.slot()], 1);
    });
}

#[test]
fn the_masquerade_follows_a_change_of_the_uplinks_address() {
    with_lab("readdr", (61000, 65535), |lab| {
        let (_, before) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"a", true));
        assert_eq!(addr(&before, SRC), UPLINK_IP);
        ip("addr del 203.0.113.2/24 dev up0");
        ip("addr add 203.0.113.3/24 dev up0");
        ip("route replace default via 203.0.113.1");
        ip("neigh replace 203.0.113.1 lladdr 02:00:00:00:00:01 dev up0 nud permanent");
        let (action, after) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"b", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(addr(&after, SRC), Ipv4Addr::new(203, 0, 113, 3));
        assert!(checksums_ok(&after[14..]));
    });
}

#[test]
fn a_reply_with_no_ttl_left_is_dropped_not_given_to_the_host() {
    with_lab("ttl", (61000, 65535), |lab| {
        let (_, out) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"a", true));
        let mut reply = eth(lab.uplink_mac, ROUTER_MAC, 0x0800);
        let mut ip = ipv4(
            REMOTE,
            UPLINK_IP,
            UDP,
            udp(53, port(&out, SPORT), b"b", true),
        );
        ip[8] = 1;
        ip[10..12].copy_from_slice(&[0, 0]);
        let c = common::checksum(&ip[..20], 0);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        reply.extend(ip);
        let prog = lab.datapath.program(PROG_FROM_UPLINK).unwrap();
        let (action, _) = run(prog, &reply, lab.uplink);
        assert_eq!(action, TC_ACT_SHOT);
        assert_eq!(
            lab.counters(lab.uplink).drops[DropReason::TtlExceeded.slot()],
            1
        );
    });
}

#[test]
fn a_published_port_takes_new_connections_to_its_endpoint_and_replies_go_back() {
    with_lab("publish", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(TCP, 8080, A_IP, 80)])
            .unwrap();
        let (action, inside) =
            lab.send_from_outside(REMOTE, UPLINK_IP, TCP, tcp(50000, 8080, 0x02, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((addr(&inside, DST), port(&inside, DPORT)), (A_IP, 80));
        assert_eq!(addr(&inside, SRC), REMOTE, "the server sees the client");
        assert!(checksums_ok(&inside[14..]));

        let (action, reply) = lab.send_from_a(REMOTE, TCP, tcp(80, 50000, 0x12, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((addr(&reply, SRC), port(&reply, SPORT)), (UPLINK_IP, 8080));
        assert!(checksums_ok(&reply[14..]));

        let (action, _) =
            lab.send_from_outside(REMOTE, UPLINK_IP, TCP, tcp(50000, 8081, 0x02, b""));
        assert_eq!(action, TO_HOST, "an unpublished port is the host's");
    });
}

#[test]
fn an_endpoint_reaches_its_own_published_port_through_the_hairpin() {
    with_lab("hairpin", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(TCP, 8080, A_IP, 80)])
            .unwrap();
        let (action, there) = lab.send_from_a(UPLINK_IP, TCP, tcp(40000, 8080, 0x02, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((addr(&there, DST), port(&there, DPORT)), (A_IP, 80));
        assert_eq!(
            addr(&there, SRC),
            GATEWAY,
            "from the gateway, so replies come back"
        );
        assert_eq!(&there[0..6], &A_MAC);
        assert!(checksums_ok(&there[14..]));
        let gateway_port = port(&there, SPORT);

        let mut reply = eth(lab.host_a_mac, A_MAC, 0x0800);
        reply.extend(ipv4(A_IP, GATEWAY, TCP, tcp(80, gateway_port, 0x12, b"")));
        let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
        let (action, back) = run(prog, &reply, lab.host_a);
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((addr(&back, SRC), port(&back, SPORT)), (UPLINK_IP, 8080));
        assert_eq!((addr(&back, DST), port(&back, DPORT)), (A_IP, 40000));
        assert!(checksums_ok(&back[14..]));
    });
}

#[test]
fn a_host_only_port_is_neither_published_on_the_uplink_nor_hairpinned() {
    with_lab("hostonly", (61000, 65535), |lab| {
        let (key, mut target) = published(TCP, 8080, A_IP, 80);
        target.flags = PUBLISH_HOST_ONLY;
        lab.maps.set_published(&[(key, target)]).unwrap();
        let (action, _) =
            lab.send_from_outside(REMOTE, UPLINK_IP, TCP, tcp(50000, 8080, 0x02, b""));
        assert_eq!(action, TO_HOST, "from the uplink: the host's port");
        let (_, there) = lab.send_from_a(UPLINK_IP, TCP, tcp(40000, 8080, 0x02, b""));
        assert_eq!(
            (addr(&there, DST), port(&there, DPORT)),
            (UPLINK_IP, 8080),
            "from an endpoint: not translated"
        );
        assert_eq!(lab.nat_flows(), 0, "no flow made");
    });
}

#[test]
fn a_reset_flow_gives_its_port_to_the_next_one_at_once() {
    with_lab("reclaim", (61000, 61000), |lab| {
        let (_, first) = lab.send_from_a(REMOTE, TCP, tcp(40000, 80, 0x02, b""));
        assert_eq!(port(&first, SPORT), 61000);
        let (action, _) = lab.send_from_a(REMOTE, TCP, tcp(40001, 80, 0x02, b""));
        assert_eq!(action, TC_ACT_SHOT, "the live flow holds the only port");
        lab.send_from_a(REMOTE, TCP, tcp(40000, 80, 0x04, b""));
        let (action, next) = lab.send_from_a(REMOTE, TCP, tcp(40001, 80, 0x02, b""));
        assert_eq!(
            action, TC_ACT_REDIRECT,
            "the reset flow's port was not reclaimed"
        );
        assert_eq!(port(&next, SPORT), 61000);
    });
}

/// `l4` in two IPv4 fragments (identification `id`): the first with
/// `first_len` bytes of it (a multiple of 8), the second with the rest.
fn fragments(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    l4: Vec<u8>,
    id: u16,
    first_len: usize,
) -> [Vec<u8>; 2] {
    // The transport checksum over the whole datagram, as a sender computes it.
    let whole = ipv4(src, dst, proto, l4);
    let l4 = &whole[20..];
    let piece = |bytes: &[u8], offset: usize, more: bool| {
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + bytes.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&id.to_be_bytes());
        let frags = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
        ip.extend_from_slice(&frags.to_be_bytes());
        ip.extend_from_slice(&[64, proto, 0, 0]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        let c = common::checksum(&ip, 0);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(bytes);
        ip
    };
    [
        piece(&l4[..first_len], 0, true),
        piece(&l4[first_len..], first_len, false),
    ]
}

#[test]
fn a_fragmented_datagram_crosses_the_nat_both_ways_whole() {
    with_lab("frag", (61000, 65535), |lab| {
        let body: Vec<u8> = (0..200u8).collect();
        let [first, later] = fragments(A_IP, REMOTE, UDP, udp(5353, 53, &body, true), 0x4242, 64);
        let mut outs = Vec::new();
        for piece in [first, later] {
            let mut packet = eth(lab.host_a_mac, A_MAC, 0x0800);
            packet.extend(piece);
            let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
            let (action, out) = run(prog, &packet, lab.host_a);
            assert_eq!(action, TC_ACT_REDIRECT);
            assert_eq!(addr(&out, SRC), UPLINK_IP);
            assert_eq!(common::checksum(&out[14..34], 0), 0, "IP checksum");
            outs.push(out);
        }
        // Reassembled, the datagram's UDP checksum still holds.
        // The translated first fragment's header, made whole, around the
        // transport bytes of both.
        let mut datagram = outs[0][14..34].to_vec();
        datagram.extend_from_slice(&outs[0][34..]);
        datagram.extend_from_slice(&outs[1][34..]);
        let total = datagram.len() as u16;
        datagram[2..4].copy_from_slice(&total.to_be_bytes());
        datagram[6..8].copy_from_slice(&[0, 0]);
        datagram[10..12].copy_from_slice(&[0, 0]);
        let c = common::checksum(&datagram[..20], 0);
        datagram[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(
            checksums_ok(&datagram),
            "UDP checksum of the translated datagram"
        );
        let outside_port = port(&outs[0], SPORT);

        let [first, later] = fragments(
            REMOTE,
            UPLINK_IP,
            UDP,
            udp(53, outside_port, &body, true),
            0x5151,
            64,
        );
        for piece in [first, later] {
            let mut packet = eth(lab.uplink_mac, ROUTER_MAC, 0x0800);
            packet.extend(piece);
            let prog = lab.datapath.program(PROG_FROM_UPLINK).unwrap();
            let (action, back) = run(prog, &packet, lab.uplink);
            assert_eq!(action, TC_ACT_REDIRECT, "a reply fragment did not get in");
            assert_eq!(addr(&back, DST), A_IP);
        }
    });
}

#[test]
fn a_later_fragment_without_its_first_is_dropped() {
    with_lab("fragorph", (61000, 65535), |lab| {
        let [_, later] = fragments(A_IP, REMOTE, UDP, udp(5353, 53, &[7; 100], true), 9, 64);
        let mut packet = eth(lab.host_a_mac, A_MAC, 0x0800);
        packet.extend(later);
        let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
        let (action, _) = run(prog, &packet, lab.host_a);
        assert_eq!(action, TC_ACT_SHOT);
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::Unsupported.slot()],
            1
        );
    });
}

#[test]
fn xdp_redirects_to_an_endpoint_only_where_the_loader_allowed_it() {
    with_lab("xdp-east-west", (61000, 65535), |lab| {
        let mut packet = eth(B_MAC, A_MAC, 0x0800);
        packet.extend(ipv4(A_IP, B_IP, UDP, udp(5000, 53, b"q", true)));
        let run = |lab: &mut NatLab, packet: &[u8]| {
            let prog = lab.datapath.xdp(PROG_XDP_FROM_ENDPOINT).unwrap();
            run_xdp(prog, packet, lab.host_a)
        };
        // B's end not made fit for XDP frames: TC's.
        assert_eq!(run(lab, &packet).0, XDP_PASS);
        lab.maps.set_xdp_target(lab.host_b, true).unwrap();
        let (action, out) = run(lab, &packet);
        assert_eq!(action, XDP_REDIRECT);
        assert_eq!(out, packet, "addressed to B's MAC already: unchanged");
        assert_eq!(lab.counters(lab.host_a).redirected, 1);
        // A spoofed source is TC's to drop and count.
        let mut spoofed = eth(B_MAC, A_MAC, 0x0800);
        spoofed.extend(ipv4(REMOTE, B_IP, UDP, udp(5000, 53, b"q", true)));
        assert_eq!(run(lab, &spoofed).0, XDP_PASS);
        assert_eq!(
            lab.counters(lab.host_a).rx_packets,
            1,
            "XDP counts what it finished"
        );
    });
}

#[test]
fn xdp_translates_a_live_flows_reply_and_passes_everything_else() {
    with_lab("xdp-nat", (61000, 65535), |lab| {
        // The first packet of a flow leaves through TC, which makes the flow.
        let (action, out) = lab.send_from_a(REMOTE, TCP, tcp(40000, 443, 0x02, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        let outside_port = port(&out, 34);
        let reply = || tcp(443, outside_port, 0x12, b"hello");

        // Not yet allowed to redirect to A: passed, unchanged, to TC.
        let (action, out) = lab.send_from_outside_xdp(REMOTE, UPLINK_IP, TCP, reply());
        assert_eq!(action, XDP_PASS);
        assert_eq!(addr(&out, 30), UPLINK_IP);

        lab.maps.set_xdp_target(lab.host_a, true).unwrap();
        let (action, out) = lab.send_from_outside_xdp(REMOTE, UPLINK_IP, TCP, reply());
        assert_eq!(action, XDP_REDIRECT);
        assert_eq!(&out[0..6], &A_MAC);
        assert_eq!(&out[6..12], &lab.host_a_mac);
        assert_eq!(addr(&out, 30), A_IP);
        assert_eq!(port(&out, 36), 40000);
        assert_eq!(out[22], 63, "one hop");
        assert!(checksums_ok(&out[14..]), "checksums after translation");
        assert_eq!(lab.counters(lab.uplink).translated, 1);

        // A packet of no flow, an ICMP error, a fragment: TC's.
        let (action, _) =
            lab.send_from_outside_xdp(REMOTE, UPLINK_IP, TCP, tcp(443, 1234, 0x12, b""));
        assert_eq!(action, XDP_PASS);
        let (action, _) = lab.send_from_outside_xdp(REMOTE, UPLINK_IP, ICMP, icmp_echo(3, 0, 0));
        assert_eq!(action, XDP_PASS);
        let mut fragment = lab.outside_frame(REMOTE, UPLINK_IP, TCP, reply());
        fragment[14 + 6] = 0x20; // more fragments
        let prog = lab.datapath.xdp(PROG_XDP_FROM_UPLINK).unwrap();
        assert_eq!(run_xdp(prog, &fragment, lab.uplink).0, XDP_PASS);
    });
}

#[test]
fn an_endpoints_icmp_error_about_a_published_flow_leaves_as_the_nat() {
    with_lab("icmp-out", (61000, 65535), |lab| {
        let (key, target) = published(UDP, 5353, A_IP, 53);
        lab.maps.set_published(&[(key, target)]).unwrap();
        // A datagram to the published port makes the flow...
        let query = udp(33000, 5353, b"q", true);
        let (action, inbound) = lab.send_from_outside(REMOTE, UPLINK_IP, UDP, query);
        assert_eq!(action, TC_ACT_REDIRECT);
        // ...and A answers it with "port unreachable", quoting what it got.
        let quoted = inbound[14..14 + 28].to_vec();
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted);
        let (action, out) = lab.send_from_a(REMOTE, ICMP, icmp);
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(addr(&out, 26), UPLINK_IP, "outer source");
        assert_eq!(
            addr(&out, 14 + 20 + 8 + 16),
            UPLINK_IP,
            "quoted destination"
        );
        assert_eq!(
            port(&out, 14 + 20 + 8 + 20 + 2),
            5353,
            "quoted destination port"
        );
        assert!(checksums_ok(&out[14..]), "ICMP checksum after translation");
        assert_eq!(common::checksum(&out[42..62], 0), 0, "quoted IP checksum");
        // An error about a flow the NAT never carried: dropped.
        let mut stray = vec![3, 3, 0, 0, 0, 0, 0, 0];
        stray.extend(ipv4(REMOTE, A_IP, UDP, udp(1, 2, b"", true))[..28].to_vec());
        let (action, _) = lab.send_from_a(REMOTE, ICMP, stray);
        assert_eq!(action, TC_ACT_SHOT);
    });
}

#[test]
fn a_datagram_too_big_for_the_uplink_is_translated_for_the_stack_to_fragment_unless_df() {
    with_lab("mtu", (61000, 65535), |lab| {
        ip("link set up0 mtu 1400");
        let datagram = |df: bool| {
            let mut frame = eth(lab.host_a_mac, A_MAC, 0x0800);
            let mut packet = ipv4(A_IP, REMOTE, UDP, udp(40000, 53, &[7; 1460], true));
            if !df {
                packet[6] = 0;
                packet[10..12].copy_from_slice(&[0, 0]);
                let c = checksum(&packet[..20], 0);
                packet[10..12].copy_from_slice(&c.to_be_bytes());
            }
            frame.extend(packet);
            frame
        };
        let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();

        // DF set: the stack answers "fragmentation needed"; nothing is
        // translated, no flow made.
        let (action, out) = run(prog, &datagram(true), lab.host_a);
        assert_eq!(action, TO_HOST);
        assert_eq!(addr(&out, SRC), A_IP);
        assert_eq!(lab.nat_flows(), 0);

        // DF clear: translated here, then the stack's to fragment (and to
        // count the hop: the TTL is as it came).
        let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
        let (action, out) = run(prog, &datagram(false), lab.host_a);
        assert_eq!(action, TO_HOST);
        assert_eq!(addr(&out, SRC), UPLINK_IP);
        assert!((61000..=65535).contains(&port(&out, SPORT)));
        assert_eq!(out[TTL], 64);
        assert!(checksums_ok(&out[14..]), "checksums after SNAT");
        assert_eq!(lab.nat_flows(), 1);
    });
}

#[test]
fn a_reply_for_another_networks_endpoint_passes_on_untouched() {
    with_lab("shared", (61000, 65535), |lab| {
        // A TCP flow of A's, then A becomes another network's endpoint (the
        // table is the uplink's, shared by its networks).
        let (_, out) = lab.send_from_a(REMOTE, TCP, tcp(40000, 80, 0x02, b""));
        let outside_port = port(&out, SPORT);
        let before = lab.maps.nat_entries().unwrap();
        lab.maps.remove_endpoint(A_IP).unwrap();

        // Its SYN-ACK is the other network's program's: passed on, neither
        // translated nor tracked here.
        let (action, back) =
            lab.send_from_outside(REMOTE, UPLINK_IP, TCP, tcp(80, outside_port, 0x12, b""));
        assert_eq!(action, TO_HOST);
        assert_eq!(addr(&back, DST), UPLINK_IP);
        assert_eq!(lab.maps.nat_entries().unwrap(), before, "state touched");
        assert_eq!(lab.counters(lab.uplink).translated, 0);
    });
}
/// Issue #14: one spoofed SYN held a flow for `tcp_established`. Only a SYN
/// opens a flow to a published port, and the flow is established only once
/// the client acknowledges the endpoint's SYN-ACK, which a spoofed client
/// never sees.
#[test]
fn only_a_syn_opens_a_published_flow_and_only_the_handshake_establishes_it() {
    with_lab("syn-only", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(TCP, 8080, A_IP, 80)])
            .unwrap();
        for flags in [ACK, RST, SYN | ACK] {
            let (action, _) = lab.send_from_outside(
                REMOTE,
                UPLINK_IP,
                TCP,
                tcp_seq(50000, 8080, flags, (1000, 1), b""),
            );
            assert_eq!(action, TC_ACT_SHOT, "flags {flags:#x} opened a flow");
        }
        assert_eq!(
            lab.counters(lab.uplink).drops[DropReason::TcpNoFlow.slot()],
            3
        );
        assert_eq!(lab.state(REMOTE, 50000), "none");

        let syn = tcp_seq(50000, 8080, SYN, (1000, 0), b"");
        let (action, _) = lab.send_from_outside(REMOTE, UPLINK_IP, TCP, syn);
        assert_eq!(action, TC_ACT_REDIRECT);
        let flow = lab.flow(REMOTE, 50000).unwrap();
        assert_eq!(flow.state, "syn_sent");
        assert!(flow.expires_in_secs <= 60, "on tcp_syn: {flow:?}");

        let syn_ack = tcp_seq(80, 50000, SYN | ACK, (5000, 1001), b"");
        let (action, _) = lab.send_from_a(REMOTE, TCP, syn_ack);
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(lab.state(REMOTE, 50000), "syn_recv");

        // A blind ACK (not of the SYN-ACK): delivered, A's stack judges it,
        // but the flow stays unconfirmed.
        let blind = tcp_seq(50000, 8080, ACK, (1001, 4242), b"");
        let (action, _) = lab.send_from_outside(REMOTE, UPLINK_IP, TCP, blind);
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(lab.state(REMOTE, 50000), "syn_recv");

        let ack = tcp_seq(50000, 8080, ACK, (1001, 5001), b"");
        let (action, _) = lab.send_from_outside(REMOTE, UPLINK_IP, TCP, ack);
        assert_eq!(action, TC_ACT_REDIRECT);
        let flow = lab.flow(REMOTE, 50000).unwrap();
        assert_eq!(flow.state, "established");
        assert!(flow.expires_in_secs > 60, "on tcp_established: {flow:?}");
    });
}

/// Outbound too: the remote's SYN-ACK must acknowledge the endpoint's SYN.
/// A RST or FIN from outside counts only within the window past what the
/// endpoint acknowledged: a blind spray neither closes the flow nor hands
/// its port (the only one here) to another.
#[test]
fn a_blind_rst_or_fin_neither_closes_a_flow_nor_frees_its_port() {
    with_lab("blind-rst", (61000, 61000), |lab| {
        let (_, out) = lab.send_from_a(REMOTE, TCP, tcp_seq(40000, 80, SYN, (100, 0), b""));
        let p = port(&out, SPORT);
        let from_remote = |lab: &mut NatLab, flags, seq_ack| {
            let (action, _) =
                lab.send_from_outside(REMOTE, UPLINK_IP, TCP, tcp_seq(80, p, flags, seq_ack, b""));
            assert_eq!(action, TC_ACT_REDIRECT, "delivered either way");
        };
        // Not acknowledging A's SYN: no answer to it.
        from_remote(lab, RST | ACK, (0, 4242));
        from_remote(lab, SYN | ACK, (7000, 4242));
        assert_eq!(lab.state(REMOTE, 80), "syn_sent");
        from_remote(lab, SYN | ACK, (7000, 101));
        assert_eq!(lab.state(REMOTE, 80), "syn_recv");
        lab.send_from_a(REMOTE, TCP, tcp_seq(40000, 80, ACK, (101, 7001), b""));
        assert_eq!(lab.state(REMOTE, 80), "established");

        for seq in [7001 + 65_536, 7000, 7001u32.wrapping_add(1 << 31)] {
            from_remote(lab, RST, (seq, 0));
            from_remote(lab, FIN | ACK, (seq, 101));
        }
        assert_eq!(lab.state(REMOTE, 80), "established");
        let (action, _) = lab.send_from_a(REMOTE, TCP, tcp_seq(40001, 80, SYN, (500, 0), b""));
        assert_eq!(action, TC_ACT_SHOT, "the port is still the flow's");
        assert_eq!(lab.counters(lab.host_a).drops[DropReason::NoPort.slot()], 1);

        // The remote's RST at its next sequence number (A acknowledged 7001;
        // 1000 bytes are in flight) closes it and frees the port.
        from_remote(lab, RST, (8001, 0));
        assert_eq!(lab.state(REMOTE, 80), "closing");
        let (action, next) = lab.send_from_a(REMOTE, TCP, tcp_seq(40001, 80, SYN, (500, 0), b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(port(&next, SPORT), p);
    });
}

/// Runs the calling thread on CPU 0 only: early drop remembers flows per
/// CPU.
fn stay_on_one_cpu() {
    let mut cpus = nix::sched::CpuSet::new();
    cpus.set(0).unwrap();
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus).unwrap();
}

/// A SYN flood from spoofed sources fills the table (1024 flows here) with
/// unconfirmed flows: new flows, the endpoint's and the flood's, each evict
/// the oldest of them instead of being refused as `nat_full`, whichever
/// load of the datapath runs them.
#[test]
fn a_table_full_of_unconfirmed_flows_makes_room_for_new_ones() {
    with_lab("early-drop", (61000, 65535), |lab| {
        stay_on_one_cpu();
        lab.maps
            .set_published(&[published(TCP, 8080, A_IP, 80)])
            .unwrap();
        let spoofed = |i: u32| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i);
        for i in 0..1024 {
            let syn = tcp_seq(40000, 8080, SYN, (i, 0), b"");
            let (action, _) = lab.send_from_outside(spoofed(i), UPLINK_IP, TCP, syn);
            assert_eq!(action, TC_ACT_REDIRECT, "SYN {i}");
        }
        // A's flows through a program of another load (as `attach` makes):
        // the rings are the network's, not one load's.
        let mut other_load = Datapath::load_at(&lab._pins.0, 1024, None).unwrap();
        let from_a = other_load.program(PROG_FROM_ENDPOINT).unwrap();
        for sport in [1000, 1001] {
            let mut packet = eth(lab.host_a_mac, A_MAC, 0x0800);
            packet.extend(ipv4(A_IP, REMOTE, UDP, udp(sport, 53, b"q", true)));
            let (action, _) = run(from_a, &packet, lab.host_a);
            assert_eq!(action, TC_ACT_REDIRECT, "A's new flow from {sport} refused");
        }
        let (action, _) = lab.send_from_outside(
            spoofed(5000),
            UPLINK_IP,
            TCP,
            tcp_seq(40000, 8080, SYN, (7, 0), b""),
        );
        assert_eq!(
            action, TC_ACT_REDIRECT,
            "a new connection to the published port"
        );
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::NatFull.slot()],
            0
        );
        let entries = lab.maps.nat_entries().unwrap();
        assert_eq!(entries.len(), 2048, "every flow whole");
        for i in 0..3 {
            assert_eq!(lab.state(spoofed(i), 40000), "none", "the oldest made room");
        }
        assert_eq!(lab.state(spoofed(3), 40000), "syn_sent");
    });
}

/// The quoted packet was sent to A: B may not speak for A's flow (it could
/// reset or throttle A's connections).
#[test]
fn an_endpoints_icmp_error_quoting_another_endpoints_flow_is_dropped() {
    with_lab("icmp-foreign", (61000, 65535), |lab| {
        netfwd::procnet::enable_forwarding("hostb").unwrap();
        lab.maps.ensure_counters(lab.host_b).unwrap();
        let (key, target) = published(UDP, 5353, A_IP, 53);
        lab.maps.set_published(&[(key, target)]).unwrap();
        let query = udp(33000, 5353, b"q", true);
        let (action, inbound) = lab.send_from_outside(REMOTE, UPLINK_IP, UDP, query);
        assert_eq!(action, TC_ACT_REDIRECT);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&inbound[14..14 + 28]);
        let mut packet = eth(mac_of("hostb"), B_MAC, 0x0800);
        packet.extend(ipv4(B_IP, REMOTE, ICMP, icmp));
        let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
        let (action, _) = run(prog, &packet, lab.host_b);
        assert_eq!(action, TC_ACT_SHOT);
        assert_eq!(
            lab.counters(lab.host_b).drops[DropReason::IcmpSpoofed.slot()],
            1
        );
    });
}

/// A hairpinned flow's egress entry was keyed by the client's tuple, which
/// neither the collector nor a port takeover could derive from the reply
/// entry: it stayed in the table for good.
#[test]
fn an_expired_hairpin_flow_is_collected_whole() {
    with_lab("hairpin-gc", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(TCP, 8080, A_IP, 80)])
            .unwrap();
        let (action, _) = lab.send_from_a(UPLINK_IP, TCP, tcp(40000, 8080, SYN, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        let snapshot = lab.maps.nat_entries().unwrap();
        assert_eq!(snapshot.len(), 2);
        let timeouts = lab.maps.nat_config().unwrap().timeouts;
        let a_day_later = nat_table::now_ns().unwrap() + 86_400 * 1_000_000_000;
        let collected =
            nat_table::collect_expired(&snapshot, &timeouts, a_day_later, &mut lab.maps).unwrap();
        assert_eq!(collected, 1);
        let left = lab.maps.nat_entries().unwrap();
        assert!(left.is_empty(), "left behind: {left:?}");
    });
}

/// A source in a trusted prefix (a peer host's endpoints, the LAN's own
/// hosts) reaches endpoints directly only on the interface those arrive on:
/// the same address on another interface (here the uplink, the LAN being
/// another) is the outside world's, and the FORWARD policy drops it.
#[test]
fn a_trusted_source_address_counts_only_on_the_trusted_interface() {
    with_lab("trust-iface", (61000, 65535), |lab| {
        let peers = netfwd::ipnet::Ipv4Net::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap();
        lab.maps
            .set_remotes(&[(peers, REMOTE_ROUTE | REMOTE_TRUSTED)])
            .unwrap();
        let peer = Ipv4Addr::new(10, 0, 2, 2);
        let lan = lab.host_b;
        lab.maps.set_trusted_iface(lan).unwrap();
        let (action, _) = lab.send_from_outside(peer, A_IP, UDP, udp(5000, 53, b"q", true));
        assert_eq!(action, TC_ACT_SHOT, "a peer's address on the uplink");
        assert_eq!(lab.counters(lab.uplink).drops[DropReason::Policy.slot()], 1);

        lab.maps.set_trusted_iface(lab.uplink).unwrap();
        let (action, inside) = lab.send_from_outside(peer, A_IP, UDP, udp(5000, 53, b"q", true));
        assert_eq!(action, TC_ACT_REDIRECT, "where the peers are, it gets in");
        assert_eq!(addr(&inside, SRC), peer, "routed, not translated");
    });
}

/// A NAT table pinned by a netfwd whose entries had another layout (24
/// bytes, before TCP sequence numbers) is recreated on load, not reused:
/// the programs would read past its values.
#[test]
fn a_pinned_nat_table_of_an_older_entry_layout_is_recreated() {
    let pins = PinDir::new("nat-layout");
    std::fs::create_dir_all(&pins.0).unwrap();
    let nat = pins.0.join("NAT");
    let nat_path = nat.to_str().unwrap();
    let args = "type hash key 16 value 24 entries 2048 name NAT";
    let status = Command::new("bpftool")
        .args(["map", "create", nat_path])
        .args(args.split_whitespace())
        .status()
        .unwrap();
    assert!(status.success(), "bpftool map create");
    Datapath::load_at(&pins.0, 1024, None)
        .map_err(|e| format!("{e:#}"))
        .unwrap();
    let info = aya::maps::MapInfo::from_pin(&nat).unwrap();
    assert_eq!(info.value_size() as usize, size_of::<NatEntry>());
}

/// What the kernel drops as a martian, the datapath must not deliver: a
/// datagram to a published port from the gateway's, a sibling endpoint's,
/// another netfwd network's, the uplink's own or a loopback address.
#[test]
fn a_published_port_takes_no_source_that_cannot_be_outside() {
    with_lab("martian", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(UDP, 5353, A_IP, 53)])
            .unwrap();
        let other_network: netfwd::ipnet::Ipv4Net = "10.77.0.0/16".parse().unwrap();
        lab.maps
            .set_remotes(&[(other_network, REMOTE_ISOLATED | REMOTE_LOCAL)])
            .unwrap();
        let martians = [
            GATEWAY,
            B_IP,
            Ipv4Addr::new(10, 77, 0, 9),
            UPLINK_IP,
            Ipv4Addr::new(127, 0, 0, 1),
        ];
        for src in martians {
            let query = udp(33000, 5353, b"q", true);
            let (action, _) = lab.send_from_outside(src, UPLINK_IP, UDP, query);
            assert_eq!(action, TC_ACT_SHOT, "from {src}");
        }
        let drops = lab.counters(lab.uplink).drops;
        assert_eq!(
            drops[DropReason::MartianSource.slot()],
            martians.len() as u64
        );
        assert_eq!(lab.nat_flows(), 0, "no flow for any of them");
        let query = udp(33000, 5353, b"q", true);
        let (action, _) = lab.send_from_outside(REMOTE, UPLINK_IP, UDP, query);
        assert_eq!(action, TC_ACT_REDIRECT, "an outside client");
    });
}

/// netfwd translates on the uplink only: a destination the host routes out
/// of another interface would leave with the endpoint's own address.
#[test]
fn an_endpoints_packet_routed_out_of_another_interface_is_dropped() {
    with_lab("not-uplink", (61000, 65535), |lab| {
        ip("link add other0 type veth peer name other1");
        ip("link set other0 up");
        ip("link set other1 up");
        ip("addr add 192.0.2.2/24 dev other0");
        ip("neigh replace 192.0.2.9 lladdr 02:00:00:00:00:09 dev other0 nud permanent");
        let (action, _) = lab.send_from_a(Ipv4Addr::new(192, 0, 2, 9), ICMP, icmp_echo(8, 1, 1));
        assert_eq!(action, TC_ACT_SHOT);
        let drops = lab.counters(lab.host_a).drops;
        assert_eq!(drops[DropReason::NotUplink.slot()], 1);
        let (action, _) = lab.send_from_a(REMOTE, ICMP, icmp_echo(8, 1, 1));
        assert_eq!(action, TC_ACT_REDIRECT, "the uplink's way still translates");
    });
}

/// 1024 datagrams from as many client ports fill the table (1024 flows)
/// with flows the endpoint never answered: a new TCP connection of A's and
/// an answered flow's neighbours still get in, each evicting the oldest
/// unanswered flow, of any protocol.
#[test]
fn a_table_full_of_unanswered_datagrams_makes_room_for_a_new_connection() {
    with_lab("early-drop-udp", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(UDP, 5353, A_IP, 53)])
            .unwrap();
        for sport in 0..1024u16 {
            let query = udp(10000 + sport, 5353, b"q", true);
            let (action, _) = lab.send_from_outside(REMOTE, UPLINK_IP, UDP, query);
            assert_eq!(action, TC_ACT_REDIRECT, "datagram {sport}");
        }
        assert_eq!(lab.nat_flows(), 1024, "the table is full");
        let (action, _) = lab.send_from_a(REMOTE, TCP, tcp_seq(40001, 80, SYN, (1, 0), b""));
        assert_eq!(action, TC_ACT_REDIRECT, "A's new connection");
        assert_eq!(lab.state(REMOTE, 80), "syn_sent");
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::NatFull.slot()],
            0
        );
        assert!(
            lab.flow(REMOTE, 10000).is_none(),
            "the oldest datagram made room"
        );
    });
}

/// One endpoint may hold at most `max_unreplied` unanswered flows: its
/// flood is refused past that (`unreplied_share`), its neighbour is not,
/// and an answer gives the share back.
#[test]
fn an_endpoints_unanswered_flows_are_held_to_its_share() {
    with_lab("share", (61000, 65535), |lab| {
        let config = lab.maps.nat_config().unwrap();
        lab.maps
            .set_nat_config(NatConfig {
                max_unreplied: 8,
                ..config
            })
            .unwrap();
        for sport in 0..8u16 {
            let (action, _) = lab.send_from_a(REMOTE, UDP, udp(20000 + sport, 53, b"q", true));
            assert_eq!(action, TC_ACT_REDIRECT, "flow {sport}");
        }
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(20008, 53, b"q", true));
        assert_eq!(action, TC_ACT_SHOT, "past its share");
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::UnrepliedShare.slot()],
            1
        );
        // A packet of a flow it holds is no new flow.
        let (action, out) = lab.send_from_a(REMOTE, UDP, udp(20000, 53, b"again", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        // The answer to it gives one back.
        let answer = udp(53, port(&out, SPORT), b"a", true);
        let (action, _) = lab.send_from_outside(REMOTE, UPLINK_IP, UDP, answer);
        assert_eq!(action, TC_ACT_REDIRECT);
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(20008, 53, b"q", true));
        assert_eq!(action, TC_ACT_REDIRECT, "within its share again");
    });
}
