//! Connection tracking and source NAT: the keys, values and settings of the
//! `NAT` and `NAT_CONFIG` maps.
//!
//! A flow has two entries in one hash, as in Cilium: the **egress** entry,
//! keyed by the tuple the endpoint sends (inside address and port → remote),
//! gives the uplink address and port it is translated to; the **ingress**
//! entry, keyed by the tuple replies arrive with (remote → uplink address and
//! port), gives the inside address and port back and carries the flow's state
//! and last-seen time (for TCP also the handshake and the sequence numbers
//! that tell a plausible RST or FIN from a blind one). The ingress entry is
//! inserted first with `BPF_NOEXIST`, which is what reserves an uplink port:
//! a live mapping is never overwritten. The hash is not LRU: when it is full,
//! new flows are refused (`nat_full`) rather than established ones evicted;
//! a TCP flow whose handshake has not completed gives its room up (early
//! drop), expired flows make room when their port is wanted again, and the
//! daemon's collector frees the rest. A hairpinned connection (endpoint to a
//! published port of the host) is keyed as the published endpoint sees it:
//! client -> server egress, server -> gateway port ingress.
//!
//! For ICMP echo the identifier plays the part of the endpoint's port and the
//! remote "port" is 0.

/// `NatKey::dir` of an egress entry (inside → remote).
pub const DIR_EGRESS: u8 = 0;
/// `NatKey::dir` of an ingress entry (remote → uplink address).
pub const DIR_INGRESS: u8 = 1;

/// Which way a packet crosses the NAT: **egress** from an endpoint towards
/// the uplink, **ingress** from the uplink towards an endpoint. A flow's
/// egress entry is keyed the way its endpoint sends, its ingress entry the
/// way the replies arrive; on the map the direction is the byte
/// `DIR_EGRESS` / `DIR_INGRESS` (`Direction::byte`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Egress,
    Ingress,
}

impl Direction {
    /// The on-map byte (`NatKey::dir`, `FragmentKey::dir`).
    pub const fn byte(self) -> u8 {
        match self {
            Direction::Egress => DIR_EGRESS,
            Direction::Ingress => DIR_INGRESS,
        }
    }
}

/// A flow is two entries in `NAT` (egress and ingress): the table's
/// capacity in entries is this many times its capacity in flows.
pub const ENTRIES_PER_FLOW: u32 = 2;

/// IP protocol numbers the NAT translates.
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
/// IPv6 extension headers (RFC 8200 4): of these only the fragment header
/// crosses the NAT; the others are refused going out (`extension_header`).
pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_DSTOPTS: u8 = 60;

/// An IPv6 address as the datapath holds it (the `A` of its generic
/// types): its 16 bytes in network order, aligned to 4 so that it moves and
/// compares a word at a time, and `bpf_csum_diff` takes it. (A bare
/// `[u8; 16]` the compiler takes apart byte by byte, and a program's stack
/// fills with the spilled bytes.) Not 8: the map keys holding it
/// (`NatKey`, `FlowSender`) would get padding, whose bytes a hash compares.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ipv6Bytes(pub [u8; 16]);

/// `NatEntry::flags` bits of an ingress entry: what the flow has seen. A
/// TCP flow is established only once both sides have spoken in order: the
/// originator's SYN, the other side's SYN-ACK acknowledging it, then the
/// originator's ACK of that (as conntrack's `ASSURED`); until then it lives
/// on `tcp_syn` and is the first to give up its room (early drop).
pub const TCP_SEEN_SYN: u8 = 1;
/// A packet came back from the remote side.
pub const SEEN_REPLY: u8 = 2;
pub const TCP_SEEN_FIN_EGRESS: u8 = 4;
/// A FIN from the remote side within the window (see `NatEntry::endpoint_ack`).
pub const TCP_SEEN_FIN_INGRESS: u8 = 8;
/// A RST from the endpoint, or from the remote side within the window.
pub const TCP_SEEN_RST: u8 = 16;
/// The answering side's SYN-ACK, acknowledging the originator's SYN.
pub const TCP_SEEN_SYN_ACK: u8 = 32;
/// The originator acknowledged the SYN-ACK.
pub const TCP_ESTABLISHED: u8 = 64;
/// Any of these: the flow is closing (`tcp_closing`).
pub const TCP_CLOSING: u8 = TCP_SEEN_FIN_EGRESS | TCP_SEEN_FIN_INGRESS | TCP_SEEN_RST;

