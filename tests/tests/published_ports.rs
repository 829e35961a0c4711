//! Docker's `-p host_port:port` in BPF: a server in an endpoint answers on
//! the uplink's address from the internet (seeing the client's own
//! address), from another endpoint and itself (hairpin), and from the
//! sandbox host (through cgroup hooks, on the uplink address and the
//! loopback address). Ports are published and withdrawn while the network
//! runs. The network is dual-stack: a port is published over IPv6 too, on
//! the uplink's IPv6 address, to the endpoint's, and each of these has an
//! IPv6 twin (`Family`), written once for both.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use std::path::PathBuf;

use netfwd_common::names::{MAP_NAT, MAP_NAT6};
use netfwd_tests::{
    BPF_PIN_ROOT, Daemon, Lab, NetConfig, Sandbox, assert_bad_input, assert_no_bridge_and_no_rules,
    cgroup::Cgroup,
    drops, endpoint, in_ns_ok,
    internet::{
        ECHO_PORT, EchoServer, INTERNET_IP, INTERNET_IP6, Internet, UPLINK, UPLINK_IP, UPLINK_IP6,
        in_netns, ip_of, tcp_echo, udp_echo,
    },
    lab, payload, scapy_sendp, scapy_sendp_on, stay_on_cpu0, tool_ok, uplink_drops,
};

const SERVER_IP: &str = "10.80.0.2";
const CLIENT_IP: &str = "10.80.0.3";
const GATEWAY: &str = "10.80.0.1";
const SUBNET6: &str = "fd00:80::/64";
/// The gateway's IPv6 address: the prefix's first, as IPv4's.
const GATEWAY6: &str = "fd00:80::1";
/// The server's IPv6 address: the lowest free one, its endpoint's first.
const SERVER_IP6: &str = "fd00:80::2";
/// The client's: the next.
const CLIENT_IP6: &str = "fd00:80::3";

/// What a test over one family needs of its addresses, of its table and
/// of the packets scapy forges in it.
struct Family {
    uplink: &'static str,
    internet: &'static str,
    gateway: &'static str,
    loopback: &'static str,
    any: &'static str,
    server: &'static str,
    client: &'static str,
    /// The family's NAT table (its pin's name).
    nat_map: &'static str,
    /// scapy: the family's IP layer, the flood's `i`th source (a Python
    /// expression) and how `nat list` writes it, and "port unreachable".
    scapy_ip: &'static str,
    flood_source: &'static str,
    flood_remote: &'static str,
    port_unreachable: &'static str,
}

const V4: Family = Family {
    uplink: UPLINK_IP,
    internet: INTERNET_IP,
    gateway: GATEWAY,
    loopback: "127.0.0.1",
    any: "0.0.0.0",
    server: SERVER_IP,
    client: CLIENT_IP,
    nat_map: MAP_NAT,
    scapy_ip: "IP",
    flood_source: "'198.18.%d.%d' % (i // 250, i % 250 + 1)",
    flood_remote: "198.18.",
    port_unreachable: "ICMP(type=3, code=3)",
};

const V6: Family = Family {
    uplink: UPLINK_IP6,
    internet: INTERNET_IP6,
    gateway: GATEWAY6,
    loopback: "::1",
    any: "::",
    server: SERVER_IP6,
    client: CLIENT_IP6,
    nat_map: MAP_NAT6,
    scapy_ip: "IPv6",
    flood_source: "'2001:db8:18::%x' % (i + 1)",
    flood_remote: "[2001:db8:18::",
    port_unreachable: "ICMPv6DestUnreach(code=4)",
};
/// The port the server listens on in its endpoint.
const PORT: u16 = 80;
const HOST_PORT: u16 = 8080;

struct PublishLab {
    sb: Sandbox,
    _internet: Internet,
    net: String,
    server_ns: String,
    client_ns: String,
    cgroup: Cgroup,
    config: PathBuf,
    _servers: [EchoServer; 2],
}

impl PublishLab {
    fn new(tag: &str, publish_in_config: bool) -> PublishLab {
        PublishLab::with(tag, publish_in_config, "")
    }

