//! Names both sides agree on: maps, programs and where they are pinned.

/// Root of every network's pins on the real bpffs.
pub const PIN_ROOT: &str = "/sys/fs/bpf/netfwd";
/// Subdirectory of a network's pin directory holding its pinned TCX links.
pub const LINKS_DIR: &str = "links";
/// Subdirectory holding its pinned XDP links (`mode = "xdp"`).
pub const XDP_LINKS_DIR: &str = "xdp-links";

/// Map: endpoint IPv4 address -> `EndpointEntry`.
pub const MAP_ENDPOINTS: &str = "ENDPOINTS";
/// Map: the one `NetworkConfig` of the network.
pub const MAP_NETWORK: &str = "NETWORK";
/// Map: endpoint IPv6 address (`EndpointKey6`) -> `EndpointEntry`.
pub const MAP_ENDPOINTS6: &str = "ENDPOINTS6";
/// Map: the one `Network6Config` of the network.
pub const MAP_NETWORK6: &str = "NETWORK6";
/// Map: host-side ifindex -> per-CPU `IfaceCounters`.
pub const MAP_COUNTERS: &str = "COUNTERS";

/// Map: the flows' `NatKey` -> `NatEntry` (a preallocated hash).
pub const MAP_NAT: &str = "NAT";
/// Map: the one `NatConfig` of the network.
pub const MAP_NAT_CONFIG: &str = "NAT_CONFIG";

/// Map: prefixes outside the network reached or trusted without NAT (LPM
/// trie of IPv4 prefix -> `REMOTE_*` flags).
pub const MAP_REMOTES: &str = "REMOTES";

/// Map: IPv6 prefixes of the other netfwd networks (LPM trie of IPv6
/// prefix -> `REMOTE_*` flags): isolated, or allowed and routed. (Peers,
/// the LAN and the tunnel are IPv4's.)
pub const MAP_REMOTES6: &str = "REMOTES6";

/// Map: published host port -> the endpoint behind it.
pub const MAP_PUBLISHED: &str = "PUBLISHED";
/// Map: published host port -> the endpoint behind it over IPv6 (its
/// `ip6`: a dual-stack network's ports are published on both families).
pub const MAP_PUBLISHED6: &str = "PUBLISHED6";
/// Room in `PUBLISHED`: host ports published on one network (both
/// protocols). A cap, not a cost: the map allocates an entry when one is
/// published.
pub const MAX_PUBLISHED: u32 = 16384;

/// Map (LRU): a hairpinned flow, as its published endpoint's replies name
/// it -> the host port its client connected to, which its replies come
/// from. Per flow, since one endpoint port may be published on several
/// host ports.
pub const MAP_HAIRPIN_HOST_PORTS: &str = "HAIRPIN_HOST_PORTS";
/// Capacity of `HAIRPIN_HOST_PORTS`: hairpinned flows at once. Each live
/// flow's reply refreshes its entry; one evicted by newer flows gets no
/// replies through.
pub const MAX_HAIRPIN_FLOWS: u32 = 16_384;

/// Map: the cookie of the network's host namespace (for the socket hook).
pub const MAP_HOST_NETNS: &str = "HOST_NETNS";

/// Map: fragmented datagrams crossing the NAT -> the ports of their first
/// fragment (LRU).
pub const MAP_FRAGMENTS: &str = "FRAGMENTS";
/// Map: the same for IPv6's (NAT66), keyed by the fragment header's
/// identification.
pub const MAP_FRAGMENTS6: &str = "FRAGMENTS6";

/// Map (devmap): host-side veth ifindex -> itself; where XDP may redirect.
pub const MAP_ENDPOINT_TX: &str = "ENDPOINT_TX";

/// Map: the ifindex of the interface trusted sources (`REMOTE_TRUSTED`)
/// arrive on: the LAN, or the uplink when the LAN is the uplink or there is
/// none; 0 trusts no interface.
pub const MAP_TRUSTED_IFACE: &str = "TRUSTED_IFACE";

/// Map: the one `TunnelConfig` of the network (its VXLAN device and VNI;
/// `backend = "vxlan"`).
pub const MAP_TUNNEL: &str = "TUNNEL";
/// Map: cluster members' subnets reached through the tunnel (LPM trie of
/// IPv4 prefix -> the member's LAN address, the tunnel's far end).
pub const MAP_TUNNEL_PEERS: &str = "TUNNEL_PEERS";

/// Maps: the last flows made (every CPU's), and where the datapath is in
/// them; where early drop looks for an unanswered flow to evict. (Before
/// they were per CPU, TCP only, as `UNCONFIRMED` and `UNCONFIRMED_CURSOR`.)
pub const MAP_UNREPLIED: &str = "UNREPLIED";
pub const MAP_UNREPLIED_CURSOR: &str = "UNREPLIED_CURSOR";

/// Map (LRU hash): `FlowSender` -> its unanswered flows in the table.
pub const MAP_UNREPLIED_BY_SENDER: &str = "UNREPLIED_BY_SENDER";

