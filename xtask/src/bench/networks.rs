//! Many networks on one uplink: four netfwd networks masqueraded behind one
//! uplink, as Docker's bridge networks share a host's, against one network
//! with as many endpoints, each on a sandbox host of its own built alike.
//! The four share the uplink's NAT table (one port allocation) and each
//! attaches its own uplink program, so a reply for one network may pass
//! the others' programs first (TCX next): what that costs is the point.
//!
//! The endpoints (one per network, or the one network's four) talk to the
//! internet namespace: TCP request/response (sockperf) from all at once,
//! summed, and from each alone (its chain position shows); one iperf3 TCP
//! stream each at once, summed; then, with the kernel's run-time stats on,
//! ns per program run. The two setups take turns in a
//! new random order for each workload of each round, and each figure is
//! the ratio of a round's pair (this machine's noise hits both alike).
//! Each round ends with a misdelivery check: UDP flows from the same source
//! ports on every endpoint to an echo server behind the uplink, each reply
//! matched by its payload to the flow it answers.

use std::{
    fmt::Write as _,
    net::{SocketAddr, UdpSocket},
    ops::Range,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, ensure};

use super::{
    RETRIES,
    progstats::{ProgramCost, Snapshot, StatsOn},
    report::median,
    setups::{INTERNET_IP, cgroup_dir, ip, uplink},
    workloads::{self, Path as Flow},
};
use crate::cmd::{command, output, run, succeeds};

/// Endpoints talking at once on either setup.
const ENDPOINTS: usize = 4;
/// The internet's servers: endpoint `i` talks to port `BASE + i`.
const SOCKPERF_PORT_BASE: u16 = 11111;
const IPERF_PORT_BASE: u16 = 5211;
const ECHO_PORT: u16 = 7007;
/// UDP flows each endpoint opens in a misdelivery check, from the same
/// source ports on every endpoint: the NAT must tell them apart.
const ECHO_FLOWS: u16 = 100;
const ECHO_FIRST_SOURCE_PORT: u16 = 30000;
/// How long a misdelivery check may take; unanswered flows are resent
/// every `ECHO_RESEND` until then.
const ECHO_DEADLINE: Duration = Duration::from_secs(10);
const ECHO_RESEND: Duration = Duration::from_millis(500);

/// One of the two setups compared.
struct Shape {
    name: &'static str,
    networks: usize,
    /// In the names of its namespaces and networks.
    tag: char,
    /// The third octet of its first network's subnet (172.29.X.0/24): the
    /// two setups' subnets differ, as netfwd's networks on one machine must.
    first_subnet: usize,
}

/// Four networks on one uplink, one endpoint each, and one network on the
/// uplink with all the endpoints; a round's figures are in this order.
const SHAPES: [Shape; 2] = [
    Shape {
        name: "four networks",
        networks: 4,
        tag: 'f',
        first_subnet: 0,
    },
    Shape {
        name: "one network",
        networks: 1,
        tag: 'o',
        first_subnet: 8,
    },
];

/// A sandbox host with an uplink to an internet namespace and `ENDPOINTS`
/// endpoints in one or four netfwd networks (TC); all of it gone on drop.
struct Site {
    /// Its index in `SHAPES`.
    index: usize,
    shape: &'static Shape,
    netfwd: PathBuf,
    host: String,
    internet: String,
    /// The networks brought up (or being), by name.
    networks: Vec<String>,
    /// Endpoint `i` is in network `i % networks`.
    endpoints: Vec<String>,
    cgroup: Option<PathBuf>,
}

