//! The network's maps. BTF-defined so the kernel keeps their key and value
//! types (bpftool prints field names); pinned by the loader under
//! /sys/fs/bpf/netfwd/<network>/ and sized by it at load time.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    btf_maps::{
        Array, DevMapHash, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap, ProgramArray,
        RingBuf, lpm_trie::Key,
    },
    macros::btf_map,
};
use netfwd_common::{
    counters::IfaceCounters,
    maps::{EndpointEntry, EndpointKey, EndpointKey6, Network6Config, NetworkConfig, TunnelConfig},
    monitor::{MonitorBudget, MonitorConfig, MonitorEvent, RING_BYTES},
    names::{
        CALLS_ROOM, MAX_ENDPOINTS, MAX_HAIRPIN_FLOWS, MAX_PUBLISHED, MAX_REMOTES,
        NON_ENDPOINT_IFACES,
    },
    nat::{
        DEFAULT_MAX_FLOWS, ENTRIES_PER_FLOW, FlowSender, FragmentId6, FragmentKey, FragmentPorts,
        Ipv6Bytes, MAX_FRAGMENTED_DATAGRAMS, NatConfig, NatEntry, NatKey, NatSweep, PublishKey,
        PublishTarget,
    },
};

use crate::v6::source_note::SourceNote;

/// Room for a network's endpoints (see `names::MAX_ENDPOINTS`).
const ENDPOINT_ROOM: usize = MAX_ENDPOINTS as usize;

/// Maps only the loader writes are not preallocated: their room is a cap,
/// and an entry costs memory once an endpoint or port has it.
const NO_PREALLOC: usize = BPF_F_NO_PREALLOC as usize;

/// Endpoint IPv4 address -> where it is. Filled by the loader.
#[btf_map]
pub static ENDPOINTS: HashMap<EndpointKey, EndpointEntry, ENDPOINT_ROOM, NO_PREALLOC> =
    HashMap::new();

/// The network's gateway and subnet. Filled by the loader.
#[btf_map]
pub static NETWORK: Array<NetworkConfig, 1> = Array::new();

/// Endpoint IPv6 address -> where it is (dual-stack networks). Filled by
/// the loader.
#[btf_map]
pub static ENDPOINTS6: HashMap<EndpointKey6, EndpointEntry, ENDPOINT_ROOM, NO_PREALLOC> =
    HashMap::new();

/// The network's IPv6 gateway and prefix; zero in an IPv4-only network.
#[btf_map]
pub static NETWORK6: Array<Network6Config, 1> = Array::new();

/// Host-side ifindex -> counters. Entries are created by the loader when it
/// attaches, so the datapath never inserts.
#[btf_map]
pub static COUNTERS: PerCpuHashMap<
    u32,
    IfaceCounters,
    { ENDPOINT_ROOM + NON_ENDPOINT_IFACES as usize },
    NO_PREALLOC,
> = PerCpuHashMap::new();

/// Both entries of every NAT flow (see `netfwd_common::nat`); sized by the
/// loader. Not LRU: a full table refuses new flows instead of evicting live
/// ones.
#[btf_map]
pub static NAT: NatMap<[u8; 4]> = HashMap::new();

/// A family's NAT table (see `NAT`).
pub type NatMap<A> =
    HashMap<NatKey<A>, NatEntry<A>, { (ENTRIES_PER_FLOW * DEFAULT_MAX_FLOWS) as usize }>;

/// The ingress keys of the last flows made, on every CPU: where early drop
/// looks for an unanswered flow to evict (see `early_drop`). One ring for
/// all CPUs, so a flood on one CPU makes room for a flow on another; its
/// cursor is updated without atomics (two CPUs racing lose a candidate at
/// worst, and every candidate is checked in `NAT` before it is evicted).
/// Pinned like the rest: programs attached by different loads (`up`,
/// `attach`) must remember into and evict from the same ring.
#[btf_map]
pub static UNREPLIED: UnrepliedRing<[u8; 4]> = Array::new();

/// A family's ring of new flows (see `UNREPLIED`).
pub type UnrepliedRing<A> = Array<NatKey<A>, { UNREPLIED_SLOTS as usize }>;

/// Where `UNREPLIED` is written and read: flows are written at `head` and
/// looked at for eviction from `tail`, the oldest (counters, modulo the
/// slots).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RingCursor {
    pub head: u32,
    pub tail: u32,
}

#[btf_map]
pub static UNREPLIED_CURSOR: RingCursorMap = Array::new();

pub type RingCursorMap = Array<RingCursor, 1>;

