//! The workloads, each one measurement of one setup: throughput and packet
//! rates from iperf3, request/response from sockperf's TCP ping-pong (over
//! IPv6, a ping-pong of our own: sockperf 3.7 has no IPv6), new
//! connections per second from a small client of our own, and the CPU the
//! whole machine spent meanwhile (from /proc/stat).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};

use super::setups::{
    BRIDGE_MAX_PORTS, HOST_PORT_BASE, INTERNET_IP, INTERNET_IP6, Kind, LIMIT_CLIENT_ROUTED_IP,
    LIMIT_CLIENT_ROUTED_IP6, PUBLISHED, SERVER_IP, SERVER_IP6, Setup, TARGET_PORT_BASE, UPLINK_IP,
    UPLINK_IP6,
};
use crate::cmd::{command, output};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    TcpStream1,
    TcpStream4,
    TcpRr,
    Udp64,
    NatTcpStream,
    NatTcpRr,
    NatConnRate,
    /// Request/response on the NAT path while the NAT holds 100,000 other
    /// flows: what a full table costs a lookup.
    NatRrFullTable,
    /// New connections from the internet to the `n`th of 1000 published
    /// ports (the 10th, 100th and 1000th): iptables walks its DNAT and
    /// FORWARD rules in order, netfwd looks one hash up.
    Published(u16),
    /// The same over IPv6, to the uplink's IPv6 address: the baseline's
    /// ip6tables rules (Docker's for a published port of an IPv6 network),
    /// netfwd's IPv6 published ports, the limit's plain IPv6 routing.
    PublishedV6(u16),
    /// 64-byte UDP frames from a raw generator (trafgen, AF_PACKET): the
    /// datapath's packet rate, no socket sender's syscalls in the way.
    Udp64Raw,
    /// The east-west rows over IPv6 (the same endpoints, dual-stack).
    /// sockperf 3.7 speaks no IPv6: request/response is a ping-pong of our
    /// own (`ping_pong`), run on every setup alike.
    TcpStream1V6,
    TcpRrV6,
    Udp64V6,
    /// The NAT path over IPv6 (NAT66; the baseline's ip6tables MASQUERADE,
    /// the limit's plain routing), request/response by the same ping-pong.
    NatTcpStreamV6,
    NatTcpRrV6,
    /// Request/response and raw packet rates between the same two endpoints
    /// with this many endpoints on the network (how cost grows with work).
    ScaleRr(u32),
    ScalePps(u32),
    /// Request/response from the internet to the last of this many
    /// published ports (the baseline's rules walked to their end on the
    /// connection's first packet).
    ScalePublishedRr(u16),
}

/// The endpoint counts of the scale runs.
pub const SCALE_FULL: [u32; 3] = [10, 100, 1000];
pub const SCALE_QUICK: [u32; 1] = [10];

impl Workload {
    /// Run on the setups as built.
    pub const BASE: [Workload; 18] = [
        Workload::TcpStream1,
        Workload::TcpStream4,
        Workload::TcpRr,
        Workload::Udp64,
        Workload::Udp64Raw,
        Workload::TcpStream1V6,
        Workload::TcpRrV6,
        Workload::Udp64V6,
        Workload::NatTcpStream,
        Workload::NatTcpRr,
        Workload::NatConnRate,
        Workload::NatRrFullTable,
        Workload::NatTcpStreamV6,
        Workload::NatTcpRrV6,
        Workload::Published(10),
        Workload::Published(100),
        Workload::Published(PUBLISHED),
        Workload::PublishedV6(PUBLISHED),
    ];

    /// Every workload a run with these scale steps reports, in order.
    pub fn all(scale: &[u32]) -> Vec<Workload> {
        let mut all = Workload::BASE.to_vec();
        for n in scale {
            all.extend(Workload::scaled(*n));
        }
        all
    }

    /// Run once the setups have `n` endpoints.
    pub fn scaled(n: u32) -> [Workload; 2] {
        [Workload::ScaleRr(n), Workload::ScalePps(n)]
    }

