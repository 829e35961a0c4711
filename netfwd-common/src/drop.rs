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
    /// translate, or a fragment (ports only in the first one).
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
}

/// Slots in [`crate::counters::IfaceCounters::drops`]; room for reasons to come.
pub const DROP_REASON_SLOTS: usize = 16;

impl DropReason {
    /// Every reason, for printing counters.
    pub const ALL: [DropReason; 13] = [
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