/// The section's rows (Markdown).
pub fn exec(netfwd: &Path, quick: bool, dir: &Path) -> Result<String> {
    let (rounds, secs) = if quick { (3, 1) } else { (5, 2) };
    let id = std::process::id();
    let sites = [
        Site::build(0, id, netfwd, dir)?,
        Site::build(1, id, netfwd, dir)?,
    ];
    let table = sites[0].shared_table()?;
    let mut notes = Vec::new();
    // One unrecorded second of each workload: ARP, caches and first flows.
    for site in &sites {
        for traffic in [Traffic::Rr, Traffic::Stream] {
            if let Err(e) = site.measure(traffic, 0..ENDPOINTS, 1) {
                eprintln!("bench: networks warm-up on {}: {e:#}", site.shape.name);
            }
        }
    }
    // Each round's figures, by setup, in `rows()` order.
    let mut figures: Vec<[Vec<f64>; 2]> = Vec::new();
    let mut deliveries = [Deliveries::default(), Deliveries::default()];
    for round in 0..rounds {
        eprintln!("bench: networks, round {} of {rounds}", round + 1);
        let mut this: [Vec<f64>; 2] = Default::default();
        for (traffic, from) in workloads() {
            for site in shuffled(&sites) {
                let per_endpoint = site.sample(traffic, from.clone(), secs, &mut notes)?;
                this[site.index].push(per_endpoint.iter().sum());
            }
        }
        {
            // On only while costs are read: it costs every run two clock
            // reads, more on the four networks' longer uplink chain.
            let _stats = StatsOn::enable()?;
            for from in cost_workloads() {
                for site in shuffled(&sites) {
                    let costs = site.costs(from.clone(), secs)?;
                    let out = &mut this[site.index];
                    if from.len() == ENDPOINTS {
                        out.extend([
                            costs.endpoint_per_run,
                            costs.uplink_per_run,
                            costs.uplink_per_packet,
                            costs.uplink_runs_per_packet,
                        ]);
                    } else {
                        out.push(costs.uplink_per_packet);
                    }
                }
            }
        }
        for site in shuffled(&sites) {
            deliveries[site.index].add(&site.misdelivery()?);
        }
        figures.push(this);
    }
    Ok(report(&figures, &deliveries, &table, &notes, rounds, secs))
}

