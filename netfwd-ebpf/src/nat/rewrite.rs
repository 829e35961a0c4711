//! Header rewrites of a translated packet: its address and TTL, then its
//! port and transport checksum (`L4Rewrite`, which TC and XDP do each their
//! own way).

use aya_ebpf::programs::{TcContext, XdpContext};
use netfwd_common::{
    drop::DropReason,
    nat::{Direction, IPPROTO_TCP, IPPROTO_UDP},
};
use network_types::ip::Ipv4Hdr;

use crate::{
    csum::{self, L4Csum},
    ipv4,
    l4::{self, ICMP_CHECK_OFF, TCP_CHECK_OFF, UDP_CHECK_OFF},
    parse,
};

/// Rewrites the translated address (source going out, destination coming
/// in) and decrements the TTL, as the router the host is would.
#[inline(always)]
pub fn rewrite_ip(ip: &mut Ipv4Hdr, dir: Direction, addr: [u8; 4]) {
    let field = match dir {
        Direction::Egress => ipv4::Field::Src,
        Direction::Ingress => ipv4::Field::Dst,
    };
    ipv4::set_addr(ip, field, addr);
    ipv4::dec_ttl(ip);
}

/// Rewrites the translated port (the source port going out, the destination
/// port coming in; the identifier for ICMP echo) and the transport
/// checksum with it.
pub trait L4Rewrite {
    fn rewrite_l4(
        &self,
        proto: u8,
        dir: Direction,
        addrs: ([u8; 4], [u8; 4]),
        ports: ([u8; 2], [u8; 2]),
    ) -> Result<(), DropReason>;
}

impl L4Rewrite for TcContext {
    /// TCP and UDP checksums through the kernel's helpers, which know what
    /// CHECKSUM_PARTIAL and the pseudo-header need; ICMP's in place. Runs
    /// after every packet-pointer use: the checksum helpers invalidate them.
    #[inline(always)]
    fn rewrite_l4(
        &self,
        proto: u8,
        dir: Direction,
        (old_addr, new_addr): ([u8; 4], [u8; 4]),
        (old_port, new_port): ([u8; 2], [u8; 2]),
    ) -> Result<(), DropReason> {
        let port = parse::header_at::<[u8; 2]>(self, l4::port_offset(proto, dir))?;
        match l4_csum(proto) {
            Some(l4) => {
                // SAFETY: bounds checked by `header_at`.
                unsafe { *port = new_port };
                l4.addr(self, old_addr, new_addr)?;
                l4.port(self, old_port, new_port)
            }
            None => {
                let check = parse::header_at::<[u8; 2]>(self, ICMP_CHECK_OFF)?;
                // SAFETY: bounds checked by `header_at`.
                unsafe {
                    csum::replace(&mut *check, old_port, new_port);
                    *port = new_port;
                }
                Ok(())
            }
        }
    }
}

impl L4Rewrite for XdpContext {
    /// Every checksum in place: a frame from the wire carries a full
    /// checksum, and no offload state comes along to finish one.
    #[inline(always)]
    fn rewrite_l4(
        &self,
        proto: u8,
        dir: Direction,
        (old_addr, new_addr): ([u8; 4], [u8; 4]),
        (old_port, new_port): ([u8; 2], [u8; 2]),
    ) -> Result<(), DropReason> {
        // TCP and UDP sum a pseudo-header, ICMP not.
        let check_at = match proto {
            IPPROTO_TCP => TCP_CHECK_OFF,
            IPPROTO_UDP => UDP_CHECK_OFF,
            _ => ICMP_CHECK_OFF,
        };
        let check = parse::header_at::<[u8; 2]>(self, check_at)?;
        let port = parse::header_at::<[u8; 2]>(self, l4::port_offset(proto, dir))?;
        // SAFETY: bounds checked by `header_at`.
        unsafe {
            let check = &mut *check;
            let udp = proto == IPPROTO_UDP;
            // A UDP datagram without a checksum stays without one.
            if !(udp && *check == [0; 2]) {
                if proto == IPPROTO_TCP || udp {
                    csum::replace(check, old_addr, new_addr);
                }
                csum::replace(check, old_port, new_port);
                if udp && *check == [0; 2] {
                    *check = [0xff; 2];
                }
            }
            *port = new_port;
        }
        Ok(())
    }
}

/// The TCP/UDP checksum to update through the kernel's helpers; ICMP's is
/// updated in place with the identifier.
#[inline(always)]
fn l4_csum(proto: u8) -> Option<L4Csum> {
    match proto {
        IPPROTO_TCP => Some(L4Csum {
            offset: TCP_CHECK_OFF,
            udp: false,
        }),
        IPPROTO_UDP => Some(L4Csum {
            offset: UDP_CHECK_OFF,
            udp: true,
        }),
        _ => None,
    }
}
