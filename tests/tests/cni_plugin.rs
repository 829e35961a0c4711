//! The CNI plugin driven as a runtime drives it: the spec's environment and
//! JSON for ADD, CHECK, DEL, VERSION, GC and STATUS, with host-local for
//! addresses, in every version spoken (0.4.0, 1.0.0, 1.1.0). Bad calls get
//! the spec's error JSON and change nothing.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use std::{
    process::Output,
    thread,
    time::{Duration, Instant},
};

use netfwd_tests::{
    Netns, Sandbox, assert_no_bridge_and_no_rules, assert_ping,
    cgroup::Cgroup,
    cni::{CniDirs, stdout_json},
    describe, drops_of_ip, endpoints, in_ns_ok,
    internet::{
        ECHO_PORT, EchoServer, INTERNET_IP, INTERNET_IP6, Internet, UPLINK, UPLINK_IP, in_netns,
        ip_of, tcp_echo, udp_echo_within,
    },
    network_links, payload,
};
use serde_json::{Value, json};

const SUBNET: &str = "10.90.0.0/24";
const GATEWAY: &str = "10.90.0.1";
const SUBNET6: &str = "fd00:90::/64";
const GATEWAY6: &str = "fd00:90::1";
/// A public IPv6 prefix, routed to the sandbox host by the internet.
const PUBLIC6: &str = "2001:db8:90::/64";

/// One sandbox host that calls the plugin, its CNI directories and a
/// network name.
struct PluginHost {
    sb: Sandbox,
    cni: CniDirs,
    net: String,
}

impl PluginHost {
    fn new(tag: &str) -> PluginHost {
        let sb = Sandbox::new(tag);
        let net = sb.net_name();
        PluginHost {
            cni: CniDirs::new(tag),
            sb,
            net,
        }
    }

    fn conf(&self, version: &str) -> Value {
        self.cni.conf(version, &self.net, SUBNET)
    }

    fn call(&self, command: &str, container: &str, netns: Option<&Netns>, conf: &Value) -> Output {
        call(&self.cni, self.sb.host(), command, container, netns, conf)
    }

    /// ADD, which must succeed; returns the result.
    fn add(&self, container: &str, netns: &Netns, conf: &Value) -> Value {
        let out = self.call("ADD", container, Some(netns), conf);
        assert!(out.status.success(), "{}", describe("CNI ADD", &out));
        stdout_json(&out)
    }

    fn ok(&self, command: &str, container: &str, netns: Option<&Netns>, conf: &Value) {
        let out = self.call(command, container, netns, conf);
        assert!(
            out.status.success(),
            "{}",
            describe(&format!("CNI {command}"), &out)
        );
        assert!(out.stdout.is_empty(), "{command} printed {:?}", out.stdout);
    }

    /// The address (no prefix) of an ADD result.
    fn address(result: &Value) -> String {
        let cidr = result["ips"][0]["address"].as_str().unwrap();
        cidr.split('/').next().unwrap().to_owned()
    }

    fn cni_endpoints(&self) -> Vec<Value> {
        endpoints(&self.sb.network_status(&self.net)).clone()
    }
}

/// One plugin call for `container`'s `eth0` (a free function: the sandbox
/// stays on the test's thread while calls run on many).
fn call(
    cni: &CniDirs,
    host: &str,
    command: &str,
    container: &str,
    netns: Option<&Netns>,
    conf: &Value,
) -> Output {
    let path = netns.map(|n| n.path().display().to_string());
    let mut vars = vec![("CNI_CONTAINERID", container), ("CNI_IFNAME", "eth0")];
    if let Some(path) = &path {
        vars.push(("CNI_NETNS", path.as_str()));
    }
    cni.plugin(host, command, &vars, &conf.to_string())
}

