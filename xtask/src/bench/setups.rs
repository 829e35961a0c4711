//! The setups a benchmark compares, built side by side in sandbox
//! namespaces with the same addresses: what netfwd replaces (a Linux bridge
//! holding the gateway, `ip_forward`, iptables FORWARD ACCEPT and
//! MASQUERADE, as in the seeds' manual steps), netfwd itself, and the limit
//! (a bare veth pair between the two endpoints; plain routing without NAT
//! or filtering for the path to the outside).
//!
//! Each setup has two endpoints (client, server) for endpoint↔endpoint
//! workloads, and an "internet" namespace behind the host's uplink for the
//! NAT path. The baseline is built with `ip`/`iptables`: it is the
//! reference, not the product.

use std::{
    fmt::Write as _,
    io::Write as _,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use crate::cmd::{command, run, succeeds};

pub const CLIENT_IP: &str = "192.168.77.2";
pub const SERVER_IP: &str = "192.168.77.3";
const GATEWAY: &str = "192.168.77.1";
/// Room for the 10,000-endpoint scale runs.
const SUBNET: &str = "192.168.64.0/18";
const PREFIX: &str = "/18";
/// The network's IPv6 side (dual-stack, as Docker's `--ipv6`), for the
/// east-west IPv6 rows; no DAD, so an address is usable at once.
pub const CLIENT_IP6: &str = "fd00:77::2";
pub const SERVER_IP6: &str = "fd00:77::3";
const GATEWAY6: &str = "fd00:77::1";
const SUBNET6: &str = "fd00:77::/64";
const PREFIX6: &str = "/64";
pub const UPLINK_IP: &str = "203.0.113.2";
pub const INTERNET_IP: &str = "203.0.113.1";
/// The uplink's IPv6 side, for the NAT66 and IPv6 published-port rows.
pub const UPLINK_IP6: &str = "2001:db8:f::2";
pub const INTERNET_IP6: &str = "2001:db8:f::1";
/// Where the limit's client is reached from the internet, routed (outside
/// `SUBNET`).
pub const LIMIT_CLIENT_ROUTED_IP: &str = "192.168.190.2";
pub const LIMIT_CLIENT_ROUTED_IP6: &str = "fd00:190::2";
/// Published ports: host port `HOST_PORT_BASE + i` goes to the server's
/// `TARGET_PORT_BASE + i`, for `i < PUBLISHED` — enough for iptables' rule
/// walk to show against a hash lookup.
pub const PUBLISHED: u16 = 1000;
/// How far the published-port scale rows grow the baseline's rules and
/// netfwd's `[[publish]]` entries (`grow_published`).
pub const PUBLISHED_SCALE: u16 = 10_000;
pub const HOST_PORT_BASE: u16 = 20000;
pub const TARGET_PORT_BASE: u16 = 30000;
/// A Linux bridge's ports at most (`BR_MAX_PORTS`; the next is refused
/// with EXFULL): the baseline, like a Docker bridge network, holds no more
/// endpoints.
pub const BRIDGE_MAX_PORTS: u32 = 1024;
/// Present while br_netfilter is loaded.
pub const BRIDGE_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Baseline,
    NetfwdTc,
    NetfwdXdp,
    Limit,
    /// The baseline without the published ports' rules: where
    /// br_netfilter sends bridged frames through FORWARD, its rule walk is
    /// the east-west rows' cost, which this setup shows apart.
    BaselineNoPorts,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Baseline,
        Kind::NetfwdTc,
        Kind::NetfwdXdp,
        Kind::Limit,
        Kind::BaselineNoPorts,
    ];
    /// The main table's and the chart's columns.
    pub const COMPARED: [Kind; 4] = [Kind::Baseline, Kind::NetfwdTc, Kind::NetfwdXdp, Kind::Limit];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Baseline => "bridge+iptables",
            Kind::NetfwdTc => "netfwd tc",
            Kind::NetfwdXdp => "netfwd xdp",
            Kind::Limit => "limit",
            Kind::BaselineNoPorts => "bridge+iptables, no port rules",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Kind::Baseline => "base",
            Kind::NetfwdTc => "tc",
            Kind::NetfwdXdp => "xdp",
            Kind::Limit => "lim",
            Kind::BaselineNoPorts => "bnp",
        }
    }
}

