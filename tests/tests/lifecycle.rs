//! `up` / `down` lifecycle: `up` is idempotent, `down` removes everything and
//! is idempotent, a network can be rebuilt, an endpoint dropped from the config
//! is removed, and a namespace netfwd did not create survives `down`; a
//! network whose host namespace is gone is an orphan, which `status` shows
//! and `down` removes from any namespace.
//!
//! Run as root, one test at a time: `cargo xtask test` (or
//! `NETFWD_BIN=… cargo test -p netfwd-tests -- --test-threads=1`).

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use netfwd_tests::{
    BPF_PIN_ROOT, NETFWD_TIMEOUT, NetConfig, STATE_DIR, Sandbox, assert_nothing_left, assert_ping,
    describe, endpoint, endpoints, has_link, in_ns_ok,
    internet::{INTERNET_IP6, Internet, UPLINK},
    link_names, netfwd_bin, netns_exists, netns_path, network_links, run_with_timeout,
    tcx_attachments, tool_ok, without_counters,
};
use serde_json::Value;

const SUBNET: &str = "10.77.0.0/24";
const GATEWAY: &str = "10.77.0.1";
const IPS: [&str; 3] = ["10.77.0.10", "10.77.0.11", "10.77.0.12"];
const SUBNET6: &str = "2001:db8:77::/64";
const GATEWAY6: &str = "2001:db8:77::1";
/// Another host's IPv6 endpoints, reached through the internet namespace.
const PEER6: &str = "2001:db8:78::/64";