/// Flag of both entries: the flow was started by a remote client, to a
/// published port. On the egress entry it says the uplink address is the one the
/// client used, whatever the uplink routes with now; on the ingress entry,
/// that the remote side is the TCP originator.
pub const FLOW_REMOTE_STARTED: u8 = 0x80;

/// How far past the endpoint's last acknowledgment (`NatEntry::endpoint_ack`)
/// the sequence number of a RST or FIN from the remote side may lie for it
/// to close the flow: 64 KiB, the largest window without scaling. A remote
/// stack sends its RST or FIN at its next sequence number, which the
/// endpoint's acknowledgments trail by what is in flight; a blind RST has a
/// 1 in 65,536 chance. One outside the window is still delivered (the
/// endpoint's own stack judges it, RFC 5961) but changes nothing in the
/// table, so a RST spray cannot cut flows or hand their ports on.
pub const REMOTE_CLOSE_WINDOW: u32 = 64 * 1024;

/// Key of `PUBLISHED`: a host port published on the uplink.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct PublishKey {
    /// Network byte order.
    pub port: [u8; 2],
    pub proto: u8,
    pub _pad: u8,
}

/// Value of `PUBLISHED`: the endpoint address and port behind it, generic
/// over the family's address as `NatKey` is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishTarget<A = [u8; 4]> {
    pub addr: A,
    /// Network byte order.
    pub port: [u8; 2],
    /// `PUBLISH_*` flags. (The byte was padding before: an older pinned
    /// map's zero reads as "published on the uplink".)
    pub flags: u8,
    pub _pad: u8,
}

/// `PublishTarget::flags`: the port is the host's own (Docker's
/// `-p 127.0.0.1:…`): only the host's connections to 127.0.0.1 reach it;
/// the uplink and the hairpin do not take it.
pub const PUBLISH_HOST_ONLY: u8 = 1;

impl<A> PublishTarget<A> {
    pub fn host_only(&self) -> bool {
        self.flags & PUBLISH_HOST_ONLY != 0
    }
}

/// Key of `FRAGMENTS` (IPv4) and `FRAGMENTS6`: a datagram in fragments, as
/// it crosses the NAT (`dir` as in `NatKey`), generic over the family's
/// address and identification (IPv4's 16 bits, the IPv6 fragment header's
/// 32). Only the first fragment carries the ports; the others are matched
/// to it by the identification.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragmentKey<A = [u8; 4], I = [u8; 2]> {
    pub saddr: A,
    pub daddr: A,
    pub id: I,
    pub proto: u8,
    pub dir: u8,
}

/// The identification of an IPv6 datagram in fragments, as `FRAGMENTS6`
/// keys it: the fragment header's 4 bytes, and 2 zero bytes that leave no
/// padding in a key of 4-aligned addresses (a hash compares every byte).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragmentId6 {
    pub id: [u8; 4],
    pub _pad: [u8; 2],
}

/// Value of `FRAGMENTS` and `FRAGMENTS6`: the ports of the datagram's first fragment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct FragmentPorts {
    pub sport: [u8; 2],
    pub dport: [u8; 2],
}

/// Capacity of `FRAGMENTS` and of `FRAGMENTS6` (LRU: datagrams in flight in fragments).
pub const MAX_FRAGMENTED_DATAGRAMS: u32 = 8192;

/// Key of `NAT`, generic over the family's address (`[u8; 4]`: IPv4;
/// `Ipv6Bytes`: IPv6's `NAT6`). Addresses and ports as on the wire
/// (network byte order). The address is the key's only per-family part:
/// each family has a table of its own, so an IPv4 key stays 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NatKey<A = [u8; 4]> {
    pub saddr: A,
    pub daddr: A,
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub proto: u8,
    pub dir: u8,
    pub _pad: [u8; 2],
}