/// One built setup; torn down on drop.
pub struct Setup {
    pub kind: Kind,
    pub host: String,
    pub client: String,
    pub server: String,
    pub internet: String,
    netfwd: Option<(PathBuf, String)>,
    /// netfwd's config file and text, which `grow` extends.
    config: Option<(PathBuf, String)>,
    cgroup: Option<PathBuf>,
    /// Idle endpoints added by `grow`.
    extras: Vec<String>,
    /// `netfwd daemon`, as deployed: it follows the uplink's address and
    /// reports (NAT expiry is the kernel's, as the baseline's conntrack).
    daemon: Option<std::process::Child>,
}

/// `nf_conntrack_max`, the baseline's table size (Linux's default for this
/// machine's memory when conntrack is not loaded yet).
fn conntrack_max() -> u32 {
    std::fs::read_to_string("/proc/sys/net/nf_conntrack_max")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(262_144)
}

pub fn ip(args: &[&str]) -> Result<()> {
    run(command("ip", args).stdout(std::process::Stdio::null()))
}

/// `ip` commands, one a line, in one process, after the options
/// `global` (`-n NS` for a namespace; none for `netns` commands).
fn ip_batch(global: &[&str], lines: impl IntoIterator<Item = String>) -> Result<()> {
    let script: String = lines.into_iter().map(|l| l + "\n").collect();
    let mut args = global.to_vec();
    args.extend(["-batch", "-"]);
    let mut child = command("ip", &args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting ip -batch")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "ip {args:?} failed ({status})");
    Ok(())
}

pub fn in_ns(ns: &str, args: &[&str]) -> Result<()> {
    let mut full = vec![format!("--net=/run/netns/{ns}")];
    full.extend(args.iter().map(|s| s.to_string()));
    run(command("nsenter", &full).stdout(std::process::Stdio::null()))
}

/// The uplink `up0` of host namespace `h` at `UPLINK_IP` and `UPLINK_IP6`,
/// its peer `inet0` in namespace `i` at `INTERNET_IP` and `INTERNET_IP6`,
/// the host's default routes through it.
pub fn uplink(h: &str, i: &str) -> Result<()> {
    ip(&[
        "-n", h, "link", "add", "up0", "type", "veth", "peer", "name", "inet0", "netns", i,
    ])?;
    ip(&[
        "-n",
        h,
        "addr",
        "add",
        &format!("{UPLINK_IP}/24"),
        "dev",
        "up0",
    ])?;
    ip(&["-n", h, "link", "set", "up0", "up"])?;
    ip(&["-n", h, "route", "add", "default", "via", INTERNET_IP])?;
    ip(&[
        "-n",
        i,
        "addr",
        "add",
        &format!("{INTERNET_IP}/24"),
        "dev",
        "inet0",
    ])?;
    ip(&["-n", i, "link", "set", "inet0", "up"])?;
    address6(h, "up0", &format!("{UPLINK_IP6}/64"))?;
    address6(i, "inet0", &format!("{INTERNET_IP6}/64"))?;
    default_route6(h, INTERNET_IP6)?;
    // The internet's end as a wire, on every setup alike: full
    // checksums, and NAPI to take XDP frames (which netfwd's XDP setup
    // needs, see netfwd-ebpf's `xdp`).
    in_ns(i, &["ethtool", "-K", "inet0", "tx", "off", "gro", "on"])
}

impl Setup {
    pub fn build(kind: Kind, id: u32, netfwd: &Path, dir: &Path) -> Result<Setup> {
        let prefix = format!("nfb{id}{}", kind.tag());
        let setup = Setup {
            kind,
            host: format!("{prefix}-h"),
            client: format!("{prefix}-c"),
            server: format!("{prefix}-s"),
            internet: format!("{prefix}-i"),
            netfwd: None,
            config: None,
            cgroup: None,
            extras: Vec::new(),
            daemon: None,
        };
        // From here on, a failure drops `setup`, which removes what exists.
        let mut setup = setup;
        for ns in [&setup.host, &setup.internet] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        uplink(&setup.host, &setup.internet)?;
        match kind {
            Kind::Baseline => setup.bridge_and_iptables(PUBLISHED)?,
            Kind::BaselineNoPorts => setup.bridge_and_iptables(0)?,
            Kind::NetfwdTc => setup.netfwd(id, "tc", netfwd, dir)?,
            Kind::NetfwdXdp => setup.netfwd(id, "xdp", netfwd, dir)?,
            Kind::Limit => setup.bare()?,
        }
        Ok(setup)
    }

    /// Two endpoint namespaces on veths into the host, named `hc`/`hs` there.
    fn endpoints_on_host_veths(&self) -> Result<()> {
        self.host_veth(&self.client, [CLIENT_IP, CLIENT_IP6], "hc")?;
        self.host_veth(&self.server, [SERVER_IP, SERVER_IP6], "hs")
    }

    /// Namespace `ns` with `eth0` at `addr` and `addr6`, its peer `hostif`
    /// in the host.
    fn host_veth(&self, ns: &str, [addr, addr6]: [&str; 2], hostif: &str) -> Result<()> {
        ip(&["netns", "add", ns])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &self.host, "link", "add", hostif, "type", "veth", "peer", "name", "eth0",
            "netns", ns,
        ])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}{PREFIX}"),
            "dev",
            "eth0",
        ])?;
        address6(ns, "eth0", &format!("{addr6}{PREFIX6}"))?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &self.host, "link", "set", hostif, "up"])
    }

    fn default_routes(&self) -> Result<()> {
        for ns in [&self.client, &self.server] {
            ip(&["-n", ns, "route", "add", "default", "via", GATEWAY])?;
            default_route6(ns, GATEWAY6)?;
        }
        Ok(())
    }

    /// The seeds' manual setup, with the rules Docker writes for a
    /// dual-stack bridge network with `published` ports (a DNAT and a
    /// FORWARD accept per port and family, walked in order).
    fn bridge_and_iptables(&self, published: u16) -> Result<()> {
        let h = self.host.as_str();
        self.endpoints_on_host_veths()?;
        ip(&["-n", h, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            h,
            "addr",
            "add",
            &format!("{GATEWAY}{PREFIX}"),
            "dev",
            "br0",
        ])?;
        address6(h, "br0", &format!("{GATEWAY6}{PREFIX6}"))?;
        ip(&["-n", h, "link", "set", "br0", "up"])?;
        for hostif in ["hc", "hs"] {
            ip(&["-n", h, "link", "set", hostif, "master", "br0"])?;
        }
        self.default_routes()?;
        in_ns(h, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        in_ns(h, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])?;
        // Bridged frames pass iptables only with br_netfilter (which dockerd
        // loads): where it is loaded, on as Docker has it (ip6tables too,
        // as Docker 27 has it for IPv6 networks); `machine` records which
        // held.
        if Path::new(BRIDGE_NF_CALL_IPTABLES).exists() {
            for family in ["iptables", "ip6tables"] {
                let key = format!("net.bridge.bridge-nf-call-{family}=1");
                in_ns(h, &["sysctl", "-qw", &key])?;
            }
        }
        for (tool, subnet, server) in FAMILIES {
            restore(tool, h, &docker_rules(subnet, server, 0..published)?, false)?;
        }
        Ok(())
    }

    /// Publishes ports up to `n` in all, after those there are: the
    /// baseline's rules appended to Docker's chains (so the last port is
    /// the last rule its walk meets), netfwd's `[[publish]]` entries. The
    /// setups without published ports stay as they are.
    pub fn grow_published(&mut self, n: u16) -> Result<()> {
        match self.kind {
            Kind::Limit | Kind::BaselineNoPorts => Ok(()),
            Kind::Baseline => {
                for (tool, _, server) in FAMILIES {
                    let more = PUBLISHED..n;
                    let rules = format!(
                        "*nat\n{}COMMIT\n*filter\n{}COMMIT\n",
                        dnat_rules(more.clone(), server)?,
                        accept_rules(more, server)?
                    );
                    restore(tool, &self.host, &rules, true)?;
                }
                Ok(())
            }
            Kind::NetfwdTc | Kind::NetfwdXdp => {
                let server = self.server.clone();
                let (path, text) = self.config.as_mut().context("no netfwd config")?;
                text.push_str(&publish_entries(PUBLISHED..n, &server));
                std::fs::write(&*path, &*text)?;
                self.netfwd_up()
            }
        }
    }

    fn netfwd(&mut self, id: u32, mode: &str, netfwd: &Path, dir: &Path) -> Result<()> {
        let name = format!("{}{}", &mode[..1], id % 100_000);
        let config = dir.join(format!("{name}.toml"));
        // The host-access hook goes to a cgroup of the bench's own, never
        // the host's root (no host process is in it).
        let cgroup = cgroup_dir(id, mode)?;
        self.cgroup = Some(cgroup.clone());
        let mut text = format!(
            "[network]\nname = \"{name}\"\nmode = \"{mode}\"\nsubnet = \"{SUBNET}\"\ngateway = \"{GATEWAY}\"\n\
             subnet6 = \"{SUBNET6}\"\ngateway6 = \"{GATEWAY6}\"\nuplink = \"up0\"\nhost_cgroup = \"{}\"\n\
             [[endpoint]]\nnetns = \"{}\"\nip = \"{CLIENT_IP}\"\nip6 = \"{CLIENT_IP6}\"\n\
             [[endpoint]]\nnetns = \"{}\"\nip = \"{SERVER_IP}\"\nip6 = \"{SERVER_IP6}\"\n",
            cgroup.display(),
            self.client,
            self.server
        );
        // The same room as the baseline's conntrack: both tables hold the
        // 100k-flow workload beside every other workload's flows.
        let _ = writeln!(text, "[nat]\nmax_flows = {}", conntrack_max());
        text.push_str(&publish_entries(0..PUBLISHED, &self.server));
        std::fs::write(&config, &text)?;
        self.netfwd = Some((netfwd.to_owned(), name));
        self.config = Some((config, text));
        self.netfwd_up()?;
        if let Some(mut daemon) = self.netfwd_with_config("daemon") {
            let daemon = daemon
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("starting netfwd daemon")?;
            self.daemon = Some(daemon);
        }
        Ok(())
    }

    fn netfwd_up(&self) -> Result<()> {
        match self.netfwd_with_config("up") {
            Some(mut up) => run(&mut up),
            None => Ok(()),
        }
    }

    /// `netfwd --netns HOST <verb> -c CONFIG`, quiet on stdout; `None` for
    /// a setup without netfwd.
    fn netfwd_with_config(&self, verb: &str) -> Option<std::process::Command> {
        let (Some((bin, _)), Some((config, _))) = (&self.netfwd, &self.config) else {
            return None;
        };
        let mut cmd = command(
            &bin.display().to_string(),
            &[
                "--netns",
                &self.host,
                verb,
                "-c",
                &config.display().to_string(),
            ],
        );
        cmd.stdout(std::process::Stdio::null());
        Some(cmd)
    }

    /// Replaces the network's `[nat]` section with `nat` (TOML: `[nat]`
    /// and its `[nat.timeouts]`) and runs `up` again.
    pub fn set_nat(&mut self, nat: &str) -> Result<()> {
        let (path, text) = self.config.as_mut().context("no netfwd config")?;
        let start = text.find("[nat]\n").context("no [nat] in the config")?;
        let end = text[start..]
            .find("[[publish]]")
            .map_or(text.len(), |end| start + end);
        text.replace_range(start..end, nat);
        std::fs::write(&*path, &*text)?;
        self.netfwd_up()
    }

    /// Fails if the setup's `netfwd daemon` has died (a setup without one
    /// passes): a sample taken meanwhile measured a network nobody tends.
    pub fn daemon_alive(&self) -> Result<()> {
        let Some(daemon) = &self.daemon else {
            return Ok(());
        };
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", daemon.id()))
            .context("netfwd daemon is gone")?;
        // The state follows the command's closing parenthesis.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        anyhow::ensure!(
            !matches!(state, Some('Z' | 'X') | None),
            "netfwd daemon has exited"
        );
        Ok(())
    }

    /// The netfwd network's name; `None` without netfwd.
    pub fn network(&self) -> Option<&str> {
        self.netfwd.as_ref().map(|(_, name)| name.as_str())
    }

    /// Where the network's pinned map `map` is; `None` without netfwd.
    pub fn pinned_map(&self, map: &str) -> Option<PathBuf> {
        Some(
            Path::new("/sys/fs/bpf/netfwd")
                .join(self.network()?)
                .join(map),
        )
    }

    /// Adds idle endpoints until the network has `n` (the limit, a bare
    /// veth pair, has no network to grow).
    pub fn grow(&mut self, n: u32) -> Result<()> {
        let wanted = (n as usize).saturating_sub(2);
        let new: Vec<(String, String)> = extra_addresses()
            .skip(self.extras.len())
            .take(wanted.saturating_sub(self.extras.len()))
            .enumerate()
            .map(|(i, ip)| {
                (
                    format!(
                        "{}-x{}",
                        self.host.trim_end_matches("-h"),
                        self.extras.len() + i
                    ),
                    ip,
                )
            })
            .collect();
        match self.kind {
            Kind::Limit => return Ok(()),
            Kind::Baseline | Kind::BaselineNoPorts => self.bridge_ports(&new)?,
            Kind::NetfwdTc | Kind::NetfwdXdp => {
                if let Some((path, text)) = &mut self.config {
                    for (ns, addr) in &new {
                        let _ = write!(text, "[[endpoint]]\nnetns = \"{ns}\"\nip = \"{addr}\"\n");
                    }
                    std::fs::write(path, &*text)?;
                }
                self.extras.extend(new.into_iter().map(|(ns, _)| ns));
                self.netfwd_up()?;
            }
        }
        Ok(())
    }

    /// More endpoints on the baseline's bridge, as `host_veth` makes one
    /// but in batches of `ip` commands (seven processes an endpoint took
    /// 25 minutes for 10,000): the namespaces, then the veths on the
    /// bridge, then one batch in each namespace.
    fn bridge_ports(&mut self, new: &[(String, String)]) -> Result<()> {
        let first = self.extras.len();
        ip_batch(&[], new.iter().map(|(ns, _)| format!("netns add {ns}")))?;
        // Made: removed on drop from here on, whatever fails next.
        self.extras.extend(new.iter().map(|(ns, _)| ns.clone()));
        ip_batch(
            &["-n", &self.host],
            new.iter().enumerate().flat_map(|(i, (ns, _))| {
                let hostif = format!("x{}", first + i + 1);
                [
                    format!("link add {hostif} type veth peer name eth0 netns {ns}"),
                    format!("link set {hostif} master br0"),
                    format!("link set {hostif} up"),
                ]
            }),
        )?;
        for (ns, addr) in new {
            ip_batch(
                &["-n", ns],
                [
                    "link set lo up".to_owned(),
                    format!("addr add {addr}{PREFIX} dev eth0"),
                    "link set eth0 up".to_owned(),
                ],
            )?;
        }
        Ok(())
    }

    /// The limit: the two endpoints on one veth pair; the client routed to
    /// the internet by the host without NAT or filtering.
    fn bare(&self) -> Result<()> {
        let (c, s, h) = (
            self.client.as_str(),
            self.server.as_str(),
            self.host.as_str(),
        );
        for ns in [c, s] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "-n", c, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", s,
        ])?;
        ip(&[
            "-n",
            c,
            "addr",
            "add",
            &format!("{CLIENT_IP}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&[
            "-n",
            s,
            "addr",
            "add",
            &format!("{SERVER_IP}/24"),
            "dev",
            "eth0",
        ])?;
        address6(c, "eth0", &format!("{CLIENT_IP6}{PREFIX6}"))?;
        address6(s, "eth0", &format!("{SERVER_IP6}{PREFIX6}"))?;
        ip(&["-n", c, "link", "set", "eth0", "up"])?;
        ip(&["-n", s, "link", "set", "eth0", "up"])?;
        // The client's path out: a second veth to the host, routed.
        ip(&[
            "-n", h, "link", "add", "hc", "type", "veth", "peer", "name", "eth1", "netns", c,
        ])?;
        ip(&["-n", c, "addr", "add", "192.168.190.2/24", "dev", "eth1"])?;
        ip(&["-n", c, "link", "set", "eth1", "up"])?;
        ip(&["-n", h, "addr", "add", "192.168.190.1/24", "dev", "hc"])?;
        ip(&["-n", h, "link", "set", "hc", "up"])?;
        ip(&["-n", c, "route", "add", "default", "via", "192.168.190.1"])?;
        ip(&[
            "-n",
            &self.internet,
            "route",
            "add",
            "192.168.190.0/24",
            "via",
            UPLINK_IP,
        ])?;
        // IPv6 likewise, routed without NAT66.
        address6(c, "eth1", &format!("{LIMIT_CLIENT_ROUTED_IP6}/64"))?;
        address6(h, "hc", "fd00:190::1/64")?;
        default_route6(c, "fd00:190::1")?;
        ip(&[
            "-n",
            &self.internet,
            "-6",
            "route",
            "add",
            "fd00:190::/64",
            "via",
            UPLINK_IP6,
        ])?;
        in_ns(h, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])?;
        in_ns(h, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    }
}

