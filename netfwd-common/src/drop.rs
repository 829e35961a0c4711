//! Why the datapath dropped a packet. The numbers are stable: userspace prints
//! them as words and counters are indexed by them; a retired number is never
//! reused.

/// A reason for dropping a packet, counted per interface.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A header is truncated or its fields are impossible (e.g. IPv4 `ihl < 5`).
    Malformed = 1,
    /// An ARP request or reply whose sender address is not the one assigned
    /// to the interface it arrived on: an endpoint claiming another's address.
    ArpSpoofed = 2,
    /// A new NAT flow found no free uplink port within the retries.
    NoPort = 3,
    /// From the uplink to an endpoint address, belonging to no flow an
    /// endpoint started (the FORWARD policy).
    Policy = 4,
    /// Out of the uplink with an IP protocol (or ICMP type) the NAT does not
    /// translate, or a later fragment whose first one did not pass (ports
    /// only in the first one); or IPv6 beyond a dual-stack network's prefix
    /// that the NAT does not send out.
    Unsupported = 5,
    /// An IPv4 packet from an endpoint whose source is not the address of the
    /// endpoint behind the interface it came in on.
    IpSpoofed = 6,
    /// A reply of a NATed flow with no TTL left to forward it with (a
    /// router drops it; passing it to the host would have it answer for a
    /// port it does not own).
    TtlExceeded = 7,
    /// From an endpoint with a source MAC that is not its own (IPv4 or ARP).
    MacSpoofed = 8,
    /// Endpoint to endpoint on a network with `icc = false`.
    Icc = 9,
    /// To another netfwd network of the host that no `[[allow]]` opens.
    Isolated = 10,
    /// A new NAT flow (or a new connection to a published port) found the
    /// NAT table full: refused, as conntrack refuses when its table is full;
    /// the flows in it go on.
    NatFull = 11,
    /// A TCP segment other than a SYN to a published port, belonging to no
    /// flow: only a SYN opens one (conntrack without loose pickup). Dropped
    /// rather than given to the host, whose RSTs a spoofed ACK flood would
    /// reflect at its victims.
    TcpNoFlow = 12,
    /// An endpoint's ICMP error quoting a packet that was not sent to it
    /// (another endpoint's flow): translated, it would let one endpoint cut
    /// or throttle another's connections.
    IcmpSpoofed = 13,
    /// An ICMPv6 router advertisement, router solicitation or redirect from
    /// an endpoint: only the host configures and routes its links (a rogue
    /// RA would give the host a default route through the endpoint).
    RouterMessage = 14,
    /// A VLAN-tagged frame from an endpoint (in-band 802.1Q or 802.1ad, or a
    /// tag in the skb's metadata): an endpoint has one untagged link.
    VlanTagged = 15,
    /// From an endpoint to an address of its network's subnet that no
    /// endpoint holds (nor the gateway, nor a peer's route): the host has no
    /// such neighbour and would send it out of its default route untranslated.
    NoEndpoint = 16,
    /// From an endpoint to a destination the host routes out of an
    /// interface other than the uplink, with no netfwd route there: it
    /// would leave with the endpoint's private address.
    NotUplink = 17,
    /// From the uplink with a source that cannot be outside: an address of
    /// one of the host's netfwd networks (endpoint, gateway, subnet), the
    /// uplink's own address, loopback, or another address of the host. The
    /// kernel drops these as martians; the datapath bypasses its check.
    MartianSource = 18,
    /// A new NAT flow from an endpoint or to a published port that already
    /// holds its share (`nat.max_unreplied_share`) of the table in flows no
    /// reply has answered yet: a flood costs its sender, not its neighbours.
    UnrepliedShare = 19,
    /// An IPv6 neighbour advertisement from an endpoint for an address of
    /// its network that is not its own, or from or naming a MAC not its
    /// own: the IPv6 twin of `arp_spoofed`.
    NdSpoofed = 20,
    /// A packet whose next program (IPv6's, reached by a tail call) was
    /// missing from the datapath's jump table (`CALLS`): a load cut short
    /// between filling the maps and the table; the next `netfwd up` fills it.
    MissedTailCall = 21,
    /// From an endpoint to the outside where the host would masquerade it
    /// with an address of its own netfwd networks (a gateway) or none: the
    /// uplink has no address of the family for the destination. The reply
    /// would come back to a gateway, or nowhere.
    NoNatSource = 22,
    /// An endpoint's IPv6 packet for the NAT with a hop-by-hop, routing or
    /// destination options header (before the transport header, or after
    /// a fragment header): the NAT crosses the fragment header only (the
    /// rule and why: docs/datapath.md, "IPv6 extension headers").
    ExtensionHeader = 23,
}

/// Slots in [`crate::counters::IfaceCounters::drops`] (and `drop_bytes`);
/// room for reasons to come. (16 before reason 16: a pinned `COUNTERS` of the old size is made
/// anew on the next load.)
pub const DROP_REASON_SLOTS: usize = 32;

impl DropReason {
    /// Every reason, for printing counters.
    pub const ALL: [DropReason; 23] = [
        DropReason::Malformed,
        DropReason::ArpSpoofed,
        DropReason::NoPort,
        DropReason::Policy,
        DropReason::Unsupported,
        DropReason::IpSpoofed,
        DropReason::TtlExceeded,
        DropReason::MacSpoofed,
        DropReason::Icc,
        DropReason::Isolated,
        DropReason::NatFull,
        DropReason::TcpNoFlow,
        DropReason::IcmpSpoofed,
        DropReason::RouterMessage,
        DropReason::VlanTagged,
        DropReason::NoEndpoint,
        DropReason::NotUplink,
        DropReason::MartianSource,
        DropReason::UnrepliedShare,
        DropReason::NdSpoofed,
        DropReason::MissedTailCall,
        DropReason::NoNatSource,
        DropReason::ExtensionHeader,
    ];

    /// The stable name shown by `netfwd status` and `netfwd stats`.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::ArpSpoofed => "arp_spoofed",
            DropReason::NoPort => "no_port",
            DropReason::Policy => "policy",
            DropReason::Unsupported => "unsupported",
            DropReason::IpSpoofed => "ip_spoofed",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::MacSpoofed => "mac_spoofed",
            DropReason::Icc => "icc",
            DropReason::Isolated => "isolated",
            DropReason::NatFull => "nat_full",
            DropReason::TcpNoFlow => "tcp_no_flow",
            DropReason::IcmpSpoofed => "icmp_spoofed",
            DropReason::RouterMessage => "router_message",
            DropReason::VlanTagged => "vlan_tagged",
            DropReason::NoEndpoint => "no_endpoint",
            DropReason::NotUplink => "not_uplink",
            DropReason::MartianSource => "martian_source",
            DropReason::UnrepliedShare => "unreplied_share",
            DropReason::NdSpoofed => "nd_spoofed",
            DropReason::MissedTailCall => "missed_tail_call",
            DropReason::NoNatSource => "no_nat_source",
            DropReason::ExtensionHeader => "extension_header",
        }
    }

    /// Index into the per-interface drop counters.
    pub const fn slot(self) -> usize {
        self as usize
    }
}

const _: () = {
    let mut i = 0;
    while i < DropReason::ALL.len() {
        assert!(DropReason::ALL[i].slot() < DROP_REASON_SLOTS);
        i += 1;
    }
};