/// Value of `NAT`, generic over the family's address as `NatKey` is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatEntry<A = [u8; 4]> {
    /// Egress entry: the uplink address and port; ingress entry: the inside
    /// (endpoint) address and port.
    pub addr: A,
    pub port: [u8; 2],
    /// Ingress entry: `TCP_*` / `SEEN_REPLY` bits; both: `FLOW_REMOTE_STARTED`.
    pub flags: u8,
    /// Ingress entry: 1 once the flow's responder (the remote side of an
    /// endpoint's flow, the endpoint of a flow to a published port) has
    /// sent a packet; until then the flow counts against its sender's
    /// share (`FlowSender`) and a full table may evict it. (The byte was
    /// padding before: an older table's flows read as unanswered.)
    pub answered: u8,
    /// TCP, ingress entry: the sequence number after the endpoint's SYN
    /// (its ISN + 1), which the remote side's first acknowledgment must be.
    pub endpoint_isn_next: u32,
    /// TCP, ingress entry: the last acknowledgment number the endpoint sent
    /// (before it sent one: the remote's SYN + 1), i.e. where the remote
    /// side's sequence numbers are; see `REMOTE_CLOSE_WINDOW`.
    pub endpoint_ack: u32,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when the flow was created.
    pub created_ns: u64,
    /// Ingress entry: the flow's last packet in either direction. Egress
    /// entry: when its address was last found to be the one the host gives
    /// the flow's packets (the masquerade's check, at most once a second).
    pub last_seen_ns: u64,
}

impl<A: Copy> NatEntry<A> {
    /// A new entry for `addr:port`, made at `now`.
    pub const fn new(addr: A, port: [u8; 2], flags: u8, now: u64) -> Self {
        NatEntry {
            addr,
            port,
            flags,
            answered: 0,
            endpoint_isn_next: 0,
            endpoint_ack: 0,
            created_ns: now,
            last_seen_ns: now,
        }
    }
}

/// A flow as its endpoint sends it (the egress direction), or a packet's
/// own tuple as it arrives ([`Tuple::arriving_key`]), generic over the
/// address (`[u8; 4]` for IPv4). Ports in network byte order; for ICMP echo
/// the identifier is the endpoint's port and the remote's is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple<A = [u8; 4]> {
    pub proto: u8,
    pub src: A,
    pub dst: A,
    pub sport: [u8; 2],
    pub dport: [u8; 2],
}

impl<A: Copy> Tuple<A> {
    /// The key of the flow's egress entry.
    pub const fn egress_key(&self) -> NatKey<A> {
        self.key(DIR_EGRESS)
    }

    /// The key of the flow's ingress entry once it is translated to
    /// `addr:port` (what its egress entry will hold).
    pub const fn ingress_key(&self, addr: A, port: [u8; 2]) -> NatKey<A> {
        self.egress_key().ingress_partner_at(addr, port)
    }

    /// The key of an ingress entry as a packet arriving with this tuple
    /// (remote -> uplink address, or a published endpoint's reply to the
    /// gateway) looks it up: its own addresses and ports, unswapped.
    pub const fn arriving_key(&self) -> NatKey<A> {
        self.key(DIR_INGRESS)
    }

    /// The tuple as it is, as a key of direction `dir`.
    const fn key(&self, dir: u8) -> NatKey<A> {
        NatKey {
            saddr: self.src,
            daddr: self.dst,
            sport: self.sport,
            dport: self.dport,
            proto: self.proto,
            dir,
            _pad: [0; 2],
        }
    }
}

impl<A: Copy> NatKey<A> {
    /// The egress key of the flow whose ingress entry is `self` -> `inside`.
    /// The one derivation of a flow's other entry, used by the datapath
    /// (taking over a port, early drop) and the daemon's collector alike: a
    /// key derived differently on each side is how entries leak.
    pub const fn egress_partner(&self, inside: &NatEntry<A>) -> NatKey<A> {
        NatKey {
            saddr: inside.addr,
            daddr: self.saddr,
            sport: inside.port,
            dport: self.sport,
            proto: self.proto,
            dir: DIR_EGRESS,
            _pad: [0; 2],
        }
    }

    /// The ingress key of the flow whose egress entry is `self` -> `translated`.
    pub const fn ingress_partner(&self, translated: &NatEntry<A>) -> NatKey<A> {
        self.ingress_partner_at(translated.addr, translated.port)
    }