    /// As `new`, with `extra` appended to the config.
    fn with(tag: &str, publish_in_config: bool, extra: &str) -> PublishLab {
        let mut lab = Lab::builder(tag, "10.80.0.0/24")
            .keys(&format!("subnet6 = \"{SUBNET6}\"\n"))
            .uplink()
            .host_cgroup()
            .endpoint("srv", Some(SERVER_IP))
            .endpoint("cli", Some(CLIENT_IP))
            .tables(extra);
        if publish_in_config {
            for proto in ["tcp", "udp"] {
                lab = lab.publish(proto, HOST_PORT, 0, PORT);
            }
        }
        let lab = lab.up();
        let [server_ns, client_ns] = lab::named(lab.eps);
        let servers = [SERVER_IP, SERVER_IP6].map(|ip| EchoServer::start(&server_ns, ip, PORT));
        PublishLab {
            sb: lab.sb,
            _internet: lab.internet,
            net: lab.net,
            server_ns,
            client_ns,
            cgroup: lab.cgroup.expect("the lab was asked for a host cgroup"),
            config: lab.config,
            _servers: servers,
        }
    }

    /// A TCP exchange with the published port from namespace `ns` to `ip`;
    /// the peer the server saw.
    fn tcp_from(&self, ns: &str, ip: &'static str) -> anyhow::Result<String> {
        self.tcp_to(ns, ip, HOST_PORT)
    }

    /// `netfwd publish`: `proto` host port `host_port` at `host_ip` to the
    /// server's port.
    fn publish_server(&self, proto: &str, host_port: u16, host_ip: &str) {
        let (host_port, port) = (host_port.to_string(), PORT.to_string());
        self.sb.netfwd_ok(&[
            "publish",
            "--name",
            &self.net,
            "--proto",
            proto,
            "--host-port",
            &host_port,
            "--endpoint",
            SERVER_IP,
            "--port",
            &port,
            "--host-ip",
            host_ip,
        ]);
    }

    /// As `tcp_from`, to host port `port`.
    fn tcp_to(&self, ns: &str, ip: &'static str, port: u16) -> anyhow::Result<String> {
        let data = payload(ns, 10_000);
        in_netns(ns, move || tcp_echo(ip, port, None, &data))
    }
}

const HOST_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
peer = b""
while not peer.endswith(b"\n"):
    peer += s.recv(1)
s.sendall(b"from the host"); s.shutdown(socket.SHUT_WR)
echo = b""
while True:
    d = s.recv(4096)
    if not d: break
    echo += d
assert echo == b"from the host", echo
print(peer.decode().strip())
"#;

// The scenarios below written once over a `Family`, for IPv4 and IPv6.
netfwd_tests::family_twins! {
    one_endpoint_port_on_two_host_ports_answers_on_each_from_everywhere,
    over_ipv6_one_endpoint_port_on_two_host_ports_answers_on_each_from_everywhere:
        on_two_host_ports("pubtwice");
    ports_are_published_and_withdrawn_while_the_network_runs,
    over_ipv6_ports_are_published_and_withdrawn_while_the_network_runs:
        published_and_withdrawn("pubrt");
    a_client_reusing_its_port_after_the_old_flow_expired_gets_in_again,
    over_ipv6_a_client_reusing_its_port_after_the_old_flow_expired_gets_in_again:
        reusing_its_port("pubreuse");
    a_spoofed_syn_flood_neither_establishes_flows_nor_locks_endpoints_out,
    over_ipv6_a_spoofed_syn_flood_neither_establishes_flows_nor_locks_endpoints_out:
        syn_flood("synflood");
    an_icmp_error_about_another_endpoints_flow_is_dropped,
    over_ipv6_an_icmp_error_about_another_endpoints_flow_is_dropped:
        icmp_error_about_another_endpoints_flow("icmpforeign");
    an_expired_hairpin_flow_leaves_nothing_in_the_table,
    over_ipv6_an_expired_hairpin_flow_leaves_nothing_in_the_table:
        expired_hairpin_flow("hairpingc");
}

