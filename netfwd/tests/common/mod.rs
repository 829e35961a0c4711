//! Shared by the BPF_PROG_TEST_RUN tests: a private pin directory, running a
//! program once, and packet builders with correct checksums.
// Each test crate that includes this module uses a different part of it,
// and test files come and go, so whether anything is unused depends on the
// crate: an `expect` would be unfulfilled in the one that uses it all.
#![allow(
    dead_code,
    reason = "each test file uses a different part; `expect` would fail where one uses it all"
)]

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::Duration,
};

use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions, Xdp};
use netfwd::loader::{DatapathMaps, Programs};
use netfwd_common::maps::{EndpointEntry, Network6Config, NetworkConfig};

/// The ifindex of `lo`, where a test run's packet arrives.
pub const LO: u32 = 1;

/// A pin directory of the test's own under the real bpffs, removed on drop.
pub struct PinDir(pub PathBuf);

impl PinDir {
    pub fn new(tag: &str) -> Self {
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/netfwd-test-{}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        PinDir(dir)
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `NETWORK6` entry of a dual-stack network: `subnet`/64 with `gateway`
/// and `flags` (`NETWORK6_*`).
pub fn network6_config(gateway: Ipv6Addr, subnet: Ipv6Addr, flags: u8) -> Network6Config {
    Network6Config {
        gateway: gateway.octets(),
        subnet: subnet.octets(),
        prefix_len: 64,
        flags,
        _pad: [0; 2],
    }
}

/// The `NETWORK` entry of the tests' network, 192.168.28.0/24, with
/// `gateway` and `flags` (`NETWORK_*`).
pub fn network_config(gateway: Ipv4Addr, flags: u8) -> NetworkConfig {
    NetworkConfig {
        gateway: gateway.octets(),
        subnet: [192, 168, 28, 0],
        prefix_len: 24,
        flags,
        _pad: [0; 2],
    }
}

/// The datapath loaded at `pins` (room for 1024 NAT flows) and its maps:
/// the network with `gateway`, `endpoints` entered, and counters for `lo`.
pub fn loaded(
    pins: &PinDir,
    gateway: Ipv4Addr,
    endpoints: &[(Ipv4Addr, EndpointEntry)],
) -> (Programs, DatapathMaps) {
    let datapath = Programs::load_at(&pins.0, 1024, None)
        .map_err(|e| format!("{e:#}"))
        .unwrap();
    let mut maps = DatapathMaps::open(&pins.0).unwrap();
    maps.set_network(network_config(gateway, 0)).unwrap();
    for (ip, entry) in endpoints {
        maps.set_endpoint(*ip, *entry).unwrap();
    }
    maps.ensure_counters(LO).unwrap();
    (datapath, maps)
}

/// Runs `prog` once on `packet` as if it arrived on `ifindex` (0: no
/// device); returns the TC action and the packet after it.
pub fn run(prog: &SchedClassifier, packet: &[u8], ifindex: u32) -> (u32, Vec<u8>) {
    let (action, out, _) = run_repeated(prog, packet, ifindex, 1);
    (action, out)
}

/// Runs `prog` `repeat` times on `packet` as [`run`] does; also returns the
/// kernel's mean duration of a run. The kernel runs the same skb every
/// time: a program that rewrites the packet sees its own output from the
/// second run on.
pub fn run_repeated(
    prog: &SchedClassifier,
    packet: &[u8],
    ifindex: u32,
    repeat: u32,
) -> (u32, Vec<u8>, Duration) {
    let mut out = vec![0u8; packet.len() + 64];
    // struct __sk_buff: ifindex is the 11th u32 (offset 40); the kernel
    // accepts it in a test run's context and sets the skb's device from it.
    let mut ctx = [0u8; 192];
    ctx[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    let result = prog
        .test_run(TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            ctx_in: (ifindex != 0).then_some(&ctx[..]),
            repeat,
            ..Default::default()
        })
        .unwrap();
    out.truncate(result.data_size_out as usize);
    (result.return_value, out, result.duration)
}

/// Runs XDP program `prog` once on `packet` as if it arrived on `ifindex`
/// (which must exist); returns the XDP action and the frame after it.
pub fn run_xdp(prog: &Xdp, packet: &[u8], ifindex: u32) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; packet.len() + 64];
    // struct xdp_md: data, data_end (the frame's length), data_meta,
    // ingress_ifindex, rx_queue_index, egress_ifindex.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(packet.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    let result = prog
        .test_run(TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx[..]),
            repeat: 1,
            ..Default::default()
        })
        .unwrap();
    out.truncate(result.data_size_out as usize);
    (result.return_value, out)
}

pub fn eth(dst: [u8; 6], src: [u8; 6], ether_type: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&src);
    p.extend_from_slice(&ether_type.to_be_bytes());
    p
}

/// The Internet checksum of `data` (with `sum` carried in): explain's
/// packet builder's, which these tests check the datapath with too.
pub use netfwd::explain::packet::checksum;
use netfwd::explain::packet::pseudo_sum;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;

