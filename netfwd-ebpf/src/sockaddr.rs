//! Published ports for the host's own connections. Packets a host process
//! sends to its own address never cross a device netfwd sees, so the
//! translation happens at the socket instead (as Cilium's socket-level load
//! balancing does): `connect()` to the uplink's address or 127.0.0.1 at a
//! published port is pointed at the endpoint behind it; to a host-only port,
//! at 127.0.0.1 only. The hook runs for
//! every process of its cgroup; it only acts in the network's own namespace.

use aya_ebpf::{EbpfContext as _, helpers::bpf_get_netns_cookie, programs::SockAddrContext};
use netfwd_common::nat::{IPPROTO_TCP, IPPROTO_UDP};

use crate::maps;

const LOCALHOST: [u8; 4] = [127, 0, 0, 1];

#[inline(always)]
pub fn connect4(ctx: &SockAddrContext) {
    // SAFETY: plain helper call on the program's own context.
    let cookie = unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    if maps::host_netns_cookie() != Some(cookie) {
        return;
    }
    let Some(config) = maps::nat_config() else {
        return;
    };
    // SAFETY: the context is valid for the whole run; these fields are
    // readable and `user_ip4`/`user_port` writable in connect4.
    let sa = unsafe { &mut *ctx.sock_addr };
    let proto = sa.protocol as u8;
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return;
    }
    let ip = sa.user_ip4.to_ne_bytes();
    if ip != config.uplink_addr && ip != LOCALHOST {
        return;
    }
    // The port is in network byte order in the low 16 bits.
    let port = (sa.user_port as u16).to_ne_bytes();
    // A host-only port (`-p 127.0.0.1:…`) is reached at 127.0.0.1 only.
    if let Some(target) = maps::published(proto, port)
        && (ip == LOCALHOST || !target.host_only())
    {
        sa.user_ip4 = u32::from_ne_bytes(target.addr);
        sa.user_port = u32::from(u16::from_ne_bytes(target.port));
    }
}
