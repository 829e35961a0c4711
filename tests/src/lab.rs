//! One lab builder for the scenario tests: a sandbox host, optionally the
//! internet behind its uplink, a network of endpoints and its config, up;
//! more networks on the same host through [`Lab::network`]. A test file
//! states its quirks (gateway, uplink, host cgroup, `[network]` keys,
//! `[nat]`, published ports) as builder options instead of writing its own
//! setup, and changes a running network with [`Lab::up_again`].
//!
//! ```ignore
//! let lab = Lab::builder("natall", "192.168.28.0/24")
//!     .gateway("192.168.28.5")
//!     .uplink()
//!     .endpoint("a", Some("192.168.28.1"))
//!     .up();
//! let other = lab.network("10.92.0.0/24").endpoint("b", None).up();
//! ```

use std::{fmt::Write as _, marker::PhantomData, path::PathBuf};

use serde_json::Value;

use crate::{
    cgroup::Cgroup,
    config::NetConfig,
    internet::{Internet, UPLINK},
    sandbox::Sandbox,
};

/// What sits behind the sandbox host's uplink: nothing (`()`, a network
/// without uplink) or the [`Internet`] namespace with its echo server.
pub trait Uplink: Sized {
    /// Builds it behind `sb`'s host.
    fn build(sb: &Sandbox) -> Self;
}

impl Uplink for () {
    fn build(_: &Sandbox) {}
}

impl Uplink for Internet {
    fn build(sb: &Sandbox) -> Internet {
        Internet::new(sb)
    }
}

/// One `[[publish]]`, its endpoint given by index.
struct Publish {
    proto: &'static str,
    host_port: u16,
    endpoint: usize,
    port: u16,
}

/// What a network of a lab is to be: its config but for what exists only
/// once the sandbox does (its name, its endpoints' namespaces), and its
/// endpoints by namespace tag and address, in order.
struct NetworkSpec {
    cfg: NetConfig,
    endpoints: Vec<(String, Option<String>)>,
}

impl NetworkSpec {
    fn new(subnet: &str) -> NetworkSpec {
        NetworkSpec {
            cfg: NetConfig::new("", subnet, None),
            endpoints: Vec::new(),
        }
    }

    fn add_endpoint(&mut self, tag: &str, ip: Option<&str>) {
        self.endpoints.push((tag.to_owned(), ip.map(str::to_owned)));
    }

    /// The config of network `net` on `sb`, and its endpoints' namespaces.
    fn config(self, sb: &Sandbox, net: &str) -> (NetConfig, Vec<String>) {
        let eps: Vec<String> = self.endpoints.iter().map(|(tag, _)| sb.ns(tag)).collect();
        let mut cfg = self.cfg;
        cfg.name = net.to_owned();
        for (netns, (_, ip)) in eps.iter().zip(self.endpoints) {
            cfg = cfg.endpoint(netns, ip.as_deref());
        }
        (cfg, eps)
    }
}

/// Options of a [`Lab`]; [`LabBuilder::up`] builds it and brings it up.
pub struct LabBuilder<U> {
    tag: String,
    network: NetworkSpec,
    host_cgroup: bool,
    publish: Vec<Publish>,
    uplink: PhantomData<U>,
}

/// A sandbox host with a network of endpoints, up. Dropped in field order:
/// the sandbox (`netfwd down`, its namespaces deleted) before the internet's
/// echo server stops and the cgroup is removed.
pub struct Lab<U = ()> {
    pub sb: Sandbox,
    /// What is behind the uplink: `()` or [`Internet`].
    pub internet: U,
    pub net: String,
    /// The endpoints' namespaces, in the order they were asked for.
    pub eps: Vec<String>,
    /// The config file the network was brought up with.
    pub config: PathBuf,
    /// What that file says, for [`Lab::up_again`].
    cfg: NetConfig,
    /// The host cgroup, if the lab was asked for one.
    pub cgroup: Option<Cgroup>,
}

