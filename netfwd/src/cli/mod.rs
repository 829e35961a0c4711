//! The command line's definition: every subcommand and argument with its
//! help text. The binary dispatches it; `cli::dist` writes shell
//! completions and man pages from it.

pub mod dist;

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use clap::{Parser, Subcommand};

use crate::{config::Proto, name::NetworkName};

/// What `netfwd --version` prints after the version: the commit, the
/// datapath object's build and the toolchains (see build.rs).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("NETFWD_COMMIT"),
    "\ndatapath: ",
    env!("NETFWD_DATAPATH"),
    "\ntoolchains: ",
    env!("NETFWD_TOOLCHAINS"),
);

#[derive(Parser)]
#[command(
    name = "netfwd",
    version,
    long_version = LONG_VERSION,
    about = "Container networks with an eBPF datapath instead of a bridge and iptables"
)]
pub struct Cli {
    /// Act in this network namespace (an ip-netns name or a path) instead of
    /// the one netfwd is started in.
    #[arg(long, global = true, value_name = "NAME")]
    pub netns: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the network described by a config file, or complete it.
    Up {
        /// The network's config file (TOML; see docs/config.md).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove everything netfwd created for a network.
    Down {
        /// The config file the network was brought up with.
        #[arg(
            short,
            long,
            value_name = "FILE",
            conflicts_with = "name",
            required_unless_present = "name"
        )]
        config: Option<PathBuf>,
        /// The network's name (works for an orphan, from any namespace).
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: Option<NetworkName>,
    },
    /// Plug a running process's network namespace (or a namespace file) into
    /// a network as an endpoint.
    Attach {
        /// The network to attach to.
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: NetworkName,
        #[command(flatten)]
        target: AttachTarget,
        /// Address to give it (default: the lowest free one).
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        /// IPv6 address to give it, in a dual-stack network (default: the
        /// lowest free one of network.subnet6).
        #[arg(long)]
        ip6: Option<Ipv6Addr>,
        /// Interface name inside the namespace.
        #[arg(long, default_value = "eth0")]
        ifname: String,
        /// Print the endpoint as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove what `attach` added; the namespace is left as it was.
    Detach {
        /// The network to detach from.
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: NetworkName,
        #[command(flatten)]
        target: DetachTarget,
    },
    /// Publish a host port to an endpoint while the network runs.
    Publish {
        #[command(flatten)]
        port: HostPort,
        /// The endpoint: its netns name or its address.
        #[arg(long)]
        endpoint: String,
        /// The endpoint's port.
        #[arg(long = "port")]
        target_port: u16,
        /// 0.0.0.0: every address; 127.0.0.1: the host's own connections
        /// only (Docker's `-p 127.0.0.1:…`).
        #[arg(long, default_value = "0.0.0.0")]
        host_ip: String,
    },
    /// Stop publishing a host port; connections already made keep going.
    Unpublish {
        #[command(flatten)]
        port: HostPort,
    },
    /// Bring the network up and keep it: follow the uplink's address,
    /// forget exited attached endpoints, report the expired NAT flows the
    /// kernel removed (NAT expiry needs no daemon). Stops on SIGTERM/SIGINT,
    /// leaving the network up.
    Daemon {
        /// The network's config file (TOML; see docs/config.md).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Seconds between two passes (default: half the shortest NAT
        /// timeout, at most 5).
        #[arg(long, value_name = "SECS")]
        gc_interval: Option<u64>,
        /// Serve Prometheus metrics on http://ADDR/metrics (e.g.
        /// 127.0.0.1:9464), in the daemon's network namespace; default off.
        /// An address other than loopback lets anyone who reaches it read
        /// the network's counters.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Serve Docker Engine as a network driver (`docker network create -d
    /// NAME`) on /run/docker/plugins/NAME.sock, until SIGTERM/SIGINT; the
    /// networks stay up.
    DockerPlugin {
        /// The driver's name, as `docker network create -d` takes it.
        #[arg(long, default_value = "netfwd")]
        name: String,
        /// Serve Prometheus metrics of the driver's networks on
        /// http://ADDR/metrics (e.g. 127.0.0.1:9465), as `daemon --metrics`
        /// does; default off. An address other than loopback lets anyone who
        /// reaches it read the networks' counters.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Per-interface datapath counters, drops by reason.
    Stats {
        /// Only this network (default: every network of this namespace).
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: Option<NetworkName>,
        /// Print the counters as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Live datapath events: drops with their reason, NAT flows made and
    /// removed, and (opt-in) every other verdict; until Ctrl-C or SIGTERM.
    /// Rate-limited per CPU; what was suppressed or lost is counted and
    /// shown.
    Monitor {
        /// Only this network (default: every network of this namespace).
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: Option<NetworkName>,
        /// Which events (repeatable; default: drop and nat).
        #[arg(long = "type", value_name = "TYPE", value_enum)]
        kinds: Vec<crate::monitor::EventKind>,
        /// Only packets from or to this address.
        #[arg(long, value_name = "IP")]
        endpoint: Option<std::net::IpAddr>,
        /// One JSON object a line, with Hubble's field names where they fit.
        #[arg(long)]
        json: bool,
    },
    /// What the datapath would do with a packet, without sending it.
    ///
    /// The packet and its answer run through a copy of the network's
    /// programs and maps (no live map changes), and each hop's verdict is
    /// printed: redirected where, translated to what, or dropped and why
    /// (the reasons `monitor` prints). Exits 3 when a hop drops it, 0 when
    /// it gets through. Run it in the network's namespace (`--netns`).
    Explain {
        /// The network.
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: NetworkName,
        /// The sender: an endpoint (its netns name or either address; it
        /// sends from its address of --to's family), or an address
        /// outside, which comes in on the uplink (the LAN without one).
        #[arg(long, value_name = "ENDPOINT|ADDR")]
        from: String,
        /// With an endpoint --from: send from this address instead of the
        /// endpoint's own, as a forged source (what the anti-spoofing
        /// check makes of it).
        #[arg(long, value_name = "ADDR")]
        source: Option<std::net::IpAddr>,
        /// The destination: an address (IPv6 in a dual-stack network),
        /// with a port for TCP and UDP: ADDR:PORT, [ADDR]:PORT for IPv6.
        #[arg(long, value_name = "ADDR[:PORT]")]
        to: crate::explain::Destination,
        /// The packet: a TCP SYN, a UDP datagram or an ICMP echo request
        /// (ICMPv6's to an IPv6 address; default: tcp with a port, icmp
        /// without).
        #[arg(long, value_enum)]
        proto: Option<crate::explain::packet::Proto>,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A cluster member's view: the hosts sharing its pool through etcd,
    /// and the routes to them in force here.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// The NAT table.
    Nat {
        #[command(subcommand)]
        command: NatCommand,
    },
    /// Show networks, endpoints, attached programs and counters.
    Status {
        /// Only this network (default: every network of this namespace, and
        /// the orphans of any).
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: Option<NetworkName>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A published host port of a network.
#[derive(clap::Args)]
pub struct HostPort {
    /// The network that publishes it.
    #[arg(long, value_name = "NET", value_parser = network_name)]
    pub name: NetworkName,
    /// The port's protocol.
    #[arg(long, value_enum)]
    pub proto: Proto,
    /// The host port (0 with `publish`: a free one of 30000-32767).
    #[arg(long)]
    pub host_port: u16,
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Hosts, subnets, backends, the seconds left on each lease, and the
    /// routes this host has in force (kept while etcd is away).
    Status {
        /// The member's config file (with `[cluster]`).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum NatCommand {
    /// The flows: protocol, inside, uplink and remote address, state, age,
    /// expiry.
    List {
        /// Only this network's flows (default: every network of this
        /// namespace).
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: Option<NetworkName>,
        /// Print the flows as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct AttachTarget {
    /// A running process: its /proc/PID/ns/net.
    #[arg(long)]
    pub pid: Option<u32>,
    /// A network namespace file (e.g. /run/netns/X).
    #[arg(long = "netns-path", value_name = "PATH")]
    pub netns_path: Option<PathBuf>,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct DetachTarget {
    /// The attached endpoint of this process.
    #[arg(long)]
    pub pid: Option<u32>,
    /// The attached endpoint of this namespace file.
    #[arg(long = "netns-path", value_name = "PATH")]
    pub netns_path: Option<PathBuf>,
    /// The attached endpoint with this address.
    #[arg(long)]
    pub ip: Option<Ipv4Addr>,
}

/// `--name`, checked while the arguments are parsed: before anything is
/// entered, read or touched.
fn network_name(name: &str) -> Result<NetworkName, String> {
    NetworkName::try_from(name.to_owned())
}
