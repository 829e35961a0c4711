//! The cluster's rows: endpoints on two hosts talking across them, netfwd's
//! `direct` backend against plain routing (the same hosts with static
//! routes, no netfwd: the limit) and its `vxlan` backend against the
//! kernel's own VXLAN device with static FDB entries; then how fast the
//! cluster converges, a host joining and a host gone.
//!
//! Everything lives in sandbox namespaces: a switch (a bridge) with one
//! etcd member and a router on it, the `direct` pairs on the switch, the
//! `vxlan` pairs behind the router on subnets of their own.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    report::median,
    setups::{in_ns, ip},
    workloads::{self, Path as Flow},
};
use crate::cmd::{command, output, succeeds};

/// Short enough that a convergence round takes seconds.
const LEASE_TTL: u64 = 3;
/// How long any one wait of the lab may take: etcd's first election, a
/// daemon's first lease, a route in or out.
const WAIT_LIMIT: Duration = Duration::from_secs(30);
const ETCD_IP: &str = "192.0.2.2";
const ROUTER_IP: &str = "192.0.2.1";
const ROUTED_HOSTS: &str = "198.51.100.0/24";
const SOCKPERF_PORT: u16 = 11111;
const IPERF_PORT: u16 = 5201;

/// What a pair of hosts carries between its endpoints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pair {
    Direct,
    Plain,
    Vxlan,
    KernelVxlan,
}

impl Pair {
    fn name(self) -> &'static str {
        match self {
            Pair::Direct => "netfwd direct",
            Pair::Plain => "plain routing",
            Pair::Vxlan => "netfwd vxlan",
            Pair::KernelVxlan => "kernel vxlan + static FDB",
        }
    }

    /// Hosts `2i` and `2i+1` of the lab (their switch or router ports).
    fn index(self) -> usize {
        match self {
            Pair::Direct => 0,
            Pair::Plain => 1,
            Pair::Vxlan => 2,
            Pair::KernelVxlan => 3,
        }
    }

    fn routed(self) -> bool {
        matches!(self, Pair::Vxlan | Pair::KernelVxlan)
    }
}

/// A host of a pair: its namespace, its endpoint's, the endpoint's
/// address, its LAN address; with netfwd, its config and daemon.
struct Host {
    ns: String,
    ep: String,
    ep_ip: String,
    lan_ip: String,
    config: Option<PathBuf>,
    daemon: Option<Child>,
}

/// Every namespace, process and network of the section; all of it gone on
/// drop, daemons and etcd first.
struct Lab {
    id: u32,
    netfwd: PathBuf,
    dir: PathBuf,
    switch: String,
    router: String,
    etcd_ns: String,
    etcd: Option<Child>,
    hosts: Vec<Host>,
}

pub fn exec(netfwd: &Path, quick: bool, dir: &Path) -> Result<String> {
    let (reps, secs) = if quick { (3, 1) } else { (5, 2) };
    let id = std::process::id();
    let mut lab = Lab {
        id,
        netfwd: netfwd.to_owned(),
        dir: dir.join("cluster"),
        switch: format!("nfc{id}-sw"),
        router: format!("nfc{id}-rt"),
        etcd_ns: format!("nfc{id}-etcd"),
        etcd: None,
        hosts: Vec::new(),
    };
    std::fs::create_dir_all(&lab.dir)?;
    lab.fabric()?;
    // The `direct` pair first and alone: its first join, timed, is two
    // hosts with no state of their own (networks brought up, programs
    // loaded, subnets leased).
    let started = Instant::now();
    lab.pair(Pair::Direct)
        .with_context(|| format!("building {}", Pair::Direct.name()))?;
    lab.wait_routed(Pair::Direct)?;
    let first_join = started.elapsed();
    for pair in [Pair::Plain, Pair::Vxlan, Pair::KernelVxlan] {
        lab.pair(pair)
            .with_context(|| format!("building {}", pair.name()))?;
    }
    lab.wait_routed(Pair::Vxlan)?;
    let mut md = format!(
        "\nCluster: endpoints on two hosts, {reps} paired rounds of {secs} s each (the two \
         setups of a row in random order each round); ratio of each round's pair, median \
         (min–max):\n\n\
         | workload | unit | netfwd direct | plain routing | direct ÷ plain | netfwd vxlan | \
         kernel vxlan | vxlan ÷ kernel vxlan |\n|---|---|---|---|---|---|---|---|\n"
    );
    for (name, unit, rr) in [
        ("TCP request/response", "k trans/s", true),
        ("TCP stream", "Gbit/s", false),
    ] {
        let _ = write!(md, "| {name} | {unit} |");
        for (netfwd, limit) in [
            (Pair::Direct, Pair::Plain),
            (Pair::Vxlan, Pair::KernelVxlan),
        ] {
            let (a, b, ratios) = lab.paired(netfwd, limit, reps, secs, rr)?;
            let scale = if rr { 1e-3 } else { 1.0 };
            let _ = write!(
                md,
                " {:.2} | {:.2} | **{:.2}×** ({:.2}–{:.2}) |",
                a * scale,
                b * scale,
                ratios.0,
                ratios.1,
                ratios.2
            );
        }
        md.push('\n');
    }
    md.push_str(&lab.convergence(reps, first_join)?);
    Ok(md)
}