/// Maps (one per NAT table, pinned beside it): the timer and record of the
/// table's expiry sweep (`NatSweep`), and the keys a walk found expired.
pub const MAP_NAT_SWEEP: &str = "NAT_SWEEP";
pub const MAP_NAT_EXPIRED: &str = "NAT_EXPIRED";

/// Maps of IPv6's NAT table (NAT66) and what goes with it, as the IPv4
/// maps of the same names without the 6 (a table of each family keeps an
/// IPv4 key at 16 bytes). Named so that the kernel's 15 characters of a
/// map's name tell each apart from its IPv4 twin.
pub const MAP_NAT6: &str = "NAT6";
pub const MAP_UNREPLIED6: &str = "UNREPLIED6";
pub const MAP_UNREPLIED6_CURSOR: &str = "UNREPLIED6_CURSOR";
pub const MAP_UNREPLIED6_BY_SENDER: &str = "UNREPLIED6_BY_SENDER";
pub const MAP_NAT6_SWEEP: &str = "NAT6_SWEEP";
pub const MAP_NAT6_EXPIRED: &str = "NAT6_EXPIRED";
pub const MAP_HAIRPIN6_HOST_PORTS: &str = "HAIRPIN6_HOST_PORTS";

/// Maps of `netfwd monitor` (see `crate::monitor`): its switch, each
/// CPU's rate limit and lost counts, and the ring buffer of events.
pub const MAP_MONITOR: &str = "MONITOR";
pub const MAP_MONITOR_BUDGET: &str = "MONITOR_BUDGET";
pub const MAP_MONITOR_EVENTS: &str = "MONITOR_EVENTS";
/// The datapath's jump table: tail-call slot -> program (`TAIL_CALLS`),
/// filled by the loader whenever it opens a program that jumps.
pub const MAP_CALLS: &str = "CALLS";

/// Every map the datapath pins, in the order `status` shows them.
pub const MAPS: [&str; 35] = [
    MAP_ENDPOINTS,
    MAP_NETWORK,
    MAP_ENDPOINTS6,
    MAP_NETWORK6,
    MAP_COUNTERS,
    MAP_NAT,
    MAP_NAT_CONFIG,
    MAP_REMOTES,
    MAP_REMOTES6,
    MAP_PUBLISHED,
    MAP_PUBLISHED6,
    MAP_HAIRPIN_HOST_PORTS,
    MAP_HOST_NETNS,
    MAP_FRAGMENTS,
    MAP_FRAGMENTS6,
    MAP_ENDPOINT_TX,
    MAP_TRUSTED_IFACE,
    MAP_UNREPLIED,
    MAP_UNREPLIED_CURSOR,
    MAP_UNREPLIED_BY_SENDER,
    MAP_NAT_SWEEP,
    MAP_NAT_EXPIRED,
    MAP_NAT6,
    MAP_UNREPLIED6,
    MAP_UNREPLIED6_CURSOR,
    MAP_UNREPLIED6_BY_SENDER,
    MAP_NAT6_SWEEP,
    MAP_NAT6_EXPIRED,
    MAP_HAIRPIN6_HOST_PORTS,
    MAP_TUNNEL,
    MAP_TUNNEL_PEERS,
    MAP_MONITOR,
    MAP_MONITOR_BUDGET,
    MAP_MONITOR_EVENTS,
    MAP_CALLS,
];

/// Capacity of `REMOTES`.
pub const MAX_REMOTES: u32 = 1024;