/// Published port `i`'s host port and the server's port behind it, for
/// each `i` of `ports`, written by `line` one after another.
fn per_port(ports: std::ops::Range<u16>, line: impl Fn(u16, u16) -> String) -> String {
    ports
        .map(|i| line(HOST_PORT_BASE + i, TARGET_PORT_BASE + i))
        .collect()
}

/// Docker's DNAT rule of each published port of `ports`, to `server`.
fn dnat_rules(ports: std::ops::Range<u16>, server: &str) -> Result<String> {
    let server: IpAddr = server.parse()?;
    Ok(per_port(ports, |host, target| {
        // `[addr]:port` for IPv6, as ip6tables' DNAT takes it.
        let to = SocketAddr::new(server, target);
        format!("-A DOCKER ! -i br0 -p tcp --dport {host} -j DNAT --to-destination {to}\n")
    }))
}

/// Docker's FORWARD accept of each published port of `ports`, to `server`.
fn accept_rules(ports: std::ops::Range<u16>, server: &str) -> Result<String> {
    let server: IpAddr = server.parse()?;
    Ok(per_port(ports, |_, target| {
        format!("-A DOCKER -d {server} ! -i br0 -o br0 -p tcp --dport {target} -j ACCEPT\n")
    }))
}

/// netfwd's `[[publish]]` of each published port of `ports`, to the
/// endpoint in namespace `server`.
fn publish_entries(ports: std::ops::Range<u16>, server: &str) -> String {
    per_port(ports, |host, target| {
        format!(
            "[[publish]]\nproto = \"tcp\"\nhost_port = {host}\nendpoint = \"{server}\"\nport = {target}\n"
        )
    })
}

