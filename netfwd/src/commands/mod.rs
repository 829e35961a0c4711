//! One file per subcommand; each has an `exec`.

pub mod attach;
pub mod cluster;
pub mod daemon;
pub mod docker_plugin;
pub mod down;
pub mod explain;
pub mod monitor;
pub mod nat;
pub mod publish;
pub mod stats;
pub mod status;
pub mod up;