    /// The ingress key of the flow whose egress entry is `self`, translated
    /// to `addr:port`: before that entry exists (reserving a port) or
    /// without reading it.
    pub const fn ingress_partner_at(&self, addr: A, port: [u8; 2]) -> NatKey<A> {
        NatKey {
            saddr: self.daddr,
            daddr: addr,
            sport: self.dport,
            dport: port,
            proto: self.proto,
            dir: DIR_INGRESS,
            _pad: [0; 2],
        }
    }

    /// Whether this is the key of an ingress entry (remote -> uplink).
    pub const fn is_ingress(&self) -> bool {
        self.dir == DIR_INGRESS
    }

    /// The endpoint address of the flow this entry (`self` -> `entry`)
    /// belongs to: an ingress entry's value, an egress key's source.
    pub const fn inside_addr(&self, entry: &NatEntry<A>) -> A {
        if self.is_ingress() {
            entry.addr
        } else {
            self.saddr
        }
    }
}

/// How long an idle flow lives, by state, in seconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct NatTimeouts {
    /// TCP before its handshake has completed (`TCP_ESTABLISHED`).
    pub tcp_syn: u32,
    pub tcp_established: u32,
    /// TCP after a FIN or RST.
    pub tcp_closing: u32,
    pub udp: u32,
    pub icmp: u32,
}

impl NatTimeouts {
    pub const DEFAULT: NatTimeouts = NatTimeouts {
        tcp_syn: 60,
        tcp_established: 21_600,
        tcp_closing: 30,
        udp: 60,
        icmp: 30,
    };

    /// The idle timeout of a flow of `proto` with `flags`, in seconds.
    pub const fn for_flow(&self, proto: u8, flags: u8) -> u32 {
        match proto {
            IPPROTO_TCP => {
                if flags & TCP_CLOSING != 0 {
                    self.tcp_closing
                } else if flags & TCP_ESTABLISHED != 0 {
                    self.tcp_established
                } else {
                    self.tcp_syn
                }
            }
            IPPROTO_UDP => self.udp,
            _ => self.icmp,
        }
    }

    /// Whether the flow whose ingress entry is `entry` has been idle longer
    /// than its timeout at `now` (`bpf_ktime_get_ns`). The one expiry rule:
    /// the datapath takes an expired flow's port over, the collector frees
    /// its entries, and both must agree on which flows those are.
    pub const fn expired<A>(&self, proto: u8, entry: &NatEntry<A>, now: u64) -> bool {
        let timeout_ns = self.for_flow(proto, entry.flags) as u64 * NS_PER_SEC;
        now.saturating_sub(entry.last_seen_ns) > timeout_ns
    }

    /// Whole seconds left until the flow whose ingress entry is `entry`
    /// expires, at `now` (0 once it has): what `nat list` shows.
    pub const fn expires_in_secs<A>(&self, proto: u8, entry: &NatEntry<A>, now: u64) -> u64 {
        let idle_secs = now.saturating_sub(entry.last_seen_ns) / NS_PER_SEC;
        (self.for_flow(proto, entry.flags) as u64).saturating_sub(idle_secs)
    }

    /// The shortest of the timeouts, in seconds: the soonest any flow can
    /// expire, which paces the collector.
    pub const fn shortest(&self) -> u32 {
        let mut shortest = self.tcp_syn;
        let others = [self.tcp_established, self.tcp_closing, self.udp, self.icmp];
        let mut i = 0;
        while i < others.len() {
            if others[i] < shortest {
                shortest = others[i];
            }
            i += 1;
        }
        shortest
    }
}

/// Nanoseconds in a second: timeouts are in seconds, entry times in
/// `bpf_ktime_get_ns` nanoseconds.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// The single value of `NAT_CONFIG`. `uplink_ifindex == 0` turns NAT off.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct NatConfig {
    pub uplink_ifindex: u32,
    /// The uplink's primary IPv4 address: where the hairpin and the host's
    /// own connections (`connect4`) find published ports, and what `status`
    /// shows. The datapath masquerades each new flow to the source address
    /// routing picks for it (`BPF_FIB_LOOKUP_SRC`), so NAT follows address
    /// changes by itself.
    pub uplink_addr: [u8; 4],
    /// Uplink ports (host byte order), inclusive.
    pub port_min: u16,
    pub port_max: u16,
    pub timeouts: NatTimeouts,
    /// How many unanswered flows one sender (`FlowSender`) may hold:
    /// `nat.max_unreplied_share` of the table; 0 for no limit.
    pub max_unreplied: u32,
    /// The uplink's first global IPv6 address, as `uplink_addr` is IPv4's
    /// (IPv6's hairpin, `connect6`); all zeros: the uplink has none.
    pub uplink_addr6: [u8; 16],
}