    pub fn name(self) -> String {
        match self {
            Workload::ScaleRr(n) => {
                return format!("endpoint↔endpoint TCP request/response, {n} endpoints");
            }
            Workload::ScalePps(n) => {
                return format!("endpoint↔endpoint 64-byte UDP (trafgen), {n} endpoints");
            }
            Workload::ScalePublishedRr(n) => {
                return format!("internet→published port {n} of {n}, TCP request/response");
            }
            Workload::Published(n) => {
                return format!("internet→published port {n} of {PUBLISHED}, new connections");
            }
            Workload::PublishedV6(n) => {
                return format!(
                    "internet→published port {n} of {PUBLISHED} over IPv6, new connections"
                );
            }
            _ => {}
        }
        match self {
            Workload::TcpStream1 => "endpoint↔endpoint TCP, 1 stream",
            Workload::TcpStream4 => "endpoint↔endpoint TCP, 4 streams",
            Workload::TcpRr => "endpoint↔endpoint TCP request/response",
            Workload::Udp64 => "endpoint↔endpoint 64-byte UDP",
            Workload::NatTcpStream => "endpoint→internet TCP (NAT path)",
            Workload::NatTcpRr => "endpoint→internet TCP request/response",
            Workload::NatConnRate => "endpoint→internet new connections",
            Workload::NatRrFullTable => "endpoint→internet request/response, 100k flows held",
            Workload::Udp64Raw => "endpoint↔endpoint 64-byte UDP (trafgen)",
            Workload::TcpStream1V6 => "endpoint↔endpoint IPv6 TCP, 1 stream",
            Workload::TcpRrV6 => "endpoint↔endpoint IPv6 TCP request/response (ping-pong)",
            Workload::Udp64V6 => "endpoint↔endpoint IPv6 64-byte UDP",
            Workload::NatTcpStreamV6 => "endpoint→internet IPv6 TCP (NAT66 path)",
            Workload::NatTcpRrV6 => "endpoint→internet IPv6 TCP request/response (ping-pong)",
            Workload::ScaleRr(_)
            | Workload::ScalePps(_)
            | Workload::ScalePublishedRr(_)
            | Workload::Published(_)
            | Workload::PublishedV6(_) => unreachable!("named above"),
        }
        .to_owned()
    }

    /// Endpoint to endpoint, on the host: no NAT, no uplink.
    pub fn east_west(self) -> bool {
        matches!(
            self,
            Workload::TcpStream1
                | Workload::TcpStream4
                | Workload::TcpRr
                | Workload::Udp64
                | Workload::Udp64Raw
                | Workload::TcpStream1V6
                | Workload::TcpRrV6
                | Workload::Udp64V6
                | Workload::ScaleRr(_)
                | Workload::ScalePps(_)
        )
    }

    /// Between the endpoints' IPv6 addresses.
    fn ipv6(self) -> bool {
        matches!(
            self,
            Workload::TcpStream1V6 | Workload::TcpRrV6 | Workload::Udp64V6
        )
    }

    /// Whether setup `kind` takes part: the baseline without port rules is
    /// there for the east-west rows alone (it publishes nothing), and no
    /// baseline has more endpoints than a bridge has ports.
    pub fn runs_on(self, kind: Kind) -> bool {
        let baseline = matches!(kind, Kind::Baseline | Kind::BaselineNoPorts);
        match self {
            Workload::ScaleRr(n) | Workload::ScalePps(n) if n > BRIDGE_MAX_PORTS => !baseline,
            _ => kind != Kind::BaselineNoPorts || self.east_west(),
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Workload::TcpStream1
            | Workload::TcpStream4
            | Workload::NatTcpStream
            | Workload::TcpStream1V6
            | Workload::NatTcpStreamV6 => "Gbit/s",
            Workload::TcpRr
            | Workload::TcpRrV6
            | Workload::NatTcpRr
            | Workload::NatTcpRrV6
            | Workload::NatRrFullTable
            | Workload::ScaleRr(_)
            | Workload::ScalePublishedRr(_) => "transactions/s",
            Workload::Udp64 | Workload::Udp64Raw | Workload::Udp64V6 | Workload::ScalePps(_) => {
                "kpps received"
            }
            Workload::NatConnRate | Workload::Published(_) | Workload::PublishedV6(_) => {
                "connections/s"
            }
        }
    }

