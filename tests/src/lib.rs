//! The lab for netfwd's privileged integration tests.
//!
//! Every test builds a [`Sandbox`]: its own "host" network namespace (with `lo`
//! up) in which netfwd runs through `netfwd --netns <host> …`, a private
//! directory for config files, and unique names for everything it makes. The
//! sandbox's `Drop` runs `netfwd down` for each network it handed out, deletes
//! every namespace it named and never panics, so a failing test still leaves
//! the machine as it found it. Most tests build theirs with [`Lab::builder`];
//! the tests of a file that only read a lab share one ([`SharedLab`]).
//!
//! Rules the helpers keep: the real host's network is never touched (tools run
//! in a namespace through `nsenter --net=/run/netns/<ns>`, never through `ip
//! netns exec`, which hides /sys/fs/bpf); traffic only goes to addresses inside
//! namespaces a test made; every command and socket has a time limit.
//!
//! The helpers live in one module per concern; the crate root re-exports them
//! so a test imports from one place.

// Tests report broken expectations by panicking; `unwrap` on a std lock or
// a thread join is as good as `expect` here.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers report a broken expectation by panicking"
)]

use std::sync::atomic::{AtomicU32, Ordering};

pub mod cgroup;
pub mod cluster;
pub mod cni;
pub mod config;
pub mod daemon;
pub mod docker;
pub mod etcd;
pub mod guards;
pub mod host;
pub mod host_client;
pub mod internet;
pub mod json;
pub mod lab;
pub mod monitor;
pub mod netns;
pub mod process;
pub mod sandbox;
pub mod scapy;
pub mod shared;
pub mod switch;
pub mod traffic;
pub mod twins;
pub mod world;

pub use config::{EndpointConfig, NetConfig, test_mode};
pub use daemon::Daemon;
pub use guards::{FileGuard, TempDir};
pub use host::*;
pub use json::*;
pub use lab::Lab;
pub use monitor::Monitor;
pub use netns::{Netns, Unshared, enter_netns, netns_exists, netns_list, netns_path};
pub use process::*;
pub use sandbox::Sandbox;
pub use scapy::*;
pub use shared::SharedLab;
pub use traffic::*;
pub use world::PrivateWorld;

// The contract with netfwd, taken from the product so a test cannot drift
// from it.
/// netfwd's exit code for bad input.
pub use netfwd::error::EXIT_BAD_INPUT;
/// Where netfwd keeps the state of network `NET`: `STATE_DIR/NET.json`.
pub use netfwd::state::STATE_DIR;
/// Where netfwd keeps the pins of network `NET`: `BPF_PIN_ROOT/NET`.
pub use netfwd_common::names::PIN_ROOT as BPF_PIN_ROOT;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A number no earlier call in this process returned: makes names unique.
pub(crate) fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}
