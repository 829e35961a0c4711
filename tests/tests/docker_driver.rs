//! `docker network create -d netfwd`: a real dockerd (Debian's docker.io
//! 20.10) in the sandbox host, with netfwd's Docker plugin as the only
//! datapath. Containers are busybox, imported; nothing comes from a
//! registry.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use std::time::Duration;

use netfwd_tests::{
    Sandbox, TempDir, assert_no_bridge_and_no_rules, assert_nothing_of_network,
    docker::DockerLab,
    endpoints,
    etcd::Etcd,
    eventually, in_ns,
    internet::{INTERNET_IP, Internet, UPLINK_IP},
    switch::Switch,
    tool_ok, until_answer,
};

/// netfwd's name for Docker network `id` (the plugin's rule: `dk` and the
/// ID's first six hex digits).
fn netfwd_name(id: &str) -> String {
    format!("dk{}", &id[..6])
}

fn ok(out: &std::process::Output) -> bool {
    out.status.success()
}

#[test]
fn containers_reach_each_other_by_address_and_name_and_the_internet_behind_the_uplink() {
    let sb = Sandbox::new("dkrun");
    let _internet = Internet::new(&sb);
    let lab = DockerLab::new(&sb);
    let id = lab.network("front", "10.77.0.0/24", &["--gateway", "10.77.0.1"]);
    lab.run("nfa", &["--network", "front"]);
    lab.run("nfb", &["--network", "front"]);
    let b = lab.ip_of("nfb", "front");
    assert!(b.starts_with("10.77.0."), "{b}");
    assert!(
        ok(&lab.exec("nfa", &["ping", "-c1", "-W2", &b])),
        "a -> b by address"
    );
    assert!(
        ok(&lab.exec("nfa", &["ping", "-c1", "-W2", "nfb"])),
        "a -> b by name"
    );
    let echo = lab.exec(
        "nfa",
        &["sh", "-c", &format!("echo hi | nc -w2 {INTERNET_IP} 7")],
    );
    let seen = String::from_utf8_lossy(&echo.stdout);
    assert!(
        seen.starts_with(&format!("{UPLINK_IP}:")),
        "the internet sees the uplink's address: {seen:?}"
    );
    assert_no_bridge_and_no_rules(sb.host());

    lab.docker_ok(&["rm", "-f", "nfa", "nfb"]);
    lab.network_rm(&["front"]);
    assert_nothing_of_network(sb.host(), &netfwd_name(&id), &[]);
}

/// A web server answering "hello" on port 80.
const HTTPD: &[&str] = &[
    "sh",
    "-c",
    "mkdir /www && echo hello > /www/index.html && httpd -f -p 80 -h /www",
];

/// `busybox wget -O - <url>` (the host's busybox dies of SIGSEGV with -T;
/// `in_ns` and the docker CLI's time limit bound it).
fn wget_argv(url: &str) -> [&str; 5] {
    ["busybox", "wget", "-O", "-", url]
}

