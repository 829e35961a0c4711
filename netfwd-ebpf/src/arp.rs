//! ARP responder. Endpoints resolve each other and the gateway without a
//! bridge: a request for another endpoint is answered with that endpoint's own
//! MAC (so their frames need no rewriting), a request for the gateway with the
//! asking endpoint's host-side veth MAC. The answer goes back out of the
//! interface the request came in on.

use aya_ebpf::{helpers::bpf_redirect, programs::TcContext};
use netfwd_common::drop::DropReason;
use network_types::{arp::ArpHdr, eth::EthHdr};

use crate::{maps, parse, verdict::Verdict};

const ARP_HTYPE_ETHERNET: u16 = 1;
const ARP_PTYPE_IPV4: u16 = 0x0800;
const ARP_OP_REQUEST: u16 = 1;
const ARP_OP_REPLY: u16 = 2;

pub fn answer_from_endpoint(ctx: &TcContext, ifindex: u32) -> Result<Verdict, DropReason> {
    let arp = parse::header_mut::<ArpHdr>(ctx, EthHdr::LEN)?;
    let eth = parse::header_mut::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by `header_mut`; TC programs may write packet data.
    let (arp, eth) = unsafe { (&mut *arp, &mut *eth) };
    if arp.htype() != ARP_HTYPE_ETHERNET
        || arp.ptype() != ARP_PTYPE_IPV4
        || arp.hlen != 6
        || arp.plen != 4
    {
        // Not IPv4 over Ethernet, the only ARP an endpoint's link carries.
        // Linux still learns the sender of one with hardware type IEEE 802
        // (6), past the sender checks below: dropped as impossible here.
        return Err(DropReason::Malformed);
    }
    let request = arp.oper() == ARP_OP_REQUEST;
    // An unspecified sender is an address probe (RFC 5227): not ours to
    // answer, and it claims nothing.
    if request && arp.spa == [0; 4] {
        return Ok(Verdict::ToHost);
    }
    // Requests and replies alike (the host's neighbour table learns from
    // both): the sender is the endpoint behind this interface.
    let sender = sender_of(arp, eth, ifindex)?;
    if !request {
        // Replies (to the host's own requests) and other operations: the stack's.
        return Ok(Verdict::ToHost);
    }
    let Some(answer) = resolve(arp.tpa, &sender, ifindex) else {
        return Ok(Verdict::ToHost);
    };

    eth.dst_addr = eth.src_addr;
    eth.src_addr = answer;
    arp.set_oper(ARP_OP_REPLY);
    arp.tha = arp.sha;
    arp.sha = answer;
    core::mem::swap(&mut arp.tpa, &mut arp.spa);
    // SAFETY: plain helper call; egress of the same device reaches the endpoint.
    let action = unsafe { bpf_redirect(ifindex, 0) } as i32;
    Ok(Verdict::ArpReplied(action))
}

/// The endpoint behind `ifindex`, if the frame's sender addresses are its own.
#[inline(always)]
fn sender_of(
    arp: &ArpHdr,
    eth: &EthHdr,
    ifindex: u32,
) -> Result<netfwd_common::maps::EndpointEntry, DropReason> {
    let Some(sender) = maps::endpoint(arp.spa) else {
        return Err(DropReason::ArpSpoofed);
    };
    if sender.host_ifindex != ifindex {
        return Err(DropReason::ArpSpoofed);
    }
    if sender.mac != arp.sha || sender.mac != eth.src_addr {
        return Err(DropReason::MacSpoofed);
    }
    Ok(sender)
}

/// The MAC an endpoint should use for `target`, if the datapath owns the answer.
#[inline(always)]
fn resolve(
    target: [u8; 4],
    sender: &netfwd_common::maps::EndpointEntry,
    ifindex: u32,
) -> Option<[u8; 6]> {
    if maps::gateway() == Some(target) {
        return Some(sender.host_mac);
    }
    // An endpoint asking for its own address (duplicate detection) gets no answer.
    maps::endpoint(target)
        .filter(|peer| peer.host_ifindex != ifindex)
        .map(|peer| peer.mac)
}
