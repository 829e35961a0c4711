//! Header rewrites of a translated packet: its address and hop limit, then
//! its port and transport checksum (`L4Rewrite`, which TC and XDP do each
//! their own way). One body for either family.

use aya_ebpf::programs::{TcContext, XdpContext};
use netfwd_common::{
    drop::DropReason,
    nat::{Direction, IPPROTO_TCP, IPPROTO_UDP},
};

use crate::{
    csum::{self, L4Csum},
    family::{Family, Field},
    l4, parse,
};

/// Rewrites the translated address (source going out, destination coming
/// in) and takes a hop off, as the router the host is would.
#[inline(always)]
pub fn rewrite_ip<F: Family>(ip: &mut F::Hdr, dir: Direction, addr: F::Addr) {
    let field = match dir {
        Direction::Egress => Field::Src,
        Direction::Ingress => Field::Dst,
    };
    F::set_addr(ip, field, addr);
    F::dec_hop_limit(ip);
}

/// Rewrites the translated port (the source port going out, the destination
/// port coming in; the identifier for ICMP echo) of the transport header
/// at `off`, and the transport checksum with it.
pub trait L4Rewrite {
    fn rewrite_l4<F: Family>(
        &self,
        off: usize,
        proto: u8,
        dir: Direction,
        addrs: (F::Addr, F::Addr),
        ports: ([u8; 2], [u8; 2]),
    ) -> Result<(), DropReason>;
}

impl L4Rewrite for TcContext {
    /// TCP and UDP checksums through the kernel's helpers, which know what
    /// CHECKSUM_PARTIAL and the pseudo-header need; ICMP's in place. Runs
    /// after every packet-pointer use: the checksum helpers invalidate them.
    #[inline(always)]
    fn rewrite_l4<F: Family>(
        &self,
        off: usize,
        proto: u8,
        dir: Direction,
        (old_addr, new_addr): (F::Addr, F::Addr),
        (old_port, new_port): ([u8; 2], [u8; 2]),
    ) -> Result<(), DropReason> {
        let port = parse::header_at::<[u8; 2]>(self, l4::port_offset::<F>(off, proto, dir))?;
        match l4_csum(off, proto) {
            Some(l4) => {
                // SAFETY: bounds checked by `header_at`.
                unsafe { *port = new_port };
                F::l4_csum_addr(self, l4, old_addr, new_addr)?;
                l4.port(self, old_port, new_port)
            }
            None => {
                let check = parse::header_at::<[u8; 2]>(self, l4::check_offset(off, proto))?;
                // SAFETY: bounds checked by `header_at`.
                unsafe {
                    if F::ICMP_PSEUDO_HDR {
                        F::csum_addr(&mut *check, old_addr, new_addr);
                    }
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
    fn rewrite_l4<F: Family>(
        &self,
        off: usize,
        proto: u8,
        dir: Direction,
        (old_addr, new_addr): (F::Addr, F::Addr),
        (old_port, new_port): ([u8; 2], [u8; 2]),
    ) -> Result<(), DropReason> {
        let check = parse::header_at::<[u8; 2]>(self, l4::check_offset(off, proto))?;
        let port = parse::header_at::<[u8; 2]>(self, l4::port_offset::<F>(off, proto, dir))?;
        // SAFETY: bounds checked by `header_at`.
        unsafe {
            let check = &mut *check;
            let udp = proto == IPPROTO_UDP;
            // A UDP datagram without a checksum stays without one.
            if !(udp && *check == [0; 2]) {
                // TCP and UDP sum a pseudo-header; ICMP as its family says.
                if proto == IPPROTO_TCP || udp || F::ICMP_PSEUDO_HDR {
                    F::csum_addr(check, old_addr, new_addr);
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

/// The TCP/UDP checksum (of a transport header at `off`) to update through
/// the kernel's helpers; ICMP's is updated in place with the identifier.
#[inline(always)]
fn l4_csum(off: usize, proto: u8) -> Option<L4Csum> {
    match proto {
        IPPROTO_TCP | IPPROTO_UDP => Some(L4Csum {
            offset: l4::check_offset(off, proto),
            udp: proto == IPPROTO_UDP,
        }),
        _ => None,
    }
}
