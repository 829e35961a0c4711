//! One network over many hosts, through etcd (as flannel does): each host
//! leases a subnet of the pool for its endpoints (`lease`), writes there how
//! it is reached (`record`), and routes the other hosts' subnets as it
//! watches them come and go (`members`). `agent` is the daemon's side of
//! it; `etcd` connects; `status` is what `netfwd cluster status` shows. No
//! lock of netfwd's is taken here: the daemon applies what the agent learns
//! (`network::set_peers`). See docs/cluster.md.

mod agent;
mod etcd;
mod lease;
mod members;
mod record;
mod status;

pub use agent::{Agent, join, start};
pub use status::{ClusterStatus, HostStatus, status};
