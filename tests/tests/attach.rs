//! Seeds 003/004: a running process with a namespace of its own (what
//! `docker run --net=none` leaves) is plugged into a network by PID, talks to
//! the other endpoints and the internet, and is detached leaving its
//! namespace as it was. Bad targets are refused and change nothing.

use std::{
    os::unix::fs::MetadataExt as _,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use netfwd_tests::{
    Lab, STATE_DIR, Sandbox, Unshared, assert_bad_input, assert_ping, describe, endpoints,
    eventually,
    internet::{EchoServer, INTERNET_IP, UPLINK_IP, in_netns, tcp_echo},
    lab::{LabBuilder, Uplink},
    netns_path, tool_ok,
};

const SUBNET: &str = "10.70.0.0/24";
const PEER_IP: &str = "10.70.0.2";

/// What is in `p`'s namespace, to compare before and after.
fn snapshot(p: &Unshared) -> String {
    let net = format!("--net={}", p.netns_path());
    ["link", "addr", "route"]
        .iter()
        .map(|what| tool_ok("nsenter", &[net.as_str(), "ip", "-o", what]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A network with one config endpoint (and the uplink, if `lab` has one);
/// returns the lab and the endpoint's netns.
fn network<U: Uplink>(lab: LabBuilder<U>) -> (Lab<U>, String) {
    let lab = lab.endpoint("peer", Some(PEER_IP)).up();
    let peer = lab.eps[0].clone();
    (lab, peer)
}

fn ping_from(path: &str, ip: &str) -> bool {
    Command::new("nsenter")
        .args([
            &format!("--net={path}"),
            "ping",
            "-c",
            "2",
            "-W",
            "1",
            "-q",
            ip,
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_process_attached_by_pid_talks_to_endpoints_and_the_internet_and_detaches_cleanly() {
    let (
        Lab {
            sb,
            internet: _internet,
            net,
            ..
        },
        peer,
    ) = network(Lab::builder("atpid", SUBNET).uplink());
    let p = Unshared::start();
    let before = snapshot(&p);

    let out = sb.netfwd_ok(&["attach", "--name", &net, "--pid", &p.pid(), "--json"]);
    let attached: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ip = attached["ip"].as_str().unwrap().to_owned();
    assert!(ping_from(&p.netns_path(), PEER_IP));
    assert!(ping_from(&p.netns_path(), INTERNET_IP));
    assert_ping(&peer, &ip);
    let status = sb.network_status(&net);
    let ep = endpoints(&status)
        .iter()
        .find(|e| e["ip"] == ip.as_str())
        .unwrap();
    assert_eq!(ep["attached"]["pid"].as_u64(), Some(u64::from(p.id())));
    assert_eq!(ep["present"], true);
    let host_if = ep["host_ifname"].as_str().unwrap().to_owned();
    let host_links = || tool_ok("ip", &["-n", sb.host(), "-o", "link"]);
    assert!(
        host_links().contains(&host_if),
        "{host_if} is not in the host"
    );

    // Attaching again changes nothing.
    sb.netfwd_ok(&["attach", "--name", &net, "--pid", &p.pid()]);
    sb.netfwd_ok(&["detach", "--name", &net, "--pid", &p.pid()]);
    assert_eq!(snapshot(&p), before, "the process's namespace changed");
    assert!(
        !endpoints(&sb.network_status(&net))
            .iter()
            .any(|e| e["ip"] == ip.as_str())
    );
    assert!(!host_links().contains(&host_if), "{host_if} was left");
}

/// Attach in a dual-stack network: the process's namespace gets the IPv6
/// address asked for (`--ip6`; the lowest free without it), talks to the
/// peer over IPv6 both ways, and detach leaves it as it was.
#[test]
fn in_a_dual_stack_network_an_attached_process_talks_ipv6_and_detaches_cleanly() {
    let (Lab { sb, net, .. }, peer) =
        network(Lab::builder("atv6", SUBNET).keys("subnet6 = \"2001:db8:70::/64\"\n"));
    // The peer holds the lowest free address after the gateway's.
    let peer_ip6 = "2001:db8:70::2";
    let p = Unshared::start();
    let before = snapshot(&p);
    let ip6 = "2001:db8:70::9";
    let out = sb.netfwd_ok(&[
        "attach",
        "--name",
        &net,
        "--pid",
        &p.pid(),
        "--ip6",
        ip6,
        "--json",
    ]);
    let attached: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(attached["ip6"], ip6, "{attached:#}");
    assert!(ping_from(&p.netns_path(), peer_ip6));
    assert_ping(&peer, ip6);
    sb.netfwd_ok(&["detach", "--name", &net, "--pid", &p.pid()]);
    assert_eq!(snapshot(&p), before, "the process's namespace changed");

    let q = Unshared::start();
    let out = sb.netfwd_ok(&["attach", "--name", &net, "--pid", &q.pid(), "--json"]);
    let attached: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(attached["ip6"], "2001:db8:70::3", "{attached:#}");
    assert!(ping_from(&q.netns_path(), peer_ip6));
}

#[test]
fn a_namespace_file_can_be_attached_and_an_exited_process_is_forgotten() {
    let (
        Lab {
            sb, net, config, ..
        },
        peer,
    ) = network(Lab::builder("atpath", SUBNET));
    let other = sb.precreated_ns("other");
    sb.netfwd_ok(&[
        "attach",
        "--name",
        &net,
        "--netns-path",
        &other.path().display().to_string(),
        "--ip",
        "10.70.0.9",
    ]);
    assert_ping(other.name(), PEER_IP);
    assert_ping(&peer, "10.70.0.9");

    let p = Unshared::start();
    sb.netfwd_ok(&["attach", "--name", &net, "--pid", &p.pid()]);
    drop(p);
    let gone = |status: &serde_json::Value| {
        endpoints(status)
            .iter()
            .any(|e| e["attached"]["pid"].is_u64() && e["present"] == false)
    };
    eventually(
        "the exited process's endpoint shows as gone",
        Duration::from_secs(10),
        || gone(&sb.network_status(&net)),
    );
    sb.up_file(&config);
    let status = sb.network_status(&net);
    assert!(
        !gone(&status),
        "up kept the exited process's endpoint: {status:#}"
    );
    assert_eq!(endpoints(&status).len(), 2, "{status:#}");
}

#[test]
fn a_published_port_goes_with_its_attached_endpoint() {
    let (
        Lab {
            sb,
            internet,
            net,
            config,
            ..
        },
        _,
    ) = network(Lab::builder("atpub", SUBNET).uplink());
    let (ip, host_port) = ("10.70.0.9", "8080");
    let p = Unshared::start();
    sb.netfwd_ok(&["attach", "--name", &net, "--pid", &p.pid(), "--ip", ip]);
    sb.netfwd_ok(&[
        "publish",
        "--name",
        &net,
        "--proto",
        "tcp",
        "--host-port",
        host_port,
        "--endpoint",
        ip,
        "--port",
        "80",
    ]);
    assert_eq!(published(&sb, &net), 1);
    drop(p);
    eventually(
        "the exited process's endpoint shows as gone",
        Duration::from_secs(10),
        || {
            endpoints(&sb.network_status(&net))
                .iter()
                .any(|e| e["present"] == false)
        },
    );
    sb.up_file(&config);
    assert_eq!(published(&sb, &net), 0, "up kept the exited process's port");

    // A new endpoint given the same address, with a server on that port,
    // does not receive the internet's connections to it.
    let other = sb.precreated_ns("other");
    let path = other.path().display().to_string();
    sb.netfwd_ok(&["attach", "--name", &net, "--netns-path", &path, "--ip", ip]);
    let _server = EchoServer::start(other.name(), ip, 80);
    assert_eq!(published(&sb, &net), 0);
    let reached = in_netns(&internet.ns, || tcp_echo(UPLINK_IP, 8080, None, b"x"));
    assert!(
        reached.is_err(),
        "the new endpoint inherited the old one's published port: {reached:?}"
    );
}

/// A detach that cannot write the state down removes nothing: the
/// endpoint recorded is the endpoint plugged in (the other way round, the
/// next `up` would plug the container in again).
#[test]
fn a_detach_that_cannot_save_the_state_leaves_the_endpoint_as_recorded() {
    let (Lab { sb, net, .. }, _) = network(Lab::builder("atsave", SUBNET));
    let other = sb.precreated_ns("other");
    let path = other.path().display().to_string();
    let ip = "10.70.0.9";
    sb.netfwd_ok(&["attach", "--name", &net, "--netns-path", &path, "--ip", ip]);
    let host_ifname = |status: &serde_json::Value| {
        endpoints(status)
            .iter()
            .find(|e| e["ip"] == ip)
            .map(|e| e["host_ifname"].as_str().unwrap().to_owned())
    };
    let veth = host_ifname(&sb.network_status(&net)).unwrap();
    // Where the state is written first: a directory there fails the write.
    let blocker = std::path::Path::new(STATE_DIR).join(format!("{net}.json.tmp"));
    std::fs::create_dir(&blocker).unwrap();
    let out = sb.netfwd(&["detach", "--name", &net, "--netns-path", &path]);
    std::fs::remove_dir(&blocker).unwrap();
    assert!(!out.status.success(), "{}", describe("detach", &out));
    let links = tool_ok("ip", &["-n", sb.host(), "-o", "link"]);
    assert_eq!(
        host_ifname(&sb.network_status(&net)).is_some(),
        links.contains(&veth),
        "the state and the veth disagree: {links}"
    );
    sb.netfwd_ok(&["detach", "--name", &net, "--netns-path", &path]);
    assert!(host_ifname(&sb.network_status(&net)).is_none());
}

/// A namespace made after an attached one is gone, and given its inode
/// number by the kernel, is not the attached one: `up` does not plug it in.
#[test]
fn a_namespace_with_a_gone_ones_inode_does_not_inherit_its_endpoint() {
    let (
        Lab {
            sb, net, config, ..
        },
        _,
    ) = network(Lab::builder("atino", SUBNET));
    let attached = sb.ns("gone");
    tool_ok("ip", &["netns", "add", &attached]);
    let path = netns_path(&attached);
    let path_text = path.display().to_string();
    sb.netfwd_ok(&["attach", "--name", &net, "--netns-path", &path_text]);
    let inode = std::fs::metadata(&path).unwrap().ino();
    tool_ok("ip", &["netns", "del", &attached]);
    // The kernel gives the lowest free inode number to the next namespace
    // once the gone one is freed (a moment later): made until one has it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reused = None;
    for i in 0..128 {
        let name = sb.ns(&format!("new{i}"));
        tool_ok("ip", &["netns", "add", &name]);
        if std::fs::metadata(netns_path(&name)).unwrap().ino() == inode {
            reused = Some(name);
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let reused = reused.expect("no namespace was given the gone one's inode number");
    // Mounted where the attached one was, as a runtime reusing a name would.
    std::fs::File::create(&path).unwrap();
    tool_ok(
        "mount",
        &[
            "--bind",
            &netns_path(&reused).display().to_string(),
            &path_text,
        ],
    );
    sb.up_file(&config);
    let links = tool_ok("ip", &["-n", &attached, "-o", "link"]);
    assert_eq!(
        links.lines().count(),
        1,
        "the new namespace got an endpoint: {links}"
    );
    assert_eq!(endpoints(&sb.network_status(&net)).len(), 1);
}

fn published(sb: &Sandbox, net: &str) -> usize {
    sb.network_status(net)["published"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn bad_attach_targets_are_refused_and_change_nothing() {
    let (Lab { sb, net, .. }, peer) = network(Lab::builder("atbad", SUBNET));
    let before = tool_ok("ip", &["-n", sb.host(), "-o", "link"]);
    let host_path = netns_path(sb.host()).display().to_string();
    let peer_path = netns_path(&peer).display().to_string();
    let cases: [(&[&str], &str); 3] = [
        (&["--pid", "999999"], "--pid"),
        (&["--netns-path", &host_path], "--netns-path"),
        (&["--netns-path", &peer_path], "--ifname"),
    ];
    for (args, field) in cases {
        let mut full = vec!["attach", "--name", net.as_str()];
        full.extend_from_slice(args);
        let out = sb.netfwd(&full);
        assert_bad_input(&out, field);
    }
    let p = Unshared::start();
    let out = sb.netfwd(&["attach", "--name", &net, "--pid", &p.pid(), "--ip", PEER_IP]);
    assert_bad_input(&out, "--ip");
    assert_eq!(tool_ok("ip", &["-n", sb.host(), "-o", "link"]), before);
    assert_eq!(endpoints(&sb.network_status(&net)).len(), 1);
}