    /// The CPU cost unit this workload is normalised by.
    pub fn cost_unit(self) -> &'static str {
        match self {
            Workload::TcpStream1
            | Workload::TcpStream4
            | Workload::NatTcpStream
            | Workload::TcpStream1V6
            | Workload::NatTcpStreamV6 => "CPU-s per 10 Gbit",
            Workload::Udp64 | Workload::Udp64Raw | Workload::Udp64V6 | Workload::ScalePps(_) => {
                "CPU-s per Mpkt"
            }
            _ => "CPU-µs per transaction",
        }
    }
}

/// One measurement.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub value: f64,
    /// Machine CPU-seconds used per `cost_unit`.
    pub cost: f64,
}

const PORT: u16 = 5201;

/// Who talks to whom in a workload: the client's namespace and the address
/// it connects to; the server's namespace and the address it listens on
/// (they differ where a NAT sits between).
pub struct Path<'a> {
    pub client_ns: &'a str,
    pub connect: SocketAddr,
    pub server_ns: &'a str,
    pub listen: SocketAddr,
}

fn path(w: Workload, setup: &Setup) -> Result<Path<'_>> {
    let same = |ns_c, ns_s, ip: &str, port: u16| -> Result<Path<'_>> {
        let addr = SocketAddr::new(ip.parse()?, port);
        Ok(Path {
            client_ns: ns_c,
            connect: addr,
            server_ns: ns_s,
            listen: addr,
        })
    };
    // One port per kind of server: the last run's may linger a moment.
    let port = match w {
        Workload::TcpRr
        | Workload::TcpRrV6
        | Workload::NatTcpRr
        | Workload::NatTcpRrV6
        | Workload::NatRrFullTable
        | Workload::ScaleRr(_) => PORT + 1,
        Workload::NatConnRate => PORT + 2,
        _ => PORT,
    };
    if w.ipv6() {
        return same(&setup.client, &setup.server, SERVER_IP6, port);
    }
    if w.east_west() {
        return same(&setup.client, &setup.server, SERVER_IP, port);
    }
    match w {
        Workload::NatTcpStreamV6 | Workload::NatTcpRrV6 => {
            same(&setup.client, &setup.internet, INTERNET_IP6, port)
        }
        Workload::Published(nth) | Workload::PublishedV6(nth) | Workload::ScalePublishedRr(nth) => {
            let index = nth - 1;
            let target = TARGET_PORT_BASE + index;
            let (uplink, server, limit_client) = match w {
                Workload::PublishedV6(_) => (UPLINK_IP6, SERVER_IP6, LIMIT_CLIENT_ROUTED_IP6),
                _ => (UPLINK_IP, SERVER_IP, LIMIT_CLIENT_ROUTED_IP),
            };
            if setup.kind == Kind::Limit {
                // Plain routing to the endpoint itself: no translation at all.
                return same(&setup.internet, &setup.client, limit_client, target);
            }
            Ok(Path {
                client_ns: &setup.internet,
                connect: SocketAddr::new(uplink.parse()?, HOST_PORT_BASE + index),
                server_ns: &setup.server,
                listen: SocketAddr::new(server.parse()?, target),
            })
        }
        // The rest leave through the uplink, translated.
        _ => same(&setup.client, &setup.internet, INTERNET_IP, port),
    }
}

