//! The control plane's rows: how long a container waits to be plugged in
//! and a network to come up. netfwd's CNI plugin against the reference CNI
//! `bridge` plugin chained with `portmap` (podman's default network), each
//! ADD with one published port and masquerading, in sandbox host
//! namespaces of their own, measured in the same run with the calls
//! interleaved (netfwd, bridge, bridge, netfwd, …) so drift and the other
//! load of the machine hit both alike. Then `up` of growing networks, an
//! `up` that changes nothing, `down`, and `attach`/`detach`. netfwd runs
//! with a state directory and bpffs of its own (`PrivateState`): its
//! machine-wide lock is then not held by whatever else runs netfwd here.

use std::{
    fmt::Write as _,
    io::{Read as _, Write as _},
    os::unix::fs::DirBuilderExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::cmd::{command, output, run, succeeds};

/// The reference plugins (Debian's containernetworking-plugins).
const SYSTEM_PLUGINS: &str = "/usr/lib/cni";
/// What one plugin call may take before the bench gives up on it.
const CALL_LIMIT_SECS: &str = "120";
const NETFWD_SUBNET: &str = "10.201.0.0/16";
const BRIDGE_SUBNET: &str = "10.202.0.0/16";
/// The sandbox host's uplink, its address (a documentation range), and
/// the far end's.
pub(super) const UPLINK: &str = "up0";
const UPLINK_ADDR: &str = "198.51.100.2/24";
const FAR_END_ADDR: &str = "198.51.100.1/24";
const FAR_END: &str = "198.51.100.1";
const HOST_PORT_BASE: u16 = 20000;
/// ADDs at once, as a runtime starting a pod of many containers.
const PARALLEL: usize = 20;

/// How much of each to run: `--quick` keeps it to about a minute.
struct Plan {
    sequential: usize,
    /// Sequential calls are reported in blocks of this many: the spread of
    /// the blocks' medians is the run's own noise.
    block: usize,
    parallel_rounds: usize,
    /// Endpoints of the `up` rows.
    sizes: &'static [usize],
    noop_ups: usize,
    attaches: usize,
}

const QUICK: Plan = Plan {
    sequential: 30,
    block: 10,
    parallel_rounds: 1,
    sizes: &[10, 100],
    noop_ups: 5,
    attaches: 10,
};

const FULL: Plan = Plan {
    sequential: 100,
    block: 20,
    parallel_rounds: 3,
    sizes: &[10, 100, 1000],
    noop_ups: 10,
    attaches: 50,
};

/// Runs the control-plane rows; returns their Markdown section.
pub fn exec(netfwd: &Path, quick: bool, dir: &Path) -> Result<String> {
    let plan = if quick { &QUICK } else { &FULL };
    let mut lab = Lab::build(netfwd, dir)?;
    let containers = plan.sequential.max(PARALLEL);
    for i in 0..containers {
        for side in Side::BOTH {
            lab.netns(&lab.container(side, i))?;
        }
    }
    // After every namespace it must see is made: their mounts are copied
    // into it.
    lab.private = Some(PrivateState::new(&dir.join("netfwd-state"))?);
    // First ADDs make the networks (netfwd loads and verifies its
    // programs, bridge makes its bridge): a warm-up, not a sample.
    for side in Side::BOTH {
        lab.add(side, 0)?;
        lab.del(side, 0)?;
    }
    let (adds, dels) = lab.sequential(plan.sequential)?;
    let bridge_add = percentile(&adds.bridge, 50.0);
    let (parallel_adds, parallel_dels) = lab.parallel(plan.parallel_rounds)?;
    let rows = [
        Row::new("CNI ADD, sequential", adds, plan.block),
        Row::new("CNI DEL, sequential", dels, plan.block),
        Row::new(
            &format!("CNI ADD, {PARALLEL} at once"),
            parallel_adds,
            PARALLEL,
        ),
        Row::new(
            &format!("CNI DEL, {PARALLEL} at once"),
            parallel_dels,
            PARALLEL,
        ),
    ];
    let (attach, detach) = lab.attach_detach(plan.attaches)?;
    let ups = lab.ups(plan)?;
    drop(lab);
    Ok(markdown(plan, &rows, bridge_add, (attach, detach), &ups))
}

/// Which setup a call is made on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Netfwd,
    Bridge,
}