fn created_netns(status: &Value) -> Vec<String> {
    status["created_netns"]
        .as_array()
        .unwrap_or_else(|| panic!("no created_netns in {status:#}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// A network of two endpoints, up and carrying traffic.
struct TwoEndpoints {
    sb: Sandbox,
    net: String,
    a: String,
    b: String,
    /// Its config file.
    path: PathBuf,
}

impl TwoEndpoints {
    fn up(tag: &str) -> TwoEndpoints {
        let sb = Sandbox::new(tag);
        let net = sb.net_name();
        let (a, b) = (sb.ns("a"), sb.ns("b"));
        let cfg = NetConfig::new(&net, SUBNET, Some(GATEWAY))
            .endpoint(&a, Some(IPS[0]))
            .endpoint(&b, Some(IPS[1]));
        let path = sb.up(&cfg);
        assert_ping(&a, IPS[1]);
        TwoEndpoints {
            sb,
            net,
            a,
            b,
            path,
        }
    }
}

#[test]
fn second_up_exits_0_and_changes_nothing() {
    let TwoEndpoints {
        sb, net, b, path, ..
    } = TwoEndpoints::up("lcup2");
    let first = sb.network_status(&net);
    let links_first = link_names(sb.host());
    let tcx_first = tcx_attachments(sb.host());
    for ep in endpoints(&first) {
        assert!(ep["host_ifindex"].as_u64().is_some(), "{ep:#}");
        assert!(ep["program"]["id"].as_u64().is_some(), "{ep:#}");
    }

    sb.up_file(&path);

    let second = sb.network_status(&net);
    assert_eq!(
        without_counters(&first),
        without_counters(&second),
        "status changed by a second up"
    );
    assert_eq!(links_first, link_names(sb.host()), "host links changed");
    assert_eq!(
        tcx_first,
        tcx_attachments(sb.host()),
        "TCX attachments changed"
    );
    assert_ping(&b, IPS[0]);
}

/// A no-op `up` only reads; what was removed or changed under the network
/// is still found and written again.
#[test]
fn up_repairs_what_was_removed_or_changed_under_it() {
    let TwoEndpoints {
        sb,
        net,
        a,
        b,
        path,
    } = TwoEndpoints::up("lcfix");
    let status = sb.network_status(&net);
    let veth_b = endpoint(&status, &b)["host_ifname"]
        .as_str()
        .unwrap()
        .to_owned();
    let tcx_first = tcx_attachments(sb.host());
    let redirects = format!("/proc/sys/net/ipv4/conf/{veth_b}/accept_redirects");

    tool_ok("ip", &["-n", &a, "addr", "flush", "dev", "eth0"]);
    tool_ok("ip", &["-n", &b, "route", "del", "default"]);
    tool_ok("ip", &["-n", &b, "link", "set", "lo", "down"]);
    // The gateway address goes, and the host route through it with it.
    tool_ok("ip", &["-n", sb.host(), "addr", "flush", "dev", &veth_b]);
    in_ns_ok(sb.host(), &["sh", "-c", &format!("echo 1 > {redirects}")]);
    // Unpinned, the link and its program go.
    let pin = Path::new(BPF_PIN_ROOT)
        .join(&net)
        .join("links")
        .join(&veth_b);
    std::fs::remove_file(&pin).unwrap();
    assert_ne!(tcx_first, tcx_attachments(sb.host()), "still attached");

    sb.up_file(&path);

    assert_eq!(tcx_first, tcx_attachments(sb.host()), "not attached again");
    assert!(pin.exists(), "{} not pinned again", pin.display());
    assert_eq!(in_ns_ok(sb.host(), &["cat", &redirects]).trim(), "0");
    let lo = tool_ok("ip", &["-n", &b, "-br", "link", "show", "lo"]);
    assert!(lo.contains("UP"), "lo of {b} left down: {lo}");
    assert_ping(&a, IPS[1]);
    assert_ping(&b, IPS[0]);
    assert_ping(&b, GATEWAY);
}

/// The destinations `ns` routes through `gateway` on `eth0` (`default`
/// for everything), as `ip` prints them.
fn routes_via(ns: &str, family: &str, gateway: &str) -> Vec<String> {
    let routes: Value = serde_json::from_str(&in_ns_ok(
        ns,
        &["ip", "-j", family, "route", "show", "dev", "eth0"],
    ))
    .unwrap();
    routes
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["gateway"] == gateway)
        .map(|r| r["dst"].as_str().unwrap().to_owned())
        .collect()
}

/// A dual-stack endpoint routes all IPv6 through the gateway while its
/// network takes IPv6 beyond the prefix (an uplink's NAT66, or an IPv6
/// peer), and its prefix alone again once `up` runs without them: the IPv6
/// default route goes, IPv4's stays throughout.
#[test]
fn ipv6_default_route_comes_and_goes_with_the_uplink_and_ipv6_peers() {
    let sb = Sandbox::new("lcrt6");
    let _internet = Internet::new(&sb);
    let net = sb.net_name();
    let a = sb.ns("a");
    let dual = NetConfig::new(&net, SUBNET, Some(GATEWAY))
        .keys(&format!("subnet6 = \"{SUBNET6}\"\n"))
        .endpoint(&a, Some(IPS[0]));
    let peer = format!("[[peer]]\nsubnet = \"{PEER6}\"\nvia = \"{INTERNET_IP6}\"\n");
    let steps = [
        ("with the uplink", dual.clone().uplink(UPLINK), "default"),
        ("without the uplink", dual.clone(), SUBNET6),
        ("with an IPv6 peer", dual.clone().tables(&peer), "default"),
        ("without the peer", dual, SUBNET6),
    ];
    for (step, cfg, reach) in steps {
        sb.up(&cfg);
        assert_eq!(routes_via(&a, "-6", GATEWAY6), [reach], "{step}");
        assert_eq!(routes_via(&a, "-4", GATEWAY), ["default"], "{step}");
    }
    assert_ping(&a, GATEWAY6);
}

#[test]
fn down_leaves_nothing_and_a_second_down_exits_0() {
    let TwoEndpoints {
        sb,
        net,
        a,
        b,
        path,
    } = TwoEndpoints::up("lcdown");
    assert!(
        !tcx_attachments(sb.host()).is_empty(),
        "no TCX attachment after up"
    );

    sb.netfwd_ok(&["down".as_ref(), "-c".as_ref(), path.as_os_str()]);
    assert_nothing_left(sb.host(), &net, &[&a, &b]);

    sb.netfwd_ok(&["down", "--name", &net]);
    sb.netfwd_ok(&["down".as_ref(), "-c".as_ref(), path.as_os_str()]);
    assert_nothing_left(sb.host(), &net, &[&a, &b]);
}

#[test]
fn up_after_down_builds_a_working_network_again() {
    let TwoEndpoints {
        sb,
        net,
        a,
        b,
        path,
    } = TwoEndpoints::up("lcredo");
    sb.netfwd_ok(&["down", "--name", &net]);
    assert_nothing_left(sb.host(), &net, &[&a, &b]);

    sb.up_file(&path);
    assert_ping(&a, IPS[1]);
    assert_ping(&b, IPS[0]);
    assert_ping(&a, GATEWAY);
    assert_ping(sb.host(), IPS[1]);
    let status = sb.network_status(&net);
    for ns in [&a, &b] {
        assert!(
            endpoint(&status, ns)["program"]["id"].as_u64().is_some(),
            "{status:#}"
        );
    }
}

#[test]
fn endpoint_removed_from_the_config_loses_its_veth_and_created_namespace() {
    let sb = Sandbox::new("lcrm");
    let net = sb.net_name();
    let ns = [sb.ns("a"), sb.ns("b"), sb.ns("c")];
    let full = NetConfig::new(&net, SUBNET, Some(GATEWAY))
        .endpoint(&ns[0], Some(IPS[0]))
        .endpoint(&ns[1], Some(IPS[1]))
        .endpoint(&ns[2], Some(IPS[2]));
    sb.up(&full);
    let before = sb.network_status(&net);
    let gone_ifname = endpoint(&before, &ns[2])["host_ifname"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(has_link(sb.host(), &gone_ifname));
    assert!(created_netns(&before).contains(&ns[2]), "{before:#}");
    assert_ping(&ns[0], IPS[2]);

    let mut smaller = full.clone();
    smaller.endpoints.pop();
    sb.up(&smaller);

    assert!(
        !has_link(sb.host(), &gone_ifname),
        "{gone_ifname} still in the host: {:?}",
        link_names(sb.host())
    );
    assert!(!netns_exists(&ns[2]), "namespace {} still exists", ns[2]);
    let after = sb.network_status(&net);
    let left: Vec<&str> = endpoints(&after)
        .iter()
        .map(|e| e["netns"].as_str().unwrap())
        .collect();
    assert_eq!(left, [ns[0].as_str(), ns[1].as_str()], "{after:#}");
    assert!(!created_netns(&after).contains(&ns[2]), "{after:#}");
    assert_eq!(
        network_links(sb.host(), &net).len(),
        2,
        "{:?}",
        link_names(sb.host())
    );
    assert_eq!(
        tcx_attachments(sb.host()).len(),
        2,
        "{:?}",
        tcx_attachments(sb.host())
    );
    // The others still talk, with the same programs as before.
    assert_ping(&ns[0], IPS[1]);
    assert_ping(&ns[1], IPS[0]);
    for n in &ns[..2] {
        assert_eq!(
            endpoint(&before, n)["program"],
            endpoint(&after, n)["program"],
            "program of {n} changed"
        );
    }
}

#[test]
fn namespace_made_before_up_is_used_and_kept_by_down() {
    let sb = Sandbox::new("lcpre");
    let net = sb.net_name();
    let mine = sb.precreated_ns("mine");
    let made = sb.ns("made");
    let cfg = NetConfig::new(&net, SUBNET, Some(GATEWAY))
        .endpoint(mine.name(), Some(IPS[0]))
        .endpoint(&made, Some(IPS[1]));
    sb.up(&cfg);
    assert!(has_link(mine.name(), "eth0"), "no eth0 in {}", mine.name());
    assert_ping(mine.name(), IPS[1]);
    assert_ping(&made, IPS[0]);
    let status = sb.network_status(&net);
    let created = created_netns(&status);
    assert!(created.contains(&made), "{status:#}");
    assert!(!created.iter().any(|n| n == mine.name()), "{status:#}");

    let out = sb.netfwd(&["down", "--name", &net]);
    assert!(out.status.success(), "{}", describe("netfwd down", &out));

    assert!(netns_exists(mine.name()), "down deleted {}", mine.name());
    assert!(
        !has_link(mine.name(), "eth0"),
        "eth0 left in {}: {:?}",
        mine.name(),
        link_names(mine.name())
    );
    assert_nothing_left(sb.host(), &net, &[&made]);
}

/// `netfwd --netns <ns> args…`.
fn netfwd_in(ns: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(netfwd_bin());
    cmd.arg("--netns").arg(ns).args(args);
    run_with_timeout(&mut cmd, NETFWD_TIMEOUT)
}

/// Network `net` as `status --json` run in namespace `ns` shows it, if it does.
fn listed_in(ns: &str, net: &str) -> Option<Value> {
    let out = netfwd_in(ns, &["status", "--json"]);
    assert!(out.status.success(), "{}", describe("status", &out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    status["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == net)
        .cloned()
}

#[test]
fn network_whose_host_namespace_is_gone_is_shown_orphaned_and_down_removes_it() {
    let sb = Sandbox::new("lcorph");
    let net = sb.net_name();
    let (a, b) = (sb.ns("a"), sb.ns("b"));
    let cfg = NetConfig::new(&net, SUBNET, Some(GATEWAY))
        .endpoint(&a, Some(IPS[0]))
        .endpoint(&b, Some(IPS[1]));
    sb.up(&cfg);
    let pins = Path::new(BPF_PIN_ROOT).join(&net);
    let state = Path::new(STATE_DIR).join(format!("{net}.json"));
    assert!(pins.is_dir() && state.is_file());
    assert_eq!(sb.network_status(&net)["orphaned"], false);

    // Nothing holds the sandbox host but its name: it goes with it.
    let host_inode = std::fs::metadata(netns_path(sb.host())).unwrap().ino();
    tool_ok("ip", &["netns", "del", sb.host()]);
    // Once the kernel has freed it, the next namespace made gets its inode
    // number: run from that one if it comes, where the inode alone would
    // take the gone namespace for this one.
    let elsewhere = (0..30)
        .find_map(|i| {
            let ns = sb.precreated_ns(&format!("else{i}"));
            if std::fs::metadata(ns.path()).unwrap().ino() == host_inode {
                return Some(ns);
            }
            drop(ns);
            std::thread::sleep(std::time::Duration::from_millis(100));
            None
        })
        .unwrap_or_else(|| sb.precreated_ns("elsewhere"));

    let shown = listed_in(elsewhere.name(), &net)
        .unwrap_or_else(|| panic!("orphan {net} not in the status of another namespace"));
    assert_eq!(shown["orphaned"], true, "{shown:#}");
    let out = netfwd_in(elsewhere.name(), &["status", "--name", &net]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("orphaned"),
        "{}",
        describe("status", &out)
    );

    let out = netfwd_in(elsewhere.name(), &["down", "--name", &net]);
    assert!(
        out.status.success(),
        "{}",
        describe("down of an orphan", &out)
    );
    assert!(!pins.exists(), "{} left", pins.display());
    assert!(!state.exists(), "{} left", state.display());
    assert!(
        !netns_exists(&a) && !netns_exists(&b),
        "created namespaces left"
    );
    assert!(listed_in(elsewhere.name(), &net).is_none());
}

#[test]
fn network_in_a_live_namespace_is_not_an_orphan_and_down_elsewhere_refuses() {
    let sb = Sandbox::new("lclive");
    let net = sb.net_name();
    let a = sb.ns("a");
    sb.up(&NetConfig::new(&net, SUBNET, Some(GATEWAY)).endpoint(&a, Some(IPS[0])));
    let elsewhere = sb.precreated_ns("elsewhere");
    let listed = listed_in(elsewhere.name(), &net);
    assert!(
        listed.is_none(),
        "a live network of another namespace is listed: {listed:#?}"
    );
    let out = netfwd_in(elsewhere.name(), &["down", "--name", &net]);
    assert_eq!(out.status.code(), Some(2), "{}", describe("down", &out));
    assert!(Path::new(BPF_PIN_ROOT).join(&net).is_dir());
    assert_ping(sb.host(), IPS[0]);
}

/// An endpoint's program is attached before its entry is written and
/// forwarding is turned on for its veth: until the program runs, what the
/// endpoint sends meets the host stack unchecked, and with forwarding on it
/// would be routed out with its private source. Read off the syscalls `up`
/// makes (strace).
#[test]
fn an_endpoints_program_is_attached_before_its_entry_and_forwarding() {
    let sb = Sandbox::new("lcorder");
    let _internet = netfwd_tests::internet::Internet::new(&sb);
    let net = sb.net_name();
    let ns = sb.ns("a");
    let cfg = NetConfig::new(&net, SUBNET, None)
        .uplink(netfwd_tests::internet::UPLINK)
        .endpoint(&ns, Some(IPS[0]));
    let config = sb.write_config(&cfg.to_toml());
    let trace = config.with_extension("strace");
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=bpf,openat", "-o"])
        .arg(&trace)
        .arg(netfwd_bin())
        .args(["--netns", sb.host(), "up", "-c"])
        .arg(&config);
    let out = run_with_timeout(&mut cmd, NETFWD_TIMEOUT);
    assert!(
        out.status.success(),
        "{}",
        describe("strace netfwd up", &out)
    );

    let status = sb.network_status(&net);
    let ep = endpoint(&status, &ns);
    let ifindex = ep["host_ifindex"].as_u64().unwrap();
    let ifname = ep["host_ifname"].as_str().unwrap();
    let calls = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = calls.lines().collect();
    let position = |what: &str, is: &dyn Fn(usize, &str) -> bool| {
        (0..lines.len())
            .find(|&i| is(i, lines[i]))
            .unwrap_or_else(|| panic!("no {what} in the trace:\n{calls}"))
    };
    // TCX ingress (attach type 46) on the endpoint's veth.
    let attached = position("TCX attach", &|_, l| {
        l.contains("BPF_LINK_CREATE")
            && l.contains(&format!("target_fd={ifindex},"))
            && (l.contains("attach_type=0x2e") || l.contains("BPF_TCX_INGRESS"))
    });
    // An update of ENDPOINTS through an fd that BPF_OBJ_GET opened on it.
    let endpoints_pin = format!("/{net}/ENDPOINTS\"");
    let entry = position("ENDPOINTS update", &|i, l| {
        let Some(fd) = l
            .split("map_fd=")
            .nth(1)
            .filter(|_| l.contains("BPF_MAP_UPDATE_ELEM"))
            .and_then(|rest| rest.split(',').next())
        else {
            return false;
        };
        // The latest call that returned this fd opened ENDPOINTS.
        let opened = format!("= {fd}");
        lines[..i]
            .iter()
            .rev()
            .find(|o| o.trim_end().ends_with(&opened))
            .is_some_and(|o| o.contains("BPF_OBJ_GET") && o.contains(&endpoints_pin))
    });
    let forwarding = position("forwarding sysctl", &|_, l| {
        l.contains(&format!("/conf/{ifname}/forwarding"))
    });
    assert!(
        attached < entry && attached < forwarding,
        "attached at line {attached}, entry at {entry}, forwarding at {forwarding}:\n{calls}"
    );
}