#[test]
fn a_published_port_answers_the_internet_other_endpoints_itself_and_the_host() {
    let lab = PublishLab::new("pubtcp", true);
    answers_everywhere(&lab, &V4);
    assert_no_bridge_and_no_rules(lab.sb.host());
    let status = lab.sb.network_status(&lab.net);
    assert_eq!(
        status["published"].as_array().unwrap().len(),
        2,
        "{status:#}"
    );
}

/// The IPv6 twin: the same port on the uplink's IPv6 address, the client's
/// address kept from the internet, the hairpin translated to the gateway's
/// IPv6 address, the host's own connections through `connect6`.
#[test]
fn over_ipv6_a_published_port_answers_the_internet_other_endpoints_itself_and_the_host() {
    let lab = PublishLab::new("pubtcp6", true);
    answers_everywhere(&lab, &V6);
}

/// A published port of `lab` (TCP and UDP) answers over `fam`: the internet
/// seen as itself, the other endpoint and the server itself (hairpin) and
/// the host (on the uplink's and the loopback address) seen as the gateway.
fn answers_everywhere(lab: &PublishLab, fam: &Family) {
    let seen = lab
        .tcp_from(&lab._internet.ns, fam.uplink)
        .expect("TCP from the internet");
    assert_eq!(
        ip_of(&seen),
        fam.internet,
        "the server sees the real client"
    );
    let seen = lab
        .tcp_from(&lab.client_ns, fam.uplink)
        .expect("TCP by hairpin from another endpoint");
    assert_eq!(ip_of(&seen), fam.gateway, "hairpin from another endpoint");
    let seen = lab
        .tcp_from(&lab.server_ns, fam.uplink)
        .expect("TCP by hairpin to itself");
    assert_eq!(ip_of(&seen), fam.gateway, "hairpin to itself");
    for ip in [fam.uplink, fam.loopback] {
        let seen =
            lab.cgroup
                .run_in_host(lab.sb.host(), HOST_CLIENT, &[ip, &HOST_PORT.to_string()]);
        assert_eq!(ip_of(&seen), fam.gateway, "from the host to {ip}");
    }
    let uplink = fam.uplink;
    let seen = in_netns(&lab._internet.ns, || {
        udp_echo(uplink, HOST_PORT, 5353, b"udp")
    })
    .expect("UDP from the internet");
    assert_eq!(ip_of(&seen), fam.internet, "UDP from the internet");
    let seen = in_netns(&lab.client_ns, || udp_echo(uplink, HOST_PORT, 5354, b"udp"))
        .expect("UDP by hairpin");
    assert_eq!(ip_of(&seen), fam.gateway, "UDP by hairpin");
}

/// Over `fam`, one endpoint port published on two host ports (`-p
/// 8080:80 -p 8081:80`) answers on each from the internet, by hairpin and
/// from the host: a hairpinned reply comes from the host port its client
/// chose.
fn on_two_host_ports(tag: &str, fam: &Family) {
    let lab = PublishLab::new(tag, false);
    for host_port in [8080, 8081] {
        lab.publish_server("tcp", host_port, "0.0.0.0");
    }
    for host_port in [8080, 8081] {
        let seen = lab
            .tcp_to(&lab._internet.ns, fam.uplink, host_port)
            .unwrap();
        assert_eq!(ip_of(&seen), fam.internet, "{host_port} from the internet");
        for client in [&lab.client_ns, &lab.server_ns] {
            let seen = lab.tcp_to(client, fam.uplink, host_port);
            assert!(
                seen.as_ref().is_ok_and(|s| ip_of(s) == fam.gateway),
                "{host_port} by hairpin from {client}: {seen:?}"
            );
        }
        let seen = lab.cgroup.run_in_host(
            lab.sb.host(),
            HOST_CLIENT,
            &[fam.loopback, &host_port.to_string()],
        );
        assert_eq!(ip_of(&seen), fam.gateway, "{host_port} from the host");
    }
}

