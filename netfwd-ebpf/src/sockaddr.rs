//! Published ports for the host's own sockets. Packets a host process
//! sends to its own address never cross a device netfwd sees, so the
//! translation happens at the socket instead (as Cilium's socket-level load
//! balancing does): `connect()` to the uplink's address or 127.0.0.1 at a
//! published port is pointed at the endpoint behind it; to a host-only port,
//! at 127.0.0.1 only. A `bind()` to such a port is refused, as it is where
//! docker-proxy holds the port: its listener would never see the host's
//! connections. The hooks run for every process of their cgroup; they only
//! act in the network's own namespace.

use aya_ebpf::{
    EbpfContext as _,
    bindings::bpf_sock_addr,
    helpers::{bpf_get_netns_cookie, bpf_set_retval},
    programs::SockAddrContext,
};
use netfwd_common::nat::{IPPROTO_TCP, IPPROTO_UDP, NatConfig, PublishTarget};

use crate::maps;

const LOCALHOST: [u8; 4] = [127, 0, 0, 1];
const EVERY_ADDRESS: [u8; 4] = [0; 4];
/// Linux's errno for an address in use.
const EADDRINUSE: i32 = 98;

/// Points a connection to a published port at its endpoint.
#[inline(always)]
pub fn connect4(ctx: &SockAddrContext) {
    // SAFETY: the context is valid for the whole run; its fields are
    // readable, and `user_ip4`/`user_port` writable in connect4.
    let sa = unsafe { &mut *ctx.sock_addr };
    let Some(config) = in_scope(ctx, sa) else {
        return;
    };
    let (ip, port) = address(sa);
    if let Some(target) = published_at(&config, sa.protocol as u8, ip, port) {
        sa.user_ip4 = u32::from_ne_bytes(target.addr);
        sa.user_port = u32::from(u16::from_ne_bytes(target.port));
    }
}

/// The verdict on a `bind()`: 1 lets it proceed; 0 refuses it with
/// `EADDRINUSE`, for an address (or every address) whose connections to a
/// published port `connect4` sends to the endpoint.
#[inline(always)]
pub fn bind4(ctx: &SockAddrContext) -> i32 {
    // SAFETY: the context is valid for the whole run; read only.
    let sa = unsafe { &*ctx.sock_addr };
    let Some(config) = in_scope(ctx, sa) else {
        return 1;
    };
    let (ip, port) = address(sa);
    let proto = sa.protocol as u8;
    let taken = if ip == EVERY_ADDRESS {
        maps::published(proto, port).is_some()
    } else {
        published_at(&config, proto, ip, port).is_some()
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

/// The address and port (network byte order) a socket address names.
#[inline(always)]
fn address(sa: &bpf_sock_addr) -> ([u8; 4], [u8; 2]) {
    // The port is in network byte order in the low 16 bits.
    (
        sa.user_ip4.to_ne_bytes(),
        (sa.user_port as u16).to_ne_bytes(),
    )
}

/// The published port a host connection to `ip:port` reaches: on the
/// uplink's address or 127.0.0.1; a host-only port (`-p 127.0.0.1:…`) at
/// 127.0.0.1 only.
#[inline(always)]
fn published_at(
    config: &NatConfig,
    proto: u8,
    ip: [u8; 4],
    port: [u8; 2],
) -> Option<PublishTarget> {
    if ip != config.uplink_addr && ip != LOCALHOST {
        return None;
    }
    maps::published(proto, port).filter(|target| ip == LOCALHOST || !target.host_only())
}
