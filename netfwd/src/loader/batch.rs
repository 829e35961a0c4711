//! Reading a whole hash map with `BPF_MAP_LOOKUP_BATCH`: one syscall per
//! chunk of entries instead of two per entry (`get_next_key`, then a lookup),
//! which aya 0.14 does not offer. The collector reads the NAT table every
//! few seconds; at 100k flows (200k entries) that was 400k syscalls a pass on
//! the same CPUs that forward.

use std::os::fd::{AsFd as _, AsRawFd as _};

use anyhow::{Context as _, Result};
use aya::{
    Pod,
    maps::{HashMap, IterableMap as _, MapData},
};
use nix::libc;

/// `BPF_MAP_LOOKUP_BATCH` from `enum bpf_cmd` (uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// Entries asked for per call. A hash map's batch never splits a bucket, and
/// a bucket larger than this fails with `ENOSPC`; buckets hold a handful.
const CHUNK: usize = 4096;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every entry of `map`, read while the datapath may change it: as with any
/// walk of a live hash map, an entry added or removed meanwhile may or may
/// not be seen.
pub fn entries<K: Pod, V: Pod>(map: &HashMap<MapData, K, V>) -> Result<Vec<(K, V)>> {
    let fd = map.map().fd().as_fd().as_raw_fd();
    let mut keys: Vec<K> = vec![zeroed(); CHUNK];
    let mut values: Vec<V> = vec![zeroed(); CHUNK];
    let mut out = Vec::new();
    // The kernel's cursor for a hash map is a bucket index (a u32).
    let (mut cursor_in, mut cursor_out) = (0u32, 0u32);
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                &raw const cursor_in as u64
            },
            out_batch: &raw mut cursor_out as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` is the batch form of `union bpf_attr` (the kernel
        // zero-fills a shorter attr); `keys` and `values` hold `count`
        // elements of the map's key and value size (checked by the types
        // aya verified when it opened the map), and the cursors are u32s
        // that live across the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &raw mut attr,
                size_of::<BatchAttr>(),
            )
        };
        let errno = std::io::Error::last_os_error();
        // The kernel reports how many it filled even when the call ends the
        // walk with ENOENT.
        let filled = (attr.count as usize).min(CHUNK);
        out.extend(
            keys[..filled]
                .iter()
                .copied()
                .zip(values[..filled].iter().copied()),
        );
        if rc == 0 {
            cursor_in = cursor_out;
            first = false;
            continue;
        }
        if errno.raw_os_error() == Some(libc::ENOENT) {
            return Ok(out);
        }
        return Err(errno).context("reading a map with BPF_MAP_LOOKUP_BATCH");
    }
}

fn zeroed<T: Pod>() -> T {
    // SAFETY: `Pod` types are plain old data, valid for any bit pattern,
    // zeros included.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attr_is_the_kernels_batch_layout() {
        // in_batch, out_batch, keys, values (8 each), count and map_fd (4
        // each), elem_flags and flags (8 each).
        assert_eq!(size_of::<BatchAttr>(), 56);
        assert_eq!(std::mem::offset_of!(BatchAttr, count), 32);
        assert_eq!(std::mem::offset_of!(BatchAttr, elem_flags), 40);
    }
}
