//! In-place IPv4 header changes, each with its checksum update.

use network_types::ip::Ipv4Hdr;

use crate::csum;

/// Which address of the header a translation rewrites.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Src,
    Dst,
}

#[inline(always)]
pub fn set_addr(ip: &mut Ipv4Hdr, field: Field, addr: [u8; 4]) {
    let field = match field {
        Field::Src => &mut ip.src_addr,
        Field::Dst => &mut ip.dst_addr,
    };
    csum::replace4(&mut ip.check, *field, addr);
    *field = addr;
}

/// One hop, as the router the host is: the caller has checked `ttl > 1`.
#[inline(always)]
pub fn dec_ttl(ip: &mut Ipv4Hdr) {
    let old = [ip.ttl, ip.proto];
    ip.ttl -= 1;
    csum::replace2(&mut ip.check, old, [ip.ttl, ip.proto]);
}