/// Who a flow counts against while it is unanswered (key of
/// `UNREPLIED_BY_SENDER`): the endpoint that started it, or the published
/// endpoint port a client from outside opened it to. Generic over the
/// family's address as `NatKey` is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowSender<A = [u8; 4]> {
    /// The endpoint's address.
    pub addr: A,
    /// A published endpoint port (network byte order); 0 for an endpoint's
    /// own flows.
    pub port: [u8; 2],
    /// With `port`: its protocol.
    pub proto: u8,
    pub _pad: u8,
}

impl<A: Copy> FlowSender<A> {
    /// The flows endpoint `addr` starts (to the uplink, or hairpinned).
    pub const fn endpoint(addr: A) -> Self {
        FlowSender {
            addr,
            port: [0; 2],
            proto: 0,
            _pad: 0,
        }
    }

    /// The flows clients open to endpoint port `addr:port` of `proto`
    /// through its published host ports.
    pub const fn published(proto: u8, addr: A, port: [u8; 2]) -> Self {
        FlowSender {
            addr,
            port,
            proto,
            _pad: 0,
        }
    }

    /// The sender of the flow whose ingress entry is `ingress`.
    pub const fn of_flow(proto: u8, ingress: &NatEntry<A>) -> Self {
        if ingress.flags & FLOW_REMOTE_STARTED != 0 {
            Self::published(proto, ingress.addr, ingress.port)
        } else {
            Self::endpoint(ingress.addr)
        }
    }
}

/// Default `nat.max_unreplied_share`: the percentage of the table one
/// sender's unanswered flows may fill.
pub const DEFAULT_MAX_UNREPLIED_SHARE: u8 = 50;

/// The `NatConfig::max_unreplied` of a table of `max_flows` at `share`
/// percent (at least one flow).
pub const fn max_unreplied(max_flows: u32, share: u8) -> u32 {
    let flows = (max_flows as u64 * share as u64 / 100) as u32;
    if flows == 0 { 1 } else { flows }
}

/// Default uplink port range: clear of Linux's default
/// `net.ipv4.ip_local_port_range` (32768–60999), so a NAT mapping never takes
/// a port a host socket picks by itself.
pub const DEFAULT_PORT_MIN: u16 = 61_000;
pub const DEFAULT_PORT_MAX: u16 = 65_535;

/// Default number of flows `NAT` holds (`ENTRIES_PER_FLOW` entries each).
pub const DEFAULT_MAX_FLOWS: u32 = 65_536;

/// How many uplink ports the datapath tries before it gives up on a new
/// flow (and counts `no_port`): consecutive from a random start, so 16
/// fail only where that remote address and port already hold most of the
/// range. (32 before the endpoint checks of reasons 14-19: with them the
/// verifier walks `tc_from_endpoint` past its million instructions.)
pub const PORT_RETRIES: u32 = 16;

/// The kernel's `struct bpf_timer`, under its own name: the kernel finds
/// the timer in a map value by this BTF type name (and its size and
/// alignment), and arms it only through the `bpf_timer_*` helpers.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct bpf_timer {
    pub opaque: [u64; 2],
}

/// The single value of `NAT_SWEEP`: the timer that drives the expiry sweep
/// of an uplink's NAT table in the kernel (see `netfwd-ebpf/src/nat/sweep.rs`),
/// and what the sweep has done, for `status` and the daemon to report. The
/// timer and the fields after it are the sweep's; userspace reads them and
/// writes none (an update from userspace leaves the timer alone anyway).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct NatSweep {
    pub timer: bpf_timer,
    /// The timeouts the sweep expires flows by, copied from the arming
    /// network's `NAT_CONFIG` (networks on one uplink agree on them).
    pub timeouts: NatTimeouts,
    /// Candidates in `NAT_EXPIRED` still to be checked and removed.
    pub pending: u32,
    /// 1 when the last walk stopped with `NAT_EXPIRED` full (a table
    /// loaded from an older pin of another size): the next walk follows
    /// the removals at once.
    pub cut_short: u32,
    pub _pad: u32,
    /// Nanoseconds between walks (half the shortest timeout, 1–5 s).
    pub interval_ns: u64,
    /// Walks over the whole table finished (every `LONE_EGRESS_EVERY`th
    /// one also looks for lone egress entries).
    pub walks: u64,
    /// Flows removed (both entries), and lone egress entries removed.
    pub flows_removed: u64,
    pub lone_removed: u64,
    /// The last walk: entries it visited and nanoseconds it took; and
    /// the nanoseconds the last removals took.
    pub last_walk_entries: u64,
    pub last_walk_ns: u64,
    pub last_removal_ns: u64,
    /// Nanoseconds spent in walks and removals, in all: the sweep's cost.
    pub busy_ns: u64,
}