/// Binds a TCP and a UDP socket to `argv[1]` at each address after it (of
/// either family); prints `ok` or the errno's name for each, TCP first.
const HOST_BINDS: &str = r#"
import errno, socket, sys
port, results = int(sys.argv[1]), []
for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
    for addr in sys.argv[2:]:
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, kind)
        try:
            s.bind((addr, port))
            results.append("ok")
        except OSError as e:
            results.append(errno.errorcode[e.errno])
        finally:
            s.close()
print(" ".join(results))
"#;

/// A host program cannot bind a published port where the host's own
/// connections go to the endpoint instead (as docker-proxy holding the port
/// refuses it): `EADDRINUSE`, for the published protocol only; a host-only
/// port is taken at 127.0.0.1 alone. The host's connections still reach the
/// endpoint.
#[test]
fn a_host_program_cannot_bind_a_published_port() {
    let lab = PublishLab::new("pubbind", true);
    lab.publish_server("tcp", 8090, "0.0.0.0");
    lab.publish_server("tcp", 8091, "127.0.0.1");
    let in_use = "EADDRINUSE EADDRINUSE EADDRINUSE";
    cannot_bind(&lab, &V4, "EADDRINUSE ok EADDRINUSE ok ok ok");
    assert_eq!(
        binds(&lab, &V4, "8090"),
        format!("{in_use} ok ok ok"),
        "UDP 8090 is free"
    );
}

/// The IPv6 twin (`bind6`): a host-only port is IPv4's loopback's alone,
/// free over IPv6 everywhere.
#[test]
fn over_ipv6_a_host_program_cannot_bind_a_published_port() {
    let lab = PublishLab::new("pubbind6", true);
    lab.publish_server("tcp", 8091, "127.0.0.1");
    cannot_bind(&lab, &V6, "ok ok ok ok ok ok");
}

/// `HOST_BINDS` in the host at `fam`'s every, uplink and loopback address.
fn binds(lab: &PublishLab, fam: &Family, port: &str) -> String {
    lab.cgroup.run_in_host(
        lab.sb.host(),
        HOST_BINDS,
        &[port, fam.any, fam.uplink, fam.loopback],
    )
}

/// Over `fam`, `HOST_PORT` (published, TCP and UDP) cannot be bound, an
/// unpublished port can, host-only 8091 binds as `host_only` says; the
/// host still reaches the endpoint at the loopback address.
fn cannot_bind(lab: &PublishLab, fam: &Family, host_only: &str) {
    let in_use = "EADDRINUSE EADDRINUSE EADDRINUSE";
    assert_eq!(
        binds(lab, fam, &HOST_PORT.to_string()),
        format!("{in_use} {in_use}")
    );
    assert_eq!(binds(lab, fam, "8091"), host_only, "host-only");
    assert_eq!(
        binds(lab, fam, "8089"),
        "ok ok ok ok ok ok",
        "8089 is not published"
    );
    let seen = lab.cgroup.run_in_host(
        lab.sb.host(),
        HOST_CLIENT,
        &[fam.loopback, &HOST_PORT.to_string()],
    );
    assert_eq!(
        ip_of(&seen),
        fam.gateway,
        "from the host to {}",
        fam.loopback
    );
}