impl Lab {
    /// A lab named after `tag` with a network on `subnet`, and nothing else
    /// until options add it.
    pub fn builder(tag: &str, subnet: &str) -> LabBuilder<()> {
        LabBuilder {
            tag: tag.to_owned(),
            network: NetworkSpec::new(subnet),
            host_cgroup: false,
            publish: Vec::new(),
            uplink: PhantomData,
        }
    }
}

impl LabBuilder<()> {
    /// Puts the internet namespace behind the host's uplink and names the
    /// uplink in the config: the network masquerades behind it.
    pub fn uplink(self) -> LabBuilder<Internet> {
        LabBuilder {
            tag: self.tag,
            network: NetworkSpec {
                cfg: self.network.cfg.uplink(UPLINK),
                endpoints: self.network.endpoints,
            },
            host_cgroup: self.host_cgroup,
            publish: self.publish,
            uplink: PhantomData,
        }
    }
}

impl<U: Uplink> LabBuilder<U> {
    /// `kind = "<kind>"`: `routed` instead of the default bridge.
    pub fn kind(mut self, kind: &str) -> Self {
        self.network.cfg.kind = Some(kind.to_owned());
        self
    }

    /// `gateway = "<ip>"`.
    pub fn gateway(mut self, ip: &str) -> Self {
        self.network.cfg.gateway = Some(ip.to_owned());
        self
    }

    /// More `[network]` lines (`icc = false`, `mode = "xdp"`, …).
    pub fn keys(mut self, lines: &str) -> Self {
        self.network.cfg.keys.push_str(lines);
        self
    }

    /// An endpoint in a new namespace named after `tag`, with address `ip`
    /// if given (the next free one otherwise).
    pub fn endpoint(mut self, tag: &str, ip: Option<&str>) -> Self {
        self.network.add_endpoint(tag, ip);
        self
    }

    /// TOML tables (`[nat]`, …) for the config.
    pub fn tables(mut self, toml: &str) -> Self {
        self.network.cfg.tables.push_str(toml);
        self
    }

    /// A cgroup of the test's own as the config's `host_cgroup`.
    pub fn host_cgroup(mut self) -> Self {
        self.host_cgroup = true;
        self
    }

    /// `[[publish]]` of `host_port` to `port` of endpoint number `endpoint`.
    pub fn publish(
        mut self,
        proto: &'static str,
        host_port: u16,
        endpoint: usize,
        port: u16,
    ) -> Self {
        self.publish.push(Publish {
            proto,
            host_port,
            endpoint,
            port,
        });
        self
    }

    /// Builds the sandbox, what is behind the uplink and the config, and
    /// runs `netfwd up`, which must succeed.
    pub fn up(self) -> Lab<U> {
        self.up_with(|_| ()).0
    }

    /// As [`LabBuilder::up`], with `prepare` run on the sandbox before
    /// `netfwd up`: for what the config names that netfwd does not make (a
    /// LAN interface). Returns what `prepare` made too.
    pub fn up_with<T>(self, prepare: impl FnOnce(&Sandbox) -> T) -> (Lab<U>, T) {
        let sb = Sandbox::new(&self.tag);
        let internet = U::build(&sb);
        let prepared = prepare(&sb);
        let cgroup = self.host_cgroup.then(|| Cgroup::new(&self.tag));
        let net = sb.net_name();
        let (mut cfg, eps) = self.network.config(&sb, &net);
        cfg.host_cgroup = cgroup.as_ref().map(|c| c.0.display().to_string());
        for p in &self.publish {
            let _ = write!(
                cfg.tables,
                "[[publish]]\nproto = {:?}\nhost_port = {}\nendpoint = {:?}\nport = {}\n",
                p.proto, p.host_port, eps[p.endpoint], p.port
            );
        }
        let config = sb.up(&cfg);
        let lab = Lab {
            sb,
            internet,
            net,
            eps,
            config,
            cfg,
            cgroup,
        };
        (lab, prepared)
    }
}

