//! Leaving the host: where the kernel's routing table sends a packet (the
//! next hop, `hop`), with which source address, and whether it fits. One
//! body for either family (its parameters are the family's) and either
//! context.

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_NOT_FWDED,
        BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LOOKUP_SRC, bpf_fib_lookup as FibParams,
    },
    helpers::{bpf_check_mtu, bpf_fib_lookup},
    programs::TcContext,
};

use crate::{family::Family, hop::NextHop, parse::Packet};

/// Looks `src -> dst` up as if forwarded from `ifindex`: the next hop.
/// `None` for what is not forwarded out of a device: local addresses,
/// unreachable routes, packets too big for the device's MTU (the stack
/// sends the ICMP error or fragments).
#[inline(always)]
pub fn lookup<F: Family>(
    ctx: &impl Packet,
    ifindex: u32,
    src: F::Addr,
    dst: F::Addr,
) -> Option<NextHop> {
    next_hop::<F>(ctx, ifindex, src, dst, false)
}

/// [`lookup`] for a packet of any size: the caller checks it against the
/// hop's MTU ([`too_big`]) where it matters. The kernel's own check, which
/// [`lookup`] takes, allows a frame a VLAN tag's 4 bytes over the MTU;
/// [`too_big`] is exact.
#[inline(always)]
pub fn lookup_any_size<F: Family>(
    ctx: &impl Packet,
    ifindex: u32,
    src: F::Addr,
    dst: F::Addr,
) -> Option<NextHop> {
    next_hop::<F>(ctx, ifindex, src, dst, true)
}

/// [`lookup`], and with `any_size` [`lookup_any_size`]: one lookup with
/// a `tot_len` of 0, for which the kernel compares the skb with the MTU
/// of the device it finds, gives that MTU, and says `FRAG_NEEDED` for a
/// hop found all the same. (A `tot_len` of 1, which always fits, had the
/// kernel work the route's MTU out on every packet, and [`too_big`] then
/// asked the device's again: for NAT66, a tenth of the lookup's cost.)
#[inline(always)]
fn next_hop<F: Family>(
    ctx: &impl Packet,
    ifindex: u32,
    src: F::Addr,
    dst: F::Addr,
    any_size: bool,
) -> Option<NextHop> {
    let mut params = MaybeUninit::uninit();
    let params = zeroed(&mut params);
    F::fill_fib_params(params, ifindex, src, dst, 0);
    match fib_lookup(ctx, params, 0) {
        BPF_FIB_LKUP_RET_SUCCESS => Some(resolved(params)),
        BPF_FIB_LKUP_RET_FRAG_NEEDED if any_size => Some(resolved(params)),
        BPF_FIB_LKUP_RET_NO_NEIGH => Some(NextHop::unresolved(params.ifindex)),
        _ => None,
    }
}

/// The source address the host would give a packet `src -> dst` forwarded
/// from `ifindex` (what a masquerade uses, so it follows the uplink's
/// address as it changes); `None` where it routes no such packet out or
/// has no address for it. A lookup of its own, for a mapping made or
/// checked, never per packet: for IPv6 the kernel picks the source among
/// every address of every device of the namespace (RFC 6724), one host veth
/// more for each endpoint, which cost more than the rest of the NAT path.
#[inline(always)]
pub fn source<F: Family>(
    ctx: &impl Packet,
    ifindex: u32,
    src: F::Addr,
    dst: F::Addr,
) -> Option<F::Addr> {
    let mut params = MaybeUninit::uninit();
    let params = zeroed(&mut params);
    F::fill_fib_params(params, ifindex, src, dst, 1);
    match fib_lookup(ctx, params, BPF_FIB_LOOKUP_SRC) {
        BPF_FIB_LKUP_RET_SUCCESS | BPF_FIB_LKUP_RET_NO_NEIGH => Some(F::fib_src(params)),
        _ => None,
    }
}

/// Whether the packet is too big to leave by `hop` as it is (GSO segments
/// counted one by one): against the MTU its lookup found, or the device's.
#[inline(always)]
pub fn too_big(ctx: &TcContext, hop: &NextHop) -> bool {
    match hop.mtu() {
        // What `bpf_check_mtu` compares: the frame, and its device's MTU
        // with the Ethernet header; a GSO packet's segments fit by making.
        // SAFETY: the context pointer is valid for the whole program run.
        Some(mtu) => ctx.len() > mtu + ETH_HLEN && unsafe { (*ctx.skb.skb).gso_size } == 0,
        None => {
            let mut mtu_len = 0u32;
            // SAFETY: `mtu_len` is a valid, writable u32; flags 0.
            let rc = unsafe { bpf_check_mtu(ctx.helper_ctx(), hop.oif(), &mut mtu_len, 0, 0) };
            rc != 0
        }
    }
}

/// The Ethernet header that the MTU does not count.
const ETH_HLEN: u32 = 14;

/// The hop a lookup that found the neighbour filled `params` in with,
/// and the MTU it gives the device.
#[inline(always)]
fn resolved(params: &FibParams) -> NextHop {
    // SAFETY: the kernel wrote `mtu_result` over `tot_len`; either is a u16.
    let mtu = unsafe { params.__bindgen_anon_1.mtu_result };
    NextHop::resolved(params.ifindex, params.smac, params.dmac, mtu.into())
}

/// `params` all zero (the kernel reads every byte), a word at a time, in
/// place. Zero fields written as such, `mem::zeroed()`, or zeroes moved in
/// from elsewhere all become calls to `memset`, a BPF subprogram that
/// stores a byte at a time (51 bytes here: some 270 instructions a
/// lookup); volatile stores, which the compiler may not merge into one, are
/// 16.
#[inline(always)]
fn zeroed(params: &mut MaybeUninit<FibParams>) -> &mut FibParams {
    const WORDS: usize = core::mem::size_of::<FibParams>() / 4;
    let words = params.as_mut_ptr().cast::<u32>();
    for i in 0..WORDS {
        // SAFETY: `FibParams` is `WORDS` u32s long and aligned for a u32.
        unsafe { words.add(i).write_volatile(0) };
    }
    // SAFETY: every byte written above; all-zero is a valid FibParams.
    unsafe { params.assume_init_mut() }
}

/// Whether `addr` is one of the host's own (local, broadcast or multicast
/// routes: what the kernel calls a martian as a source), as routed from
/// `ifindex` (an interface with forwarding on, or the lookup fails).
#[inline(always)]
pub fn is_host_address<F: Family>(ctx: &impl Packet, ifindex: u32, addr: F::Addr) -> bool {
    let mut params = MaybeUninit::uninit();
    let params = zeroed(&mut params);
    F::fill_fib_params(params, ifindex, F::UNSPECIFIED, addr, 1);
    fib_lookup(ctx, params, 0) == BPF_FIB_LKUP_RET_NOT_FWDED
}

/// `bpf_fib_lookup` with `params`, which it fills in, and `flags`: its
/// return code.
#[inline(always)]
fn fib_lookup(ctx: &impl Packet, params: &mut FibParams, flags: u32) -> u32 {
    // SAFETY: `params` is a valid, writable bpf_fib_lookup of the size passed.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.helper_ctx(),
            params,
            core::mem::size_of::<FibParams>() as i32,
            flags,
        )
    };
    rc as u32
}