/// Slots of `UNREPLIED` (a power of two). Under a flood of R new flows per
/// second filling the table, an unanswered flow is evicted once about this
/// many newer ones were made: a flow has this many over R seconds to be
/// answered.
pub const UNREPLIED_SLOTS: u32 = 16_384;

/// Each sender's unanswered flows in `NAT` (see `early_drop::count`): LRU,
/// so a table of forgotten senders never refuses a new one (a sender
/// evicted from here starts again from 0).
#[btf_map]
pub static UNREPLIED_BY_SENDER: SenderMap<[u8; 4]> = LruHashMap::new();

/// A family's unanswered flows by sender (see `UNREPLIED_BY_SENDER`).
pub type SenderMap<A> = LruHashMap<FlowSender<A>, u32, { MAX_SENDERS as usize }>;

/// Senders tracked at once: every endpoint and published port of a full
/// network, twice over for networks sharing an uplink.
const MAX_SENDERS: u32 = 2 * (MAX_ENDPOINTS + MAX_PUBLISHED);

/// The NAT table's expiry sweep: its timer and record (see `nat::sweep`).
/// Pinned beside the table, which it lives as long as.
#[btf_map]
pub static NAT_SWEEP: SweepMap = Array::new();

pub type SweepMap = Array<NatSweep, 1>;

/// The keys the sweep's last walk found expired, to be checked again and
/// removed (see `nat::sweep`): room for every flow of the table (sized by
/// the loader with `NAT`), so one walk marks all that expired.
#[btf_map]
pub static NAT_EXPIRED: ExpiredMarks<[u8; 4]> = Array::new();

/// A family's marks of its sweep (see `NAT_EXPIRED`).
pub type ExpiredMarks<A> = Array<NatKey<A>, { DEFAULT_MAX_FLOWS as usize }>;

/// IPv6's NAT table (NAT66) and what goes with it, as IPv4's `NAT`,
/// `UNREPLIED`, `UNREPLIED_CURSOR`, `UNREPLIED_BY_SENDER`, `NAT_SWEEP`,
/// `NAT_EXPIRED` and `HAIRPIN_HOST_PORTS`: a table of each family keeps an
/// IPv4 key at 16 bytes. Sized, pinned and shared per uplink alike. (Named
/// so that the kernel's 15 characters of a map's name tell each apart from
/// its IPv4 twin.)
#[btf_map]
pub static NAT6: NatMap<Ipv6Bytes> = HashMap::new();

#[btf_map]
pub static UNREPLIED6: UnrepliedRing<Ipv6Bytes> = Array::new();

#[btf_map]
pub static UNREPLIED6_CURSOR: RingCursorMap = Array::new();

#[btf_map]
pub static UNREPLIED6_BY_SENDER: SenderMap<Ipv6Bytes> = LruHashMap::new();

#[btf_map]
pub static NAT6_SWEEP: SweepMap = Array::new();

#[btf_map]
pub static NAT6_EXPIRED: ExpiredMarks<Ipv6Bytes> = Array::new();

#[btf_map]
pub static HAIRPIN6_HOST_PORTS: HairpinMap<Ipv6Bytes> = LruHashMap::new();

/// The uplink, its address, the port range and timeouts. Filled by the loader
/// (and the daemon when the uplink's address changes).
#[btf_map]
pub static NAT_CONFIG: Array<NatConfig, 1> = Array::new();

/// Prefixes reached or trusted without NAT: peer hosts' endpoint subnets,
/// the LAN's own subnet. Filled by the loader.
#[btf_map]
pub static REMOTES: LpmTrie<[u8; 4], u8, { MAX_REMOTES as usize }> = LpmTrie::new();

/// The other networks' IPv6 prefixes (see `names::MAP_REMOTES6`). Filled
/// by the loader.
#[btf_map]
pub static REMOTES6: LpmTrie<[u8; 16], u8, { MAX_REMOTES as usize }> = LpmTrie::new();

/// The ifindex trusted sources arrive on (see `names::MAP_TRUSTED_IFACE`).
/// Filled by the loader.
#[btf_map]
pub static TRUSTED_IFACE: Array<u32, 1> = Array::new();

/// The network's VXLAN device and VNI (`backend = "vxlan"`). Filled by the
/// loader.
#[btf_map]
pub static TUNNEL: Array<TunnelConfig, 1> = Array::new();

/// Cluster members' subnets behind the tunnel -> the member's LAN address
/// (`names::MAP_TUNNEL_PEERS`). Filled by the loader.
#[btf_map]
pub static TUNNEL_PEERS: LpmTrie<[u8; 4], [u8; 4], { MAX_REMOTES as usize }> = LpmTrie::new();

