//! The network's maps. BTF-defined so the kernel keeps their key and value
//! types (bpftool prints field names); pinned by the loader under
//! /sys/fs/bpf/netfwd/<network>/ and sized by it at load time.

use aya_ebpf::{
    btf_maps::{Array, HashMap, PerCpuHashMap},
    macros::btf_map,
};
use netfwd_common::{
    counters::IfaceCounters,
    maps::{EndpointEntry, EndpointKey, NetworkConfig},
    names::DEFAULT_MAX_ENDPOINTS,
};

const MAX_ENDPOINTS: usize = DEFAULT_MAX_ENDPOINTS as usize;

/// Endpoint IPv4 address -> where it is. Filled by the loader.
#[btf_map]
pub static ENDPOINTS: HashMap<EndpointKey, EndpointEntry, MAX_ENDPOINTS> = HashMap::new();

/// The network's gateway and subnet. Filled by the loader.
#[btf_map]
pub static NETWORK: Array<NetworkConfig, 1> = Array::new();

/// Host-side ifindex -> counters. Entries are created by the loader when it
/// attaches, so the datapath never inserts.
#[btf_map]
pub static COUNTERS: PerCpuHashMap<u32, IfaceCounters, MAX_ENDPOINTS> = PerCpuHashMap::new();

#[inline(always)]
pub fn endpoint(addr: [u8; 4]) -> Option<EndpointEntry> {
    // SAFETY: entries are plain data; a concurrent update from userspace can at
    // worst give a stale copy, which is what a read under RCU means anyway.
    unsafe { ENDPOINTS.get(EndpointKey { addr }).copied() }
}

#[inline(always)]
pub fn gateway() -> Option<[u8; 4]> {
    NETWORK.get(0).map(|config| config.gateway)
}
