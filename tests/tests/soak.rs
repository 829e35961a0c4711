//! The soak: every endpoint talks TCP, UDP and ICMP to every other and to
//! the internet, short flows and one long-lived stream each, for
//! `NETFWD_SOAK_SECS` seconds (default 120), every payload checked; the NAT
//! table and the daemon's memory are sampled meanwhile. Run by `cargo xtask
//! soak --minutes N` and, for 30 s a mode, by `cargo xtask test`; ignored
//! by a plain `cargo test`.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use std::{
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use netfwd_tests::{
    Daemon, NetConfig, Sandbox, enter_netns,
    internet::{
        ECHO_PORT, EchoServer, EchoStream, INTERNET_IP, Internet, UPLINK, tcp_echo, udp_echo,
    },
    payload,
};

const SUBNET: &str = "10.99.0.0/24";
const ENDPOINTS: usize = 4;
/// The longest NAT timeout the soak's flows meet: UDP's and ICMP's, set
/// below their defaults so that the table levels off early in the soak.
const LONGEST_TIMEOUT_SECS: u64 = 10;
/// The daemon's pace (it reports what the kernel's sweep removed).
const GC_INTERVAL_SECS: u64 = 2;
/// The longest pause between two of the kernel's sweeps of the table.
const SWEEP_PAUSE_SECS: u64 = 5;
/// Pause between one worker's operations: keeps TIME_WAIT and NAT ports far
/// from their limits, so any failure is the datapath's.
const PACE: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Tally {
    flows: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn record(&self, what: &str, result: anyhow::Result<usize>) {
        match result {
            Ok(bytes) => {
                self.flows.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.first_error
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| format!("{what}: {e:#}"));
            }
        }
    }
}

fn ip_of(i: usize) -> String {
    format!("10.99.0.{}", i + 2)
}

/// One endpoint's short flows until `deadline`: TCP and UDP to the internet
/// and to the next endpoint, a ping now and then.
fn worker(ns: String, i: usize, deadline: Instant, tally: Arc<Tally>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        enter_netns(&ns).unwrap();
        let peer = ip_of((i + 1) % ENDPOINTS);
        let mut n = 0usize;
        while Instant::now() < deadline && n < 1_000_000 {
            let size = 1 + (n * 7919 + i * 104_729) % 1400;
            let data = payload(&format!("{i}-{n}"), size);
            let sport = 30000 + (i * 5000 + n % 5000) as u16;
            let result = match n % 5 {
                0 => (
                    "tcp internet",
                    tcp_echo(INTERNET_IP, ECHO_PORT, None, &data),
                ),
                1 => (
                    "udp internet",
                    udp_echo(INTERNET_IP, ECHO_PORT, sport, &data),
                ),
                2 => ("tcp endpoint", tcp_echo(&peer, ECHO_PORT, None, &data)),
                3 => ("udp endpoint", udp_echo(&peer, ECHO_PORT, sport, &data)),
                _ => (
                    "icmp",
                    ping(if n.is_multiple_of(2) {
                        INTERNET_IP
                    } else {
                        &peer
                    }),
                ),
            };
            tally.record(result.0, result.1.map(|_| size));
            n += 1;
            thread::sleep(PACE);
        }
    })
}

fn ping(ip: &str) -> anyhow::Result<String> {
    // A child starts in the namespace of the thread that forks it.
    let out = Command::new("ping")
        .args(["-n", "-q", "-c", "1", "-W", "2", ip])
        .output()?;
    anyhow::ensure!(out.status.success(), "ping {ip} failed");
    Ok(String::new())
}

/// The daemon's resident memory; a read that fails fails the soak.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading the daemon's memory: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in the daemon's status:\n{status}"))
}