/// `sites` in a new random order.
fn shuffled(sites: &[Site; 2]) -> [&Site; 2] {
    let mut order = [&sites[0], &sites[1]];
    fastrand::shuffle(&mut order);
    order
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Traffic {
    Rr,
    Stream,
}

/// A round's workloads, in the order of `rows()`: what runs, from which
/// endpoints at once. Alone, endpoint `k` of the four networks is in the
/// `k`th network brought up, whose uplink program is `k`th in the TCX
/// chain (each attaches last): its replies pass `k` uplink programs.
fn workloads() -> Vec<(Traffic, Range<usize>)> {
    let mut all = vec![(Traffic::Rr, 0..ENDPOINTS)];
    all.extend((0..ENDPOINTS).map(|k| (Traffic::Rr, k..k + 1)));
    all.push((Traffic::Stream, 0..ENDPOINTS));
    all
}

/// The rows of the table, name and unit: the workloads', then the
/// programs' costs, in the order a round's figures are pushed.
fn rows() -> Vec<(String, &'static str)> {
    let mut rows: Vec<(String, &'static str)> = workloads()
        .into_iter()
        .map(|(traffic, from)| match traffic {
            Traffic::Rr if from.len() == ENDPOINTS => (
                "TCP request/response, every endpoint at once, summed".to_owned(),
                "transactions/s",
            ),
            Traffic::Rr => (
                format!(
                    "TCP request/response, endpoint {k} alone (four: its replies pass {k} of \
                     the 4 uplink programs)",
                    k = from.start + 1
                ),
                "transactions/s",
            ),
            Traffic::Stream => (
                "TCP stream, one per endpoint at once, summed".to_owned(),
                "Gbit/s",
            ),
        })
        .collect();
    for from in cost_workloads() {
        if from.len() == ENDPOINTS {
            rows.extend([
                (
                    "`tc_from_endpoint` (request/response, every endpoint at once)".to_owned(),
                    "ns per run",
                ),
                ("`tc_from_uplink` (the same)".to_owned(), "ns per run"),
                (
                    "`tc_from_uplink`, every program a reply passes (the same)".to_owned(),
                    "ns per uplink packet",
                ),
                (
                    "uplink programs a reply passes (four: about 2.5 if the networks' \
                     traffic is even)"
                        .to_owned(),
                    "runs per uplink packet",
                ),
            ]);
        } else {
            rows.push((
                format!(
                    "`tc_from_uplink`, every program a reply passes, endpoint {} alone",
                    from.start + 1
                ),
                "ns per uplink packet",
            ));
        }
    }
    rows
}

/// The endpoints whose request/response the programs' costs are read
/// over: all at once, then each alone (its replies' place in the chain).
fn cost_workloads() -> Vec<Range<usize>> {
    workloads()
        .into_iter()
        .filter(|(traffic, _)| *traffic == Traffic::Rr)
        .map(|(_, from)| from)
        .collect()
}

impl Site {
    fn build(index: usize, id: u32, netfwd: &Path, dir: &Path) -> Result<Site> {
        let shape = &SHAPES[index];
        Site::build_shape(index, shape, id, netfwd, dir)
            .with_context(|| format!("building {}", shape.name))
    }

    fn build_shape(
        index: usize,
        shape: &'static Shape,
        id: u32,
        netfwd: &Path,
        dir: &Path,
    ) -> Result<Site> {
        let prefix = format!("nfn{id}{}", shape.tag);
        // From here on, a failure drops `site`, which removes what exists.
        let mut site = Site {
            index,
            shape,
            netfwd: netfwd.to_owned(),
            host: format!("{prefix}-h"),
            internet: format!("{prefix}-i"),
            networks: Vec::new(),
            endpoints: Vec::new(),
            cgroup: None,
        };
        for ns in [&site.host, &site.internet] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        uplink(&site.host, &site.internet)?;
        // netfwd's host-access hook goes to a cgroup of the bench's own,
        // never the host's root.
        let cgroup = cgroup_dir(id, &format!("nets-{}", shape.tag))?;
        site.cgroup = Some(cgroup.clone());
        site.endpoints = (0..ENDPOINTS).map(|i| format!("{prefix}-e{i}")).collect();
        let count = shape.networks;
        for net in 0..count {
            // 1 to 8 characters of a-z, 0-9.
            let name = format!("n{}{}{net}", id % 100_000, shape.tag);
            let third = shape.first_subnet + net;
            let mut text = format!(
                "[network]\nname = \"{name}\"\nmode = \"tc\"\nsubnet = \"172.29.{third}.0/24\"\n\
                 uplink = \"up0\"\nhost_cgroup = \"{}\"\n",
                cgroup.display()
            );
            for (i, ns) in site.endpoints.iter().enumerate() {
                if i % count == net {
                    let _ = write!(
                        text,
                        "[[endpoint]]\nnetns = \"{ns}\"\nip = \"172.29.{third}.{}\"\n",
                        2 + i / count
                    );
                }
            }
            let config = dir.join(format!("{name}.toml"));
            std::fs::write(&config, text)?;
            site.networks.push(name);
            run(command(
                &netfwd.display().to_string(),
                &[
                    "--netns",
                    &site.host,
                    "up",
                    "-c",
                    &config.display().to_string(),
                ],
            )
            .stdout(Stdio::null()))?;
        }
        Ok(site)
    }

    /// Where the networks' NAT table is pinned, checked to be one for all
    /// of them (`status`'s `nat.table` of each).
    fn shared_table(&self) -> Result<String> {
        let status = output(&mut command(
            &self.netfwd.display().to_string(),
            &["--netns", &self.host, "status", "--json"],
        ))?;
        let v: serde_json::Value = serde_json::from_str(&status).context("status's JSON")?;
        let mut tables: Vec<String> = self
            .networks
            .iter()
            .map(|name| {
                // By name: `status` lists other namespaces' orphans too.
                v["networks"]
                    .as_array()
                    .and_then(|nets| nets.iter().find(|n| n["name"] == name.as_str()))
                    .and_then(|n| n["nat"]["table"].as_str())
                    .map(str::to_owned)
                    .with_context(|| format!("no NAT table for network {name} in status"))
            })
            .collect::<Result<_>>()?;
        tables.dedup();
        ensure!(
            tables.len() == 1,
            "the networks on one uplink have NAT tables {tables:?}, not one"
        );
        Ok(tables.remove(0))
    }

    /// One sample of `traffic` from endpoints `from` at once: each
    /// endpoint's figure (transactions/s or Gbit/s).
    fn measure(&self, traffic: Traffic, from: Range<usize>, secs: u64) -> Result<Vec<f64>> {
        thread::scope(|s| {
            let runs: Vec<_> = from
                .map(|i| {
                    let ep = &self.endpoints[i];
                    s.spawn(move || -> Result<f64> {
                        let base = match traffic {
                            Traffic::Rr => SOCKPERF_PORT_BASE,
                            Traffic::Stream => IPERF_PORT_BASE,
                        };
                        let addr: SocketAddr = format!("{INTERNET_IP}:{}", base + i as u16)
                            .parse()
                            .context("the internet's address")?;
                        let flow = Flow {
                            client_ns: ep,
                            connect: addr,
                            server_ns: &self.internet,
                            listen: addr,
                        };
                        match traffic {
                            Traffic::Rr => workloads::sockperf_rr(&flow, secs),
                            Traffic::Stream => workloads::iperf_tcp(&flow, 1, secs),
                        }
                    })
                })
                .collect();
            runs.into_iter()
                .map(|run| run.join().map_err(|_| anyhow!("a client panicked"))?)
                .collect()
        })
    }

    /// `measure`, taken again (up to `RETRIES` times) when a client fails
    /// or an endpoint reads zero; `notes` says which.
    fn sample(
        &self,
        traffic: Traffic,
        from: Range<usize>,
        secs: u64,
        notes: &mut Vec<String>,
    ) -> Result<Vec<f64>> {
        let mut why = anyhow!("not run");
        for _ in 0..=RETRIES {
            match self.measure(traffic, from.clone(), secs) {
                Ok(v) if v.iter().all(|x| x.is_finite() && *x > 0.0) => return Ok(v),
                Ok(v) => why = anyhow!("an endpoint read zero: {v:?}"),
                Err(e) => why = e,
            }
            notes.push(format!("{}: taken again ({why:#})", self.shape.name));
        }
        Err(why.context(format!("{}: failed {} times", self.shape.name, RETRIES + 1)))
    }

    /// ns per program run over one request/response sample from endpoints
    /// `from` (the kernel's run-time stats, which must be on); fails unless
    /// the endpoint and uplink programs of each of their networks ran (the
    /// NAT path was taken).
    fn costs(&self, from: Range<usize>, secs: u64) -> Result<Costs> {
        let before = self.snapshots()?;
        self.measure(Traffic::Rr, from.clone(), secs)?;
        let after = self.snapshots()?;
        let ran: Vec<Vec<ProgramCost>> =
            after.iter().zip(&before).map(|(a, b)| a.since(b)).collect();
        for i in from {
            let net = i % self.networks.len();
            let (name, costs) = (&self.networks[net], &ran[net]);
            for program in ["tc_from_endpoint", "tc_from_uplink"] {
                ensure!(
                    costs.iter().any(|c| c.program == program),
                    "{program} of network {name} did not run: {costs:?}"
                );
            }
        }
        let endpoint = Totals::of(&ran, "tc_from_endpoint");
        let uplink = Totals::of(&ran, "tc_from_uplink");
        Ok(Costs {
            endpoint_per_run: endpoint.ns / endpoint.runs,
            uplink_per_run: uplink.ns / uplink.runs,
            // The chain's first program sees every packet that reaches it.
            uplink_per_packet: uplink.ns / uplink.most_runs,
            uplink_runs_per_packet: uplink.runs / uplink.most_runs,
        })
    }

    fn snapshots(&self) -> Result<Vec<Snapshot>> {
        self.networks
            .iter()
            .map(|name| Snapshot::take(name))
            .collect()
    }

    /// `ECHO_FLOWS` UDP flows from every endpoint at once, from the same
    /// source ports, to an echo server in the internet namespace.
    fn misdelivery(&self) -> Result<Deliveries> {
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            let (ready, listening) = mpsc::channel();
            let echo = s.spawn(|| echo(&self.internet, &stop, ready));
            listening
                .recv()
                .map_err(|_| anyhow!("the echo server ended before listening"))??;
            let senders: Vec<_> = self
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, ep)| s.spawn(move || flows_from(ep, i)))
                .collect();
            let outcomes: Result<Vec<Deliveries>> = senders
                .into_iter()
                .map(|h| h.join().map_err(|_| anyhow!("a sender panicked"))?)
                .collect();
            stop.store(true, Ordering::Relaxed);
            echo.join()
                .map_err(|_| anyhow!("the echo server panicked"))??;
            let mut all = Deliveries::default();
            for one in outcomes? {
                all.add(&one);
            }
            Ok(all)
        })
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        for name in &self.networks {
            let _ = succeeds(&mut command(
                &self.netfwd.display().to_string(),
                &["--netns", &self.host, "down", "--name", name],
            ));
        }
        for ns in self.endpoints.iter().chain([&self.internet, &self.host]) {
            let _ = succeeds(&mut command("ip", &["netns", "del", ns]));
        }
        if let Some(dir) = &self.cgroup {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// What a program cost over a sample, summed over the networks.
struct Totals {
    ns: f64,
    runs: f64,
    /// The most runs of one network's program.
    most_runs: f64,
}

impl Totals {
    fn of(ran: &[Vec<ProgramCost>], program: &str) -> Totals {
        let mut t = Totals {
            ns: 0.0,
            runs: 0.0,
            most_runs: 0.0,
        };
        for c in ran.iter().flatten().filter(|c| c.program == program) {
            t.ns += c.ns_per_run * c.runs as f64;
            t.runs += c.runs as f64;
            t.most_runs = t.most_runs.max(c.runs as f64);
        }
        t
    }
}

/// The programs' costs over one sample, in ns, over every network.
struct Costs {
    endpoint_per_run: f64,
    uplink_per_run: f64,
    /// Every uplink program's runs for one packet arriving on the uplink.
    uplink_per_packet: f64,
    /// How many uplink programs one arriving packet runs (1 with one
    /// network).
    uplink_runs_per_packet: f64,
}

/// What misdelivery checks found.
#[derive(Default)]
struct Deliveries {
    flows: usize,
    /// Flows answered with their own payload.
    answered: usize,
    /// Replies carrying another flow's payload.
    foreign: usize,
}

impl Deliveries {
    fn add(&mut self, other: &Deliveries) {
        self.flows += other.flows;
        self.answered += other.answered;
        self.foreign += other.foreign;
    }
}

/// Echoes every UDP datagram on `ECHO_PORT` in namespace `ns` back to its
/// sender until `stop` (or twice `ECHO_DEADLINE`); `ready` says when it
/// listens.
fn echo(ns: &str, stop: &AtomicBool, ready: mpsc::Sender<Result<()>>) -> Result<()> {
    let socket = workloads::enter(ns).and_then(|()| {
        let socket = UdpSocket::bind((INTERNET_IP, ECHO_PORT)).context("binding the echo")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        Ok(socket)
    });
    let socket = match socket {
        Ok(socket) => {
            let _ = ready.send(Ok(()));
            socket
        }
        Err(e) => {
            let _ = ready.send(Err(anyhow!("{e:#}")));
            return Err(e);
        }
    };
    let deadline = Instant::now() + 2 * ECHO_DEADLINE;
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                socket.send_to(&buf[..n], from)?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("the echo's receive"),
        }
    }
    Ok(())
}

