//! Frames forged with scapy.

use crate::process::in_ns_ok;

/// Sends the frames of scapy expression `frames` (a frame or a list) out of
/// `iface` in `ns`, each `count` times, and returns how many left.
pub fn scapy_sendp(ns: &str, iface: &str, frames: &str, count: u32) -> u64 {
    scapy_sendp_on(&[], ns, iface, frames, count)
}

/// As `scapy_sendp`, run under `prefix` (e.g. `taskset -c 0`).
pub fn scapy_sendp_on(prefix: &[&str], ns: &str, iface: &str, frames: &str, count: u32) -> u64 {
    let script = format!(
        "from scapy.all import *\nf = {frames}\nf = f if isinstance(f, list) else [f]\n\
         sendp(f, iface='{iface}', count={count}, verbose=0)\nprint(len(f) * {count})\n"
    );
    // Debian's python3-scapy is for the system interpreter.
    let mut args = prefix.to_vec();
    args.extend(["/usr/bin/python3", "-c", &script]);
    in_ns_ok(ns, &args).trim().parse().unwrap()
}
