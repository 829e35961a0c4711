//! `netfwd publish` on a running network, each option as docs/operations.md
//! and docs/config.md promise it: `--host-port 0` takes the first free port
//! of 30000–32767 and reports it, `--host-ip 127.0.0.1` is the host's own
//! connections to 127.0.0.1 only, `--proto udp` publishes UDP alone; and a
//! port the config publishes comes back with the next `up`.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use std::{path::Path, process::Command, thread, time::Duration};

use netfwd_common::names::{BIND4_LINK, BIND6_LINK, CONNECT4_LINK, CONNECT6_LINK, LINKS_DIR};
use netfwd_tests::{
    BPF_PIN_ROOT, Lab, NETFWD_TIMEOUT, assert_ok,
    cgroup::Cgroup,
    host_client::host_connect,
    internet::{
        EchoServer, INTERNET_IP, Internet, UPLINK_IP, in_netns, ip_of, tcp_echo, udp_echo_within,
    },
    lab, netfwd_bin, payload, run_with_timeout, tool_ok,
};
use serde_json::{Value, json};

const SUBNET: &str = "10.81.0.0/24";
const GATEWAY: &str = "10.81.0.1";
const SERVER_IP: &str = "10.81.0.2";
const CLIENT_IP: &str = "10.81.0.3";
/// The server's port (TCP and UDP) in its endpoint.
const PORT: u16 = 80;
/// The TCP port the config publishes to the server.
const CONFIG_PORT: u16 = 8080;
/// How long a UDP exchange expected to fail waits for its reply.
const UDP_MISS: Duration = Duration::from_millis(500);

/// A network with a server endpoint (a TCP and UDP echo server on
/// [`PORT`]) and a client endpoint, behind the internet, the config
/// publishing TCP [`CONFIG_PORT`] to the server.
struct PublishCli {
    lab: Lab<Internet>,
    server_ns: String,
    client_ns: String,
    server: Option<EchoServer>,
}

impl PublishCli {
    fn new(tag: &str) -> PublishCli {
        let lab = Lab::builder(tag, SUBNET)
            .uplink()
            .host_cgroup()
            .endpoint("srv", Some(SERVER_IP))
            .endpoint("cli", Some(CLIENT_IP))
            .publish("tcp", CONFIG_PORT, 0, PORT)
            .up();
        let [server_ns, client_ns] = lab::named(lab.eps.clone());
        let server = Some(EchoServer::start(&server_ns, SERVER_IP, PORT));
        PublishCli {
            lab,
            server_ns,
            client_ns,
            server,
        }
    }

    fn cgroup(&self) -> &Cgroup {
        self.lab.cgroup.as_ref().unwrap()
    }

    /// `netfwd publish --name NET <args>` to the server's port; its stdout.
    fn publish(&self, args: &[&str]) -> String {
        let port = PORT.to_string();
        let mut all = vec![
            "publish",
            "--name",
            &self.lab.net,
            "--endpoint",
            &self.server_ns,
            "--port",
            &port,
        ];
        all.extend_from_slice(args);
        let out = self.lab.sb.netfwd_ok(&all);
        String::from_utf8(out.stdout).unwrap()
    }