#[test]
#[ignore = "long: run by `cargo xtask soak` and `cargo xtask test`"]
fn soak() {
    let secs: u64 = std::env::var("NETFWD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let sb = Sandbox::new("soak");
    let _internet = Internet::new(&sb);
    let net = sb.net_name();
    let eps: Vec<String> = (0..ENDPOINTS).map(|i| sb.ns(&format!("e{i}"))).collect();
    let cfg = eps.iter().enumerate().fold(
        NetConfig::new(&net, SUBNET, None)
            .uplink(UPLINK)
            .tables(&format!(
                "[nat.timeouts]\nudp = {LONGEST_TIMEOUT_SECS}\nicmp = {LONGEST_TIMEOUT_SECS}\n\
                 tcp_closing = 5\n"
            )),
        |cfg, (i, ep)| cfg.endpoint(ep, Some(&ip_of(i))),
    );
    let config = sb.write_config(&cfg.to_toml());
    let gc_interval = GC_INTERVAL_SECS.to_string();
    let mut daemon = Daemon::start(&sb, &config, &["--gc-interval", &gc_interval]);
    let pid = daemon.pid().unwrap();
    let _servers: Vec<EchoServer> = eps
        .iter()
        .enumerate()
        .map(|(i, ep)| EchoServer::start(ep, &ip_of(i), ECHO_PORT))
        .collect();

    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let tally = Arc::new(Tally::default());
    let mut streams: Vec<EchoStream> = eps.iter().map(|ep| EchoStream::start(ep)).collect();
    let workers: Vec<_> = eps
        .iter()
        .enumerate()
        .map(|(i, ep)| worker(ep.clone(), i, deadline, tally.clone()))
        .collect();

    let mut samples = Vec::new();
    while Instant::now() < deadline {
        thread::sleep(
            Duration::from_secs(5).min(deadline.saturating_duration_since(Instant::now())),
        );
        let status = sb.network_status(&net);
        let flows = status["nat"]["flows"].as_u64().unwrap();
        let max = status["nat"]["max_flows"].as_u64().unwrap();
        samples.push((start.elapsed().as_secs(), flows, max, rss_kib(pid)));
        // Every long stream still moving: a stall or an error fails here.
        for s in &mut streams {
            s.advances();
        }
    }
    for w in workers {
        w.join().unwrap();
    }
    let mut chunks = 0;
    for s in streams {
        match s.stop() {
            Ok(n) => chunks += n,
            Err(e) => tally.record("long stream", Err(e)),
        }
    }
    assert!(daemon.running(), "the daemon died");
    daemon.stop();

    let errors = tally.errors.load(Ordering::Relaxed);
    println!(
        "soak ({}): {secs} s, {} endpoints: {} short flows, {} KiB, {} long-stream chunks, {errors} errors",
        netfwd_tests::test_mode(),
        ENDPOINTS,
        tally.flows.load(Ordering::Relaxed),
        tally.bytes.load(Ordering::Relaxed) / 1024,
        chunks
    );
    println!("  t(s)  NAT flows / capacity  daemon RSS (KiB)");
    for (t, flows, max, rss) in &samples {
        println!("  {t:>4}  {flows:>9} / {max:<9}  {rss}");
    }
    assert_eq!(
        errors,
        0,
        "first error: {:?}",
        tally.first_error.lock().unwrap()
    );
    // The table levels off as expired flows make way for the flows made:
    // past the ramp (the longest timeout and a sweep), the last sample is
    // at most 1.5 times the highest of the first half.
    let ramp = LONGEST_TIMEOUT_SECS + SWEEP_PAUSE_SECS;
    let flows: Vec<u64> = samples.iter().filter(|s| s.0 > ramp).map(|s| s.1).collect();
    assert!(
        flows.len() >= 2,
        "too short a soak to see a plateau past the {ramp}-s ramp: {samples:?}"
    );
    let first_half_peak = flows[..flows.len() / 2].iter().max().copied().unwrap_or(0);
    let last = flows[flows.len() - 1];
    assert!(
        last * 2 <= first_half_peak * 3,
        "the NAT table kept growing: {samples:?}"
    );
    let rss: Vec<u64> = samples.iter().map(|s| s.3).collect();
    assert!(
        rss[rss.len() - 1] <= rss[0] + 4096,
        "daemon memory grew: {rss:?}"
    );
}
