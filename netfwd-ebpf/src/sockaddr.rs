//! Published ports for the host's own sockets. Packets a host process
//! sends to its own address never cross a device netfwd sees, so the
//! translation happens at the socket instead (as Cilium's socket-level load
//! balancing does): `connect()` to the uplink's address or the loopback
//! address at a published port is pointed at the endpoint behind it; to a
//! host-only port, at 127.0.0.1 only (it is published over IPv4 alone). A
//! `bind()` to such a port is refused, as it is where docker-proxy holds
//! the port: its listener would never see the host's connections. The
//! hooks run for every process of their cgroup; they only act in the
//! network's own namespace. Written once for both families (`connect4` and
//! `bind4`, `connect6` and `bind6`): only where a socket address keeps its
//! address, and which table publishes the port, are a family's own.
//! (An IPv6 socket's connection to an IPv4-mapped address runs no IPv4
//! hook: it is not translated.)

use aya_ebpf::{
    EbpfContext as _,
    bindings::bpf_sock_addr,
    helpers::{bpf_get_netns_cookie, bpf_set_retval},
    programs::SockAddrContext,
};
use netfwd_common::nat::{IPPROTO_TCP, IPPROTO_UDP, Ipv6Bytes, NatConfig, PublishTarget};

use crate::{family::Family, maps, v4::V4, v6::V6};

/// Linux's errno for an address in use.
const EADDRINUSE: i32 = 98;

/// What the hooks need of a family beyond `Family`: where a socket address
/// keeps its address, the loopback address, and the family's published
/// ports (host-only ones too).
pub trait SockFamily: Family {
    const LOOPBACK: Self::Addr;
    fn user_ip(sa: &bpf_sock_addr) -> Self::Addr;
    fn set_user_ip(sa: &mut bpf_sock_addr, addr: Self::Addr);
    fn published(proto: u8, port: [u8; 2]) -> Option<PublishTarget<Self::Addr>>;
}

impl SockFamily for V4 {
    const LOOPBACK: [u8; 4] = [127, 0, 0, 1];

    #[inline(always)]
    fn user_ip(sa: &bpf_sock_addr) -> [u8; 4] {
        sa.user_ip4.to_ne_bytes()
    }

    #[inline(always)]
    fn set_user_ip(sa: &mut bpf_sock_addr, addr: [u8; 4]) {
        sa.user_ip4 = u32::from_ne_bytes(addr);
    }

    #[inline(always)]
    fn published(proto: u8, port: [u8; 2]) -> Option<PublishTarget> {
        maps::published(proto, port)
    }
}

impl SockFamily for V6 {
    const LOOPBACK: Ipv6Bytes = Ipv6Bytes([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

    /// Word by word: the context's `user_ip6` takes 4-byte accesses.
    #[inline(always)]
    fn user_ip(sa: &bpf_sock_addr) -> Ipv6Bytes {
        let mut addr = [0; 16];
        for (i, word) in sa.user_ip6.iter().enumerate() {
            addr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
        }
        Ipv6Bytes(addr)
    }

    #[inline(always)]
    fn set_user_ip(sa: &mut bpf_sock_addr, addr: Ipv6Bytes) {
        for (i, word) in sa.user_ip6.iter_mut().enumerate() {
            let a = addr.0;
            *word = u32::from_ne_bytes([a[i * 4], a[i * 4 + 1], a[i * 4 + 2], a[i * 4 + 3]]);
        }
    }

    #[inline(always)]
    fn published(proto: u8, port: [u8; 2]) -> Option<PublishTarget<Ipv6Bytes>> {
        maps::published6(proto, port)
    }
}

/// Points a connection to a published port at its endpoint; 1: the
/// `connect()` always proceeds.
#[inline(always)]
pub fn connect<F: SockFamily>(ctx: &SockAddrContext) -> i32 {
    // SAFETY: the context is valid for the whole run; its fields are
    // readable, and the family's address and `user_port` writable in
    // connect4/connect6.
    let sa = unsafe { &mut *ctx.sock_addr };
    let Some(config) = in_scope(ctx, sa) else {
        return 1;
    };
    let (ip, port) = (F::user_ip(sa), port(sa));
    if let Some(target) = published_at::<F>(&config, sa.protocol as u8, ip, port) {
        F::set_user_ip(sa, target.addr);
        sa.user_port = u32::from(u16::from_ne_bytes(target.port));
    }
    1
}

/// The verdict on a `bind()`: 1 lets it proceed; 0 refuses it with
/// `EADDRINUSE`, for an address (or every address) whose connections to a
/// published port `connect` sends to the endpoint.
#[inline(always)]
pub fn bind<F: SockFamily>(ctx: &SockAddrContext) -> i32 {
    // SAFETY: the context is valid for the whole run; read only.
    let sa = unsafe { &*ctx.sock_addr };
    let Some(config) = in_scope(ctx, sa) else {
        return 1;
    };
    let (ip, port) = (F::user_ip(sa), port(sa));
    let proto = sa.protocol as u8;
    let taken = if ip == F::UNSPECIFIED {
        F::published(proto, port).is_some()
    } else {
        published_at::<F>(&config, proto, ip, port).is_some()
    };
    if !taken {
        return 1;
    }
    // SAFETY: plain helper call; it sets the errno the refused bind returns.
    unsafe { bpf_set_retval(-EADDRINUSE) };
    0
}

/// The network's NAT settings, if `sa` is a TCP or UDP socket's in the
/// network's own namespace; `None` for what the hooks leave alone.
#[inline(always)]
fn in_scope(ctx: &SockAddrContext, sa: &bpf_sock_addr) -> Option<NatConfig> {
    // SAFETY: plain helper call on the program's own context.
    let cookie = unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    if maps::host_netns_cookie() != Some(cookie) {
        return None;
    }
    let proto = sa.protocol as u8;
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return None;
    }
    maps::nat_config().copied()
}

/// The port (network byte order) a socket address names.
#[inline(always)]
fn port(sa: &bpf_sock_addr) -> [u8; 2] {
    // The port is in network byte order in the low 16 bits.
    (sa.user_port as u16).to_ne_bytes()
}

/// The published port a host connection to `ip:port` reaches: on the
/// uplink's address or the loopback address; a host-only port
/// (`-p 127.0.0.1:…`) at the loopback address only.
#[inline(always)]
fn published_at<F: SockFamily>(
    config: &NatConfig,
    proto: u8,
    ip: F::Addr,
    port: [u8; 2],
) -> Option<PublishTarget<F::Addr>> {
    if Some(ip) != F::uplink_addr(config) && ip != F::LOOPBACK {
        return None;
    }
    F::published(proto, port).filter(|target| ip == F::LOOPBACK || !target.host_only())
}