/// How often a walk of the sweep also looks for egress entries whose
/// ingress entry is gone (one lookup per egress entry, as dear as the walk
/// itself; such entries are rare: an eviction or takeover that missed).
pub const LONE_EGRESS_EVERY: u64 = 8;

impl NatSweep {
    /// The pause between walks for `timeouts`: half the shortest timeout,
    /// at least 1 s and at most 5 s, so an expired flow's room comes back
    /// within 5 s (plus a walk) of its timeout.
    pub const fn interval_ns(timeouts: &NatTimeouts) -> u64 {
        let half = timeouts.shortest() as u64 * NS_PER_SEC / 2;
        if half < NS_PER_SEC {
            NS_PER_SEC
        } else if half > 5 * NS_PER_SEC {
            5 * NS_PER_SEC
        } else {
            half
        }
    }
}

/// The IPv4 instantiations of the generic map types have no padding (the
/// sum of their fields' sizes), which their `Pod` impls rely on: a derive
/// cannot check a generic struct.
const _: () = {
    use core::mem::size_of;
    assert!(size_of::<NatKey>() == 4 + 4 + 2 + 2 + 1 + 1 + 2);
    assert!(size_of::<NatEntry>() == 4 + 2 + 1 + 1 + 4 + 4 + 8 + 8);
    assert!(size_of::<FlowSender>() == 4 + 2 + 1 + 1);
    assert!(size_of::<PublishTarget>() == 4 + 2 + 1 + 1);
    // IPv6's keys too: a hash compares every byte of a key. (Its
    // `NatEntry`, a value, has 4 bytes of padding before `created_ns`.)
    assert!(size_of::<NatKey<Ipv6Bytes>>() == 16 + 16 + 2 + 2 + 1 + 1 + 2);
    assert!(size_of::<FragmentKey<Ipv6Bytes, FragmentId6>>() == 16 + 16 + 4 + 2 + 1 + 1);
    assert!(size_of::<FragmentKey>() == 4 + 4 + 2 + 1 + 1);
    assert!(size_of::<FlowSender<Ipv6Bytes>>() == 16 + 2 + 1 + 1);
    assert!(size_of::<PublishTarget<Ipv6Bytes>>() == 16 + 2 + 1 + 1);
};

#[cfg(feature = "user")]
mod pod {
    use super::{FlowSender, Ipv6Bytes, NatEntry, NatKey, PublishTarget};

    // SAFETY (all): repr(C), integers and byte arrays only, no padding (the
    // bytemuck::Pod derives check it, and the assertions above for the
    // generic ones); every bit pattern is valid.
    unsafe impl aya::Pod for NatKey {}
    unsafe impl aya::Pod for NatEntry {}
    unsafe impl aya::Pod for NatKey<Ipv6Bytes> {}
    unsafe impl aya::Pod for FlowSender<Ipv6Bytes> {}
    unsafe impl aya::Pod for PublishTarget<Ipv6Bytes> {}
    // SAFETY: as above, but for the 4 bytes of padding before `created_ns`:
    // netfwd only reads these entries (the kernel writes every byte of a
    // value it hands out) and removes them by key, never writes one.
    unsafe impl aya::Pod for NatEntry<Ipv6Bytes> {}
    unsafe impl aya::Pod for FlowSender {}
    unsafe impl bytemuck::Zeroable for NatKey {}
    unsafe impl bytemuck::Pod for NatKey {}
    unsafe impl bytemuck::Zeroable for NatEntry {}
    unsafe impl bytemuck::Pod for NatEntry {}
    unsafe impl bytemuck::Zeroable for FlowSender {}
    unsafe impl bytemuck::Pod for FlowSender {}
    unsafe impl aya::Pod for PublishTarget {}
    unsafe impl bytemuck::Zeroable for PublishTarget {}
    unsafe impl bytemuck::Pod for PublishTarget {}
    unsafe impl aya::Pod for super::NatConfig {}
    unsafe impl aya::Pod for super::PublishKey {}
    unsafe impl aya::Pod for super::FragmentKey {}
    unsafe impl aya::Pod for super::FragmentPorts {}
    unsafe impl aya::Pod for super::NatSweep {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const TUPLE: Tuple = Tuple {
        proto: IPPROTO_TCP,
        src: [192, 168, 28, 2],
        dst: [1, 1, 1, 1],
        sport: [0x9c, 0x40],
        dport: [0, 80],
    };