/// TC ingress of each host-side veth: traffic sent by an endpoint.
pub const PROG_FROM_ENDPOINT: &str = "tc_from_endpoint";
/// Reached from `PROG_FROM_ENDPOINT` by a tail call: an endpoint's IPv6,
/// on a stack of its own.
pub const PROG_FROM_ENDPOINT6: &str = "tc_from_endpoint6";
/// Slot of `PROG_FROM_ENDPOINT6` in `MAP_CALLS`.
pub const CALL_FROM_ENDPOINT6: u32 = 0;
/// Reached from `PROG_FROM_UPLINK` by a tail call: IPv6 arriving on the
/// uplink of a dual-stack network (NAT66 replies), on a stack of its own.
pub const PROG_FROM_UPLINK6: &str = "tc_from_uplink6";
/// Slot of `PROG_FROM_UPLINK6` in `MAP_CALLS`.
pub const CALL_FROM_UPLINK6: u32 = 1;
/// Reached from `PROG_FROM_ENDPOINT6` by a tail call: an endpoint's IPv6
/// to beyond the network (routed, or NAT66), on a stack of its own.
pub const PROG_TO_REMOTE6: &str = "tc_to_remote6";
/// Slot of `PROG_TO_REMOTE6` in `MAP_CALLS`.
pub const CALL_TO_REMOTE6: u32 = 2;
/// Reached from `PROG_TO_REMOTE6` by a tail call, and back: the source
/// address the host gives a flow NAT66 maps, looked up on a stack with room
/// for the lookup (`BPF_FIB_LOOKUP_SRC`).
pub const PROG_NAT_SOURCE6: &str = "tc_nat_source6";
/// Slot of `PROG_NAT_SOURCE6` in `MAP_CALLS`.
pub const CALL_NAT_SOURCE6: u32 = 3;
/// Reached from `PROG_FROM_ENDPOINT6` by a tail call: an endpoint's IPv6
/// TCP or UDP to the uplink's IPv6 address, whose hairpinned flow is found
/// or made, on a stack of its own.
pub const PROG_HAIRPIN6_FLOW: &str = "tc_hairpin6_flow";
/// Slot of `PROG_HAIRPIN6_FLOW` in `MAP_CALLS`.
pub const CALL_HAIRPIN6_FLOW: u32 = 4;
/// Reached from `PROG_HAIRPIN6_FLOW`, or from `PROG_FROM_ENDPOINT6` for
/// TCP or UDP to the gateway, by a tail call: the hairpin's translation,
/// on a stack of its own.
pub const PROG_HAIRPIN6: &str = "tc_hairpin6";
/// Slot of `PROG_HAIRPIN6` in `MAP_CALLS`.
pub const CALL_HAIRPIN6: u32 = 5;
/// Reached from `PROG_TO_REMOTE6` by a tail call, and back: an unanswered
/// flow evicted for a new one that found `NAT6` full (early drop), on a
/// stack with room for the eviction.
pub const PROG_NAT_ROOM6: &str = "tc_nat_room6";
/// Slot of `PROG_NAT_ROOM6` in `MAP_CALLS`.
pub const CALL_NAT_ROOM6: u32 = 6;
/// Room in `MAP_CALLS` (it was 4: a pin of that size is made anew).
pub const CALLS_ROOM: u32 = 8;
/// Every slot of `MAP_CALLS` with the program it jumps to.
pub const TAIL_CALLS: [(u32, &str); 7] = [
    (CALL_FROM_ENDPOINT6, PROG_FROM_ENDPOINT6),
    (CALL_FROM_UPLINK6, PROG_FROM_UPLINK6),
    (CALL_TO_REMOTE6, PROG_TO_REMOTE6),
    (CALL_NAT_SOURCE6, PROG_NAT_SOURCE6),
    (CALL_HAIRPIN6_FLOW, PROG_HAIRPIN6_FLOW),
    (CALL_HAIRPIN6, PROG_HAIRPIN6),
    (CALL_NAT_ROOM6, PROG_NAT_ROOM6),
];
/// TC ingress of the uplink: replies to NATed flows.
pub const PROG_FROM_UPLINK: &str = "tc_from_uplink";
/// XDP on each host-side veth (`mode = "xdp"`): endpoint-to-endpoint frames.
pub const PROG_XDP_FROM_ENDPOINT: &str = "xdp_from_endpoint";
/// XDP on the uplink (`mode = "xdp"`): replies of NATed flows.
pub const PROG_XDP_FROM_UPLINK: &str = "xdp_from_uplink";
/// cgroup connect4 of the host: its own connections to published ports.
pub const PROG_CONNECT4: &str = "connect4_published";
/// Name of the pinned link of the connect4 hook in `LINKS_DIR`.
pub const CONNECT4_LINK: &str = "cgroup-connect4";
/// cgroup bind4 of the host, beside connect4: its own binds to published
/// ports are refused.
pub const PROG_BIND4: &str = "bind4_published";
/// Name of the pinned link of the bind4 hook in `LINKS_DIR`.
pub const BIND4_LINK: &str = "cgroup-bind4";
/// cgroup connect6 of the host: `PROG_CONNECT4` over IPv6.
pub const PROG_CONNECT6: &str = "connect6_published";
/// Name of the pinned link of the connect6 hook in `LINKS_DIR`.
pub const CONNECT6_LINK: &str = "cgroup-connect6";
/// cgroup bind6 of the host: `PROG_BIND4` over IPv6.
pub const PROG_BIND6: &str = "bind6_published";
/// Name of the pinned link of the bind6 hook in `LINKS_DIR`.
pub const BIND6_LINK: &str = "cgroup-bind6";

/// Run once with `BPF_PROG_TEST_RUN` when a network with NAT comes up:
/// arms (or re-arms, with this program's code) the NAT table's expiry
/// sweep, which then runs in the kernel on its own timer.
pub const PROG_NAT_SWEEP_ARM: &str = "nat_sweep_arm";
/// Run with `BPF_PROG_TEST_RUN`: one step of the sweep at once (a walk, or
/// the removals it found), for the tests (`prog_run_nat_sweep.rs`).
pub const PROG_NAT_SWEEP_STEP: &str = "nat_sweep_step";

/// Room in `ENDPOINTS`, `ENDPOINTS6`, `COUNTERS` and `ENDPOINT_TX`: the
/// endpoints of one network, from the config and attached alike. A cap,
/// not a cost: those maps allocate an entry when an endpoint is added
/// (`COUNTERS`, per CPU, would otherwise hold 560 bytes a CPU for every
/// endpoint a network could have).
pub const MAX_ENDPOINTS: u32 = 16384;
/// Room in `COUNTERS` beyond the endpoints': the uplink, the LAN and the
/// tunnel device, with room to spare.
pub const NON_ENDPOINT_IFACES: u32 = 8;