/// Over `fam`: a port published while the network runs answers, a
/// connection made before it is withdrawn keeps going, a new one does not
/// get in; a port a host socket holds is refused. (Over IPv6: `publish`
/// and `unpublish` reach `PUBLISHED6` too, a host socket on the IPv6 port
/// is refused as on IPv4's.)
fn published_and_withdrawn(tag: &str, fam: &Family) {
    let lab = PublishLab::new(tag, false);
    let mut daemon = Daemon::start(&lab.sb, &lab.config, &[]);
    assert!(
        lab.tcp_from(&lab._internet.ns, fam.uplink).is_err(),
        "published before publish"
    );
    let hp = HOST_PORT.to_string();
    let port = PORT.to_string();
    lab.sb.netfwd_ok(&[
        "publish",
        "--name",
        &lab.net,
        "--proto",
        "tcp",
        "--host-port",
        &hp,
        "--endpoint",
        &lab.server_ns,
        "--port",
        &port,
    ]);
    lab.tcp_from(&lab._internet.ns, fam.uplink)
        .expect("TCP once published");

    // A connection made before unpublish keeps going.
    let inet = lab._internet.ns.clone();
    let (uplink, any) = (fam.uplink, fam.any);
    let established = in_netns(&inet, move || {
        use std::io::Read as _;
        let mut s = std::net::TcpStream::connect((uplink, HOST_PORT))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        let mut greeting = [0u8; 64];
        let _ = netfwd_tests::retry_eintr(|| s.read(&mut greeting))?;
        Ok(s)
    })
    .expect("a connection before unpublish");
    lab.sb.netfwd_ok(&[
        "unpublish",
        "--name",
        &lab.net,
        "--proto",
        "tcp",
        "--host-port",
        &hp,
    ]);
    assert!(
        lab.tcp_from(&lab._internet.ns, fam.uplink).is_err(),
        "new connection after unpublish"
    );
    {
        use std::io::{Read as _, Write as _};
        let mut s = established;
        s.write_all(b"still here")
            .expect("writing on the connection");
        let mut back = [0u8; 10];
        s.read_exact(&mut back).expect("its echo");
        assert_eq!(&back, b"still here");
    }

    // A port a host socket holds is refused.
    let listener = in_netns(lab.sb.host(), move || {
        Ok(std::net::TcpListener::bind((any, 9090))?)
    })
    .expect("a host socket on port 9090");
    let out = lab.sb.netfwd(&[
        "publish",
        "--name",
        &lab.net,
        "--proto",
        "tcp",
        "--host-port",
        "9090",
        "--endpoint",
        &lab.server_ns,
        "--port",
        &port,
    ]);
    assert_bad_input(&out, "--host-port");
    drop(listener);
    daemon.stop();
}

/// A published port is the host's, at the uplink's address (as Docker's
/// DNAT matches only `--dst-type LOCAL`): a second network on the same
/// uplink with a public prefix (`nat6 = false`), which the internet routes
/// via the host, keeps its endpoint's address to itself. A connection from
/// the internet to that endpoint at the port the first network publishes
/// was DNATed to the first network's server; now it is no flow of the
/// first network's, and the second drops it (`policy`), as it drops every
/// connection from outside that no flow of its endpoint lets in.
#[test]
fn over_ipv6_a_published_port_takes_nothing_for_another_networks_endpoint() {
    const PUBLIC6: &str = "2001:db8:81::/64";
    const PUBLIC_IP6: &str = "2001:db8:81::2";
    let lab = PublishLab::new("pubother6", true);
    let other = lab.sb.net_name();
    let other_ns = lab.sb.ns("other");
    lab.sb.up(&NetConfig::new(&other, "10.81.0.0/24", None)
        .uplink(UPLINK)
        .keys(&format!("subnet6 = \"{PUBLIC6}\"\nnat6 = false\n"))
        .endpoint(&other_ns, Some("10.81.0.2"))
        .tables("[nat]\nport_min = 63000\n"));
    lab._internet.route_to_host(PUBLIC6);
    let inet = lab._internet.ns.clone();

    let policy = || uplink_drops(&lab.sb.network_status(&other), "policy");
    let policy_before = policy();
    assert!(
        lab.tcp_to(&inet, PUBLIC_IP6, HOST_PORT).is_err(),
        "TCP to the other network's endpoint at the published port"
    );
    let udp = in_netns(&inet, || udp_echo(PUBLIC_IP6, HOST_PORT, 5353, b"udp"));
    assert!(udp.is_err(), "UDP alike: {udp:?}");
    let flows = lab.sb.nat_flows(&lab.net);
    assert!(
        flows
            .iter()
            .all(|f| ip_of(f["remote"].as_str().unwrap()) != INTERNET_IP6),
        "DNATed to the first network's server: {flows:#?}"
    );
    assert!(policy() > policy_before, "dropped by the other network");
    let seen = lab
        .tcp_from(&inet, UPLINK_IP6)
        .expect("TCP to the uplink's address");
    assert_eq!(
        ip_of(&seen),
        INTERNET_IP6,
        "the published port still answers"
    );
}