/// Datagrams crossing the NAT in fragments: the ports of each one's first
/// fragment, for the others (see `frag`), of a family with address `A` and
/// datagram identification `I`.
pub type FragmentMap<A, I> =
    LruHashMap<FragmentKey<A, I>, FragmentPorts, { MAX_FRAGMENTED_DATAGRAMS as usize }>;

#[btf_map]
pub static FRAGMENTS: FragmentMap<[u8; 4], [u8; 2]> = LruHashMap::new();

#[btf_map]
pub static FRAGMENTS6: FragmentMap<Ipv6Bytes, FragmentId6> = LruHashMap::new();

/// Published host ports (Docker's `-p`). Filled by the loader.
#[btf_map]
pub static PUBLISHED: PublishedMap<[u8; 4]> = HashMap::new();

/// The same ports over IPv6, to the endpoints' IPv6 addresses (dual-stack
/// networks). Filled by the loader.
#[btf_map]
pub static PUBLISHED6: PublishedMap<Ipv6Bytes> = HashMap::new();

/// A family's published ports (see `PUBLISHED`).
pub type PublishedMap<A> =
    HashMap<PublishKey, PublishTarget<A>, { MAX_PUBLISHED as usize }, NO_PREALLOC>;

/// Key of `HAIRPIN_HOST_PORTS`: a hairpinned flow as its published
/// endpoint's replies name it. Smaller than its `NAT` key, which the
/// verifier budget of `tc_from_endpoint` feels on every reply path.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HairpinReply<A> {
    /// The published endpoint's address and port.
    pub addr: A,
    pub port: [u8; 2],
    /// The gateway port the client is translated to.
    pub gateway_port: [u8; 2],
    pub proto: u8,
    pub _pad: [u8; 3],
}

/// A hairpinned flow's host port (see `names::MAP_HAIRPIN_HOST_PORTS`).
#[btf_map]
pub static HAIRPIN_HOST_PORTS: HairpinMap<[u8; 4]> = LruHashMap::new();

/// A family's hairpinned flows (see `HAIRPIN_HOST_PORTS`).
pub type HairpinMap<A> = LruHashMap<HairpinReply<A>, [u8; 2], { MAX_HAIRPIN_FLOWS as usize }>;

/// The cookie of the network namespace the network lives in: the socket
/// hook acts there only. Filled by the loader.
#[btf_map]
pub static HOST_NETNS: Array<u64, 1> = Array::new();

/// Host-side veths XDP may redirect to (ifindex -> itself): only those whose
/// endpoint end can take an XDP frame (the loader turned on its NAPI).
#[btf_map]
pub static ENDPOINT_TX: DevMapHash<ENDPOINT_ROOM> = DevMapHash::new();

/// Whether a monitor listens, to which kinds of event, and until when
/// (see `monitor`). Written by `netfwd monitor`.
#[btf_map]
pub static MONITOR: Array<MonitorConfig, 1> = Array::new();

/// Each CPU's event budget and its suppressed and lost events.
#[btf_map]
pub static MONITOR_BUDGET: PerCpuArray<MonitorBudget, 1> = PerCpuArray::new();

/// Each CPU's event being made where the stack has no room for it (see
/// `monitor::nat_event`). Not pinned: scratch space of the program's own.
#[btf_map]
pub static MONITOR_SCRATCH: PerCpuArray<MonitorEvent, 1> = PerCpuArray::new();

/// Each CPU's question to `tc_nat_source6` and its answer (see
/// `v6::source_note`). Not pinned: scratch space of the programs' own.
#[btf_map]
pub static NAT6_SRC_NOTE: PerCpuArray<SourceNote, 1> = PerCpuArray::new();

/// The events `netfwd monitor` reads.
#[btf_map]
pub static MONITOR_EVENTS: RingBuf<MonitorEvent, { RING_BYTES as usize }> = RingBuf::new();

#[inline(always)]
pub fn endpoint(addr: [u8; 4]) -> Option<EndpointEntry> {
    // SAFETY: entries are plain data; a concurrent update from userspace can at
    // worst give a stale copy, which is what a read under RCU means anyway.
    unsafe { ENDPOINTS.get(EndpointKey { addr }).copied() }
}

/// The endpoint holding `addr`, which may lie in the packet: the key is
/// read where it is, not copied to the (scarce) stack.
#[inline(always)]
pub fn endpoint6(addr: &[u8; 16]) -> Option<&'static EndpointEntry> {
    // SAFETY: `EndpointKey6` is `repr(C)` around exactly a `[u8; 16]`, so
    // the cast keeps layout and alignment (1). The entry is plain data; a
    // concurrent update from userspace can at worst be read half-old, as
    // under RCU, and the reference is used within this program run only.
    unsafe {
        let key = &*(addr as *const [u8; 16]).cast::<EndpointKey6>();
        ENDPOINTS6.get(key)
    }
}