/// Feeds `rules` to `tool` (`iptables-restore`, `ip6tables-restore`) in
/// `ns`.
fn restore(tool: &str, ns: &str, rules: &str, noflush: bool) -> Result<()> {
    let ns = format!("--net=/run/netns/{ns}");
    let mut args = vec![ns.as_str(), tool];
    if noflush {
        args.push("--noflush");
    }
    let mut child = command("nsenter", &args)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(rules.as_bytes())?;
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "{tool} failed ({status})");
    Ok(())
}

/// Each family's restore tool, subnet and server address: Docker writes
/// the same rules for both (ip6tables' since Docker 27).
const FAMILIES: [(&str, &str, &str); 2] = [
    ("iptables-restore", SUBNET, SERVER_IP),
    ("ip6tables-restore", SUBNET6, SERVER_IP6),
];

/// Docker's rules of one family for a bridge network on `subnet` whose
/// server publishes `published` ports: the masquerade and a DNAT a port
/// (`nat`), the FORWARD chains and an accept a port (`filter`), each
/// port's rules walked in order.
fn docker_rules(subnet: &str, server: &str, published: std::ops::Range<u16>) -> Result<String> {
    Ok(format!(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n\
         -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
         -A POSTROUTING -s {subnet} ! -o br0 -j MASQUERADE\n{}COMMIT\n\
         *filter\n:FORWARD ACCEPT [0:0]\n:DOCKER - [0:0]\n\
         -A FORWARD -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A FORWARD -o br0 -j DOCKER\n\
         -A FORWARD -i br0 ! -o br0 -j ACCEPT\n\
         -A FORWARD -i br0 -o br0 -j ACCEPT\n{}COMMIT\n",
        dnat_rules(published.clone(), server)?,
        accept_rules(published, server)?
    ))
}

