//! Config files for netfwd: the test mode and a builder for simple configs.

use std::fmt::Write as _;

/// The datapath mode the scenario tests run in: `NETFWD_TEST_MODE` (`tc`,
/// the default, or `xdp`); `cargo xtask test` runs them in both.
pub fn test_mode() -> &'static str {
    match std::env::var("NETFWD_TEST_MODE").as_deref() {
        Ok("xdp") => "xdp",
        _ => "tc",
    }
}

/// `[network]` of `text` with the test mode set, unless the text sets one.
pub(crate) fn with_test_mode(text: &str) -> String {
    if test_mode() == "tc" || text.contains("\nmode =") {
        return text.to_owned();
    }
    // At the end of the section, so the lines a test names keep their numbers.
    let Some(start) = text.find("[network]\n") else {
        return text.to_owned();
    };
    let end = text[start + 1..]
        .find("\n[")
        .map_or(text.len(), |i| start + 1 + i + 1);
    let mut out = text.to_owned();
    let line = if out[..end].ends_with('\n') { "" } else { "\n" };
    out.insert_str(end, &format!("{line}mode = \"xdp\"\n"));
    out
}

/// One `[[endpoint]]` of a config.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    pub netns: String,
    pub ip: Option<String>,
}

/// A netfwd config, rendered to TOML by [`NetConfig::to_toml`].
#[derive(Clone, Debug)]
pub struct NetConfig {
    pub name: String,
    /// `kind = "<kind>"` (`bridge` when not given).
    pub kind: Option<String>,
    pub subnet: String,
    pub gateway: Option<String>,
    /// `uplink = "<name>"`: the device the network masquerades behind.
    pub uplink: Option<String>,
    /// `host_cgroup = "<path>"`: whose processes reach published ports.
    pub host_cgroup: Option<String>,
    /// More `[network]` lines (`mode = "xdp"`, `icc = false`, …).
    pub keys: String,
    pub endpoints: Vec<EndpointConfig>,
    /// TOML tables (`[nat]`, `[[publish]]`, …) after the endpoints.
    pub tables: String,
}

impl NetConfig {
    pub fn new(name: &str, subnet: &str, gateway: Option<&str>) -> NetConfig {
        NetConfig {
            name: name.to_owned(),
            kind: None,
            subnet: subnet.to_owned(),
            gateway: gateway.map(str::to_owned),
            uplink: None,
            host_cgroup: None,
            keys: String::new(),
            endpoints: Vec::new(),
            tables: String::new(),
        }
    }

    /// `kind = "<kind>"`: `routed` instead of the default bridge.
    pub fn kind(mut self, kind: &str) -> NetConfig {
        self.kind = Some(kind.to_owned());
        self
    }

    /// `uplink = "<dev>"`.
    pub fn uplink(mut self, dev: &str) -> NetConfig {
        self.uplink = Some(dev.to_owned());
        self
    }

    /// Adds `lines` to `[network]`.
    pub fn keys(mut self, lines: &str) -> NetConfig {
        self.keys.push_str(lines);
        self
    }

    /// Adds TOML tables (`[nat]`, `[[allow]]`, …) after the endpoints.
    pub fn tables(mut self, toml: &str) -> NetConfig {
        self.tables.push_str(toml);
        self
    }

    /// Adds an endpoint in namespace `netns`, with address `ip` if given.
    pub fn endpoint(mut self, netns: &str, ip: Option<&str>) -> NetConfig {
        self.endpoints.push(EndpointConfig {
            netns: netns.to_owned(),
            ip: ip.map(str::to_owned),
        });
        self
    }

    pub fn to_toml(&self) -> String {
        let mut s = String::from("[network]\n");
        let _ = writeln!(s, "name = {:?}", self.name);
        if let Some(kind) = &self.kind {
            let _ = writeln!(s, "kind = {kind:?}");
        }
        let _ = writeln!(s, "subnet = {:?}", self.subnet);
        if let Some(gw) = &self.gateway {
            let _ = writeln!(s, "gateway = {gw:?}");
        }
        if let Some(uplink) = &self.uplink {
            let _ = writeln!(s, "uplink = {uplink:?}");
        }
        if let Some(cgroup) = &self.host_cgroup {
            let _ = writeln!(s, "host_cgroup = {cgroup:?}");
        }
        s.push_str(&self.keys);
        if !self.keys.is_empty() && !self.keys.ends_with('\n') {
            s.push('\n');
        }
        for ep in &self.endpoints {
            s.push_str("\n[[endpoint]]\n");
            let _ = writeln!(s, "netns = {:?}", ep.netns);
            if let Some(ip) = &ep.ip {
                let _ = writeln!(s, "ip = {ip:?}");
            }
        }
        if !self.tables.is_empty() {
            s.push('\n');
            s.push_str(&self.tables);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_renders_to_toml() {
        let cfg = NetConfig::new("demo", "192.168.28.0/24", Some("192.168.28.5"))
            .endpoint("ns1", Some("192.168.28.1"))
            .endpoint("ns2", None);
        assert_eq!(
            cfg.to_toml(),
            "[network]\nname = \"demo\"\nsubnet = \"192.168.28.0/24\"\ngateway = \"192.168.28.5\"\n\
             \n[[endpoint]]\nnetns = \"ns1\"\nip = \"192.168.28.1\"\n\
             \n[[endpoint]]\nnetns = \"ns2\"\n"
        );
    }

    #[test]
    fn uplink_keys_and_tables_render_in_their_sections() {
        let cfg = NetConfig::new("demo", "10.0.0.0/24", None)
            .uplink("up0")
            .keys("icc = false")
            .endpoint("ns1", None)
            .tables("[nat]\nmax_flows = 64\n");
        assert_eq!(
            cfg.to_toml(),
            "[network]\nname = \"demo\"\nsubnet = \"10.0.0.0/24\"\nuplink = \"up0\"\nicc = false\n\
             \n[[endpoint]]\nnetns = \"ns1\"\n\
             \n[nat]\nmax_flows = 64\n"
        );
    }
}
