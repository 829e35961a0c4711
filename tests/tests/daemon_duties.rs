//! What `netfwd daemon` does besides reporting the NAT flows the kernel expired
//! (docs/operations.md, "The daemon"): it follows a changed uplink address
//! for the hairpin and the host's own connections to published ports, it
//! forgets an attached endpoint whose process exited (and its published
//! port), and a SIGTERM during its start-up `up` takes effect when that is
//! done: it exits 0 and the network is up and working, or, when the signal
//! came before `up` began, nothing of it exists.

use std::{os::unix::process::ExitStatusExt as _, path::Path, time::Duration};

use netfwd_tests::{
    Daemon, Lab, NETFWD_TIMEOUT, NetConfig, STATE_DIR, Sandbox, Unshared, assert_nothing_left,
    assert_ping, endpoints,
    host_client::host_connect,
    internet::{
        EchoServer, INTERNET_IP, INTERNET_IP as ROUTER, UPLINK, UPLINK_IP, in_netns, ip_of,
        tcp_echo,
    },
    lab, netns_path, payload, poll, tool_ok,
};
use serde_json::Value;

const SUBNET: &str = "10.83.0.0/24";
const GATEWAY: &str = "10.83.0.1";
const SERVER_IP: &str = "10.83.0.2";
const CLIENT_IP: &str = "10.83.0.3";
const PORT: u16 = 80;
const HOST_PORT: u16 = 8080;
/// The uplink's address after the change (a documentation range, as the
/// first).
const NEW_UPLINK_IP: &str = "203.0.113.9";
/// How long the daemon (one pass a second, each behind the lock every
/// network's change takes) may take to notice a change.
const NOTICE: Duration = Duration::from_secs(30);
/// The daemon's arguments: a pass every second.
const GC_EVERY_SECOND: &[&str] = &["--gc-interval", "1"];

/// A TCP exchange from namespace `ns` to `ip:port`: the peer the server
/// saw.
fn tcp(ns: &str, ip: &'static str, port: u16) -> anyhow::Result<String> {
    let data = payload(ns, 1_000);
    in_netns(ns, move || tcp_echo(ip, port, None, &data))
}

/// Moves the sandbox host's uplink from address `old` to `new` (a /24
/// each), its default route with it.
fn change_address(host: &str, old: &str, new: &str) {
    for (verb, ip) in [("del", old), ("add", new)] {
        let cidr = format!("{ip}/24");
        tool_ok("ip", &["-n", host, "addr", verb, &cidr, "dev", UPLINK]);
    }
    tool_ok(
        "ip",
        &["-n", host, "route", "replace", "default", "via", ROUTER],
    );
}

/// The uplink's address changes from the first to [`NEW_UPLINK_IP`] under a
/// running daemon (its start-up `up` done, so only its passes can notice):
/// the daemon logs the new address, and the hairpin from another endpoint
/// and the host's own connections to the published port at the new address
/// work (the server seeing the gateway), as from the internet. Without a
/// daemon neither works at the new address (the control).
#[test]
fn the_daemon_follows_a_changed_uplink_address_for_hairpin_and_host_access() {
    let lab = Lab::builder("dmaddr", SUBNET)
        .uplink()
        .host_cgroup()
        .gateway(GATEWAY)
        .endpoint("srv", Some(SERVER_IP))
        .endpoint("cli", Some(CLIENT_IP))
        .publish("tcp", HOST_PORT, 0, PORT)
        .up();
    let [server_ns, client_ns] = lab::named(lab.eps.clone());
    let _server = EchoServer::start(&server_ns, SERVER_IP, PORT);
    let host = lab.sb.host();
    let cgroup = lab.cgroup.as_ref().unwrap();
    assert_eq!(
        ip_of(&tcp(&client_ns, UPLINK_IP, HOST_PORT).unwrap()),
        GATEWAY
    );
    assert_eq!(
        ip_of(&host_connect(cgroup, host, UPLINK_IP, HOST_PORT)),
        GATEWAY
    );

    change_address(host, UPLINK_IP, NEW_UPLINK_IP);
    let hairpin = tcp(&client_ns, NEW_UPLINK_IP, HOST_PORT);
    assert!(hairpin.is_err(), "hairpin without a daemon: {hairpin:?}");
    assert_eq!(
        host_connect(cgroup, host, NEW_UPLINK_IP, HOST_PORT),
        "error ConnectionRefusedError",
        "the host without a daemon"
    );
    change_address(host, NEW_UPLINK_IP, UPLINK_IP);

    let mut daemon = Daemon::start(&lab.sb, &lab.config, GC_EVERY_SECOND);
    change_address(host, UPLINK_IP, NEW_UPLINK_IP);
    daemon.wait_for(&format!("uplink address is now {NEW_UPLINK_IP}"));
    let seen = tcp(&client_ns, NEW_UPLINK_IP, HOST_PORT).unwrap();
    assert_eq!(ip_of(&seen), GATEWAY, "hairpin");
    assert_eq!(
        ip_of(&host_connect(cgroup, host, NEW_UPLINK_IP, HOST_PORT)),
        GATEWAY,
        "the host"
    );
    let seen = tcp(&lab.internet.ns, NEW_UPLINK_IP, HOST_PORT).unwrap();
    assert_eq!(ip_of(&seen), INTERNET_IP, "the internet");
    assert!(daemon.terminate().success());
}