#[test]
fn host_ports_the_host_or_another_network_on_the_uplink_uses_are_refused() {
    let lab = PublishLab::new("pubclash", true);
    let publish = |net: &str, host_port: &str, endpoint: &str| {
        lab.sb.netfwd(&[
            "publish",
            "--name",
            net,
            "--proto",
            "tcp",
            "--host-port",
            host_port,
            "--endpoint",
            endpoint,
            "--port",
            "80",
        ])
    };
    // Where the host's own connections take their source ports: a reply to
    // one of them would be taken for a connection to the published port.
    let range = in_ns_ok(
        lab.sb.host(),
        &["cat", "/proc/sys/net/ipv4/ip_local_port_range"],
    );
    let low: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
    let msg = assert_bad_input(
        &publish(&lab.net, &low.to_string(), &lab.server_ns),
        "--host-port",
    );
    assert!(msg.contains("ip_local_port_range"), "{msg}");

    // A second network on the same uplink cannot take the first one's
    // published port, nor publish inside its NAT range.
    let other = lab.sb.net_name();
    let other_ns = lab.sb.ns("other");
    lab.sb.up(&NetConfig::new(&other, "10.81.0.0/24", None)
        .uplink(UPLINK)
        .endpoint(&other_ns, Some("10.81.0.2"))
        .tables("[nat]\nport_min = 63000\n"));
    let msg = assert_bad_input(
        &publish(&other, &HOST_PORT.to_string(), &other_ns),
        "--host-port",
    );
    assert!(msg.contains(&lab.net), "{msg}");
    let msg = assert_bad_input(&publish(&other, "61500", &other_ns), "--host-port");
    assert!(msg.contains(&lab.net), "{msg}");
    // Its own port elsewhere is fine.
    assert!(publish(&other, "8081", &other_ns).status.success());
}

/// Over `fam`: a client from the internet connects from the same port
/// twice, the first flow expired in between; the second gets in again.
fn reusing_its_port(tag: &str, fam: &Family) {
    let lab = PublishLab::with(
        tag,
        true,
        "[nat.timeouts]\ntcp_syn = 1\ntcp_established = 2\ntcp_closing = 1\n",
    );
    let inet = lab._internet.ns.clone();
    let (uplink, any) = (fam.uplink, fam.any);
    for round in 0..2 {
        // From port 40404 each time, closed with a reset (no TIME_WAIT to
        // keep the port), so the second round reuses the first's tuple.
        in_netns(&inet, || {
            use std::io::Read as _;
            let to = std::net::SocketAddr::new(uplink.parse()?, HOST_PORT);
            let from = std::net::SocketAddr::new(any.parse()?, 40404);
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(to),
                socket2::Type::STREAM,
                None,
            )?;
            socket.set_reuse_address(true)?;
            socket.bind(&from.into())?;
            socket.connect_timeout(&to.into(), std::time::Duration::from_secs(3))?;
            socket.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
            let mut stream: std::net::TcpStream = socket.into();
            let mut greeting = [0u8; 64];
            let n = netfwd_tests::retry_eintr(|| stream.read(&mut greeting))?;
            anyhow::ensure!(n > 0, "no greeting");
            socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO))?;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("round {round}: {e:#}"));
        std::thread::sleep(std::time::Duration::from_secs(3));
    }
}

