//! netfwd: Docker's bridge network with an eBPF datapath instead of a Linux
//! bridge and iptables. The library holds everything the `netfwd` binary does,
//! so `up`, `attach` and a CNI ADD share one code path.

pub mod cgroup;
pub mod cli;
pub mod cluster;
pub mod cni;
pub mod commands;
pub mod config;
pub mod docker;
pub mod error;
pub mod ethtool;
pub mod explain;
pub mod http;
pub mod loader;
pub mod metrics;
pub mod monitor;
pub mod name;
pub mod netlink;
pub mod netns;
pub mod network;
pub mod private_dir;
pub mod procnet;
pub mod state;
pub mod subnet;
pub mod threads;
