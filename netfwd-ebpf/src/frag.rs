//! Fragments through the NAT, either family. Only a datagram's first
//! fragment carries its ports; it is translated like a whole packet and
//! leaves its ports behind, keyed by addresses, protocol and the datagram's
//! identification, so the fragments after it find the same mapping (their
//! addresses are translated; they have no ports to translate). The
//! transport checksum, which covers the whole datagram, is in the first
//! fragment: adjusted there for the new address and port, it holds for the
//! reassembled datagram, as Linux's NAT leaves it. A later fragment that
//! comes before its first one finds nothing: dropped going out
//! (`unsupported`), the host's coming in. Veths and one uplink keep
//! fragments in order. Where a family keeps the fragment fields (IPv4's
//! header, IPv6's fragment header) is the family's (`Family::transport`).

use netfwd_common::nat::{Direction, FragmentKey, FragmentPorts};

use crate::{family::Family, l4::Transport};

#[inline(always)]
fn key<F: Family>(
    ip: &F::Hdr,
    datagram: &Transport<F::FragId>,
    dir: Direction,
) -> FragmentKey<F::Addr, F::FragId> {
    FragmentKey {
        saddr: F::saddr(ip),
        daddr: F::daddr(ip),
        id: datagram.id,
        proto: datagram.proto,
        dir: dir.byte(),
    }
}

/// The first fragment's ports (header `ip` as it arrived), for the rest of
/// its datagram.
#[inline(always)]
pub fn remember<F: Family>(
    ip: &F::Hdr,
    datagram: &Transport<F::FragId>,
    dir: Direction,
    sport: [u8; 2],
    dport: [u8; 2],
) {
    // Best effort: a full LRU makes room; failing that, the later fragments
    // are dropped and counted.
    let _ = F::fragments().insert(
        key::<F>(ip, datagram, dir),
        FragmentPorts { sport, dport },
        0,
    );
}

/// The ports of a later fragment's datagram, if its first fragment passed.
#[inline(always)]
pub fn recall<F: Family>(
    ip: &F::Hdr,
    datagram: &Transport<F::FragId>,
    dir: Direction,
) -> Option<FragmentPorts> {
    // SAFETY: plain data; a stale copy at worst.
    unsafe { F::fragments().get(key::<F>(ip, datagram, dir)).copied() }
}
