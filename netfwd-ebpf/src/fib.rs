//! Leaving the host: where the kernel's routing table sends a packet, and the
//! redirect that sends it there without the host's forwarding path.

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_NOT_FWDED, BPF_FIB_LKUP_RET_SUCCESS,
        BPF_FIB_LOOKUP_SRC, bpf_fib_lookup as FibParams, bpf_fib_lookup__bindgen_ty_1,
        bpf_fib_lookup__bindgen_ty_2, bpf_fib_lookup__bindgen_ty_3, bpf_fib_lookup__bindgen_ty_4,
        bpf_fib_lookup__bindgen_ty_5,
    },
    helpers::{bpf_check_mtu, bpf_fib_lookup, bpf_redirect, bpf_redirect_neigh},
    programs::TcContext,
};

const AF_INET: u8 = 2;

/// Where the routing table sends a packet out, and the source address the
/// host would give it there (what a masquerade uses).
pub struct Route {
    pub hop: NextHop,
    pub src: [u8; 4],
}

pub enum NextHop {
    /// Out of `oif` to a next hop whose MAC is known.
    Resolved {
        oif: u32,
        smac: [u8; 6],
        dmac: [u8; 6],
    },
    /// Out of `oif`, next hop not in the neighbour table yet.
    Unresolved { oif: u32 },
}

/// Looks `src -> dst` up as if forwarded from `ifindex`. `None` for what is
/// not forwarded out of a device: local addresses, unreachable routes,
/// packets too big for the route's MTU (the stack sends the ICMP error or
/// fragments), no source address on the way out. `BPF_FIB_LOOKUP_SRC` asks
/// for the source address the host would pick, so a masquerade follows the
/// uplink's address as it changes.
#[inline(always)]
pub fn lookup(ctx: &TcContext, ifindex: u32, src: [u8; 4], dst: [u8; 4]) -> Option<Route> {
    // 0: the kernel checks the MTU against the skb itself, GSO included.
    lookup_with_len(ctx, ifindex, src, dst, 0)
}

/// [`lookup`] for a packet of any size: the caller checks it against the
/// MTU ([`too_big`]) where it matters. (A non-zero `tot_len` is what the
/// kernel compares with the route's MTU instead of the skb; 1 always fits.)
#[inline(always)]
pub fn lookup_any_size(ctx: &TcContext, ifindex: u32, src: [u8; 4], dst: [u8; 4]) -> Option<Route> {
    lookup_with_len(ctx, ifindex, src, dst, 1)
}

/// Whether the packet is too big to leave `oif` as it is (GSO segments
/// counted one by one).
#[inline(always)]
pub fn too_big(ctx: &TcContext, oif: u32) -> bool {
    let mut mtu_len = 0u32;
    // SAFETY: `mtu_len` is a valid, writable u32; flags 0.
    let rc = unsafe { bpf_check_mtu(ctx.skb.skb.cast(), oif, &mut mtu_len, 0, 0) };
    rc != 0
}

#[inline(always)]
fn lookup_with_len(
    ctx: &TcContext,
    ifindex: u32,
    src: [u8; 4],
    dst: [u8; 4],
    tot_len: u16,
) -> Option<Route> {
    let (rc, params) = fib_lookup(ctx, ifindex, src, dst, tot_len);
    let hop = match rc {
        BPF_FIB_LKUP_RET_SUCCESS => NextHop::Resolved {
            oif: params.ifindex,
            smac: params.smac,
            dmac: params.dmac,
        },
        BPF_FIB_LKUP_RET_NO_NEIGH => NextHop::Unresolved {
            oif: params.ifindex,
        },
        _ => return None,
    };
    // SAFETY: the kernel wrote an IPv4 source for an AF_INET lookup.
    let src = unsafe { params.__bindgen_anon_3.ipv4_src }.to_ne_bytes();
    Some(Route { hop, src })
}

/// Whether `addr` is one of the host's own (local, broadcast or multicast
/// routes: what the kernel calls a martian as a source), as routed from
/// `ifindex` (an interface with forwarding on, or the lookup fails).
#[inline(always)]
pub fn is_host_address(ctx: &TcContext, ifindex: u32, addr: [u8; 4]) -> bool {
    fib_lookup(ctx, ifindex, [0; 4], addr, 1).0 == BPF_FIB_LKUP_RET_NOT_FWDED
}

/// `bpf_fib_lookup` of `src -> dst` as if forwarded from `ifindex`: its
/// return code and the parameters it filled in.
#[inline(always)]
fn fib_lookup(
    ctx: &TcContext,
    ifindex: u32,
    src: [u8; 4],
    dst: [u8; 4],
    tot_len: u16,
) -> (u32, FibParams) {
    // Every byte written field by field (the kernel reads them all): a
    // `mem::zeroed()` here becomes a call to `memset`, a BPF subprogram whose
    // register use the verifier and the compiler disagree on.
    let mut params = FibParams {
        family: AF_INET,
        l4_protocol: 0,
        sport: 0,
        dport: 0,
        __bindgen_anon_1: bpf_fib_lookup__bindgen_ty_1 { tot_len },
        ifindex,
        __bindgen_anon_2: bpf_fib_lookup__bindgen_ty_2 { rt_metric: 0 },
        __bindgen_anon_3: bpf_fib_lookup__bindgen_ty_3 { ipv6_src: [0; 4] },
        __bindgen_anon_4: bpf_fib_lookup__bindgen_ty_4 { ipv6_dst: [0; 4] },
        __bindgen_anon_5: bpf_fib_lookup__bindgen_ty_5 { tbid: 0 },
        smac: [0; 6],
        dmac: [0; 6],
    };
    params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(src);
    params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(dst);
    // SAFETY: `params` is a valid, writable bpf_fib_lookup of the size passed.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.skb.skb.cast(),
            &mut params,
            core::mem::size_of::<FibParams>() as i32,
            BPF_FIB_LOOKUP_SRC,
        )
    };
    (rc as u32, params)
}

impl NextHop {
    pub fn oif(&self) -> u32 {
        match *self {
            NextHop::Resolved { oif, .. } | NextHop::Unresolved { oif } => oif,
        }
    }

    /// The MACs the frame leaves with; `None` when the kernel resolves them.
    pub fn macs(&self) -> Option<([u8; 6], [u8; 6])> {
        match *self {
            NextHop::Resolved { smac, dmac, .. } => Some((smac, dmac)),
            NextHop::Unresolved { .. } => None,
        }
    }

    /// Sends the packet out: straight out of the device when the next hop's
    /// MAC is known (set by the caller from [`NextHop::macs`]), else through
    /// `bpf_redirect_neigh`, which routes the translated packet and resolves
    /// the neighbour. Returns the TC action.
    #[inline(always)]
    pub fn redirect(&self) -> i32 {
        match *self {
            // SAFETY: plain helper call.
            NextHop::Resolved { oif, .. } => (unsafe { bpf_redirect(oif, 0) }) as i32,
            // SAFETY: a null parameter block is allowed and means "look it up".
            NextHop::Unresolved { oif } => {
                (unsafe { bpf_redirect_neigh(oif, core::ptr::null_mut(), 0, 0) }) as i32
            }
        }
    }
}
