//! The device features an XDP redirect into a veth needs (`mode = "xdp"`),
//! set through the ethtool ioctl: an XDP frame carries no checksum offload
//! state, so the endpoint must send full checksums (transmit checksumming
//! off), and the veth end receiving a redirected frame must run NAPI (GRO
//! on), or the kernel drops the frame.

use std::{io, os::fd::AsRawFd, path::Path};

use anyhow::{Context as _, Result};
use nix::{
    libc,
    sys::socket::{AddressFamily, SockFlag, SockType, socket},
};

use crate::netns;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_SGRO: u32 = 0x2c;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with its `ifr_data` member.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _rest: [u8; 16],
}

/// Makes interface `ifname` in the namespace at `ns_path` fit to send and
/// receive XDP-redirected frames.
pub fn prepare_for_xdp(ns_path: &Path, ifname: &str) -> Result<()> {
    let sock = netns::within(ns_path, || {
        socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
    })?
    .context("opening a socket")?;
    let where_ = || format!("{ifname} in {}", ns_path.display());
    set(&sock, ifname, ETHTOOL_STXCSUM, false)
        .with_context(|| format!("turning transmit checksumming off on {}", where_()))?;
    set(&sock, ifname, ETHTOOL_SGRO, true)
        .with_context(|| format!("turning GRO on on {}", where_()))
}

fn set(sock: &impl AsRawFd, ifname: &str, cmd: u32, on: bool) -> io::Result<()> {
    let mut value = EthtoolValue {
        cmd,
        data: u32::from(on),
    };
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: &raw mut value,
        _rest: [0; 16],
    };
    // Names are at most 15 bytes (checked by the config); the last stays NUL.
    for (dst, src) in req
        .name
        .iter_mut()
        .zip(ifname.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    // SAFETY: a valid socket, and an ifreq whose data points at a live
    // ethtool_value for the duration of the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &raw mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