    /// The published ports in `status --json`.
    fn published(&self) -> Vec<Value> {
        self.lab.sb.network_status(&self.lab.net)["published"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// A TCP exchange from namespace `ns` to `ip:port`: the peer the server
    /// saw.
    fn tcp(&self, ns: &str, ip: &'static str, port: u16) -> anyhow::Result<String> {
        let data = payload(ns, 2_000);
        in_netns(ns, move || tcp_echo(ip, port, None, &data))
    }

    /// A UDP exchange from namespace `ns` to `ip:port`, waiting `wait` for
    /// the reply: the peer the server saw.
    fn udp(&self, ns: &str, ip: &'static str, port: u16, wait: Duration) -> anyhow::Result<String> {
        in_netns(ns, move || udp_echo_within(ip, port, 5353, b"udp", wait))
    }

    /// A TCP connection from the sandbox host (in the host cgroup) to
    /// `ip:port`: the peer the server saw, or `error <kind>`.
    fn host_connect(&self, ip: &str, port: u16) -> String {
        host_connect(self.cgroup(), self.lab.sb.host(), ip, port)
    }

    fn internet(&self) -> &str {
        &self.lab.internet.ns
    }
}

/// The port of `publish`'s line `published Tcp port 0.0.0.0:P to …`.
fn reported_port(line: &str) -> u16 {
    let addr = line
        .split_whitespace()
        .nth(3)
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr:?}"))
}

/// `--host-port 0` takes the first free port of 30000–32767, the next one
/// the next, reports each and lists it in `status`; each answers from the
/// internet with the client's own address.
fn host_port_0_takes_the_first_free_port_and_reports_it(p: &PublishCli) {
    let first = reported_port(&p.publish(&["--proto", "tcp", "--host-port", "0"]));
    let second = reported_port(&p.publish(&["--proto", "tcp", "--host-port", "0"]));
    assert_eq!((first, second), (30000, 30001));
    let published: Vec<u64> = p
        .published()
        .iter()
        .map(|p| p["host_port"].as_u64().unwrap())
        .collect();
    assert_eq!(published[..3], [u64::from(CONFIG_PORT), 30000, 30001]);
    for port in [first, second] {
        let seen = p.tcp(p.internet(), UPLINK_IP, port).unwrap();
        assert_eq!(ip_of(&seen), INTERNET_IP, "port {port} from the internet");
    }
}

/// `--host-ip 127.0.0.1`: the host reaches the endpoint at 127.0.0.1, but
/// neither the internet nor the host itself at the uplink's address, where
/// the config's port (all addresses) answers both.
fn host_ip_127_0_0_1_is_the_hosts_own_connections_to_127_0_0_1_only(p: &PublishCli) {
    let line = p.publish(&[
        "--proto",
        "tcp",
        "--host-port",
        "8091",
        "--host-ip",
        "127.0.0.1",
    ]);
    assert!(line.contains("127.0.0.1:8091"), "{line}");
    assert_eq!(
        p.published()[3],
        json!({"proto": "tcp", "host_port": 8091, "endpoint": SERVER_IP, "port": PORT,
               "host_ip": "127.0.0.1"})
    );
    assert_eq!(ip_of(&p.host_connect("127.0.0.1", 8091)), GATEWAY);
    assert_eq!(
        p.host_connect(UPLINK_IP, 8091),
        "error ConnectionRefusedError",
        "the host at the uplink's address"
    );
    let outside = p.tcp(p.internet(), UPLINK_IP, 8091);
    assert!(outside.is_err(), "8091 from the internet: {outside:?}");
    // The config's port, at every address, answers both.
    assert_eq!(ip_of(&p.host_connect(UPLINK_IP, CONFIG_PORT)), GATEWAY);
    let seen = p.tcp(p.internet(), UPLINK_IP, CONFIG_PORT).unwrap();
    assert_eq!(ip_of(&seen), INTERNET_IP);
}

/// `--proto udp`: a UDP echo through the port from the internet (the
/// client's own address seen) and by hairpin from another endpoint (the
/// gateway's); TCP on that port, and UDP on the config's TCP port, are not
/// published.
fn proto_udp_publishes_udp_alone(p: &PublishCli) {
    let line = p.publish(&["--proto", "udp", "--host-port", "8092"]);
    assert!(
        line.starts_with("published Udp port 0.0.0.0:8092 to "),
        "{line}"
    );
    let seen = p
        .udp(p.internet(), UPLINK_IP, 8092, Duration::from_secs(5))
        .unwrap();
    assert_eq!(ip_of(&seen), INTERNET_IP, "from the internet");
    let seen = p
        .udp(&p.client_ns, UPLINK_IP, 8092, Duration::from_secs(5))
        .unwrap();
    assert_eq!(ip_of(&seen), GATEWAY, "by hairpin");
    let tcp = p.tcp(p.internet(), UPLINK_IP, 8092);
    assert!(tcp.is_err(), "TCP on the UDP port: {tcp:?}");
    let udp = p.udp(p.internet(), UPLINK_IP, CONFIG_PORT, UDP_MISS);
    assert!(udp.is_err(), "UDP on the TCP port: {udp:?}");
}

/// Each option of `netfwd publish` on one running network, one after the
/// other (each leaves its port published).
#[test]
fn publish_options_host_port_0_host_ip_and_proto_udp() {
    let p = PublishCli::new("pubcli");
    host_port_0_takes_the_first_free_port_and_reports_it(&p);
    host_ip_127_0_0_1_is_the_hosts_own_connections_to_127_0_0_1_only(&p);
    proto_udp_publishes_udp_alone(&p);
}

/// A config port withdrawn with `unpublish` comes back with the next `up`,
/// which keeps a port published at run time; after `down` and `up` the
/// config's port is back and the run-time one gone, as everything `down`
/// removes.
#[test]
fn a_config_port_comes_back_at_the_next_up() {
    let mut p = PublishCli::new("pubback");
    p.publish(&["--proto", "udp", "--host-port", "8092"]);
    let hp = CONFIG_PORT.to_string();
    p.lab.sb.netfwd_ok(&[
        "unpublish",
        "--name",
        &p.lab.net,
        "--proto",
        "tcp",
        "--host-port",
        &hp,
    ]);
    let gone = p.tcp(p.internet(), UPLINK_IP, CONFIG_PORT);
    assert!(gone.is_err(), "unpublished: {gone:?}");

    p.lab.sb.up_file(&p.lab.config);
    let seen = p.tcp(p.internet(), UPLINK_IP, CONFIG_PORT).unwrap();
    assert_eq!(ip_of(&seen), INTERNET_IP, "back after up");
    let seen = p
        .udp(p.internet(), UPLINK_IP, 8092, Duration::from_secs(5))
        .unwrap();
    assert_eq!(ip_of(&seen), INTERNET_IP, "the run-time port kept by up");

    // The server's namespace goes with `down`: stop it first.
    p.server = None;
    p.lab.sb.netfwd_ok(&["down", "--name", &p.lab.net]);
    p.lab.sb.up_file(&p.lab.config);
    p.server = Some(EchoServer::start(&p.server_ns, SERVER_IP, PORT));
    let seen = p.tcp(p.internet(), UPLINK_IP, CONFIG_PORT).unwrap();
    assert_eq!(ip_of(&seen), INTERNET_IP, "back after down and up");
    let ports: Vec<u64> = p
        .published()
        .iter()
        .map(|p| p["host_port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [u64::from(CONFIG_PORT)], "the run-time port went");
    let udp = p.udp(p.internet(), UPLINK_IP, 8092, UDP_MISS);
    assert!(udp.is_err(), "the run-time port after down and up: {udp:?}");
}

/// The host's own connections to a published port are translated all
/// through a second `up` with the same config: `up` once took the socket
/// hooks' pinned links for a stale interface's and unpinned them, and the
/// host was refused until `up` attached them again at its end. The hooks'
/// links are the very links they were (an unpinned one comes back as a new
/// link, with a new ID), and connections made meanwhile all go through.
#[test]
fn the_hosts_connections_to_a_published_port_go_through_during_a_second_up() {
    let p = PublishCli::new("pubreup");
    let hook_links = || -> Vec<u64> {
        [CONNECT4_LINK, BIND4_LINK, CONNECT6_LINK, BIND6_LINK]
            .iter()
            .map(|link| {
                let pin = Path::new(BPF_PIN_ROOT)
                    .join(&p.lab.net)
                    .join(LINKS_DIR)
                    .join(link);
                let shown: Value = serde_json::from_str(&tool_ok(
                    "bpftool",
                    &["-j", "link", "show", "pinned", pin.to_str().unwrap()],
                ))
                .unwrap();
                shown["id"].as_u64().unwrap()
            })
            .collect()
    };
    let before = hook_links();
    let mut cmd = Command::new(netfwd_bin());
    cmd.arg("--netns")
        .arg(p.lab.sb.host())
        .arg("up")
        .arg("-c")
        .arg(&p.lab.config);
    let up = thread::spawn(move || run_with_timeout(&mut cmd, NETFWD_TIMEOUT));
    let mut seen = vec![p.host_connect("127.0.0.1", CONFIG_PORT)];
    while !up.is_finished() {
        seen.push(p.host_connect("127.0.0.1", CONFIG_PORT));
    }
    assert_ok("up again", &up.join().unwrap());
    assert_eq!(hook_links(), before, "up replaced the socket hooks' links");
    let failed: Vec<&String> = seen.iter().filter(|s| s.starts_with("error")).collect();
    assert!(
        failed.is_empty(),
        "{} of {} host connections failed during up: {failed:?}",
        failed.len(),
        seen.len()
    );
}
