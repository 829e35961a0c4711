//! IPv6 as far as the gate needs a family (`Layer3`): an endpoint's
//! packet is checked and delivered to its peer by the bodies IPv4's is.

use netfwd_common::{maps::EndpointEntry, nat::Ipv6Bytes};
use network_types::ip::Ipv6Hdr;

use crate::{family::Layer3, maps};

pub enum V6 {}

impl Layer3 for V6 {
    type Addr = Ipv6Bytes;
    type Hdr = Ipv6Hdr;

    #[inline(always)]
    fn saddr(ip: &Ipv6Hdr) -> Ipv6Bytes {
        Ipv6Bytes(ip.src_addr)
    }

    #[inline(always)]
    fn daddr(ip: &Ipv6Hdr) -> Ipv6Bytes {
        Ipv6Bytes(ip.dst_addr)
    }

    #[inline(always)]
    fn hop_limit(ip: &Ipv6Hdr) -> u8 {
        ip.hop_limit
    }

    /// No header checksum: the hop limit changes alone.
    #[inline(always)]
    fn dec_hop_limit(ip: &mut Ipv6Hdr) {
        ip.hop_limit -= 1;
    }

    #[inline(always)]
    fn valid(ip: &Ipv6Hdr) -> bool {
        ip.version() == 6
    }

    #[inline(always)]
    fn endpoint(addr: Ipv6Bytes) -> Option<EndpointEntry> {
        maps::endpoint6(&addr.0).copied()
    }
}