pub fn measure(w: Workload, setup: &Setup, secs: u64) -> Result<Sample> {
    let p = path(w, setup)?;
    let cpu = CpuMeter::start()?;
    let value = match w {
        Workload::TcpStream1
        | Workload::NatTcpStream
        | Workload::TcpStream1V6
        | Workload::NatTcpStreamV6 => iperf_tcp(&p, 1, secs)?,
        Workload::TcpStream4 => iperf_tcp(&p, 4, secs)?,
        Workload::Udp64 | Workload::Udp64V6 => iperf_udp64(&p, secs)?,
        Workload::TcpRrV6 | Workload::NatTcpRrV6 => ping_pong(&p, secs)?,
        Workload::TcpRr
        | Workload::NatTcpRr
        | Workload::ScaleRr(_)
        | Workload::ScalePublishedRr(_) => sockperf_rr(&p, secs)?,
        Workload::Udp64Raw | Workload::ScalePps(_) => trafgen_udp64(&p, secs)?,
        Workload::NatRrFullTable => {
            fill_nat_table(&p)?;
            sockperf_rr(&p, secs)?
        }
        _ => conn_rate(&p, secs)?,
    };
    let cpu_secs = cpu.stop()?;
    let work = match w {
        Workload::TcpStream1
        | Workload::TcpStream4
        | Workload::NatTcpStream
        | Workload::TcpStream1V6
        | Workload::NatTcpStreamV6 => value * secs as f64 / 10.0,
        Workload::Udp64 | Workload::Udp64Raw | Workload::Udp64V6 | Workload::ScalePps(_) => {
            value * 1000.0 * secs as f64 / 1e6
        }
        _ => value * secs as f64 / 1e6,
    };
    Ok(Sample {
        value,
        cost: if work > 0.0 {
            cpu_secs / work
        } else {
            f64::NAN
        },
    })
}

fn in_ns<'a>(ns: &'a str, args: &[&'a str]) -> Vec<String> {
    let mut full = vec![format!("--net=/run/netns/{ns}")];
    full.extend(args.iter().map(|s| s.to_string()));
    full
}

/// A server process in `ns`, killed on drop.
struct Server(Child);