impl Side {
    const BOTH: [Side; 2] = [Side::Netfwd, Side::Bridge];

    fn tag(self) -> &'static str {
        match self {
            Side::Netfwd => "n",
            Side::Bridge => "b",
        }
    }

    /// Alternating which goes first, so neither always follows the other.
    fn order(i: usize) -> [Side; 2] {
        if i.is_multiple_of(2) {
            [Side::Netfwd, Side::Bridge]
        } else {
            [Side::Bridge, Side::Netfwd]
        }
    }
}

/// Two sandbox hosts, one per plugin, each with an uplink to a far end, and
/// the containers' namespaces; all removed on drop.
struct Lab {
    prefix: String,
    netfwd: PathBuf,
    /// netfwd's network name (at most 8 characters).
    net: String,
    bridge: String,
    /// CNI_PATH for netfwd: the plugin as `netfwd`, and host-local.
    netfwd_plugins: PathBuf,
    ipam_dir: PathBuf,
    /// Every namespace made, removed on drop.
    namespaces: Mutex<Vec<String>>,
    /// The networks of the `up` rows, taken down on drop.
    networks: Mutex<Vec<String>>,
    /// Where netfwd runs.
    private: Option<PrivateState>,
}

impl Lab {
    fn build(netfwd: &Path, dir: &Path) -> Result<Lab> {
        let id = std::process::id() % 1_000_000;
        let lab = Lab {
            prefix: format!("nfcp{id}"),
            netfwd: netfwd.to_owned(),
            net: format!("cp{id}"),
            bridge: format!("cpbr{id}"),
            netfwd_plugins: dir.join("cni-plugins"),
            ipam_dir: dir.join("cni-ipam"),
            namespaces: Mutex::default(),
            networks: Mutex::default(),
            private: None,
        };
        std::fs::create_dir_all(&lab.netfwd_plugins)?;
        let cni = netfwd.with_file_name("netfwd-cni");
        for (name, target) in [
            ("netfwd", cni),
            ("host-local", Path::new(SYSTEM_PLUGINS).join("host-local")),
        ] {
            let link = lab.netfwd_plugins.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&target, &link)
                .with_context(|| format!("linking {}", link.display()))?;
        }
        for side in Side::BOTH {
            let host = lab.host(side);
            let far = format!("{}-{}f", lab.prefix, side.tag());
            lab.netns(&host)?;
            lab.netns(&far)?;
            uplink_to(&host, &far)?;
        }
        Ok(lab)
    }

    fn host(&self, side: Side) -> String {
        format!("{}-{}h", self.prefix, side.tag())
    }

    fn container(&self, side: Side, i: usize) -> String {
        format!("{}-{}{i}", self.prefix, side.tag())
    }

    /// A new namespace, removed on drop.
    fn netns(&self, name: &str) -> Result<()> {
        output(&mut command("ip", &["netns", "add", name]))?;
        self.made(name);
        Ok(())
    }

    /// Records namespace `name` for drop to remove.
    fn made(&self, name: &str) {
        if let Ok(mut made) = self.namespaces.lock() {
            made.push(name.to_owned());
        }
    }

    fn mapping(i: usize) -> Value {
        let port = HOST_PORT_BASE + u16::try_from(i).unwrap_or(0);
        json!({ "portMappings": [{ "hostPort": port, "containerPort": 80, "protocol": "tcp" }] })
    }

    fn ipam(&self, side: Side, subnet: &str) -> Value {
        json!({
            "type": "host-local",
            "ranges": [[{ "subnet": subnet }]],
            "dataDir": self.ipam_dir.join(side.tag()),
        })
    }

    fn netfwd_conf(&self, i: usize) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": self.net,
            "type": "netfwd",
            "subnet": NETFWD_SUBNET,
            "uplink": UPLINK,
            "ipam": self.ipam(Side::Netfwd, NETFWD_SUBNET),
            "capabilities": { "portMappings": true },
            "runtimeConfig": Self::mapping(i),
        })
    }

    fn bridge_conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": self.bridge,
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": self.ipam(Side::Bridge, BRIDGE_SUBNET),
        })
    }

    fn portmap_conf(&self, i: usize, prev: Option<Value>) -> Value {
        let mut conf = json!({
            "cniVersion": "1.0.0",
            "name": self.bridge,
            "type": "portmap",
            "snat": true,
            "capabilities": { "portMappings": true },
            "runtimeConfig": Self::mapping(i),
        });
        if let Some(prev) = prev {
            conf["prevResult"] = prev;
        }
        conf
    }

    /// One plugin call in `side`'s host, for container `i`; its result.
    fn call(&self, side: Side, plugin: &str, cmd: &str, i: usize, conf: &Value) -> Result<Value> {
        let plugins = match side {
            Side::Netfwd => self.netfwd_plugins.clone(),
            Side::Bridge => PathBuf::from(SYSTEM_PLUGINS),
        };
        let container = self.container(side, i);
        let mut child = Command::new("timeout")
            .args([CALL_LIMIT_SECS, "nsenter"])
            .args(self.mount_ns(side))
            .arg(format!("--net=/run/netns/{}", self.host(side)))
            .arg(plugins.join(plugin))
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", &container)
            .env("CNI_NETNS", format!("/run/netns/{container}"))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &plugins)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running the {plugin} plugin"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(conf.to_string().as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "{plugin} {cmd} for {container} failed ({}): {} {}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if out.stdout.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("{plugin} {cmd}: its result is not JSON"))
    }

    /// ADD of container `i` with one published port: netfwd's one call, or
    /// bridge then portmap (on bridge's result).
    fn add(&self, side: Side, i: usize) -> Result<()> {
        match side {
            Side::Netfwd => self
                .call(side, "netfwd", "ADD", i, &self.netfwd_conf(i))
                .map(drop),
            Side::Bridge => {
                let prev = self.call(side, "bridge", "ADD", i, &self.bridge_conf())?;
                self.call(side, "portmap", "ADD", i, &self.portmap_conf(i, Some(prev)))
                    .map(drop)
            }
        }
    }

    /// DEL of container `i`, in the reverse order of ADD.
    fn del(&self, side: Side, i: usize) -> Result<()> {
        match side {
            Side::Netfwd => self
                .call(side, "netfwd", "DEL", i, &self.netfwd_conf(i))
                .map(drop),
            Side::Bridge => {
                self.call(side, "portmap", "DEL", i, &self.portmap_conf(i, None))?;
                self.call(side, "bridge", "DEL", i, &self.bridge_conf())
                    .map(drop)
            }
        }
    }

    /// `n` ADDs then `n` DELs, one at a time, the two sides alternating;
    /// their latencies by side.
    fn sequential(&self, n: usize) -> Result<(Latencies, Latencies)> {
        let (mut adds, mut dels) = (Latencies::default(), Latencies::default());
        for i in 0..n {
            for side in Side::order(i) {
                adds.push(side, timed(|| self.add(side, i))?);
            }
        }
        for i in 0..n {
            for side in Side::order(i) {
                dels.push(side, timed(|| self.del(side, i))?);
            }
        }
        Ok((adds, dels))
    }

    /// `rounds` of [`PARALLEL`] ADDs at once then as many DELs, the sides
    /// alternating; each call's own latency.
    fn parallel(&self, rounds: usize) -> Result<(Latencies, Latencies)> {
        let (mut adds, mut dels) = (Latencies::default(), Latencies::default());
        for round in 0..rounds {
            for side in Side::order(round) {
                for (step, out) in [("ADD", &mut adds), ("DEL", &mut dels)] {
                    let times = std::thread::scope(|s| {
                        let calls: Vec<_> = (0..PARALLEL)
                            .map(|i| {
                                s.spawn(move || match step {
                                    "ADD" => timed(|| self.add(side, i)),
                                    _ => timed(|| self.del(side, i)),
                                })
                            })
                            .collect();
                        calls
                            .into_iter()
                            .map(|c| {
                                c.join()
                                    .map_err(|_| anyhow::anyhow!("a {step} thread panicked"))?
                            })
                            .collect::<Result<Vec<Duration>>>()
                    })?;
                    for t in times {
                        out.push(side, t);
                    }
                }
            }
        }
        Ok((adds, dels))
    }

    /// Attaches `n` namespaces to netfwd's network one after another, then
    /// detaches them; returns both rates (per second).
    fn attach_detach(&self, n: usize) -> Result<(f64, f64)> {
        let rate = |verb: &str| -> Result<f64> {
            let start = Instant::now();
            for i in 0..n {
                let path = format!("/run/netns/{}", self.container(Side::Netfwd, i));
                self.netfwd(&[verb, "--name", &self.net, "--netns-path", &path])?;
            }
            Ok(n as f64 / start.elapsed().as_secs_f64())
        };
        Ok((rate("attach")?, rate("detach")?))
    }

    /// `nsenter`'s argument entering `side`'s mount namespace, if its own.
    fn mount_ns(&self, side: Side) -> Option<String> {
        match (side, &self.private) {
            (Side::Netfwd, Some(private)) => Some(format!("--mount={}", private.mount_ns())),
            _ => None,
        }
    }

    /// Runs netfwd in netfwd's sandbox host.
    fn netfwd(&self, args: &[&str]) -> Result<()> {
        let mut full = vec![CALL_LIMIT_SECS.to_owned(), "nsenter".to_owned()];
        full.extend(self.mount_ns(Side::Netfwd));
        full.push(format!("--net=/run/netns/{}", self.host(Side::Netfwd)));
        full.push(self.netfwd.display().to_string());
        full.extend(args.iter().map(|a| (*a).to_owned()));
        output(&mut command("timeout", &full)).map(drop)
    }

    /// `up` of a network of one endpoint (it loads and verifies the
    /// datapath), grown to each size, `up` again with nothing to change,
    /// then `down`.
    fn ups(&self, plan: &Plan) -> Result<Vec<UpRow>> {
        let mut rows = Vec::new();
        for (k, &size) in plan.sizes.iter().enumerate() {
            let name = format!("{}u{k}", &self.net[..self.net.len().min(6)]);
            let config = |n: usize| -> Result<PathBuf> {
                let mut text = format!(
                    "[network]\nname = \"{name}\"\nsubnet = \"10.{}.0.0/16\"\n",
                    210 + k
                );
                for i in 0..n {
                    let _ = write!(text, "[[endpoint]]\nnetns = \"{}-u{k}e{i}\"\n", self.prefix);
                }
                let path = self.ipam_dir.with_file_name(format!("{name}-{n}.toml"));
                std::fs::write(&path, text)?;
                Ok(path)
            };
            let (one, all) = (config(1)?, config(size)?);
            if let Ok(mut networks) = self.networks.lock() {
                networks.push(name.clone());
            }
            for i in 0..size {
                // Made by netfwd; listed so that drop removes what `down` did not.
                self.made(&format!("{}-u{k}e{i}", self.prefix));
            }
            let up = |path: &Path| {
                let path = path.display().to_string();
                timed(|| self.netfwd(&["up", "-c", &path]))
            };
            let first = up(&one)?;
            let grown = up(&all)?;
            let mut noop = Vec::new();
            for _ in 0..plan.noop_ups {
                noop.push(up(&all)?);
            }
            let all_path = all.display().to_string();
            let down = timed(|| self.netfwd(&["down", "-c", &all_path]))?;
            rows.push(UpRow {
                size,
                first,
                grown,
                noop,
                down,
            });
        }
        Ok(rows)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut networks = self.networks.lock().map(|n| n.clone()).unwrap_or_default();
        networks.push(self.net.clone());
        for net in &networks {
            let _ = self.netfwd(&["down", "--name", net]);
        }
        let namespaces = self
            .namespaces
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default();
        for ns in namespaces.iter().rev() {
            let _ = succeeds(&mut command("ip", &["netns", "del", ns]));
        }
        let _ = std::fs::remove_dir_all(&self.ipam_dir);
        let _ = std::fs::remove_dir_all(&self.netfwd_plugins);
    }
}

