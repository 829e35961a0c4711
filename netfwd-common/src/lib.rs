//! Types shared by the eBPF datapath and the userspace loader.
//!
//! Everything here is `#[repr(C)]` with no implicit padding: the same bytes are
//! written by one side and read by the other, and the BTF the kernel keeps for
//! each map lets `bpftool map dump` print the field names.
#![no_std]

pub mod counters;
pub mod drop;
pub mod maps;
pub mod monitor;
pub mod names;
pub mod nat;