    #[test]
    fn a_flows_two_keys_derive_each_other_both_ways() {
        let translated = NatEntry::new([10, 0, 0, 1], [0xee, 0x48], 0, 5);
        let inside = NatEntry::new(TUPLE.src, TUPLE.sport, 0, 5);
        let egress = TUPLE.egress_key();
        let ingress = TUPLE.ingress_key(translated.addr, translated.port);
        assert_eq!(egress.dir, Direction::Egress.byte());
        assert_eq!(ingress.dir, Direction::Ingress.byte());
        assert_eq!(egress.ingress_partner(&translated), ingress);
        assert_eq!(ingress.egress_partner(&inside), egress);
        assert_eq!(
            (ingress.saddr, ingress.sport, ingress.daddr, ingress.dport),
            (TUPLE.dst, TUPLE.dport, translated.addr, translated.port)
        );
    }

    #[test]
    fn a_reply_arrives_with_its_flows_ingress_key_and_each_key_names_the_endpoint() {
        let translated = NatEntry::new([10, 0, 0, 1], [0xee, 0x48], 0, 5);
        let inside = NatEntry::new(TUPLE.src, TUPLE.sport, 0, 5);
        let reply = Tuple {
            proto: TUPLE.proto,
            src: TUPLE.dst,
            dst: translated.addr,
            sport: TUPLE.dport,
            dport: translated.port,
        };
        let ingress = TUPLE.ingress_key(translated.addr, translated.port);
        assert_eq!(reply.arriving_key(), ingress);
        assert!(ingress.is_ingress());
        assert_eq!(ingress.inside_addr(&inside), TUPLE.src);
        let egress = TUPLE.egress_key();
        assert!(!egress.is_ingress());
        assert_eq!(egress.inside_addr(&translated), TUPLE.src);
    }

    #[test]
    fn a_flow_expires_only_once_idle_past_its_timeout() {
        let timeouts = NatTimeouts::DEFAULT;
        let entry = NatEntry::new(TUPLE.src, TUPLE.sport, TCP_ESTABLISHED, 7 * NS_PER_SEC);
        let end = (7 + u64::from(timeouts.tcp_established)) * NS_PER_SEC;
        assert!(!timeouts.expired(IPPROTO_TCP, &entry, end));
        assert!(timeouts.expired(IPPROTO_TCP, &entry, end + 1));
        // A clock reading from before the entry is not idle time.
        assert!(!timeouts.expired(IPPROTO_TCP, &entry, 0));
        // The same entry idle as long is past UDP's much shorter timeout.
        assert!(timeouts.expired(IPPROTO_UDP, &entry, end));
        let timeout = u64::from(timeouts.tcp_established);
        assert_eq!(
            timeouts.expires_in_secs(IPPROTO_TCP, &entry, 7 * NS_PER_SEC),
            timeout
        );
        assert_eq!(timeouts.expires_in_secs(IPPROTO_TCP, &entry, end - 1), 1);
        assert_eq!(
            timeouts.expires_in_secs(IPPROTO_TCP, &entry, end + NS_PER_SEC),
            0
        );
    }

    #[test]
    fn shortest_is_the_least_of_every_timeout() {
        assert_eq!(NatTimeouts::DEFAULT.shortest(), 30);
        let mut t = NatTimeouts::DEFAULT;
        t.tcp_established = 5;
        assert_eq!(t.shortest(), 5);
        t.icmp = 2;
        assert_eq!(t.shortest(), 2);
    }
}