/// An endpoint attached by PID, with a port published to it, is in
/// `status` and answers a ping while its process runs; once the process is
/// killed the daemon removes the endpoint and withdraws its port within a
/// few passes, and the config's endpoint stays.
#[test]
fn the_daemon_forgets_an_attached_endpoint_whose_process_exited() {
    let lab = Lab::builder("dmgone", SUBNET)
        .uplink()
        .endpoint("a", Some(SERVER_IP))
        .up();
    let [a] = lab::named(lab.eps.clone());
    let (sb, net) = (&lab.sb, lab.net.as_str());
    let mut daemon = Daemon::start(sb, &lab.config, GC_EVERY_SECOND);
    let process = Unshared::start();
    let attached_ip = "10.83.0.9";
    sb.netfwd_ok(&[
        "attach",
        "--name",
        net,
        "--pid",
        &process.pid(),
        "--ip",
        attached_ip,
    ]);
    let publish = format!(
        "publish --name {net} --proto tcp --host-port {HOST_PORT} --endpoint {attached_ip} --port {PORT}"
    );
    sb.netfwd_ok(&publish.split(' ').collect::<Vec<_>>());
    let ips = |status: &Value| -> Vec<String> {
        endpoints(status)
            .iter()
            .map(|e| e["ip"].as_str().unwrap().to_owned())
            .collect()
    };
    let status = sb.network_status(net);
    assert_eq!(ips(&status), [SERVER_IP, attached_ip]);
    assert_eq!(status["published"].as_array().unwrap().len(), 1);
    assert_ping(&a, attached_ip);

    // The process, and with it its namespace, is gone.
    drop(process);
    let status = poll("the exited endpoint forgotten", NOTICE, || {
        let status = sb.network_status(net);
        (ips(&status) == [SERVER_IP]).then_some(status)
    });
    assert_eq!(status["published"], Value::Array(Vec::new()), "{status:#}");
    daemon.wait_for(&format!(
        "attached endpoint {attached_ip} is gone; removed it"
    ));
    assert!(daemon.terminate().success());
}

/// A SIGTERM that comes while the daemon's start-up `up` runs (its first
/// endpoint's namespace made, three to go) stops it once the network is up:
/// it exits 0, every endpoint has its program and the first reaches the
/// last. One sent right after the daemon starts either does the same or,
/// having killed it before `up` began, left no state. `down` then leaves
/// nothing either way.
#[test]
fn a_sigterm_during_start_up_exits_0_with_the_network_up_or_never_begun() {
    let sb = Sandbox::new("dmterm");
    for case in ["mid-up", "at-start"] {
        let net = sb.net_name();
        let eps: Vec<String> = (0..4).map(|i| sb.ns(&format!("{case}{i}"))).collect();
        let cfg = eps
            .iter()
            .fold(NetConfig::new(&net, SUBNET, None), |cfg, ep| {
                cfg.endpoint(ep, None)
            });
        let config = sb.write_config(&cfg.to_toml());
        let mut daemon = Daemon::spawn(&sb, &config, GC_EVERY_SECOND);
        if case == "mid-up" {
            poll("the first namespace", NETFWD_TIMEOUT, || {
                netns_path(&eps[0]).exists().then_some(())
            });
            assert!(daemon.running(), "the daemon exited");
        }
        let status = daemon.terminate();
        let state = Path::new(STATE_DIR).join(format!("{net}.json"));
        if case == "mid-up" || status.success() {
            assert!(status.success(), "{case}: the daemon exited with {status}");
            let network = sb.network_status(&net);
            let programs = endpoints(&network)
                .iter()
                .filter(|e| e["program"].is_object())
                .count();
            assert_eq!(programs, 4, "{case}: {network:#}");
            assert_ping(&eps[0], "10.83.0.5");
        } else {
            assert_eq!(status.signal(), Some(15), "{case}: {status}");
            assert!(!state.exists(), "{case}: killed before up, yet a state");
        }
        sb.netfwd_ok(&["down", "--name", &net]);
        let eps: Vec<&str> = eps.iter().map(String::as_str).collect();
        assert_nothing_left(sb.host(), &net, &eps);
    }
}