/// Issue #14, over `fam`: a flood of SYNs from spoofed sources to a
/// published port (its server answering each) made flows `nat list` showed
/// as established for six hours, and once they filled the table every
/// endpoint's new flow was refused. Now they stay unconfirmed
/// (`syn_sent`/`syn_recv`, on `tcp_syn`), and new flows each evict the
/// oldest of them (early drop; IPv6's through `tc_nat_room6`). The flood
/// and the new flows run on one CPU: early drop remembers flows per CPU.
fn syn_flood(tag: &str, fam: &Family) {
    let lab = PublishLab::with(tag, true, "[nat]\nmax_flows = 64\n");
    let frames = format!(
        "[Ether(dst='{}')/{}(src={}, dst='{}')\
         /TCP(sport=40000 + i, dport={HOST_PORT}, flags='S', seq=i) for i in range(200)]",
        lab.sb.uplink_mac(),
        fam.scapy_ip,
        fam.flood_source,
        fam.uplink,
    );
    let inet = lab._internet.ns.clone();
    scapy_sendp_on(&["taskset", "-c", "0"], &inet, "inet0", &frames, 1);

    let flows = lab.sb.nat_flows(&lab.net);
    let flood: Vec<_> = flows
        .iter()
        .filter(|f| f["remote"].as_str().unwrap().starts_with(fam.flood_remote))
        .collect();
    assert!(flood.len() > 32, "the flood made flows: {flows:#?}");
    for f in &flood {
        assert!(
            ["syn_sent", "syn_recv"].contains(&f["state"].as_str().unwrap()),
            "{f:#}"
        );
        assert!(f["expires_in_secs"].as_u64().unwrap() <= 60, "{f:#}");
    }

    let (data, internet) = (payload("after-flood", 10_000), fam.internet);
    let seen = in_netns(&lab.client_ns, move || {
        stay_on_cpu0();
        tcp_echo(internet, ECHO_PORT, None, &data)
    })
    .unwrap();
    assert_eq!(ip_of(&seen), fam.uplink, "an endpoint still gets out");
    let status = lab.sb.network_status(&lab.net);
    assert_eq!(drops(&status, &lab.client_ns, "nat_full"), 0, "{status:#}");
}

/// Over `fam`, an endpoint may send an ICMP error only about a packet sent
/// to it: the client endpoint forging "port unreachable" about the
/// server's published flow (which would cut the server's connection) is
/// dropped and counted.
fn icmp_error_about_another_endpoints_flow(tag: &str, fam: &Family) {
    let lab = PublishLab::new(tag, true);
    let uplink = fam.uplink;
    let seen = in_netns(&lab._internet.ns, || {
        udp_echo(uplink, HOST_PORT, 5353, b"flow")
    })
    .unwrap();
    assert_eq!(ip_of(&seen), fam.internet);
    let client_mac = endpoint(&lab.sb.network_status(&lab.net), &lab.client_ns)["mac"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ip, client, internet, server) = (fam.scapy_ip, fam.client, fam.internet, fam.server);
    let forged = format!(
        "Ether(src='{client_mac}')/{ip}(src='{client}', dst='{internet}')/{}\
         /{ip}(src='{internet}', dst='{server}')/UDP(sport=5353, dport={PORT})",
        fam.port_unreachable
    );
    let sent = scapy_sendp(&lab.client_ns, "eth0", &forged, 5);
    let status = lab.sb.network_status(&lab.net);
    assert_eq!(
        drops(&status, &lab.client_ns, "icmp_spoofed"),
        sent,
        "{status:#}"
    );
}

/// Over `fam`, a hairpinned connection's two entries are keyed so that each
/// names the other: once it is over, the daemon's collector frees both
/// (its egress entry used to stay in the table for good).
fn expired_hairpin_flow(tag: &str, fam: &Family) {
    let lab = PublishLab::with(
        tag,
        true,
        "[nat.timeouts]\ntcp_syn = 1\ntcp_established = 1\ntcp_closing = 1\n",
    );
    let seen = lab.tcp_from(&lab.client_ns, fam.uplink).unwrap();
    assert_eq!(ip_of(&seen), fam.gateway, "hairpin");
    let nat_pin = format!("{BPF_PIN_ROOT}/{}/{}", lab.net, fam.nat_map);
    let entries = || {
        let dump = tool_ok("bpftool", &["-j", "map", "dump", "pinned", &nat_pin]);
        serde_json::from_str::<serde_json::Value>(&dump)
            .unwrap()
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(entries(), 2, "the hairpin flow's two entries");
    let _daemon = Daemon::start(&lab.sb, &lab.config, &["--gc-interval", "1"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while entries() != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(entries(), 0, "left in the table");
}