/// Options of another network on a lab's host ([`Lab::network`]);
/// [`NetworkBuilder::up`] brings it up.
pub struct NetworkBuilder<'a> {
    sb: &'a Sandbox,
    network: NetworkSpec,
}

impl NetworkBuilder<'_> {
    /// An endpoint in a new namespace named after `tag`, with address `ip`
    /// if given (the next free one otherwise).
    pub fn endpoint(mut self, tag: &str, ip: Option<&str>) -> Self {
        self.network.add_endpoint(tag, ip);
        self
    }

    /// More `[network]` lines for this network (`subnet6 = …`, `icc = false`).
    pub fn keys(mut self, lines: &str) -> Self {
        self.network.cfg.keys.push_str(lines);
        self
    }

    /// Runs `netfwd up` for it, which must succeed.
    pub fn up(self) -> LabNetwork {
        let net = self.sb.net_name();
        let (cfg, eps) = self.network.config(self.sb, &net);
        let config = self.sb.up(&cfg);
        LabNetwork {
            net,
            eps,
            config,
            cfg,
        }
    }
}

/// Another network on a lab's host, up (`netfwd down` goes with the lab's
/// sandbox).
pub struct LabNetwork {
    pub net: String,
    /// The endpoints' namespaces, in the order they were asked for.
    pub eps: Vec<String>,
    /// The config file the network was brought up with.
    pub config: PathBuf,
    cfg: NetConfig,
}

impl LabNetwork {
    /// Runs `netfwd up` on `lab`'s host again with the config `change`
    /// makes of this network's; returns the file.
    pub fn up_again<U>(
        &self,
        lab: &Lab<U>,
        change: impl FnOnce(NetConfig) -> NetConfig,
    ) -> PathBuf {
        lab.sb.up(&change(self.cfg.clone()))
    }
}

impl<U> Lab<U> {
    /// Another network on this lab's host, on `subnet`, behind the same
    /// uplink as the lab's own network (if it has one).
    pub fn network(&self, subnet: &str) -> NetworkBuilder<'_> {
        let mut network = NetworkSpec::new(subnet);
        network.cfg.uplink.clone_from(&self.cfg.uplink);
        NetworkBuilder {
            sb: &self.sb,
            network,
        }
    }

    /// Runs `netfwd up` again with the config `change` makes of the lab's
    /// network's (`[[allow]]` added, the mode switched, …); returns the file.
    pub fn up_again(&self, change: impl FnOnce(NetConfig) -> NetConfig) -> PathBuf {
        self.sb.up(&change(self.cfg.clone()))
    }

    /// The network's entry of `stats --json`.
    pub fn stats(&self) -> Value {
        let out = self.sb.netfwd_ok(&["stats", "--name", &self.net, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["networks"][0].clone()
    }

    /// A counter (or drop reason) of the interfaces with `role`, summed.
    /// A name no interface of that role has, or no such interface, panics:
    /// a misspelt counter must not read as zero.
    pub fn counter(&self, role: &str, field: &str) -> u64 {
        let stats = self.stats();
        let interfaces: Vec<&Value> = stats["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["role"] == role)
            .collect();
        assert!(!interfaces.is_empty(), "no {role} interface: {stats:#}");
        interfaces
            .iter()
            .map(|i| {
                i[field]
                    .as_u64()
                    .or_else(|| i["drops"][field].as_u64())
                    .unwrap_or_else(|| panic!("no counter {field} on a {role}: {i:#}"))
            })
            .sum()
    }

    /// The network's NAT flows (`nat list --json`).
    pub fn nat_flows(&self) -> Vec<Value> {
        self.sb.nat_flows(&self.net)
    }
}

/// The namespaces of a lab's `N` endpoints as an array, for a test that
/// gives each its own name.
pub fn named<const N: usize>(eps: Vec<String>) -> [String; N] {
    <[String; N]>::try_from(eps)
        .unwrap_or_else(|eps| panic!("{N} endpoints asked for, got {eps:?}"))
}
