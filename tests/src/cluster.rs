//! A host of a netfwd cluster: a sandbox plugged into the test's LAN (or
//! behind its router, on a subnet of its own), with one endpoint on a
//! network whose subnet the cluster leases, and its `netfwd daemon` (the
//! cluster agent).

use std::path::PathBuf;

use serde_json::Value;

use crate::{
    daemon::Daemon,
    process::tool_ok,
    sandbox::Sandbox,
    switch::{Router, Switch},
};

/// What every host of a test's cluster shares.
pub struct ClusterSpec<'a> {
    /// `[cluster] etcd`, as `Etcd::toml_urls` writes it.
    pub etcd: String,
    pub switch: &'a Switch,
    pub pool: &'a str,
    pub subnet_len: u8,
    pub lease_ttl: u64,
    /// `[cluster] backend`.
    pub backend: &'a str,
    /// Hosts behind this router, each on a subnet of its own; on the
    /// switch if `None`.
    pub router: Option<&'a Router>,
}

/// Dropped in field order: the daemon is killed before the sandbox goes
/// (`netfwd down`, then its namespaces).
pub struct ClusterHost {
    pub daemon: Option<Daemon>,
    pub sb: Sandbox,
    pub net: String,
    pub node: String,
    pub ep: String,
    pub lan_addr: String,
    pub config: PathBuf,
}

impl ClusterHost {
    /// Host `node`, the `i`th on the LAN (192.0.2.1i, switch port `p<i>`)
    /// or behind the router, its daemon started but not yet waited for.
    pub fn spawn(spec: &ClusterSpec, node: &str, i: usize) -> ClusterHost {
        let sb = Sandbox::new(node);
        let lan_addr = match spec.router {
            Some(router) => {
                router.plug(sb.host(), i);
                Router::host_addr(i)
            }
            None => {
                let addr = format!("192.0.2.{}", 11 + i);
                spec.switch.plug(sb.host(), &addr, &format!("p{i}"));
                addr
            }
        };
        let net = sb.net_name();
        let ep = sb.ns("ep");
        let config = sb.write_config(&format!(
            "[network]\nname = \"{net}\"\nlan = \"lan0\"\n\
             [[endpoint]]\nnetns = \"{ep}\"\n\
             [cluster]\netcd = {etcd}\npool = \"{pool}\"\nsubnet_len = {len}\n\
             node = \"{node}\"\nlease_ttl = {ttl}\nbackend = \"{backend}\"\n",
            etcd = spec.etcd,
            backend = spec.backend,
            pool = spec.pool,
            len = spec.subnet_len,
            ttl = spec.lease_ttl,
        ));
        let daemon = Daemon::spawn(&sb, &config, &[]);
        ClusterHost {
            daemon: Some(daemon),
            sb,
            net,
            node: node.to_owned(),
            ep,
            lan_addr,
            config,
        }
    }

    /// Waits for the daemon's ready line.
    pub fn wait_ready(&mut self) {
        self.daemon().wait_until_ready();
    }

    /// Starts its daemon again (the last one stopped) and waits for it.
    pub fn restart_daemon(&mut self) {
        self.daemon = Some(Daemon::start(&self.sb, &self.config, &[]));
    }

    pub fn daemon(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("the daemon was stopped")
    }

    /// The subnet the host holds, as `status` shows it.
    pub fn subnet(&self) -> String {
        self.sb.network_status(&self.net)["subnet"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Its endpoint's address.
    pub fn ep_ip(&self) -> String {
        self.sb.network_status(&self.net)["endpoints"][0]["ip"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `netfwd cluster status --json`, parsed.
    pub fn cluster_status(&self) -> Value {
        let config = self.config.to_str().unwrap();
        let out = self
            .sb
            .netfwd_ok(&["cluster", "status", "-c", config, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The host's kernel route to `subnet`, if any (`ip route show`).
    pub fn route_to(&self, subnet: &str) -> String {
        tool_ok("ip", &["-n", self.sb.host(), "route", "show", subnet])
            .trim()
            .to_owned()
    }
}
