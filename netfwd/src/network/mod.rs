//! Bringing a network up and down, and changing it in place, as a driver
//! (see `lifecycle`): validate against what exists, record what will be
//! made, set it up, tear it down. The datapath is reached through its
//! handle, [`crate::loader::NetworkDatapath`]; no step here calls back into
//! this module.

mod attach;
mod endpoint;
mod install;
mod lifecycle;
mod maintain;
mod peers;
mod preflight;
mod publish;
mod remotes;
pub mod report;
mod rollback;
mod tunnel;

pub use attach::{AttachRequest, Target, attach, detach};
pub use lifecycle::{
    EndpointReport, TeardownFailure, TeardownFailures, UpReport, UplinkReport, down, up,
};
pub use maintain::{Maintained, maintain};
pub use peers::set_peers;
pub use publish::{AUTO_HOST_PORTS, PortRequest, publish, unpublish};
pub use rollback::Rollback;