impl Lab {
    fn ns(&self, tag: &str) -> String {
        format!("nfc{}-{tag}", self.id)
    }

    /// The switch, etcd on it, and the router between it and the routed
    /// hosts.
    fn fabric(&mut self) -> Result<()> {
        let (sw, rt, etcd) = (
            self.switch.clone(),
            self.router.clone(),
            self.etcd_ns.clone(),
        );
        for ns in [&sw, &rt, &etcd] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        self.plug(&etcd, ETCD_IP, "e0")?;
        self.plug(&rt, ROUTER_IP, "r0")?;
        in_ns(&rt, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        ip(&["-n", &etcd, "route", "add", ROUTED_HOSTS, "via", ROUTER_IP])?;
        let data = self.dir.join("etcd");
        let peer = format!("http://{ETCD_IP}:2380");
        let client = format!("http://{ETCD_IP}:2379");
        let log = std::fs::File::create(self.dir.join("etcd.log"))?;
        let mut child = command(
            "nsenter",
            &[
                &format!("--net=/run/netns/{etcd}"),
                "etcd",
                "--name",
                "e0",
                "--data-dir",
                &data.display().to_string(),
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--initial-cluster",
                &format!("e0={peer}"),
                "--initial-cluster-state",
                "new",
            ],
        );
        self.etcd = Some(spawn_logged(&mut child, log, "etcd")?);
        let endpoint = format!("--endpoints={client}");
        wait("etcd healthy", || {
            Ok(succeeds(&mut command(
                "nsenter",
                &[
                    &format!("--net=/run/netns/{etcd}"),
                    "etcdctl",
                    &endpoint,
                    "--command-timeout=1s",
                    "endpoint",
                    "health",
                ],
            ))
            .then_some(()))
        })
        .map(drop)
    }

    /// Namespace `ns` on the switch as `lan0` at `addr`/24, port `port`.
    fn plug(&self, ns: &str, addr: &str, port: &str) -> Result<()> {
        let sw = self.switch.as_str();
        ip(&[
            "-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", port, "netns", sw,
        ])?;
        ip(&["-n", sw, "link", "set", port, "master", "br0", "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "lan0",
        ])?;
        ip(&["-n", ns, "link", "set", "lan0", "up"])
    }

    /// Namespace `ns` behind the router, host `i`: a /29 of its own.
    fn plug_routed(&self, ns: &str, i: usize) -> Result<String> {
        let rt = self.router.as_str();
        let port = format!("h{i}");
        let (gateway, addr) = (
            format!("198.51.100.{}", 8 * i + 1),
            format!("198.51.100.{}", 8 * i + 2),
        );
        ip(&[
            "-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", &port, "netns", rt,
        ])?;
        ip(&[
            "-n",
            rt,
            "addr",
            "add",
            &format!("{gateway}/29"),
            "dev",
            &port,
        ])?;
        ip(&["-n", rt, "link", "set", &port, "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/29"),
            "dev",
            "lan0",
        ])?;
        ip(&["-n", ns, "link", "set", "lan0", "up"])?;
        ip(&["-n", ns, "route", "add", "default", "via", &gateway])?;
        Ok(addr)
    }