/// An IPv4 packet (no options, DF, TTL 64) around `l4`, with the IP
/// checksum and the transport checksum (TCP, UDP unless `udp_csum_zero`,
/// ICMP) filled in.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, mut l4: Vec<u8>) -> Vec<u8> {
    fill_l4_checksum(src.into(), dst.into(), proto, &mut l4);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&l4);
    ip
}

/// An Ethernet frame from `macs.1` to `macs.0` around an IPv4 ([`ipv4`])
/// or IPv6 ([`ipv6`]) packet; `src` and `dst` of one family.
pub fn ip_frame(
    (dst_mac, src_mac): ([u8; 6], [u8; 6]),
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: Vec<u8>,
) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let mut frame = eth(dst_mac, src_mac, 0x0800);
            frame.extend(ipv4(src, dst, proto, l4));
            frame
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut frame = eth(dst_mac, src_mac, 0x86dd);
            frame.extend(ipv6(src, dst, proto, l4));
            frame
        }
        _ => panic!("{src} and {dst} are of two families"),
    }
}

/// An IPv6 packet (hop limit 64, no extension header) around `l4`, with
/// the transport checksum filled in as [`ipv4`] does (ICMPv6's over the
/// pseudo-header).
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, mut l4: Vec<u8>) -> Vec<u8> {
    fill_l4_checksum(src.into(), dst.into(), proto, &mut l4);
    ipv6_raw(src, dst, proto, &l4)
}

/// An IPv6 packet (hop limit 64) around `payload`, whose first header is
/// `next`: the caller fills in the checksums (`fill_l4_checksum`).
pub fn ipv6_raw(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[next, 64]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(payload);
    ip
}

/// Fills the transport checksum of `l4` in, as its sender does (TCP, UDP
/// unless marked to go without, ICMP; over the pseudo-header but for
/// IPv4's ICMP).
pub fn fill_l4_checksum(src: IpAddr, dst: IpAddr, proto: u8, l4: &mut [u8]) {
    let at = match proto {
        TCP => 16,
        UDP if l4[6..8] != [0xff, 0xff] => 6,
        UDP => {
            // Marker for "send without a checksum".
            l4[6..8].copy_from_slice(&[0, 0]);
            return;
        }
        _ => 2,
    };
    l4[at..at + 2].copy_from_slice(&[0, 0]);
    let sum = if proto == ICMP {
        0
    } else {
        pseudo_sum(src, dst, proto, l4.len())
    };
    let c = checksum(l4, sum);
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// A TCP segment with `flags` and a payload (sequence number 1, no
/// acknowledgment number).
pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    tcp_seq(sport, dport, flags, (1, 0), payload)
}

/// A TCP segment with `flags`, sequence and acknowledgment numbers `(seq,
/// ack)` and a payload.
pub fn tcp_seq(
    sport: u16,
    dport: u16,
    flags: u8,
    (seq, ack): (u32, u32),
    payload: &[u8],
) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

/// A UDP datagram; `with_checksum: false` sends a zero checksum.
pub fn udp(sport: u16, dport: u16, payload: &[u8], with_checksum: bool) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(if with_checksum {
        &[0, 0]
    } else {
        &[0xff, 0xff]
    });
    u.extend_from_slice(payload);
    u
}

pub fn icmp_echo(kind: u8, id: u16, seq: u16) -> Vec<u8> {
    let mut i = vec![kind, 0, 0, 0];
    i.extend_from_slice(&id.to_be_bytes());
    i.extend_from_slice(&seq.to_be_bytes());
    i.extend_from_slice(b"netfwd-ping");
    i
}

/// Whether the IPv4 packet at `ip` (no Ethernet) has a valid IP checksum
/// and a valid transport checksum (a zero UDP checksum counts as valid).
pub fn checksums_ok(ip: &[u8]) -> bool {
    let ihl = usize::from(ip[0] & 0xf) * 4;
    if checksum(&ip[..ihl], 0) != 0 {
        return false;
    }
    let (src, dst, proto) = (
        Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        ip[9],
    );
    l4_checksum_ok(src.into(), dst.into(), proto, &ip[ihl..])
}

/// Whether the IPv6 packet at `ip` (no Ethernet, no extension header) has
/// a valid transport checksum.
pub fn checksums6_ok(ip: &[u8]) -> bool {
    let addr = |at: usize| -> Ipv6Addr { <[u8; 16]>::try_from(&ip[at..at + 16]).unwrap().into() };
    l4_checksum_ok(addr(8).into(), addr(24).into(), ip[6], &ip[40..])
}

/// Whether the transport checksum of `l4` (a whole datagram's) is valid (a
/// zero UDP checksum counts as valid over IPv4).
pub fn l4_checksum_ok(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> bool {
    match proto {
        UDP if l4[6..8] == [0, 0] => src.is_ipv4(),
        TCP | UDP | ICMPV6 => checksum(l4, pseudo_sum(src, dst, proto, l4.len())) == 0,
        _ => checksum(l4, 0) == 0,
    }
}