/// `ECHO_FLOWS` UDP flows from endpoint `ns` (the `index`th), each with the
/// payload `<index>-<flow>`, resent until answered or `ECHO_DEADLINE`.
fn flows_from(ns: &str, index: usize) -> Result<Deliveries> {
    workloads::enter(ns)?;
    let sockets = (0..ECHO_FLOWS)
        .map(|i| {
            let s = UdpSocket::bind(("0.0.0.0", ECHO_FIRST_SOURCE_PORT + i))?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("binding the flows' sockets in {ns}"))?;
    let payload = |flow: usize| format!("{index}-{flow}");
    let mut answered = vec![false; sockets.len()];
    let mut out = Deliveries {
        flows: sockets.len(),
        ..Deliveries::default()
    };
    let started = Instant::now();
    let mut last_send: Option<Instant> = None;
    let mut buf = [0u8; 256];
    while out.answered < sockets.len() && started.elapsed() < ECHO_DEADLINE {
        if last_send.is_none_or(|t| t.elapsed() >= ECHO_RESEND) {
            for (flow, s) in sockets.iter().enumerate().filter(|(f, _)| !answered[*f]) {
                s.send_to(payload(flow).as_bytes(), (INTERNET_IP, ECHO_PORT))?;
            }
            last_send = Some(Instant::now());
        }
        for (flow, s) in sockets.iter().enumerate() {
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                if buf[..n] == *payload(flow).as_bytes() {
                    if !answered[flow] {
                        answered[flow] = true;
                        out.answered += 1;
                    }
                } else {
                    out.foreign += 1;
                }
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok(out)
}

fn report(
    figures: &[[Vec<f64>; 2]],
    deliveries: &[Deliveries; 2],
    table: &str,
    notes: &[String],
    rounds: usize,
    secs: u64,
) -> String {
    let mut md = format!(
        "\nMany networks on one uplink: four netfwd networks (TC) masqueraded behind one uplink \
         against one network, {ENDPOINTS} endpoints on each (one per network, or all in the \
         one), talking to the internet namespace all at once or one alone. The four share one \
         NAT table (`{table}`) and put four uplink programs in the uplink's TCX chain. \
         {rounds} paired rounds of {secs} s each (the two setups in a new random order for \
         each workload of each round; the programs' costs from the kernel's run-time stats, \
         on only while they are read, over request/response samples of their own); ratio of each round's pair, median (min–max), each \
         setup's median beside it.\n\n\
         | measure | unit | four networks | one network | four ÷ one |\n|---|---|---|---|---|\n"
    );
    for (row, (name, unit)) in rows().into_iter().enumerate() {
        let mut four: Vec<f64> = figures.iter().map(|f| f[0][row]).collect();
        let mut one: Vec<f64> = figures.iter().map(|f| f[1][row]).collect();
        let mut ratios: Vec<f64> = four.iter().zip(&one).map(|(a, b)| a / b).collect();
        let ratio = median(&mut ratios);
        let _ = writeln!(
            md,
            "| {name} | {unit} | {:.2} | {:.2} | **{ratio:.2}×** ({:.2}–{:.2}) |",
            median(&mut four),
            median(&mut one),
            ratios.first().copied().unwrap_or(f64::NAN),
            ratios.last().copied().unwrap_or(f64::NAN),
        );
    }
    for (shape, d) in SHAPES.iter().zip(deliveries) {
        let _ = write!(
            md,
            "\nMisdelivery, {}: {} UDP flows in {rounds} checks ({ECHO_FLOWS} an endpoint a \
             round, the same source ports on every endpoint, to an echo behind the uplink), \
             {} answered with their own payload, ",
            shape.name, d.flows, d.answered,
        );
        md.push_str(&if d.foreign == 0 {
            "none with another's: each endpoint received only its own replies.\n".to_owned()
        } else {
            format!(
                "**{} replies carrying another flow's payload: MISDELIVERED**.\n",
                d.foreign
            )
        });
    }
    if !notes.is_empty() {
        md.push_str("\nSamples taken again:\n\n");
        for n in notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}