    /// The two hosts of `pair`, their endpoints connected.
    fn pair(&mut self, pair: Pair) -> Result<()> {
        for side in 0..2 {
            let i = 2 * pair.index() + side;
            let ns = self.ns(&format!("h{i}"));
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            // Registered before anything else can fail: drop removes it.
            self.hosts.push(Host {
                ns: ns.clone(),
                ep: self.ns(&format!("ep{i}")),
                ep_ip: String::new(),
                lan_ip: String::new(),
                config: None,
                daemon: None,
            });
            let lan_ip = if pair.routed() {
                self.plug_routed(&ns, i)?
            } else {
                let addr = format!("192.0.2.{}", 11 + i);
                self.plug(&ns, &addr, &format!("p{i}"))?;
                addr
            };
            self.hosts[i].lan_ip = lan_ip;
        }
        match pair {
            Pair::Direct | Pair::Vxlan => {
                for i in [2 * pair.index(), 2 * pair.index() + 1] {
                    self.netfwd_host(i, pair)?;
                }
            }
            Pair::Plain | Pair::KernelVxlan => self.static_hosts(pair)?,
        }
        Ok(())
    }

    /// Host `i` with a cluster network and its daemon (which brings the
    /// network up once it holds a subnet).
    fn netfwd_host(&mut self, i: usize, pair: Pair) -> Result<()> {
        let (pool, backend) = match pair {
            Pair::Vxlan => ("10.201.0.0/22", "vxlan"),
            _ => ("10.200.0.0/22", "direct"),
        };
        let name = network_name(self.id, i);
        let config = self.dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[network]\nname = \"{name}\"\nlan = \"lan0\"\n\
                 [[endpoint]]\nnetns = \"{}\"\n\
                 [cluster]\netcd = [\"http://{ETCD_IP}:2379\"]\npool = \"{pool}\"\n\
                 subnet_len = 24\nnode = \"n{i}\"\nlease_ttl = {LEASE_TTL}\nbackend = \"{backend}\"\n",
                self.hosts[i].ep
            ),
        )?;
        self.hosts[i].config = Some(config);
        self.start_daemon(i)
    }

    fn start_daemon(&mut self, i: usize) -> Result<()> {
        let host = &mut self.hosts[i];
        let config = host.config.as_ref().context("no netfwd on this host")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("daemon-{i}.log")))?;
        let mut daemon = command(
            &self.netfwd.display().to_string(),
            &[
                "--netns",
                &host.ns,
                "daemon",
                "-c",
                &config.display().to_string(),
            ],
        );
        daemon.env("RUST_LOG", "info");
        host.daemon = Some(spawn_logged(&mut daemon, log, "netfwd daemon")?);
        Ok(())
    }

    /// The baselines: each endpoint on a veth into its host, a /24 each,
    /// the other's reached by a static route (over the LAN, or over a
    /// kernel VXLAN device whose FDB names the other host).
    fn static_hosts(&mut self, pair: Pair) -> Result<()> {
        let base = match pair {
            Pair::KernelVxlan => "10.211",
            _ => "10.210",
        };
        // The tunnel's MTU on both veths, as netfwd's vxlan endpoints have.
        let mtu = if pair.routed() { "1450" } else { "1500" };
        for side in 0..2 {
            let i = 2 * pair.index() + side;
            let (h, ep) = (self.hosts[i].ns.clone(), self.hosts[i].ep.clone());
            ip(&["netns", "add", &ep])?;
            ip(&["-n", &ep, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", &h, "link", "add", "ep0", "mtu", mtu, "type", "veth", "peer", "name", "eth0",
                "mtu", mtu, "netns", &ep,
            ])?;
            ip(&[
                "-n",
                &h,
                "addr",
                "add",
                &format!("{base}.{side}.1/24"),
                "dev",
                "ep0",
            ])?;
            ip(&["-n", &h, "link", "set", "ep0", "up"])?;
            ip(&[
                "-n",
                &ep,
                "addr",
                "add",
                &format!("{base}.{side}.2/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ep, "link", "set", "eth0", "up"])?;
            ip(&[
                "-n",
                &ep,
                "route",
                "add",
                "default",
                "via",
                &format!("{base}.{side}.1"),
            ])?;
            in_ns(&h, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
            self.hosts[i].ep_ip = format!("{base}.{side}.2");
        }
        for side in 0..2 {
            let (i, peer) = (2 * pair.index() + side, 2 * pair.index() + 1 - side);
            let h = self.hosts[i].ns.clone();
            let (local, remote) = (
                self.hosts[i].lan_ip.clone(),
                self.hosts[peer].lan_ip.clone(),
            );
            let other = format!("{base}.{}.0/24", 1 - side);
            if pair.routed() {
                ip(&[
                    "-n", &h, "link", "add", "vx", "type", "vxlan", "id", "42", "dstport", "4789",
                    "local", &local, "dev", "lan0",
                ])?;
                run_tool(
                    "bridge",
                    &[
                        "-n",
                        &h,
                        "fdb",
                        "append",
                        "00:00:00:00:00:00",
                        "dev",
                        "vx",
                        "dst",
                        &remote,
                    ],
                )?;
                ip(&[
                    "-n",
                    &h,
                    "addr",
                    "add",
                    &format!("10.99.0.{}/24", side + 1),
                    "dev",
                    "vx",
                ])?;
                ip(&["-n", &h, "link", "set", "vx", "up"])?;
                let via = format!("10.99.0.{}", 2 - side);
                ip(&["-n", &h, "route", "add", &other, "via", &via, "dev", "vx"])?;
            } else {
                ip(&["-n", &h, "route", "add", &other, "via", &remote])?;
            }
        }
        Ok(())
    }

    /// The routes each host of a netfwd pair has to the other's subnet
    /// (`cluster status --json`), or `None` if it cannot say.
    fn routes(&self, i: usize) -> Option<usize> {
        let host = &self.hosts[i];
        let config = host.config.as_ref()?.display().to_string();
        let out = output(&mut command(
            &self.netfwd.display().to_string(),
            &[
                "--netns", &host.ns, "cluster", "status", "-c", &config, "--json",
            ],
        ))
        .ok()?;
        let status: serde_json::Value = serde_json::from_str(&out).ok()?;
        Some(status["routes"].as_array()?.len())
    }

    /// Waits for both hosts of `pair` to route to each other, then takes
    /// each endpoint's address.
    fn wait_routed(&mut self, pair: Pair) -> Result<()> {
        let (a, b) = (2 * pair.index(), 2 * pair.index() + 1);
        wait(
            &format!("{} hosts routing to each other", pair.name()),
            || Ok((self.routes(a) == Some(1) && self.routes(b) == Some(1)).then_some(())),
        )?;
        for i in [a, b] {
            let ep = self.hosts[i].ep.clone();
            self.hosts[i].ep_ip = wait(&format!("an address in {ep}"), || {
                Ok(endpoint_address(&ep).ok())
            })?;
        }
        Ok(())
    }

    /// `reps` rounds of one workload on pairs `a` and `b`, in random order
    /// each round: their medians and the median, min and max of the
    /// rounds' ratios a ÷ b.
    fn paired(
        &self,
        a: Pair,
        b: Pair,
        reps: usize,
        secs: u64,
        rr: bool,
    ) -> Result<(f64, f64, (f64, f64, f64))> {
        let (mut va, mut vb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        // One unrecorded sample each: ARP, caches and the first flow in place.
        for pair in [a, b] {
            let _ = self.measure(pair, 1, rr);
        }
        for rep in 0..reps {
            let mut order = [a, b];
            fastrand::shuffle(&mut order);
            let (mut x, mut y) = (0.0, 0.0);
            for pair in order {
                let v = self.measure(pair, secs, rr)?;
                if pair == a {
                    x = v;
                } else {
                    y = v;
                }
            }
            eprintln!(
                "bench: cluster {} vs {} round {}/{reps}: {x:.3} / {y:.3}",
                a.name(),
                b.name(),
                rep + 1
            );
            va.push(x);
            vb.push(y);
            ratios.push(x / y);
        }
        let ratio = median(&mut ratios);
        Ok((
            median(&mut va),
            median(&mut vb),
            (ratio, ratios[0], ratios[ratios.len() - 1]),
        ))
    }

    /// One sample across `pair`, from its first host's endpoint to its
    /// second's; retried once (a sample reading zero or failing).
    fn measure(&self, pair: Pair, secs: u64, rr: bool) -> Result<f64> {
        let (client, server) = (
            &self.hosts[2 * pair.index()],
            &self.hosts[2 * pair.index() + 1],
        );
        let port = if rr { SOCKPERF_PORT } else { IPERF_PORT };
        let addr: SocketAddr = format!("{}:{port}", server.ep_ip).parse()?;
        let flow = Flow {
            client_ns: &client.ep,
            connect: addr,
            server_ns: &server.ep,
            listen: addr,
        };
        let mut last = anyhow::anyhow!("not run");
        for _ in 0..2 {
            let taken = if rr {
                workloads::sockperf_rr(&flow, secs)
            } else {
                workloads::iperf_tcp(&flow, 1, secs)
            };
            match taken {
                Ok(v) if v.is_finite() && v > 0.0 => return Ok(v),
                Ok(v) => last = anyhow::anyhow!("{} read {v}", pair.name()),
                Err(e) => last = e,
            }
        }
        Err(last.context(format!("measuring across {}", pair.name())))
    }

    /// On the `direct` pair, `reps` times: the first host's daemon killed
    /// (no goodbye), the time until the second withdraws its route; then
    /// started again, the time until the second routes to it again. With
    /// `first_join`, the pair's first start, as a row.
    fn convergence(&mut self, reps: usize, first_join: Duration) -> Result<String> {
        let (a, b) = (2 * Pair::Direct.index(), 2 * Pair::Direct.index() + 1);
        let (mut gone, mut joined) = (Vec::new(), Vec::new());
        for rep in 0..reps {
            if let Some(mut daemon) = self.hosts[a].daemon.take() {
                let _ = daemon.kill();
                let _ = daemon.wait();
            }
            let t = Instant::now();
            wait("the route to a gone host withdrawn", || {
                Ok((self.routes(b) == Some(0)).then_some(()))
            })?;
            gone.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            self.start_daemon(a)?;
            wait("the route to a (re)started host", || {
                Ok((self.routes(b) == Some(1)).then_some(()))
            })?;
            joined.push(t.elapsed().as_secs_f64());
            eprintln!(
                "bench: cluster convergence round {}/{reps}: gone {:.2} s, joined {:.2} s",
                rep + 1,
                gone[rep],
                joined[rep]
            );
        }
        let cell = |v: &mut Vec<f64>| {
            let m = median(v);
            format!("{m:.2} s ({:.2}–{:.2})", v[0], v[v.len() - 1])
        };
        Ok(format!(
            "\nCluster convergence (`direct`, two hosts, one etcd member, `lease_ttl = {LEASE_TTL}`, \
             {reps} rounds, polled through `netfwd cluster status --json`): a daemon killed to \
             the other host's route withdrawn {}; the daemon started again (its state kept, \
             its network up) to the other host routing to it {}. Two fresh hosts, from \
             their daemons' start to each routing to the other: {:.2} s.\n",
            cell(&mut gone),
            cell(&mut joined),
            first_join.as_secs_f64()
        ))
    }
}

/// Polls `ready` every 50 ms until it yields a value, for at most
/// `WAIT_LIMIT`.
fn wait<T>(what: &str, mut ready: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = ready()? {
            return Ok(v);
        }
        if start.elapsed() > WAIT_LIMIT {
            bail!("{what}: not within {WAIT_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `cmd` with its stderr to `log`, nothing on stdin or stdout.
fn spawn_logged(cmd: &mut std::process::Command, log: std::fs::File, what: &str) -> Result<Child> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {what}"))
}

/// `tool args…`, quiet, failing with its stderr.
fn run_tool(tool: &str, args: &[&str]) -> Result<()> {
    crate::cmd::run(command(tool, args).stdout(Stdio::null()))
}

/// The global IPv4 address of `eth0` in namespace `ns`.
fn endpoint_address(ns: &str) -> Result<String> {
    let out = output(&mut command(
        "ip",
        &["-n", ns, "-j", "-4", "addr", "show", "eth0"],
    ))?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v[0]["addr_info"][0]["local"]
        .as_str()
        .map(str::to_owned)
        .context("no address on eth0")
}

impl Drop for Lab {
    fn drop(&mut self) {
        for host in &mut self.hosts {
            if let Some(mut daemon) = host.daemon.take() {
                let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                let _ = daemon.wait();
            }
        }
        for (i, host) in self.hosts.iter().enumerate() {
            if host.config.is_some() {
                let name = network_name(self.id, i);
                let _ = succeeds(&mut command(
                    &self.netfwd.display().to_string(),
                    &["--netns", &host.ns, "down", "--name", &name],
                ));
            }
        }
        if let Some(mut etcd) = self.etcd.take() {
            let _ = etcd.kill();
            let _ = etcd.wait();
        }
        for ns in self.hosts.iter().flat_map(|h| [&h.ep, &h.ns]).chain([
            &self.etcd_ns,
            &self.router,
            &self.switch,
        ]) {
            let _ = succeeds(&mut command("ip", &["netns", "del", ns]));
        }
        let _ = std::fs::remove_dir_all(self.dir.join("etcd"));
    }
}

/// Host `i`'s network: eight characters at most.
fn network_name(id: u32, i: usize) -> String {
    format!("c{}{i}", id % 10_000)
}
