//! Keys and values of the network's BPF maps.

/// Key of `ENDPOINTS`: an endpoint's IPv4 address, as on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct EndpointKey {
    pub addr: [u8; 4],
}

/// Value of `ENDPOINTS`: where an endpoint is and who it is on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct EndpointEntry {
    /// ifindex of the host-side veth; `bpf_redirect_peer` to it lands in the
    /// endpoint's namespace.
    pub host_ifindex: u32,
    /// MAC of the endpoint's own interface (`eth0` in its namespace).
    pub mac: [u8; 6],
    /// MAC of the host-side veth: what the endpoint sees as the gateway's MAC.
    pub host_mac: [u8; 6],
}

/// The single value of `NETWORK`: facts about the network the datapath needs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct NetworkConfig {
    /// The gateway address, owned by the host; ARP for it is answered with the
    /// asking endpoint's host-side veth MAC.
    pub gateway: [u8; 4],
    /// The subnet's network address and prefix length.
    pub subnet: [u8; 4],
    pub prefix_len: u8,
    /// `NETWORK_*` bits.
    pub flags: u8,
    pub _pad: [u8; 2],
}

/// `NetworkConfig::flags`: endpoints may not talk to each other (Docker's
/// `icc=false`); egress and published ports still work.
pub const NETWORK_NO_ICC: u8 = 1;

/// `REMOTES` flag: endpoints reach this prefix (another host's endpoints)
/// routed, without source NAT.
pub const REMOTE_ROUTE: u8 = 1;
/// `REMOTES` flag: packets from this prefix may reach endpoints directly
/// (peer hosts' endpoints, the LAN's own hosts) when they arrive on the
/// trusted interface (`TRUSTED_IFACE`): an address alone proves nothing.
pub const REMOTE_TRUSTED: u8 = 2;
/// `REMOTES` flag: another netfwd network of the host, which endpoints may
/// not reach (dropped, `isolated`).
pub const REMOTE_ISOLATED: u8 = 4;
/// Key of `ENDPOINTS6`: an endpoint's IPv6 address, as on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct EndpointKey6 {
    pub addr: [u8; 16],
}

/// The single value of `NETWORK6`: a dual-stack network's IPv6. All zero
/// (`prefix_len` 0) in an IPv4-only network, whose endpoints' IPv6 is the
/// host's stack's, as before.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct Network6Config {
    /// The IPv6 gateway, owned by the host.
    pub gateway: [u8; 16],
    /// The prefix and its length.
    pub subnet: [u8; 16],
    pub prefix_len: u8,
    /// `NETWORK6_*` bits (zero in pins an older netfwd wrote: NAT66 on).
    pub flags: u8,
    pub _pad: [u8; 2],
}

/// `Network6Config::flags`: the network's IPv6 leaves the uplink
/// untranslated, with the endpoints' own (public) addresses (`nat6 =
/// false`); only replies to flows they started come back in.
pub const NETWORK6_NO_NAT: u8 = 1;

/// `REMOTES` flag: another netfwd network of this host (allowed or
/// isolated): never a source arriving on the uplink.
pub const REMOTE_LOCAL: u8 = 8;
/// `REMOTES` flag: another cluster member's endpoints behind the VXLAN
/// tunnel (`TUNNEL_PEERS` names its far end): reached encapsulated, and
/// trusted as a source only when it arrives decapsulated on the tunnel
/// device (`TUNNEL`), never on the LAN.
pub const REMOTE_TUNNEL: u8 = 16;

/// The single value of `TUNNEL`: the network's VXLAN device (collect
/// metadata), which the datapath sets each packet's tunnel key for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct TunnelConfig {
    /// ifindex of the VXLAN device; 0: the network has no tunnel.
    pub ifindex: u32,
    /// The VXLAN network identifier every member uses.
    pub vni: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY (all): repr(C), byte arrays and integers only, no padding
    // (checked by the bytemuck::Pod derives above); every bit pattern is valid.
    unsafe impl aya::Pod for super::EndpointKey {}
    unsafe impl aya::Pod for super::EndpointEntry {}
    unsafe impl aya::Pod for super::NetworkConfig {}
    unsafe impl aya::Pod for super::EndpointKey6 {}
    unsafe impl aya::Pod for super::Network6Config {}
    unsafe impl aya::Pod for super::TunnelConfig {}
}
