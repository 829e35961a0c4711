//! A LAN between hosts: a switch namespace with a bridge, into which host
//! namespaces are plugged by a veth each.

use crate::{netns::Netns, process::tool_ok};

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

    /// Takes switch port `port` down or up: its host is cut off the LAN,
    /// or back on it.
    pub fn set_port(&self, port: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        tool_ok("ip", &["-n", self.0.name(), "link", "set", port, state]);
    }
}
