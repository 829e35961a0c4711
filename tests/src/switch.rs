//! A LAN between hosts: a switch namespace with a bridge, into which host
//! namespaces are plugged by a veth each; and a router, for hosts on
//! subnets of their own.

use crate::{
    netns::Netns,
    process::{in_ns_ok, tool_ok},
};

/// The switch namespace; deleted (and every port with it) on drop.
pub struct Switch(Netns);

impl Switch {
    /// A switch in a new namespace `name`.
    pub fn new(name: &str) -> Switch {
        let ns = Netns::create(name);
        tool_ok(
            "ip",
            &["-n", ns.name(), "link", "add", "br0", "type", "bridge"],
        );
        tool_ok("ip", &["-n", ns.name(), "link", "set", "br0", "up"]);
        Switch(ns)
    }

    /// Plugs namespace `host` into the switch as `lan0` with address `addr`
    /// (in a /24), on switch port `port`.
    pub fn plug(&self, host: &str, addr: &str, port: &str) {
        let switch = self.0.name();
        tool_ok(
            "ip",
            &[
                "-n", host, "link", "add", "lan0", "type", "veth", "peer", "name", port, "netns",
                switch,
            ],
        );
        tool_ok(
            "ip",
            &["-n", switch, "link", "set", port, "master", "br0", "up"],
        );
        tool_ok(
            "ip",
            &[
                "-n",
                host,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "lan0",
            ],
        );
        tool_ok("ip", &["-n", host, "link", "set", "lan0", "up"]);
        tool_ok("ip", &["-n", host, "link", "set", "lo", "up"]);
    }

    /// Gives a plugged `host` IPv6 address `addr` too (a /64, usable at
    /// once: no duplicate address detection).
    pub fn add_addr6(&self, host: &str, addr: &str) {
        let addr = format!("{addr}/64");
        tool_ok(
            "ip",
            &["-n", host, "addr", "add", &addr, "dev", "lan0", "nodad"],
        );
    }

    /// Takes switch port `port` down or up: its host is cut off the LAN,
    /// or back on it.
    pub fn set_port(&self, port: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        tool_ok("ip", &["-n", self.0.name(), "link", "set", port, state]);
    }
}

/// Where a router's hosts live: a /29 each in 198.51.100.0/24, host `i` at
/// `.8i+2` behind the router's `.8i+1`.
const ROUTED_HOSTS: &str = "198.51.100.0/24";

/// A router between hosts on subnets of their own (one /29 each), itself
/// plugged into a [`Switch`] so that they reach what is there (etcd):
/// hosts no L2 segment joins, as the VXLAN backend is for. Its namespace
/// (and every link of it) is deleted on drop.
pub struct Router {
    ns: Netns,
    /// Its address on the switch.
    addr: String,
}

impl Router {
    /// A router in a new namespace `name`, on `switch` at `addr` (switch
    /// port `port`), forwarding.
    pub fn new(name: &str, switch: &Switch, addr: &str, port: &str) -> Router {
        let ns = Netns::create(name);
        switch.plug(ns.name(), addr, port);
        in_ns_ok(ns.name(), &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        Router {
            ns,
            addr: addr.to_owned(),
        }
    }

    /// Host `i`'s address behind the router.
    pub fn host_addr(i: usize) -> String {
        format!("198.51.100.{}", 8 * i + 2)
    }

    /// Plugs namespace `host` into the router as `lan0` at
    /// [`Router::host_addr`]`(i)`, its default route through the router.
    pub fn plug(&self, host: &str, i: usize) {
        let router = self.ns.name();
        let port = format!("r{i}");
        let gateway = format!("198.51.100.{}", 8 * i + 1);
        tool_ok(
            "ip",
            &[
                "-n", host, "link", "add", "lan0", "type", "veth", "peer", "name", &port, "netns",
                router,
            ],
        );
        tool_ok(
            "ip",
            &[
                "-n",
                router,
                "addr",
                "add",
                &format!("{gateway}/29"),
                "dev",
                &port,
            ],
        );
        tool_ok("ip", &["-n", router, "link", "set", &port, "up"]);
        let addr = format!("{}/29", Router::host_addr(i));
        tool_ok("ip", &["-n", host, "addr", "add", &addr, "dev", "lan0"]);
        tool_ok("ip", &["-n", host, "link", "set", "lan0", "up"]);
        tool_ok("ip", &["-n", host, "link", "set", "lo", "up"]);
        tool_ok(
            "ip",
            &["-n", host, "route", "add", "default", "via", &gateway],
        );
    }

    /// Routes the router's hosts from namespace `ns` on the switch (an
    /// etcd member's) through the router.
    pub fn route_back_from(&self, ns: &str) {
        tool_ok(
            "ip",
            &["-n", ns, "route", "add", ROUTED_HOSTS, "via", &self.addr],
        );
    }
}