/// Asserts a failed call printed the spec's error JSON with `code`.
fn assert_cni_error(out: &Output, code: u64) -> Value {
    assert!(
        !out.status.success(),
        "{}",
        describe("expected a failure", out)
    );
    let err = stdout_json(out);
    assert_eq!(err["code"], code, "{err:#}");
    assert!(
        err["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{err:#}"
    );
    assert!(err["cniVersion"].is_string(), "{err:#}");
    err
}

/// ADD, CHECK and DEL in each version: results in that version's shape,
/// the two containers reach each other, status names their containers, DEL
/// leaves no veth, entry or lease and may be repeated.
#[test]
fn add_check_del_in_every_version() {
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let lab = PluginHost::new("cniv");
        let conf = lab.conf(version);
        let (n1, n2) = (lab.sb.precreated_ns("c1"), lab.sb.precreated_ns("c2"));
        let r1 = lab.add("ctr-one", &n1, &conf);
        let r2 = lab.add("ctr-two", &n2, &conf);

        assert_eq!(r1["cniVersion"], version);
        let ip = &r1["ips"][0];
        assert_eq!(ip["gateway"], GATEWAY, "{r1:#}");
        assert_eq!(ip["interface"], 1, "{r1:#}");
        assert_eq!(ip.get("version").is_some(), version == "0.4.0", "{r1:#}");
        assert_eq!(r1["interfaces"][1]["name"], "eth0");
        assert_eq!(
            r1["interfaces"][1]["sandbox"],
            n1.path().display().to_string()
        );
        assert_eq!(r1["routes"], json!([{ "dst": "0.0.0.0/0", "gw": GATEWAY }]));
        let (ip1, ip2) = (PluginHost::address(&r1), PluginHost::address(&r2));
        assert_ne!(ip1, ip2);
        assert_eq!(lab.cni.leases(&lab.net), {
            let mut v = vec![ip1.clone(), ip2.clone()];
            v.sort();
            v
        });

        assert_ping(n1.name(), &ip2);
        assert_ping(n2.name(), &ip1);
        lab.ok("CHECK", "ctr-one", Some(&n1), &conf);

        let eps = lab.cni_endpoints();
        let ids: Vec<&str> = eps
            .iter()
            .map(|e| e["attached"]["container_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["ctr-one", "ctr-two"], "{eps:#?}");
        // ADD again for the same container: the same endpoint, no new lease.
        assert_eq!(PluginHost::address(&lab.add("ctr-one", &n1, &conf)), ip1);
        assert_eq!(lab.cni.leases(&lab.net).len(), 2);

        lab.ok("DEL", "ctr-one", Some(&n1), &conf);
        lab.ok("DEL", "ctr-two", Some(&n2), &conf);
        // Again, and without a namespace: still fine.
        lab.ok("DEL", "ctr-one", Some(&n1), &conf);
        lab.ok("DEL", "ctr-two", None, &conf);
        assert!(lab.cni_endpoints().is_empty());
        assert!(lab.cni.leases(&lab.net).is_empty());
        assert!(network_links(lab.sb.host(), &lab.net).is_empty());
        for ns in [&n1, &n2] {
            let links = in_ns_ok(ns.name(), &["ip", "-o", "link"]);
            assert_eq!(links.lines().count(), 1, "{links}");
        }
        assert_no_bridge_and_no_rules(lab.sb.host());
    }
}

/// A dual-stack host-local (a range set of each family, as podman writes
/// for `--ipv6`): each ADD gets an address of each, the result lists both
/// (0.4.0's `version` "4" and "6") and the IPv6 prefix's route, the
/// containers reach each other over IPv6, CHECK sees both addresses, DEL
/// gives both leases back.
#[test]
fn dual_stack_add_check_del() {
    let lab = PluginHost::new("cni6");
    let mut conf = lab.conf("0.4.0");
    conf["ipam"]["ranges"] = json!([[{ "subnet": SUBNET }], [{ "subnet": SUBNET6 }]]);
    let (n1, n2) = (lab.sb.precreated_ns("c1"), lab.sb.precreated_ns("c2"));
    let r1 = lab.add("ctr-one", &n1, &conf);
    let r2 = lab.add("ctr-two", &n2, &conf);

    let ips = r1["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 2, "{r1:#}");
    assert_eq!(ips[0]["version"], "4", "{r1:#}");
    assert_eq!(ips[1]["version"], "6", "{r1:#}");
    assert_eq!(ips[1]["gateway"], GATEWAY6, "{r1:#}");
    assert!(
        r1["routes"]
            .as_array()
            .unwrap()
            .contains(&json!({ "dst": SUBNET6, "gw": GATEWAY6 })),
        "{r1:#}"
    );
    let address6 = |r: &Value| {
        let cidr = r["ips"][1]["address"].as_str().unwrap();
        cidr.split('/').next().unwrap().to_owned()
    };
    let (a6, b6) = (address6(&r1), address6(&r2));
    assert_ne!(a6, b6);
    assert!(a6.starts_with("fd00:90::"), "{a6}");
    assert_ping(n1.name(), &b6);
    assert_ping(n2.name(), &a6);
    lab.ok("CHECK", "ctr-one", Some(&n1), &conf);

    lab.ok("DEL", "ctr-one", Some(&n1), &conf);
    lab.ok("DEL", "ctr-two", Some(&n2), &conf);
    assert!(lab.cni_endpoints().is_empty());
    assert!(lab.cni.leases(&lab.net).is_empty());
    assert!(network_links(lab.sb.host(), &lab.net).is_empty());
}

/// `"nat6": false` (the network's `nat6 = false`): a container of a
/// dual-stack network with an uplink reaches the internet over IPv6 as its
/// own address, the prefix routed to the host by the internet; its IPv4 is
/// still masqueraded.
#[test]
fn nat6_false_routes_the_ipv6_prefix_as_it_is() {
    let lab = PluginHost::new("cnin6");
    let internet = Internet::new(&lab.sb);
    internet.route_to_host(PUBLIC6);
    let mut conf = lab.conf("1.0.0");
    conf["ipam"]["ranges"] = json!([[{ "subnet": SUBNET }], [{ "subnet": PUBLIC6 }]]);
    conf["uplink"] = json!(UPLINK);
    conf["nat6"] = json!(false);
    let n1 = lab.sb.precreated_ns("c1");
    let r1 = lab.add("ctr", &n1, &conf);
    let status = lab.sb.network_status(&lab.net);
    assert_eq!(status["nat6"], false, "{status:#}");
    let own6 = r1["ips"][1]["address"].as_str().unwrap();
    let own6 = own6.split('/').next().unwrap().to_owned();

    let seen_as = |server: &'static str| {
        let data = payload("cni-nat6", 3000);
        let seen = in_netns(n1.name(), move || tcp_echo(server, ECHO_PORT, None, &data));
        ip_of(&seen.unwrap()).to_owned()
    };
    assert_eq!(seen_as(INTERNET_IP6), own6);
    assert_eq!(seen_as(INTERNET_IP), UPLINK_IP);
    lab.ok("DEL", "ctr", Some(&n1), &conf);
}

/// A runtime starting twenty containers at once: twenty distinct addresses,
/// all reach each other; twenty DELs at once leave nothing.
#[test]
fn twenty_concurrent_adds_get_distinct_addresses() {
    let lab = PluginHost::new("cnipar");
    let conf = lab.conf("1.0.0");
    let namespaces: Vec<Netns> = (0..20)
        .map(|i| lab.sb.precreated_ns(&format!("p{i}")))
        .collect();
    let (cni, host) = (&lab.cni, lab.sb.host().to_owned());
    let parallel = |command: &str| -> Vec<Output> {
        thread::scope(|s| {
            let handles: Vec<_> = namespaces
                .iter()
                .enumerate()
                .map(|(i, ns)| {
                    let (host, conf) = (&host, &conf);
                    s.spawn(move || call(cni, host, command, &format!("ctr{i}"), Some(ns), conf))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let results = parallel("ADD");
    let mut ips: Vec<String> = results
        .iter()
        .map(|out| {
            assert!(out.status.success(), "{}", describe("parallel ADD", out));
            PluginHost::address(&stdout_json(out))
        })
        .collect();
    // Each pings the next: every endpoint sends and answers.
    for (i, ns) in namespaces.iter().enumerate() {
        assert_ping(ns.name(), &ips[(i + 1) % ips.len()]);
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "addresses handed out twice: {ips:?}");
    assert_eq!(lab.cni_endpoints().len(), 20);

    for out in parallel("DEL") {
        assert!(out.status.success(), "{}", describe("parallel DEL", &out));
    }
    assert!(lab.cni_endpoints().is_empty());
    assert!(lab.cni.leases(&lab.net).is_empty());
    assert!(network_links(lab.sb.host(), &lab.net).is_empty());
}

/// The first ADD loads the datapath; every later one attaches the program
/// it loaded, opened from its pin rather than loaded (and verified) again:
/// one program ID on every endpoint, even after a DEL.
#[test]
fn later_adds_attach_the_program_the_first_loaded() {
    let lab = PluginHost::new("cnipin");
    let conf = lab.conf("1.0.0");
    let namespaces: Vec<Netns> = (0..3)
        .map(|i| lab.sb.precreated_ns(&format!("r{i}")))
        .collect();
    for (i, ns) in namespaces.iter().enumerate() {
        lab.add(&format!("ctr{i}"), ns, &conf);
    }
    lab.ok("DEL", "ctr1", Some(&namespaces[1]), &conf);
    lab.add("ctr1", &namespaces[1], &conf);
    let eps = lab.cni_endpoints();
    let ids: Vec<u64> = eps
        .iter()
        .map(|e| e["program"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{eps:#?}");
    assert!(ids.iter().all(|id| *id == ids[0]), "program IDs {ids:?}");
}

/// Malformed config, unknown version, missing namespace or variables, an
/// unknown command, an invalid network: the spec's error JSON, non-zero
/// exit, and no network made.
#[test]
fn bad_calls_get_spec_errors_and_change_nothing() {
    let lab = PluginHost::new("cnierr");
    let n1 = lab.sb.precreated_ns("c1");
    let conf = lab.conf("1.0.0");
    let host = lab.sb.host();
    let vars = |netns: &str| {
        vec![
            ("CNI_CONTAINERID", "ctr"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", netns),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect::<Vec<_>>()
    };
    let run = |command: &str, vars: &[(&str, String)], stdin: &str| {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        lab.cni.plugin(host, command, &vars, stdin)
    };
    let good = vars(&n1.path().display().to_string());

    assert_cni_error(&run("ADD", &good, "{\"cniVersion\": "), 6);
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.3.1");
    let err = assert_cni_error(&run("ADD", &good, &old.to_string()), 1);
    assert!(err["msg"].as_str().unwrap().contains("0.4.0"), "{err:#}");
    assert_cni_error(
        &run(
            "ADD",
            &vars("/run/netns/netfwd-no-such-ns"),
            &conf.to_string(),
        ),
        3,
    );
    assert_cni_error(&run("ADD", &good[1..], &conf.to_string()), 4);
    assert_cni_error(&run("FROB", &good, &conf.to_string()), 4);
    let mut bad = conf.clone();
    bad["subnet"] = json!("10.90.0.0/33");
    assert_cni_error(&run("ADD", &good, &bad.to_string()), 7);
    let mut turbo = conf.clone();
    turbo["mode"] = json!("turbo");
    assert_cni_error(&run("ADD", &good, &turbo.to_string()), 6);
    let mut no_ipam = conf.clone();
    no_ipam["ipam"]["type"] = json!("no-such-ipam");
    let err = assert_cni_error(&run("ADD", &good, &no_ipam.to_string()), 7);
    assert!(
        err["msg"].as_str().unwrap().contains("no-such-ipam"),
        "{err:#}"
    );
    // GC and STATUS are 1.1.
    assert_cni_error(&run("GC", &[], &conf.to_string()), 1);
    // A container ID is what the spec allows, and is printed by `status`.
    let long = "c".repeat(256);
    for id in ["\x1b[2Jtaken", "../etc", "-lead", "a b", long.as_str()] {
        let mut bad_id = good.clone();
        bad_id[0].1 = id.to_owned();
        let err = assert_cni_error(&run("ADD", &bad_id, &conf.to_string()), 4);
        assert!(
            err["msg"].as_str().unwrap().contains("CNI_CONTAINERID"),
            "{err:#}"
        );
    }

    // Nothing of the network was made; the namespace is as it was.
    let out = lab.sb.netfwd(&["status", "--name", &lab.net, "--json"]);
    assert!(!out.status.success(), "{}", describe("status", &out));
    assert!(lab.cni.leases(&lab.net).is_empty());
    let links = in_ns_ok(n1.name(), &["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
}

/// An ADD for a namespace another container's endpoint is in gets no
/// endpoint (not the other's, with its address and ports), and its lease is
/// given back.
#[test]
fn an_add_into_a_namespace_another_container_holds_is_refused() {
    let lab = PluginHost::new("cnidup");
    let _internet = Internet::new(&lab.sb);
    let mut conf = lab.conf("1.0.0");
    conf["uplink"] = json!(UPLINK);
    let n1 = lab.sb.precreated_ns("c1");
    let first = PluginHost::address(&lab.add("first", &n1, &conf));
    conf["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": "" }
    ]});
    let err = assert_cni_error(&lab.call("ADD", "second", Some(&n1), &conf), 7);
    assert!(
        err["msg"].as_str().unwrap().contains("container first"),
        "{err:#}"
    );
    assert_eq!(lab.cni.leases(&lab.net), [first]);
    let status = lab.sb.network_status(&lab.net);
    assert_eq!(status["published"], json!([]), "{status:#}");
    assert_eq!(endpoints(&status).len(), 1, "{status:#}");
}

/// GC with a config that is not the network's (another subnet under the
/// same name) judges none of its endpoints.
#[test]
fn gc_with_another_config_of_the_name_removes_nothing() {
    let lab = PluginHost::new("cnigcx");
    let conf = lab.conf("1.1.0");
    let n1 = lab.sb.precreated_ns("c1");
    let kept = PluginHost::address(&lab.add("keep", &n1, &conf));
    let mut other = lab.cni.conf("1.1.0", &lab.net, "10.91.0.0/24");
    other["cni.dev/valid-attachments"] = json!([]);
    let err = assert_cni_error(&lab.call("GC", "", None, &other), 7);
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("another configuration"),
        "{err:#}"
    );
    assert_eq!(lab.cni_endpoints().len(), 1);
    assert_eq!(lab.cni.leases(&lab.net), [kept]);
}

/// VERSION answers in the caller's version and lists what is spoken.
#[test]
fn version_lists_supported_versions() {
    let lab = PluginHost::new("cniver");
    for (stdin, expected) in [
        (r#"{"cniVersion":"0.4.0"}"#, "0.4.0"),
        (r#"{"cniVersion":"1.1.0"}"#, "1.1.0"),
        ("", "1.1.0"),
    ] {
        let out = lab.cni.plugin(lab.sb.host(), "VERSION", &[], stdin);
        assert!(out.status.success(), "{}", describe("VERSION", &out));
        let v = stdout_json(&out);
        assert_eq!(v["cniVersion"], expected);
        assert_eq!(v["supportedVersions"], json!(["0.4.0", "1.0.0", "1.1.0"]));
    }
}

/// CHECK finds what is missing; GC (1.1) removes the endpoints the runtime
/// no longer lists and keeps the others; STATUS reports a missing uplink.
#[test]
fn check_gc_and_status() {
    let lab = PluginHost::new("cnigc");
    let conf = lab.conf("1.1.0");
    let (n1, n2) = (lab.sb.precreated_ns("c1"), lab.sb.precreated_ns("c2"));
    let kept = PluginHost::address(&lab.add("keep", &n1, &conf));
    lab.add("stale", &n2, &conf);
    lab.ok("CHECK", "keep", Some(&n1), &conf);
    assert_cni_error(&lab.call("CHECK", "nobody", Some(&n1), &conf), 3);

    in_ns_ok(n1.name(), &["ip", "route", "del", "default"]);
    let err = assert_cni_error(&lab.call("CHECK", "keep", Some(&n1), &conf), 100);
    assert!(
        err["msg"].as_str().unwrap().contains("default route"),
        "{err:#}"
    );

    // A GC that lists nothing is refused and removes nothing.
    assert_cni_error(&lab.call("GC", "", None, &conf), 7);
    assert_eq!(lab.cni_endpoints().len(), 2);

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{ "containerID": "keep", "ifname": "eth0" }]);
    lab.ok("GC", "", None, &gc);
    let eps = lab.cni_endpoints();
    assert_eq!(eps.len(), 1, "{eps:#?}");
    assert_eq!(eps[0]["attached"]["container_id"], "keep");
    assert_eq!(network_links(lab.sb.host(), &lab.net).len(), 1);
    // The stale lease went too (host-local predates GC: an IPAM DEL).
    assert_eq!(lab.cni.leases(&lab.net), [kept]);

    lab.ok("STATUS", "", None, &conf);
    let mut no_uplink = conf.clone();
    no_uplink["uplink"] = json!("nosuchif0");
    assert_cni_error(&lab.call("STATUS", "", None, &no_uplink), 50);
}

/// Without `ipam`, netfwd hands out the lowest free addresses itself.
#[test]
fn without_ipam_netfwd_allocates() {
    let lab = PluginHost::new("cninoipam");
    let mut conf = lab.conf("1.0.0");
    conf.as_object_mut().unwrap().remove("ipam");
    let (n1, n2) = (lab.sb.precreated_ns("c1"), lab.sb.precreated_ns("c2"));
    assert_eq!(PluginHost::address(&lab.add("a", &n1, &conf)), "10.90.0.2");
    assert_eq!(PluginHost::address(&lab.add("b", &n2, &conf)), "10.90.0.3");
    assert_ping(n1.name(), "10.90.0.3");
    lab.ok("DEL", "a", Some(&n1), &conf);
    let n3 = lab.sb.precreated_ns("c3");
    assert_eq!(PluginHost::address(&lab.add("c", &n3, &conf)), "10.90.0.2");
}

/// With an uplink: the container reaches the internet as the uplink's
/// address, and `portMappings` publish its server on the uplink until DEL.
#[test]
fn snat_and_port_mappings() {
    let lab = PluginHost::new("cninat");
    let _internet = Internet::new(&lab.sb);
    let cgroup = Cgroup::new("cninat");
    let mut conf = lab.conf("0.4.0");
    conf["uplink"] = json!(UPLINK);
    conf["hostCgroup"] = json!(cgroup.0);
    conf["runtimeConfig"] = json!({ "portMappings": [
        { "hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "" }
    ]});
    let n1 = lab.sb.precreated_ns("c1");
    let r1 = lab.add("web", &n1, &conf);
    let ip = PluginHost::address(&r1);
    let _server = EchoServer::start(n1.name(), &ip, 80);

    let data = payload("cni-snat", 3000);
    let peer = in_netns(n1.name(), move || {
        tcp_echo(INTERNET_IP, netfwd_tests::internet::ECHO_PORT, None, &data)
    })
    .unwrap();
    assert_eq!(ip_of(&peer), UPLINK_IP, "the server saw {peer}");

    let data = payload("cni-published", 3000);
    let inet = _internet.ns.clone();
    let peer = in_netns(&inet, move || tcp_echo(UPLINK_IP, 8080, None, &data)).unwrap();
    assert_eq!(ip_of(&peer), INTERNET_IP, "the container saw {peer}");

    lab.ok("DEL", "web", Some(&n1), &conf);
    let status = lab.sb.network_status(&lab.net);
    assert_eq!(status["published"], json!([]), "{status:#}");
    let inet = _internet.ns.clone();
    assert!(
        in_netns(&inet, || tcp_echo(UPLINK_IP, 8080, None, b"x")).is_err(),
        "port 8080 still answers after DEL"
    );
}

/// A network the CNI plugin made has no netfwd process keeping it (the
/// plugin exits after each call), and none runs here: its NAT table, filled
/// with answered flows close to their UDP timeout, refuses a new flow
/// (`nat_full`); once they expire, the kernel's sweep gives their room back
/// (within 10 s of the timeout) and a new flow gets through.
#[test]
fn a_cni_network_gets_room_back_from_expired_flows_with_no_netfwd_running() {
    let lab = PluginHost::new("cnisweep");
    let _internet = Internet::new(&lab.sb);
    let mut conf = lab.conf("1.0.0");
    conf["uplink"] = json!(UPLINK);
    let n1 = lab.sb.precreated_ns("c1");
    let ip: std::net::Ipv4Addr = PluginHost::address(&lab.add("c1", &n1, &conf))
        .parse()
        .unwrap();
    let echo = |sport: u16| {
        in_netns(n1.name(), move || {
            let wait = Duration::from_millis(300);
            udp_echo_within(INTERNET_IP, ECHO_PORT, sport, b"room?", wait)
        })
        .is_ok()
    };
    assert!(echo(40000), "the network works");

    // The CNI network keeps the default timeouts (udp 60 s): the table is
    // filled with flows last seen 55 s ago, answered (so early drop may not
    // evict them), which expire 5 s from now.
    let expire_in = Duration::from_secs(5);
    let filled = Instant::now();
    fill_nat_table(&lab.net, ip, 55);
    assert!(!echo(40001), "a full table refuses a new flow");
    let status = lab.sb.network_status(&lab.net);
    let refused = drops_of_ip(&status, &ip.to_string(), "nat_full");
    assert!(refused >= 1, "{status:#}");

    let deadline = filled + expire_in + Duration::from_secs(10);
    let mut sport = 41000;
    while !echo(sport) {
        assert!(
            Instant::now() < deadline,
            "no room came back within 10 s of the timeout"
        );
        thread::sleep(Duration::from_millis(250));
        sport += 1;
    }
    assert!(
        filled.elapsed() >= expire_in - Duration::from_secs(1),
        "room came back before the flows expired"
    );
    let flows = lab.sb.network_status(&lab.net)["nat"]["flows"]
        .as_u64()
        .unwrap();
    assert!(flows < 100, "the expired flows are gone: {flows} left");
}

/// Fills network `net`'s NAT table (pinned) with answered UDP flows of
/// endpoint `ip`, last seen `ago_secs` seconds ago, to documentation
/// addresses (192.0.2.0/24).
fn fill_nat_table(net: &str, ip: std::net::Ipv4Addr, ago_secs: u64) {
    use aya::maps::{HashMap, Map, MapData, MapInfo};
    use netfwd_common::{
        names::{MAP_NAT, PIN_ROOT},
        nat::{IPPROTO_UDP, NatEntry, NatKey, SEEN_REPLY, Tuple},
    };
    let pin = std::path::Path::new(PIN_ROOT).join(net).join(MAP_NAT);
    let capacity = MapInfo::from_pin(&pin).unwrap().max_entries() / 2;
    let map = Map::from_map_data(MapData::from_pin(&pin).unwrap()).unwrap();
    let mut nat: HashMap<MapData, NatKey, NatEntry> = HashMap::try_from(map).unwrap();
    let held = nat.keys().count() as u32 / 2;
    let seen = netfwd::loader::nat_table::now_ns().unwrap() - ago_secs * 1_000_000_000;
    let uplink: std::net::Ipv4Addr = UPLINK_IP.parse().unwrap();
    const PORTS: u32 = 4096;
    for i in 0..capacity - held {
        let flow = Tuple {
            proto: IPPROTO_UDP,
            src: ip.octets(),
            dst: [192, 0, 2, (i / PORTS / 64) as u8 + 1],
            sport: ((1024 + i % PORTS) as u16).to_be_bytes(),
            dport: ((1 + i / PORTS % 64) as u16).to_be_bytes(),
        };
        let port = ((61000 + i % PORTS) as u16).to_be_bytes();
        let out = NatEntry::new(uplink.octets(), port, 0, seen);
        let inside = NatEntry {
            answered: 1,
            ..NatEntry::new(ip.octets(), flow.sport, SEEN_REPLY, seen)
        };
        nat.insert(flow.ingress_key(uplink.octets(), port), inside, 0)
            .unwrap();
        nat.insert(flow.egress_key(), out, 0).unwrap();
    }
}
