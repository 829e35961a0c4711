//! The programs on a device's TCX ingress, by ID, in one `BPF_PROG_QUERY`:
//! aya's `query_tcx` looks the device up by name and opens every program
//! it finds for its info, five calls more per endpoint in an `up` that
//! changes nothing.

use std::io;

use anyhow::Result;
use nix::libc;

/// `BPF_PROG_QUERY` from `enum bpf_cmd` (uapi/linux/bpf.h).
const BPF_PROG_QUERY: libc::c_long = 16;
/// `BPF_TCX_INGRESS` from `enum bpf_attach_type`.
const BPF_TCX_INGRESS: u32 = 46;
/// IDs asked for at first; a device runs a handful of programs.
const FIRST_CAPACITY: usize = 16;

/// The `query` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_ifindex: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    count: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// The IDs of the programs on the TCX ingress of device `ifindex` (of the
/// calling thread's namespace), in the order they run; none on a device
/// that is gone.
pub fn ingress_programs(ifindex: u32) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; FIRST_CAPACITY];
    // The second round has room for as many as the first reported.
    for _ in 0..2 {
        let mut attr = QueryAttr {
            target_ifindex: ifindex,
            attach_type: BPF_TCX_INGRESS,
            prog_ids: ids.as_mut_ptr() as u64,
            count: u32::try_from(ids.len())?,
            ..QueryAttr::default()
        };
        let size = size_of::<QueryAttr>();
        // SAFETY: `attr` is a valid `bpf_attr` query of the size passed,
        // whose `prog_ids` points at `count` writable u32s.
        let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_QUERY, &raw mut attr, size) };
        if rc == 0 {
            ids.truncate(attr.count as usize);
            return Ok(ids);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::ENODEV) => return Ok(Vec::new()),
            Some(libc::ENOSPC) => ids.resize(attr.count as usize, 0),
            _ => {
                return Err(anyhow::Error::new(error)
                    .context(format!("listing the TCX programs of device {ifindex}")));
            }
        }
    }
    anyhow::bail!("device {ifindex}: its TCX programs kept changing while listed")
}