/// The endpoints' addresses of network `net` that Docker's containers have
/// (its attached endpoints).
fn endpoint_ips(sb: &Sandbox, net: &str) -> Vec<String> {
    endpoints(&sb.network_status(net))
        .iter()
        .map(|e| e["ip"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn published_ports_are_reached_from_outside_from_containers_and_from_the_host() {
    let sb = Sandbox::new("dkpub");
    let internet = Internet::new(&sb);
    let lab = DockerLab::new(&sb);
    let id = lab.network("web", "10.78.0.0/24", &[]);
    let net = netfwd_name(&id);
    lab.run_cmd(
        "nfweb",
        &[
            "--network",
            "web",
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1:8081:80",
            "-p",
            "9000-9001:9000-9001",
            "-p",
            "9002:9002/udp",
        ],
        HTTPD,
    );
    lab.run_cmd(
        "nfauto",
        &["--network", "web", "--expose", "80", "-P"],
        HTTPD,
    );
    lab.run("nfcli", &["--network", "web"]);
    let at = |port: u16| format!("http://{UPLINK_IP}:{port}/");
    let local = |port: u16| format!("http://127.0.0.1:{port}/");
    let from_internet = |url: &str| in_ns(&internet.ns, &wget_argv(url));
    let from_host = |url: &str| in_ns(sb.host(), &wget_argv(url));
    let from_container = |url: &str| lab.exec("nfcli", &wget_argv(url));

    let url = at(8080);
    assert_eq!(
        until_answer("hello", || from_internet(&url)),
        "hello",
        "from the internet"
    );
    assert_eq!(
        until_answer("hello", || from_container(&url)),
        "hello",
        "hairpin"
    );
    assert_eq!(
        until_answer("hello", || from_host(&url)),
        "hello",
        "the host, at the uplink's address"
    );
    let url = local(8080);
    assert_eq!(
        until_answer("hello", || from_host(&url)),
        "hello",
        "the host, at 127.0.0.1"
    );

    // -p 127.0.0.1:8081:80 is the host's alone.
    let url = local(8081);
    assert_eq!(
        until_answer("hello", || from_host(&url)),
        "hello",
        "host-only, from the host"
    );
    assert!(
        !ok(&from_internet(&at(8081))),
        "host-only, from the internet"
    );
    assert!(
        !ok(&from_container(&at(8081))),
        "host-only, from a container"
    );
    assert!(
        !ok(&from_host(&at(8081))),
        "host-only, at the uplink's address"
    );

    let status = sb.network_status(&net);
    let mut published: Vec<String> = status["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}/{}",
                p["host_ip"].as_str().unwrap(),
                p["host_port"],
                p["proto"].as_str().unwrap()
            )
        })
        .collect();
    // -P: a port of netfwd's choice (30000-32767), to nfauto's port 80.
    let auto_ip = lab.ip_of("nfauto", "web");
    let auto = status["published"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["endpoint"] == auto_ip.as_str())
        .unwrap_or_else(|| panic!("-P published nothing: {status:#}"));
    let auto_port = auto["host_port"].as_u64().unwrap() as u16;
    assert!((30000..=32767).contains(&auto_port), "{auto_port}");
    assert_eq!(auto["port"], 80);
    let url = at(auto_port);
    assert_eq!(until_answer("hello", || from_internet(&url)), "hello", "-P");
    // (`docker port` shows no remote driver's ports: dockerd 20.10 takes
    // EndpointOperInfo's port map for its own Go type, which JSON never
    // decodes to; `netfwd status` shows them.)
    published.retain(|p| !p.contains(&format!(":{auto_port}/")));
    published.sort();
    assert_eq!(
        published,
        [
            "0.0.0.0:8080/tcp",
            "0.0.0.0:9000/tcp",
            "0.0.0.0:9001/tcp",
            "0.0.0.0:9002/udp",
            "127.0.0.1:8081/tcp",
        ]
    );

    lab.docker_ok(&["rm", "-f", "nfweb"]);
    // The ports went with their container (not merely its server): only
    // -P's port is left.
    let left = published_once_settled(&sb, &net, 1);
    assert_eq!(left[0]["host_port"], auto_port, "{left:#?}");
    assert!(!ok(&from_internet(&at(8080))), "8080 still answers");
    assert!(!ok(&from_host(&local(8081))), "the host-only port too");
}

/// Network `net`'s published ports once `want` are left: dockerd releases
/// a removed container's endpoint after `docker rm` returns.
fn published_once_settled(sb: &Sandbox, net: &str, want: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = sb.network_status(net);
        let Some(published) = status["published"].as_array().cloned() else {
            panic!("no published ports in {status:#}");
        };
        if published.len() == want {
            return published;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} ports published, {want} expected: {status:#}",
            published.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn two_networks_are_isolated_and_an_internal_one_has_no_way_out() {
    let sb = Sandbox::new("dkiso");
    let _internet = Internet::new(&sb);
    let lab = DockerLab::new(&sb);
    lab.network("one", "10.79.0.0/24", &[]);
    lab.network("two", "10.80.0.0/24", &["--internal"]);
    lab.run("nfone", &["--network", "one"]);
    lab.run("nftwo", &["--network", "two"]);
    lab.run("nftwo2", &["--network", "two"]);
    let two = lab.ip_of("nftwo", "two");
    // The controls: what each may reach, it reaches.
    assert!(
        ok(&lab.exec("nfone", &["ping", "-c1", "-W2", INTERNET_IP])),
        "one -> the internet"
    );
    assert!(
        ok(&lab.exec("nftwo2", &["ping", "-c1", "-W2", &two])),
        "two -> two"
    );
    assert!(
        !ok(&lab.exec("nfone", &["ping", "-c1", "-W1", &two])),
        "one -> two"
    );
    assert!(
        !ok(&lab.exec("nftwo", &["ping", "-c1", "-W1", INTERNET_IP])),
        "an internal network reaches nothing outside"
    );
}

#[test]
fn what_netfwd_cannot_honour_is_refused_naming_it() {
    let sb = Sandbox::new("dkbad");
    let _internet = Internet::new(&sb);
    let lab = DockerLab::new(&sb);
    for (opt, says) in [
        ("foo=bar", "-o foo"),
        (
            "com.docker.network.bridge.name=br9",
            "com.docker.network.bridge.name",
        ),
    ] {
        let out = lab.docker(&[
            "network",
            "create",
            "-d",
            &lab.driver,
            "--subnet",
            "10.81.0.0/24",
            "-o",
            opt,
            "bad",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!ok(&out) && err.contains(says), "{opt}: {err}");
    }
    let net = netfwd_name(&lab.network("good", "10.81.0.0/24", &[]));
    for (args, says) in [
        (
            ["-p", "192.0.2.7:8080:80"],
            "on every address (0.0.0.0) or to the host only",
        ),
        (["-p", "8080:80/sctp"], "protocol 132"),
    ] {
        let mut run = vec!["run", "-d", "--network", "good"];
        run.extend(args);
        run.extend([netfwd_tests::docker::IMAGE, "sleep", "60"]);
        let out = lab.docker(&run);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!ok(&out) && err.contains(says), "{args:?}: {err}");
    }
    let status = sb.network_status(&net);
    assert_eq!(status["published"], serde_json::json!([]), "{status:#}");
    assert_eq!(status["endpoints"], serde_json::json!([]), "{status:#}");
}

#[test]
fn a_running_container_joins_and_leaves_a_second_network_and_a_mac_address_is_kept() {
    let sb = Sandbox::new("dkconn");
    let _internet = Internet::new(&sb);
    let lab = DockerLab::new(&sb);
    let one = netfwd_name(&lab.network("one", "10.82.0.0/24", &[]));
    let two = netfwd_name(&lab.network("two", "10.83.0.0/24", &[]));
    lab.run("nfc1", &["--network", "one"]);
    lab.run("nfc2", &["--network", "two"]);
    let c2 = lab.ip_of("nfc2", "two");
    assert!(
        !ok(&lab.exec("nfc1", &["ping", "-c1", "-W1", &c2])),
        "not yet on two"
    );

    lab.docker_ok(&["network", "connect", "--ip", "10.83.0.50", "two", "nfc1"]);
    let c1_on_two = lab.ip_of("nfc1", "two");
    assert_eq!(c1_on_two, "10.83.0.50");
    assert!(endpoint_ips(&sb, &two).contains(&c1_on_two));
    assert!(
        ok(&lab.exec("nfc1", &["ping", "-c1", "-W2", &c2])),
        "c1 -> c2 on two"
    );
    assert!(
        ok(&lab.exec("nfc1", &["ping", "-c1", "-W2", "nfc2"])),
        "by name on two"
    );
    assert!(
        ok(&lab.exec("nfc1", &["ping", "-c1", "-W2", INTERNET_IP])),
        "the internet, on two networks"
    );
    let c1_on_one = lab.ip_of("nfc1", "one");
    assert!(
        !ok(&lab.exec("nfc2", &["ping", "-c1", "-W1", &c1_on_one])),
        "two's containers do not reach one through c1"
    );

    lab.docker_ok(&["network", "disconnect", "two", "nfc1"]);
    assert!(
        !ok(&lab.exec("nfc1", &["ping", "-c1", "-W1", &c2])),
        "off two"
    );
    assert!(
        !endpoint_ips(&sb, &two).contains(&c1_on_two),
        "its endpoint went"
    );
    assert!(
        ok(&lab.exec("nfc1", &["ping", "-c1", "-W2", INTERNET_IP])),
        "still out through one"
    );

    // --mac-address: the container has it, and the datapath delivers to it.
    let mac = "02:42:0a:52:00:99";
    lab.run_with_mac("nfmac", "one", mac);
    let has = lab.exec("nfmac", &["cat", "/sys/class/net/eth0/address"]);
    assert_eq!(String::from_utf8_lossy(&has.stdout).trim(), mac);
    let at = lab.ip_of("nfmac", "one");
    assert!(
        ok(&lab.exec("nfc1", &["ping", "-c1", "-W2", &at])),
        "c1 -> mac"
    );

    lab.docker_ok(&["rm", "-f", "nfc1", "nfc2", "nfmac"]);
    lab.network_rm(&["one", "two"]);
    assert_nothing_of_network(sb.host(), &one, &[]);
    assert_nothing_of_network(sb.host(), &two, &[]);
}

#[test]
fn containers_keep_their_traffic_across_restarts_of_the_plugin_and_of_dockerd() {
    let sb = Sandbox::new("dkrst");
    let internet = Internet::new(&sb);
    let mut lab = DockerLab::new(&sb);
    let net = netfwd_name(&lab.network("keep", "10.84.0.0/24", &[]));
    lab.run_cmd("nfsrv", &["--network", "keep", "-p", "8080:80"], HTTPD);
    lab.run("nfcli", &["--network", "keep"]);
    let srv = lab.ip_of("nfsrv", "keep");
    let url = format!("http://{UPLINK_IP}:8080/");
    let from_internet = || in_ns(&internet.ns, &wget_argv(&url));
    assert_eq!(until_answer("hello", from_internet), "hello");
    let all_reached = |lab: &DockerLab, when: &str| {
        assert!(
            ok(&lab.exec("nfcli", &["ping", "-c1", "-W2", &srv])),
            "{when}: cli -> srv"
        );
        assert_eq!(until_answer("hello", from_internet), "hello", "{when}: -p");
    };

    lab.stop_plugin();
    assert!(ok(&from_internet()), "the datapath needs no plugin running");
    lab.start_plugin();
    all_reached(&lab, "after the plugin's restart");
    lab.run("nfnew", &["--network", "keep"]);
    assert!(
        ok(&lab.exec("nfnew", &["ping", "-c1", "-W2", &srv])),
        "the restarted plugin still serves the network"
    );

    lab.stop_dockerd();
    lab.start_dockerd();
    all_reached(&lab, "after dockerd's restart");

    lab.docker_ok(&["rm", "-f", "nfsrv", "nfcli", "nfnew"]);
    published_once_settled(&sb, &net, 0);
    assert!(!ok(&from_internet()), "the port went with its container");
    lab.network_rm(&["keep"]);
    assert_nothing_of_network(sb.host(), &net, &[]);
}

#[test]
fn twenty_docker_runs_at_once_give_twenty_working_containers() {
    let sb = Sandbox::new("dkmany");
    let _internet = Internet::new(&sb);
    let lab = DockerLab::new(&sb);
    let net = netfwd_name(&lab.network("many", "10.85.0.0/24", &[]));
    let names: Vec<String> = (0..20).map(|i| format!("nfm{i}")).collect();
    std::thread::scope(|s| {
        for name in &names {
            let lab = &lab;
            s.spawn(move || lab.run(name, &["--network", "many"]));
        }
    });
    let mut inspect = vec![
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"many\").IPAddress}}",
    ];
    inspect.extend(names.iter().map(String::as_str));
    let mut ips: Vec<String> = lab.docker_ok(&inspect).lines().map(str::to_owned).collect();
    let mut endpoints = endpoint_ips(&sb, &net);
    ips.sort();
    endpoints.sort();
    assert_eq!(ips, endpoints, "one endpoint each");
    ips.dedup();
    assert_eq!(ips.len(), 20, "twenty addresses");
    // Every container answers (one exec: each costs dockerd a process).
    let pings = format!(
        "for ip in {}; do ping -c1 -W2 $ip >/dev/null || echo $ip; done",
        ips.join(" ")
    );
    let out = lab.exec("nfm0", &["sh", "-c", &pings]);
    let silent = String::from_utf8_lossy(&out.stdout);
    assert!(
        ok(&out) && silent.trim().is_empty(),
        "no answer from {silent}"
    );
    // One at a time: dockerd 20.10 loses count of a network's endpoints
    // when many leave it at once (moby#42119: "has active endpoints" with
    // none left), whatever the driver.
    for name in &names {
        lab.docker_ok(&["rm", "-f", name]);
    }
    lab.network_rm(&["many"]);
    assert_nothing_of_network(sb.host(), &net, &[]);
}

/// A host of a Docker cluster test: its dockerd and plugin, the internet
/// behind its uplink, on the test's LAN at 192.0.2.1i; dropped in field
/// order (the lab, which removes its networks and so gives their subnets
/// back, before the sandbox).
struct DockerHost {
    lab: DockerLab,
    _internet: Internet,
    sb: Sandbox,
    /// Its cluster file.
    file: String,
}

impl DockerHost {
    fn new(switch: &Switch, etcd: &Etcd, files: &TempDir, i: usize) -> DockerHost {
        let sb = Sandbox::new(&format!("dkc{i}"));
        switch.plug(sb.host(), &format!("192.0.2.{}", 11 + i), &format!("p{i}"));
        let internet = Internet::new(&sb);
        let lab = DockerLab::new(&sb);
        let file = files.path().join(format!("cluster{i}.toml"));
        std::fs::write(
            &file,
            format!(
                "[network]\nlan = \"lan0\"\n[cluster]\netcd = {}\npool = \"{CLUSTER_POOL}\"\n\
                 node = \"dkc{i}\"\nlease_ttl = 3\n",
                etcd.toml_urls()
            ),
        )
        .unwrap();
        DockerHost {
            lab,
            _internet: internet,
            sb,
            file: file.to_str().unwrap().to_owned(),
        }
    }

    /// The host's kernel route to `subnet`, if any.
    fn route_to(&self, subnet: &str) -> String {
        tool_ok("ip", &["-n", self.sb.host(), "route", "show", subnet])
            .trim()
            .to_owned()
    }
}

const CLUSTER_POOL: &str = "10.201.0.0/16";

/// The /24 of the pool that `ip` is in.
fn subnet_of(ip: &str) -> String {
    let (net, _) = ip.rsplit_once('.').unwrap();
    format!("{net}.0/24")
}

/// Docker networks on two hosts, their subnets leased from one cluster by
/// the plugin's IPAM (`--ipam-driver --ipam-opt cluster=FILE`): the
/// containers reach each other by address; a restarted plugin holds its
/// subnet again; `docker network rm` gives it back and the other host
/// withdraws its route. One etcd member: the clients are tested, not etcd.
#[test]
fn cluster_networks_on_two_hosts_lease_subnets_and_reach_each_other() {
    let switch = Switch::new(&format!("nft{}-dksw", std::process::id()));
    let etcd = Etcd::single(&switch, "dk");
    let files = TempDir::new("dkcluster");
    let mut hosts: Vec<DockerHost> = (0..2)
        .map(|i| DockerHost::new(&switch, &etcd, &files, i))
        .collect();

    // Bad input is refused, naming it, and leaves no network behind.
    for (file, extra, says) in [
        (
            "/nonexistent/cluster.toml",
            &[][..],
            "/nonexistent/cluster.toml",
        ),
        ("cluster.toml", &[][..], "not an absolute path"),
        (
            hosts[0].file.as_str(),
            &["--subnet", "10.201.9.0/24"][..],
            "--subnet",
        ),
    ] {
        let out = hosts[0].lab.cluster_network("bad", file, extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{file} {extra:?}: {err}"
        );
    }

    for host in &hosts {
        let out = host.lab.cluster_network("cn", &host.file, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        host.lab.run("nfc", &["--network", "cn"]);
    }
    let ips: Vec<String> = hosts.iter().map(|h| h.lab.ip_of("nfc", "cn")).collect();
    let subnets: Vec<String> = ips.iter().map(|ip| subnet_of(ip)).collect();
    assert!(ips.iter().all(|ip| ip.starts_with("10.201.")), "{ips:?}");
    assert_ne!(subnets[0], subnets[1], "one subnet leased twice");
    let reaches = |from: &DockerHost, ip: &str| {
        eventually(
            &format!("{} reaching {ip}", from.sb.host()),
            Duration::from_secs(20),
            || ok(&from.lab.exec("nfc", &["ping", "-c1", "-W2", ip])),
        );
    };
    reaches(&hosts[0], &ips[1]);
    reaches(&hosts[1], &ips[0]);

    // A restarted plugin holds the same subnet and follows the members.
    let records = || etcd.keys(0, "/netfwd/10.201.0.0-16/subnets/");
    let key = |subnet: &str| format!("/netfwd/10.201.0.0-16/subnets/{}", subnet.replace('/', "-"));
    hosts[0].lab.stop_plugin();
    hosts[0].lab.start_plugin();
    assert!(
        records()
            .iter()
            .any(|(k, v)| *k == key(&subnets[0]) && v.contains("dkc0")),
        "{:?}",
        records()
    );
    reaches(&hosts[0], &ips[1]);

    // `network rm` on the second host: its subnet is given back at once,
    // and the first withdraws its route.
    assert!(hosts[0].route_to(&subnets[1]).contains("192.0.2.12"));
    hosts[1].lab.docker_ok(&["rm", "-f", "nfc"]);
    hosts[1].lab.network_rm(&["cn"]);
    eventually("the record given back", Duration::from_secs(10), || {
        !records().iter().any(|(k, _)| *k == key(&subnets[1]))
    });
    eventually("the route withdrawn", Duration::from_secs(10), || {
        hosts[0].route_to(&subnets[1]).is_empty()
    });
}

/// `--ipv6`: Docker's IPAM gives each container an address of each family;
/// over IPv6 too the containers reach each other (by address and by name)
/// and the gateway, and netfwd knows both addresses of each.
#[test]
fn an_ipv6_network_gives_containers_both_families_and_they_reach_each_other() {
    const SUBNET6: &str = "2001:db8:82::/64";
    let sb = Sandbox::new("dkv6");
    let _internet = Internet::new(&sb);
    let lab = DockerLab::new(&sb);
    let id = lab.network("six", "10.82.0.0/24", &["--ipv6", "--subnet", SUBNET6]);
    lab.run("nfs1", &["--network", "six"]);
    lab.run("nfs2", &["--network", "six"]);
    let ip6_of = |name: &str| {
        lab.docker_ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}",
            name,
        ])
    };
    let (one6, two6) = (ip6_of("nfs1"), ip6_of("nfs2"));
    assert!(one6.starts_with("2001:db8:82::"), "{one6:?}");
    assert_ne!(one6, two6);
    let ping6 = |from: &str, to: &str| ok(&lab.exec(from, &["ping", "-6", "-c1", "-W2", to]));
    assert!(ping6("nfs1", &two6), "one -> two over IPv6");
    assert!(ping6("nfs2", &one6), "two -> one over IPv6");
    assert!(ping6("nfs1", "2001:db8:82::1"), "one -> the IPv6 gateway");
    assert!(
        ok(&lab.exec("nfs1", &["ping", "-c1", "-W2", &lab.ip_of("nfs2", "six")])),
        "one -> two over IPv4"
    );
    let net = netfwd_name(&id);
    let mut known: Vec<String> = endpoints(&sb.network_status(&net))
        .iter()
        .map(|e| e["ip6"].as_str().unwrap_or_default().to_owned())
        .collect();
    known.sort();
    let mut given = vec![one6, two6];
    given.sort();
    assert_eq!(known, given);

    lab.docker_ok(&["rm", "-f", "nfs1", "nfs2"]);
    lab.network_rm(&["six"]);
    assert_nothing_of_network(sb.host(), &net, &[]);
}