impl Server {
    fn start(ns: &str, args: &[&str]) -> Result<Server> {
        let child = command("nsenter", &in_ns(ns, args))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {args:?} in {ns}"))?;
        // Listening before the client connects.
        thread::sleep(Duration::from_millis(300));
        Ok(Server(child))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a client in `ns` with a time limit of `secs` plus a margin.
fn client(ns: &str, args: &[&str], secs: u64) -> Result<String> {
    let limit = (secs + 10).to_string();
    let mut full = vec!["timeout", limit.as_str(), "nsenter"];
    let ns_arg = format!("--net=/run/netns/{ns}");
    full.push(&ns_arg);
    full.extend_from_slice(args);
    output(&mut command(full[0], &full[1..]))
}

fn json_number(text: &str, path: &[&str]) -> Result<f64> {
    let mut v: serde_json::Value = serde_json::from_str(text).context("iperf3 printed no JSON")?;
    for key in path {
        v = v[*key].take();
    }
    v.as_f64()
        .ok_or_else(|| anyhow!("no {} in iperf3's output", path.join(".")))
}

pub fn iperf_tcp(p: &Path, streams: u32, secs: u64) -> Result<f64> {
    let (ip, port) = (p.connect.ip().to_string(), p.connect.port().to_string());
    let _server = Server::start(p.server_ns, &["iperf3", "-s", "-1", "-p", &port])?;
    let (t, n) = (secs.to_string(), streams.to_string());
    let out = client(
        p.client_ns,
        &["iperf3", "-c", &ip, "-p", &port, "-t", &t, "-P", &n, "-J"],
        secs,
    )?;
    Ok(json_number(&out, &["end", "sum_received", "bits_per_second"])? / 1e9)
}

/// 64-byte UDP datagrams as fast as one iperf3 sender can write them
/// (syscall-bound: it shows per-packet cost on the path, not the path's
/// ceiling); the rate the receiver got.
fn iperf_udp64(p: &Path, secs: u64) -> Result<f64> {
    let (ip, port) = (p.connect.ip().to_string(), p.connect.port().to_string());
    let _server = Server::start(p.server_ns, &["iperf3", "-s", "-1", "-p", &port])?;
    let t = secs.to_string();
    let out = client(
        p.client_ns,
        &[
            "iperf3", "-c", &ip, "-p", &port, "-u", "-l", "64", "-b", "0", "-t", &t, "-J",
        ],
        secs,
    )?;
    let packets = json_number(&out, &["end", "sum", "packets"])?;
    let lost = json_number(&out, &["end", "sum", "lost_packets"])?;
    let seconds = json_number(&out, &["end", "sum", "seconds"])?;
    Ok((packets - lost) / seconds / 1000.0)
}

/// 64-byte frames (60 on the wire before the FCS) of UDP to the server,
/// written by trafgen straight to the client's `eth0` (AF_PACKET, no
/// socket, no syscall per packet) for `secs`; the rate the server's `eth0`
/// received. The frames go to the server's MAC: the next hop on a bridge,
/// netfwd and the bare veth alike.
fn trafgen_udp64(p: &Path, secs: u64) -> Result<f64> {
    let client_ip = client_address(p.client_ns)?;
    let Blast {
        sent,
        received,
        elapsed,
    } = trafgen(p, &client_ip, secs)?;
    // A blast beyond what the receiver takes loses frames at its queue by
    // design; none at all arriving is a broken path.
    ensure!(
        sent > 0 && received > 0,
        "trafgen sent {sent} frames and the server received {received}"
    );
    Ok(received as f64 / elapsed / 1000.0)
}

/// trafgen's 64-byte UDP from the client to the server (as
/// `Workload::Udp64Raw`) with a source address no endpoint holds, for
/// `secs`: every frame a drop (`ip_spoofed`) in netfwd's endpoint program.
pub fn spoofed_flood(setup: &Setup, secs: u64) -> Result<()> {
    let p = path(Workload::Udp64Raw, setup)?;
    let mut forged = client_address(p.client_ns)?;
    // The client's address + 100 in its last octet: no endpoint of the
    // bench's network (which has a handful) holds it.
    if let Some(last) = forged.last_mut() {
        *last = last.wrapping_add(100);
    }
    let Blast { sent, .. } = trafgen(&p, &forged, secs)?;
    ensure!(sent > 0, "trafgen sent no frame");
    Ok(())
}

/// What one trafgen run did.
struct Blast {
    sent: u64,
    received: u64,
    elapsed: f64,
}

/// 64-byte UDP frames from `source` to the server, written by trafgen to
/// the client's `eth0` for `secs`: frames sent and received, and the time.
fn trafgen(p: &Path, source: &[u8], secs: u64) -> Result<Blast> {
    let mac = |ns: &str| -> Result<Vec<u8>> {
        let out = output(&mut command(
            "nsenter",
            &in_ns(ns, &["ip", "-j", "link", "show", "eth0"]),
        ))?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        let text = v[0]["address"].as_str().context("no MAC for eth0")?;
        text.split(':')
            .map(|b| u8::from_str_radix(b, 16).context("bad MAC"))
            .collect()
    };
    let octets = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(_) => Vec::new(),
    };
    let mut frame: Vec<String> = Vec::new();
    let mut bytes = |b: &[u8]| frame.extend(b.iter().map(|x| format!("{x:#04x}")));
    bytes(&mac(p.server_ns)?);
    bytes(&mac(p.client_ns)?);
    bytes(&[0x08, 0x00, 0x45, 0x00, 0x00, 46, 0, 0, 0x40, 0x00, 64, 17]);
    let mut text = frame.join(", ");
    // The IP checksum over bytes 14..33, then addresses, UDP, payload.
    text.push_str(", csumip(14, 33), ");
    let mut rest: Vec<String> = Vec::new();
    let mut more = |b: &[u8]| rest.extend(b.iter().map(|x| format!("{x:#04x}")));
    more(source);
    more(&octets(p.connect.ip()));
    more(&[0x13, 0x88, 0x00, 0x09, 0x00, 26, 0x00, 0x00]);
    more(&[0u8; 18]);
    text.push_str(&rest.join(", "));
    let conf = std::env::temp_dir().join(format!("netfwd-bench-{}.trafgen", std::process::id()));
    std::fs::write(&conf, format!("{{ {text} }}\n"))?;
    let sent_before = eth0_packets(p.client_ns, "tx")?;
    let before = eth0_packets(p.server_ns, "rx")?;
    let start = Instant::now();
    let conf_arg = conf.display().to_string();
    let secs_arg = secs.to_string();
    // trafgen runs until stopped: SIGINT after `secs`.
    let status = command(
        "timeout",
        &[
            "-s",
            "INT",
            &secs_arg,
            "nsenter",
            &format!("--net=/run/netns/{}", p.client_ns),
            "trafgen",
            "--dev",
            "eth0",
            "--conf",
            &conf_arg,
            "--cpus",
            "1",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .status();
    let _ = std::fs::remove_file(&conf);
    // Stopped by `timeout` (124) is the run; any other end is trafgen's own
    // failure, which would read as a rate of nothing.
    let status = status.context("starting trafgen")?;
    ensure!(status.code() == Some(124), "trafgen ended early ({status})");
    let elapsed = start.elapsed().as_secs_f64();
    // Frames still in flight land within a moment.
    thread::sleep(Duration::from_millis(100));
    Ok(Blast {
        sent: eth0_packets(p.client_ns, "tx")? - sent_before,
        received: eth0_packets(p.server_ns, "rx")? - before,
        elapsed,
    })
}

/// Packets `eth0` of namespace `ns` has counted, `dir` "rx" or "tx".
fn eth0_packets(ns: &str, dir: &str) -> Result<u64> {
    let out = output(&mut command(
        "nsenter",
        &in_ns(ns, &["ip", "-s", "-j", "link", "show", "eth0"]),
    ))?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v[0]["stats64"][dir]["packets"]
        .as_u64()
        .with_context(|| format!("no {dir} packets for eth0 in {ns}"))
}

/// The client's address on `eth0`.
fn client_address(ns: &str) -> Result<Vec<u8>> {
    let out = output(&mut command(
        "nsenter",
        &in_ns(ns, &["ip", "-j", "-4", "addr", "show", "eth0"]),
    ))?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let ip: std::net::Ipv4Addr = v[0]["addr_info"][0]["local"]
        .as_str()
        .context("no address on eth0")?
        .parse()?;
    Ok(ip.octets().to_vec())
}

/// sockperf's TCP ping-pong; transactions per second from its average
/// one-way latency.
pub fn sockperf_rr(p: &Path, secs: u64) -> Result<f64> {
    let (listen_ip, listen_port) = (p.listen.ip().to_string(), p.listen.port().to_string());
    let _server = Server::start(
        p.server_ns,
        &[
            "sockperf",
            "sr",
            "--tcp",
            // A connection-rate row's server before it on the same port
            // leaves its closed connections in TIME_WAIT.
            "--uc-reuseaddr",
            "-i",
            &listen_ip,
            "-p",
            &listen_port,
        ],
    )?;
    let (ip, port) = (p.connect.ip().to_string(), p.connect.port().to_string());
    let t = secs.to_string();
    let out = client(
        p.client_ns,
        &["sockperf", "pp", "--tcp", "-i", &ip, "-p", &port, "-t", &t],
        secs,
    )?;
    let latency_us: f64 = out
        .split("avg-latency=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no avg-latency in sockperf's output: {out}"))?;
    Ok(1e6 / (2.0 * latency_us))
}

/// One byte each way over one TCP connection (no Nagle), as sockperf's
/// ping-pong does, for `secs`: round trips per second.
fn ping_pong(p: &Path, secs: u64) -> Result<f64> {
    let (connect, listen) = (p.connect, p.listen);
    let ns = p.server_ns.to_owned();
    let server = thread::spawn(move || -> Result<()> {
        enter(&ns)?;
        let listener = TcpListener::bind(listen)?;
        // A client that never comes must not hold the bench.
        listener.set_nonblocking(true)?;
        let give_up = Instant::now() + Duration::from_secs(5);
        let mut peer = loop {
            match listener.accept() {
                Ok((peer, _)) => break peer,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < give_up =>
                {
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e.into()),
            }
        };
        peer.set_nonblocking(false)?;
        peer.set_read_timeout(Some(Duration::from_secs(secs + 5)))?;
        peer.set_nodelay(true)?;
        let mut byte = [0u8];
        // Until the client closes: a read of nothing.
        while peer.read(&mut byte)? == 1 {
            peer.write_all(&byte)?;
        }
        Ok(())
    });
    thread::sleep(Duration::from_millis(200));
    let ns = p.client_ns.to_owned();
    let count = thread::spawn(move || -> Result<u64> {
        enter(&ns)?;
        let mut s = TcpStream::connect_timeout(&connect, Duration::from_secs(2))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut byte = [0u8];
        let mut n = 0u64;
        while Instant::now() < deadline {
            s.write_all(&byte)?;
            s.read_exact(&mut byte)?;
            n += 1;
        }
        Ok(n)
    })
    .join()
    .map_err(|_| anyhow!("client panicked"))?;
    server.join().map_err(|_| anyhow!("server panicked"))??;
    Ok(count? as f64 / secs as f64)
}

/// Short TCP connections for `secs`: connect, close with a reset (no
/// TIME_WAIT to run the client's ports dry), count.
fn conn_rate(p: &Path, secs: u64) -> Result<f64> {
    let (connect, listen) = (p.connect, p.listen);
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (ns, stop) = (p.server_ns.to_owned(), stop.clone());
        thread::spawn(move || -> Result<()> {
            enter(&ns)?;
            let listener = TcpListener::bind(listen)?;
            listener.set_nonblocking(true)?;
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_micros(50));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        })
    };
    thread::sleep(Duration::from_millis(200));
    let ns = p.client_ns.to_owned();
    let count = thread::spawn(move || -> Result<u64> {
        enter(&ns)?;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut n = 0u64;
        while Instant::now() < deadline {
            let s = TcpStream::connect_timeout(&connect, Duration::from_secs(2))?;
            let reset_on_close = nix::libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::Linger, &reset_on_close)?;
            n += 1;
        }
        Ok(n)
    })
    .join()
    .map_err(|_| anyhow!("client panicked"));
    stop.store(true, Ordering::Relaxed);
    server.join().map_err(|_| anyhow!("server panicked"))??;
    Ok(count?? as f64 / secs as f64)
}