/// A dual-stack network's IPv6; `None` in an IPv4-only network.
#[inline(always)]
pub fn network6() -> Option<&'static Network6Config> {
    NETWORK6.get(0).filter(|config| config.prefix_len != 0)
}

#[inline(always)]
pub fn gateway() -> Option<[u8; 4]> {
    NETWORK.get(0).map(|config| config.gateway)
}

/// The NAT settings, if the network has an uplink.
#[inline(always)]
pub fn nat_config() -> Option<&'static NatConfig> {
    NAT_CONFIG
        .get(0)
        .filter(|config| config.uplink_ifindex != 0)
}

/// Whether `addr` is inside the network's subnet.
#[inline(always)]
pub fn in_subnet(addr: [u8; 4]) -> bool {
    let Some(config) = NETWORK.get(0) else {
        return false;
    };
    let prefix = u32::from(config.prefix_len);
    if prefix == 0 {
        return true;
    }
    let mask = u32::MAX << (32 - prefix.min(32));
    u32::from_be_bytes(addr) & mask == u32::from_be_bytes(config.subnet) & mask
}

/// The `REMOTE_*` flags of the longest prefix holding `addr`; 0 if none.
#[inline(always)]
pub fn remote_flags(addr: [u8; 4]) -> u8 {
    REMOTES.get(&Key::new(32, addr)).copied().unwrap_or(0)
}

/// The `REMOTE_*` flags of the longest IPv6 prefix holding `addr`; 0 if
/// none.
#[inline(always)]
pub fn remote_flags6(addr: &[u8; 16]) -> u8 {
    REMOTES6.get(&Key::new(128, *addr)).copied().unwrap_or(0)
}

/// Whether packets arriving on `ifindex` may come from trusted prefixes.
#[inline(always)]
pub fn trusted_iface(ifindex: u32) -> bool {
    TRUSTED_IFACE
        .get(0)
        .is_some_and(|trusted| *trusted != 0 && *trusted == ifindex)
}

/// The network's tunnel, if it has one.
#[inline(always)]
pub fn tunnel() -> Option<TunnelConfig> {
    TUNNEL.get(0).copied().filter(|tunnel| tunnel.ifindex != 0)
}

/// Whether `ifindex` is the network's tunnel device.
#[inline(always)]
pub fn tunnel_iface(ifindex: u32) -> bool {
    tunnel().is_some_and(|tunnel| tunnel.ifindex == ifindex)
}

/// The tunnel's far end for `addr` (a member's LAN address).
#[inline(always)]
pub fn tunnel_far_end(addr: [u8; 4]) -> Option<[u8; 4]> {
    TUNNEL_PEERS.get(&Key::new(32, addr)).copied()
}

/// The network's `NETWORK_*` flags.
#[inline(always)]
pub fn network_flags() -> u8 {
    NETWORK.get(0).map_or(0, |config| config.flags)
}

/// The endpoint behind host port `port` (network byte order) of `proto`
/// in a family's `published` ports, for a connection from the uplink or an
/// endpoint: a host-only port is none of theirs.
#[inline(always)]
pub fn published_outside<A: Copy>(
    published: &PublishedMap<A>,
    proto: u8,
    port: [u8; 2],
) -> Option<PublishTarget<A>> {
    published_in(published, proto, port).filter(|target| !target.host_only())
}

/// The endpoint behind host port `port` (network byte order) of `proto`.
#[inline(always)]
pub fn published(proto: u8, port: [u8; 2]) -> Option<PublishTarget> {
    published_in(&PUBLISHED, proto, port)
}

/// The same over IPv6 (`PUBLISHED6`).
#[inline(always)]
pub fn published6(proto: u8, port: [u8; 2]) -> Option<PublishTarget<Ipv6Bytes>> {
    published_in(&PUBLISHED6, proto, port)
}

#[inline(always)]
fn published_in<A: Copy>(
    published: &PublishedMap<A>,
    proto: u8,
    port: [u8; 2],
) -> Option<PublishTarget<A>> {
    let key = PublishKey {
        port,
        proto,
        _pad: 0,
    };
    // SAFETY: plain data; a stale copy at worst.
    unsafe { published.get(key).copied() }
}

#[inline(always)]
pub fn host_netns_cookie() -> Option<u64> {
    HOST_NETNS.get(0).copied().filter(|cookie| *cookie != 0)
}

/// The jump table (`names::TAIL_CALLS`): the programs a tail call reaches,
/// each on a stack of its own. Filled by the loader.
#[btf_map]
pub static CALLS: ProgramArray<{ CALLS_ROOM as usize }> = ProgramArray::new();
