//! Networks masqueraded behind one uplink, as Docker's bridge networks all
//! share the host's: one NAT table per uplink, so an uplink port is never
//! handed to two networks at once and each reply reaches the endpoint whose
//! flow it answers.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use std::{
    net::UdpSocket,
    path::PathBuf,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::Result;
use netfwd_tests::{
    BPF_PIN_ROOT, NetConfig, Sandbox, enter_netns,
    internet::{ECHO_PORT, INTERNET_IP, Internet, UPLINK},
};

/// UDP flows each endpoint opens at once, all to the internet's echo server.
const FLOWS: u16 = 400;
/// Their source ports: the same in both networks.
const FIRST_PORT: u16 = 30000;
const DEADLINE: Duration = Duration::from_secs(15);
const RESEND_EVERY: Duration = Duration::from_millis(500);

/// What one endpoint got back: flows answered with their own payload, and
/// replies carrying another flow's payload (misdelivered).
#[derive(Debug, Default)]
struct Outcome {
    answered: usize,
    foreign: Vec<String>,
}

/// Opens `FLOWS` UDP flows from `ns` at once, each with payload
/// `<tag>-<i>`, resending the unanswered ones until all are answered or
/// the deadline passes.
fn flows_from(ns: String, tag: &'static str) -> JoinHandle<Result<Outcome>> {
    thread::spawn(move || {
        enter_netns(&ns)?;
        let sockets = (0..FLOWS)
            .map(|i| {
                let s = UdpSocket::bind(("0.0.0.0", FIRST_PORT + i))?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .collect::<Result<Vec<_>>>()?;
        let payload = |i: usize| format!("{tag}-{i}");
        let mut answered = vec![false; sockets.len()];
        let mut outcome = Outcome::default();
        let started = Instant::now();
        let mut last_send: Option<Instant> = None;
        let mut buf = [0u8; 2048];
        while outcome.answered < sockets.len() && started.elapsed() < DEADLINE {
            if last_send.is_none_or(|t| t.elapsed() >= RESEND_EVERY) {
                for (i, s) in sockets.iter().enumerate().filter(|(i, _)| !answered[*i]) {
                    s.send_to(payload(i).as_bytes(), (INTERNET_IP, ECHO_PORT))?;
                }
                last_send = Some(Instant::now());
            }
            for (i, s) in sockets.iter().enumerate() {
                while let Ok((n, _)) = s.recv_from(&mut buf) {
                    let reply = String::from_utf8_lossy(&buf[..n]);
                    let echoed = reply.split_once('\n').map_or("", |(_, p)| p);
                    if echoed == payload(i) {
                        if !answered[i] {
                            answered[i] = true;
                            outcome.answered += 1;
                        }
                    } else {
                        outcome
                            .foreign
                            .push(format!("port {}: {echoed}", FIRST_PORT + i as u16));
                    }
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
        Ok(outcome)
    })
}

#[test]
fn two_networks_on_one_uplink_get_every_reply_and_no_other() {
    let sb = Sandbox::new("shup");
    let _internet = Internet::new(&sb);
    let (a, b) = (sb.ns("a"), sb.ns("b"));
    let nets = [sb.net_name(), sb.net_name()];
    for (net, ns, subnet, ip) in [
        (&nets[0], &a, "10.95.0.0/24", "10.95.0.2"),
        (&nets[1], &b, "10.96.0.0/24", "10.96.0.2"),
    ] {
        sb.up(&NetConfig::new(net, subnet, None)
            .uplink(UPLINK)
            .endpoint(ns, Some(ip)));
    }
    let table = shared_table(&sb, &nets[0]);
    assert_eq!(table, shared_table(&sb, &nets[1]));
    let (in_a, in_b) = (flows_from(a, "a"), flows_from(b, "b"));
    let (in_a, in_b) = (in_a.join().unwrap().unwrap(), in_b.join().unwrap().unwrap());
    for (name, got) in [("a", &in_a), ("b", &in_b)] {
        assert!(
            got.foreign.is_empty(),
            "{name} received {} replies of other flows, e.g. {:?}",
            got.foreign.len(),
            &got.foreign[..got.foreign.len().min(5)]
        );
        assert_eq!(
            got.answered,
            usize::from(FLOWS),
            "{name} lost flows: {got:?}"
        );
    }
    assert!(table.exists());
    sb.netfwd_ok(&["down", "--name", &nets[0]]);
    assert!(
        table.exists(),
        "the first down removed the table the other network uses"
    );
    sb.netfwd_ok(&["down", "--name", &nets[1]]);
    assert!(!table.exists(), "the last down left the uplink's table");
}

/// Where netfwd pins the uplink's shared NAT table, as `net`'s status says,
/// checked to be under the pin root.
fn shared_table(sb: &Sandbox, net: &str) -> PathBuf {
    let status = sb.network_status(net);
    let table = PathBuf::from(status["nat"]["table"].as_str().unwrap());
    assert!(table.starts_with(BPF_PIN_ROOT), "{status:#}");
    table
}

#[test]
fn networks_on_one_uplink_must_agree_on_the_table_they_share() {
    let sb = Sandbox::new("shupcfg");
    let _internet = Internet::new(&sb);
    let config = |net: &str, subnet: &str, ns: &str, nat: &str| {
        let cfg = NetConfig::new(net, subnet, None)
            .uplink(UPLINK)
            .endpoint(ns, None)
            .tables(nat);
        sb.write_config(&cfg.to_toml())
    };
    let (n1, n2) = (sb.net_name(), sb.net_name());
    let (a, b) = (sb.ns("a"), sb.ns("b"));
    sb.up_file(&config(&n1, "10.97.0.0/24", &a, "[nat]\nmax_flows = 4096"));
    let out = sb.netfwd(&[
        "up",
        "-c",
        config(&n2, "10.98.0.0/24", &b, "[nat]\nmax_flows = 8192")
            .to_str()
            .unwrap(),
    ]);
    let msg = netfwd_tests::assert_bad_input(&out, "nat.max_flows");
    assert!(msg.contains(&n1), "{msg}");
    // Its own port range is its own business.
    sb.up_file(&config(
        &n2,
        "10.98.0.0/24",
        &b,
        "[nat]\nmax_flows = 4096\nport_min = 63000",
    ));
}