/// Flows the 100k-flow workload opens: UDP from this many source ports…
const FILL_SPORTS: u16 = 4500;
/// …to this many destination ports (each within the NAT's 4536 uplink
/// ports per remote address and port).
const FILL_DPORTS: u16 = 23;

/// One UDP datagram per (source port, destination port): 103,500 flows the
/// NAT (or conntrack) must hold. Nothing listens; the ICMP errors coming
/// back are the host's or the endpoint's to drop.
fn fill_nat_table(p: &Path) -> Result<()> {
    open_udp_flows(p, FILL_DPORTS)
}

/// `FILL_SPORTS` × `dports` UDP flows from the NAT path's client, one
/// datagram each.
fn open_udp_flows(p: &Path, dports: u16) -> Result<()> {
    let (ns, ip) = (p.client_ns.to_owned(), p.connect.ip());
    thread::spawn(move || -> Result<()> {
        enter(&ns)?;
        for sport in 0..FILL_SPORTS {
            let socket = std::net::UdpSocket::bind(("0.0.0.0", 40000 + sport))?;
            for dport in 0..dports {
                socket.send_to(b"x", (ip, 10000 + dport))?;
            }
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow!("filler panicked"))?
}

/// Opens about `flows` UDP flows on `setup`'s NAT path (a multiple of
/// `FILL_SPORTS`, at most `flows`); returns how many it asked for.
pub fn open_nat_flows(setup: &Setup, flows: u32) -> Result<u32> {
    let dports = (flows / u32::from(FILL_SPORTS)) as u16;
    open_udp_flows(&path(Workload::NatTcpRr, setup)?, dports)?;
    Ok(u32::from(dports) * u32::from(FILL_SPORTS))
}

/// Request/response on `setup`'s NAT path for `secs` (transactions/s).
pub fn nat_rr(setup: &Setup, secs: u64) -> Result<f64> {
    sockperf_rr(&path(Workload::NatTcpRr, setup)?, secs)
}

/// What holding the 100k flows costs in memory.
pub struct HeldFlows {
    pub flows: u64,
    pub bytes: u64,
    /// The flows a preallocated table has room for (netfwd's), whose
    /// memory is charged whether held or not; `None` where memory goes
    /// per flow (conntrack's slab).
    pub preallocated_flows: Option<u64>,
}

/// What holding the 100k flows costs in memory, after filling the table
/// anew. The baseline's conntrack entries are counted with the kernel's
/// object size (`/proc/slabinfo`); netfwd's is what the kernel charges for
/// the preallocated hash map and the sweep's marks sized with it (their
/// `memlock`, as `bpftool map show` prints it). `None` where nothing new
/// is held.
pub fn nat_table_memory(setup: &Setup, netfwd: &std::path::Path) -> Result<Option<HeldFlows>> {
    let p = path(Workload::NatRrFullTable, setup)?;
    let host = format!("--net=/run/netns/{}", setup.host);
    match setup.kind {
        // The limit holds nothing; the baseline without port rules holds
        // what the baseline does.
        Kind::Limit | Kind::BaselineNoPorts => Ok(None),
        Kind::Baseline => {
            fill_nat_table(&p)?;
            let count: u64 = output(&mut command(
                "nsenter",
                &[
                    host.as_str(),
                    "cat",
                    "/proc/sys/net/netfilter/nf_conntrack_count",
                ],
            ))?
            .trim()
            .parse()?;
            let slabinfo = std::fs::read_to_string("/proc/slabinfo")?;
            let objsize: u64 = slabinfo
                .lines()
                .find(|l| l.starts_with("nf_conntrack "))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
                .context("no nf_conntrack in /proc/slabinfo")?;
            Ok(Some(HeldFlows {
                flows: count,
                bytes: count * objsize,
                preallocated_flows: None,
            }))
        }
        Kind::NetfwdTc | Kind::NetfwdXdp => {
            fill_nat_table(&p)?;
            let netns = setup.host.as_str();
            let status = output(&mut command(
                &netfwd.display().to_string(),
                &["--netns", netns, "status", "--json"],
            ))?;
            let v: serde_json::Value = serde_json::from_str(&status)?;
            // By name: `status` lists the orphans of any namespace too.
            let name = setup.network().context("netfwd without a network")?;
            let nat = &v["networks"]
                .as_array()
                .and_then(|nets| nets.iter().find(|n| n["name"] == name))
                .with_context(|| format!("no network {name} in status"))?["nat"];
            let flows = nat["flows"].as_u64().context("no NAT flows in status")?;
            // The table, and the sweep's marks sized with it.
            let marks = setup
                .pinned_map("NAT_EXPIRED")
                .context("netfwd without pins")?;
            let bytes = nat["memory_bytes"]
                .as_u64()
                .context("no NAT memory in status")?
                + pinned_map_info(&marks)?["bytes_memlock"]
                    .as_u64()
                    .context("no bytes_memlock for NAT_EXPIRED")?;
            let capacity = nat["max_flows"]
                .as_u64()
                .context("no NAT capacity in status")?;
            Ok(Some(HeldFlows {
                flows,
                bytes,
                preallocated_flows: Some(capacity),
            }))
        }
    }
}

/// `bpftool map show` of the map pinned at `pin`, as JSON.
pub fn pinned_map_info(pin: &std::path::Path) -> Result<serde_json::Value> {
    let pin = pin.display().to_string();
    let info = output(&mut command(
        "bpftool",
        &["-j", "map", "show", "pinned", &pin],
    ))?;
    serde_json::from_str(&info).context("bpftool's JSON")
}

/// Moves the calling thread into network namespace `ns`.
pub fn enter(ns: &str) -> Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{ns}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering {ns}"))
}

/// CPU time the whole machine spent between start and stop (all cores,
/// excluding idle and iowait).
pub struct CpuMeter(u64);

fn busy_jiffies() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    if fields.len() < 5 {
        bail!("short cpu line in /proc/stat");
    }
    // user nice system idle iowait irq softirq steal …
    Ok(fields.iter().sum::<u64>() - fields[3] - fields[4])
}

impl CpuMeter {
    pub fn start() -> Result<CpuMeter> {
        Ok(CpuMeter(busy_jiffies()?))
    }

    pub fn stop(self) -> Result<f64> {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
        Ok((busy_jiffies()? - self.0) as f64 / ticks)
    }
}