/// The default IPv6 route of `ns`, via `via`.
fn default_route6(ns: &str, via: &str) -> Result<()> {
    ip(&["-n", ns, "-6", "route", "add", "default", "via", via])
}

/// IPv6 address `addr` (with its prefix) on `dev` in `ns`, usable at once
/// (no duplicate address detection).
fn address6(ns: &str, dev: &str, addr: &str) -> Result<()> {
    ip(&["-n", ns, "-6", "addr", "add", addr, "dev", dev, "nodad"])
}

/// Addresses for idle endpoints: the subnet's hosts but the gateway and the
/// two that talk.
fn extra_addresses() -> impl Iterator<Item = String> {
    let base = u32::from(std::net::Ipv4Addr::new(192, 168, 64, 0));
    (1..(1u32 << 14) - 1)
        .map(move |i| std::net::Ipv4Addr::from(base + i).to_string())
        .filter(|ip| ![GATEWAY, CLIENT_IP, SERVER_IP].contains(&ip.as_str()))
}

/// An empty cgroup v2 directory of the bench's own.
pub fn cgroup_dir(id: u32, tag: &str) -> Result<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let root = mountinfo
        .lines()
        .find_map(|l| {
            let (before, after) = l.split_once(" - ")?;
            let mount_point = before.split_whitespace().nth(4)?;
            (after.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .ok_or_else(|| anyhow::anyhow!("no cgroup v2 hierarchy"))?;
    let dir = root.join(format!("netfwd-bench-{id}-{tag}"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = daemon.wait();
        }
        if let Some((bin, name)) = &self.netfwd {
            let _ = succeeds(&mut command(
                &bin.display().to_string(),
                &["--netns", &self.host, "down", "--name", name],
            ));
        }
        for ns in [&self.client, &self.server, &self.internet, &self.host] {
            let _ = succeeds(&mut command("ip", &["netns", "del", ns]));
        }
        // Thousands at scale: in one process. netfwd's `down` removed its own.
        let _ = ip_batch(
            &["-force"],
            self.extras
                .iter()
                .filter(|ns| Path::new("/run/netns").join(ns).exists())
                .map(|ns| format!("netns del {ns}")),
        );
        if let Some(dir) = &self.cgroup {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