/// A mount namespace, held by a sleeping process, where netfwd finds a
/// state directory (`state`, on the disk as /run is here: its writes cost
/// what they cost) and a bpffs of its own, and every namespace made before
/// it (their mounts copied); it goes, with all netfwd pinned there, when
/// the process is killed on drop.
pub(super) struct PrivateState {
    holder: std::process::Child,
}

/// Run inside `unshare --mount --propagation private`, the state directory
/// as `$1`.
const PRIVATE_STATE_SETUP: &str = "set -e
mkdir -p /run/netfwd
mount --bind \"$1\" /run/netfwd
mount -t bpf bpf /sys/fs/bpf
echo ready
exec sleep infinity";

impl PrivateState {
    pub(super) fn new(state: &Path) -> Result<PrivateState> {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(state)
            .with_context(|| format!("creating {}", state.display()))?;
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(PRIVATE_STATE_SETUP)
            .arg("sh")
            .arg(state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting unshare")?;
        let mut ready = [0u8; 6];
        let read = holder
            .stdout
            .take()
            .context("unshare's stdout")?
            .read_exact(&mut ready);
        let private = PrivateState { holder };
        if read.is_err() || &ready != b"ready\n" {
            bail!("making a mount namespace with a state directory and bpffs of its own failed");
        }
        Ok(private)
    }

    pub(super) fn mount_ns(&self) -> String {
        format!("/proc/{}/ns/mnt", self.holder.id())
    }
}

impl Drop for PrivateState {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Sandbox host `host`'s `lo`, and its uplink to namespace `far`, its
/// default route.
pub(super) fn uplink_to(host: &str, far: &str) -> Result<()> {
    in_ns(host, &["ip", "link", "set", "lo", "up"])?;
    in_ns(
        host,
        &[
            "ip", "link", "add", UPLINK, "type", "veth", "peer", "name", "eth0",
        ],
    )?;
    in_ns(host, &["ip", "link", "set", "eth0", "netns", far])?;
    in_ns(host, &["ip", "addr", "add", UPLINK_ADDR, "dev", UPLINK])?;
    in_ns(host, &["ip", "link", "set", UPLINK, "up"])?;
    in_ns(far, &["ip", "addr", "add", FAR_END_ADDR, "dev", "eth0"])?;
    in_ns(far, &["ip", "link", "set", "eth0", "up"])?;
    in_ns(host, &["ip", "route", "add", "default", "via", FAR_END])
}

fn in_ns(ns: &str, args: &[&str]) -> Result<()> {
    let mut full = vec![format!("--net=/run/netns/{ns}")];
    full.extend(args.iter().map(|s| (*s).to_owned()));
    run(command("nsenter", &full).stdout(Stdio::null()))
}

fn timed(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

/// Call latencies of each side, in the order taken.
#[derive(Default)]
struct Latencies {
    netfwd: Vec<f64>,
    bridge: Vec<f64>,
}

impl Latencies {
    fn push(&mut self, side: Side, t: Duration) {
        let ms = t.as_secs_f64() * 1000.0;
        match side {
            Side::Netfwd => self.netfwd.push(ms),
            Side::Bridge => self.bridge.push(ms),
        }
    }
}

/// Nearest-rank percentile `p` of `values` (ms); NaN when empty.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The lowest and highest median of consecutive blocks of `block` values.
fn block_medians(values: &[f64], block: usize) -> (f64, f64) {
    let medians: Vec<f64> = values
        .chunks(block.max(1))
        .map(|c| percentile(c, 50.0))
        .collect();
    (
        medians.iter().copied().fold(f64::INFINITY, f64::min),
        medians.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// One latency row: both sides' calls and the block size of its spread.
struct Row {
    name: String,
    calls: Latencies,
    block: usize,
}

impl Row {
    fn new(name: &str, calls: Latencies, block: usize) -> Row {
        Row {
            name: name.to_owned(),
            calls,
            block,
        }
    }
}

struct UpRow {
    size: usize,
    first: Duration,
    grown: Duration,
    noop: Vec<Duration>,
    down: Duration,
}

fn markdown(
    plan: &Plan,
    rows: &[Row],
    bridge_add_ms: f64,
    (attach, detach): (f64, f64),
    ups: &[UpRow],
) -> String {
    let mut s = format!(
        "\n## Control plane\n\n\
         netfwd's CNI plugin against the reference `bridge` plugin chained with \
         `portmap` (`ipMasq`, one published port per container), each in a \
         sandbox host of its own (netfwd with a state directory and bpffs of its \
         own), calls interleaved; latency in ms. p50 spread: \
         the lowest and highest median of consecutive blocks of calls. \
         {} sequential calls, {} round(s) of {PARALLEL} at once.\n\n\
         | calls | netfwd p50 (block p50s) | netfwd p99 | bridge+portmap p50 (block p50s) | bridge+portmap p99 | p50 netfwd ÷ bridge | p99 netfwd ÷ bridge |\n\
         |---|---|---|---|---|---|---|\n",
        plan.sequential, plan.parallel_rounds
    );
    for row in rows {
        let (n, b) = (&row.calls.netfwd, &row.calls.bridge);
        let (n50, b50) = (percentile(n, 50.0), percentile(b, 50.0));
        let (n99, b99) = (percentile(n, 99.0), percentile(b, 99.0));
        let (nlo, nhi) = block_medians(n, row.block);
        let (blo, bhi) = block_medians(b, row.block);
        let _ = writeln!(
            s,
            "| {} | {n50:.1} ({nlo:.1}–{nhi:.1}) | {n99:.1} | {b50:.1} ({blo:.1}–{bhi:.1}) | {b99:.1} | **{:.2}×** | {:.2}× |",
            row.name,
            n50 / b50,
            n99 / b99
        );
    }
    let bridge_rate = 1000.0 / bridge_add_ms;
    let _ = write!(
        s,
        "\n`netfwd attach` {attach:.1}/s, `detach` {detach:.1}/s, one after another \
         ({} namespaces; bridge+portmap's sequential ADD p50 is {bridge_rate:.1}/s).\n\n\
         | endpoints | first `up`, 1 endpoint (verifies the datapath) | `up` to N | per endpoint | ÷ bridge+portmap ADD p50 | no-op `up` p50 (min–max) | `down` | per endpoint |\n\
         |---|---|---|---|---|---|---|---|\n",
        plan.attaches
    );
    for up in ups {
        let added = up.size.saturating_sub(1).max(1) as f64;
        let per = up.grown.as_secs_f64() * 1000.0 / added;
        let noop: Vec<f64> = up.noop.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        let _ = writeln!(
            s,
            "| {} | {:.2} s | {:.2} s | {per:.1} ms | {:.2}× | {:.0} ms ({:.0}–{:.0}) | {:.2} s | {:.1} ms |",
            up.size,
            up.first.as_secs_f64(),
            up.grown.as_secs_f64(),
            per / bridge_add_ms,
            percentile(&noop, 50.0),
            noop.iter().copied().fold(f64::INFINITY, f64::min),
            noop.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            up.down.as_secs_f64(),
            up.down.as_secs_f64() * 1000.0 / up.size as f64,
        );
    }
    s
}
