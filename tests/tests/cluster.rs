//! Hosts sharing one network through etcd (`[cluster]`): three etcd members
//! and the netfwd hosts on one LAN (a switch namespace), each host leasing
//! a subnet of the pool and routing the others' (the `direct` backend);
//! then hosts on subnets of their own behind a router, through VXLAN. One
//! lab for every check: etcd and four hosts cost seconds to build.

use std::time::{Duration, Instant};

use netfwd_tests::{
    assert_ping,
    cluster::{ClusterHost, ClusterSpec},
    etcd::Etcd,
    eventually, host_interface_drops,
    internet::{ECHO_PORT, EchoServer, in_netns, ip_of, tcp_echo},
    payload, ping, poll, scapy_sendp,
    switch::{Router, Switch},
    tool_ok,
};

/// Short, so a gone host's routes go within the test's patience.
const LEASE_TTL: u64 = 3;
/// A lease's end, its record's delete event and the route's withdrawal
/// (measured: about one TTL and a second), with room for a daemon that
/// waits for the machine-wide state lock while other tests hold it.
const WITHDRAW_LIMIT: Duration = Duration::from_secs(LEASE_TTL + 27);

/// Starts hosts `first..first + count` (nodes `<prefix><i>`) at once, then
/// waits for each.
fn start_hosts(spec: &ClusterSpec, prefix: &str, first: usize, count: usize) -> Vec<ClusterHost> {
    let mut hosts: Vec<ClusterHost> = (first..first + count)
        .map(|i| ClusterHost::spawn(spec, &format!("{prefix}{i}"), i))
        .collect();
    for host in &mut hosts {
        host.wait_ready();
    }
    hosts
}

/// Every host's endpoint reaches every other's, by its own address.
fn assert_all_pairs_reach_each_other(hosts: &[ClusterHost]) {
    for from in hosts {
        for to in hosts.iter().filter(|h| h.node != from.node) {
            assert_reaches(from, to);
        }
    }
}

/// Each host's endpoint reaches the next host's (the last the first's):
/// every host sends and answers, in a third of the pings.
fn assert_ring_reaches(hosts: &[ClusterHost]) {
    for (i, from) in hosts.iter().enumerate() {
        assert_reaches(from, &hosts[(i + 1) % hosts.len()]);
    }
}

fn assert_reaches(from: &ClusterHost, to: &ClusterHost) {
    let ip = to.ep_ip();
    eventually(
        &format!("{} reaching {}'s endpoint {ip}", from.node, to.node),
        WITHDRAW_LIMIT,
        || ping(&from.ep, &ip),
    );
}

fn assert_subnets_distinct(hosts: &[ClusterHost]) {
    let mut subnets: Vec<String> = hosts.iter().map(|h| h.subnet()).collect();
    subnets.sort();
    let before = subnets.len();
    subnets.dedup();
    assert_eq!(subnets.len(), before, "a subnet leased twice: {subnets:?}");
}

/// The subnet records in etcd, as `(subnet key, value)`.
fn records(etcd: &Etcd, member: usize, pool: &str) -> Vec<(String, String)> {
    let prefix = format!("/netfwd/{}/subnets/", pool.replace('/', "-"));
    etcd.keys(member, &prefix)
}

/// One lab for every check, in the order a cluster's life brings them:
/// three hosts starting at once, a fourth joining while the etcd leader is
/// cut off, all of etcd stopped and started again, a host gone, a daemon
/// stopped.
#[test]
fn a_cluster_leases_routes_withdraws_and_rides_out_etcd_faults() {
    let switch = Switch::new(&format!("nft{}-clsw", std::process::id()));
    let mut etcd = Etcd::start(&switch, "cl");
    // Four /24s: three hosts start at once, a fourth takes the last.
    let spec = ClusterSpec {
        etcd: etcd.toml_urls(),
        switch: &switch,
        pool: "10.200.0.0/22",
        subnet_len: 24,
        lease_ttl: LEASE_TTL,
        backend: "direct",
        router: None,
    };
    let mut hosts = start_hosts(&spec, "h", 0, 3);
    assert_subnets_distinct(&hosts);
    assert_all_pairs_reach_each_other(&hosts);
    // By their own addresses: no NAT between the hosts.
    assert_seen_by_own_address(&hosts[0], &hosts[1]);

    // The etcd leader cut off: a fourth host joins through the majority,
    // and the others route to it with no file of theirs changed.
    let leader = poll("an etcd leader", Duration::from_secs(30), || etcd.leader());
    switch.set_port(&format!("e{leader}"), false);
    let configs_before: Vec<String> = hosts
        .iter()
        .map(|h| std::fs::read_to_string(&h.config).unwrap())
        .collect();
    let joined_at = Instant::now();
    hosts.extend(start_hosts(&spec, "h", 3, 1));
    let fourth_subnet = hosts[3].subnet();
    let fourth_lan = hosts[3].lan_addr.clone();
    for h in &hosts[..3] {
        eventually(
            &format!("{} routing {fourth_subnet}", h.node),
            WITHDRAW_LIMIT,
            || h.route_to(&fourth_subnet).contains(&fourth_lan),
        );
    }
    eprintln!(
        "every host routes to the joined host {:?} after its daemon started",
        joined_at.elapsed()
    );
    assert_subnets_distinct(&hosts);
    assert_all_pairs_reach_each_other(&hosts);
    for (h, before) in hosts.iter().zip(&configs_before) {
        assert_eq!(&std::fs::read_to_string(&h.config).unwrap(), before);
    }
    switch.set_port(&format!("e{leader}"), true);
    etcd.wait_for_all();
    assert_eq!(records(&etcd, 0, spec.pool).len(), 4);
    let status = hosts[0].cluster_status();
    let listed = status["hosts"].as_array().unwrap();
    assert_eq!(listed.len(), 4, "{status:#}");
    assert!(
        listed
            .iter()
            .all(|h| h["lease_ttl_left"].as_i64().is_some_and(|t| t > 0)),
        "{status:#}"
    );
    assert_eq!(status["routes"].as_array().unwrap().len(), 3, "{status:#}");

    // All of etcd stopped: traffic goes on past the TTL, and each daemon
    // says so once. Started again: every host holds its subnet again, none
    // twice.
    etcd_stopped_and_started(&mut etcd, &mut hosts, spec.pool);

    // The fourth host's daemon killed and its namespace gone: within the
    // TTL (and the watch's delay) the others withdraw its routes.
    let mut fourth = hosts.pop().unwrap();
    fourth.daemon().kill9();
    tool_ok("ip", &["netns", "del", fourth.sb.host()]);
    let gone_at = Instant::now();
    for h in &hosts {
        eventually(
            &format!("{} withdrawing {fourth_subnet}", h.node),
            WITHDRAW_LIMIT,
            || h.route_to(&fourth_subnet).is_empty(),
        );
    }
    eprintln!(
        "routes to the gone host withdrawn after {:?}",
        gone_at.elapsed()
    );
    drop(fourth);
    // Its subnet stays reserved for it (the grace period): not handed out.
    assert_eq!(records(&etcd, 0, spec.pool).len(), 3);

    // A daemon stopped: its own endpoint still reaches the others on the
    // last-known routes. Started again, it gets its own subnet back (the
    // state's, re-claimed first) and routes as before.
    let subnet = hosts[2].subnet();
    hosts[2].daemon().stop();
    let (a_ip, c_ep) = (hosts[0].ep_ip(), hosts[2].ep.clone());
    assert_ping(&c_ep, &a_ip);
    hosts[2].restart_daemon();
    assert_eq!(hosts[2].subnet(), subnet);
    hosts[2].daemon().wait_for(&format!("holds {subnet}"));
    assert_ring_reaches(&hosts);
    drop(hosts);

    vxlan_members_reach_each_other_across_a_router(&switch, &etcd);
}

/// `to`'s endpoint sees `from`'s by its own address over TCP: nothing
/// between the hosts translated it.
fn assert_seen_by_own_address(from: &ClusterHost, to: &ClusterHost) {
    let to_ip = to.ep_ip();
    let _server = EchoServer::start(&to.ep, &to_ip, ECHO_PORT);
    let data = payload("cluster", 3000);
    let seen = in_netns(&from.ep, move || tcp_echo(&to_ip, ECHO_PORT, None, &data))
        .expect("entering the endpoint's namespace");
    assert_eq!(
        ip_of(&seen),
        from.ep_ip(),
        "{} saw {}'s endpoint translated",
        to.node,
        from.node
    );
}

/// The VXLAN backend, on the same etcd: three hosts on subnets of their
/// own behind a router, no L2 segment between them, reach each other's
/// endpoints through the tunnel by their own addresses (TCP past the
/// tunnel's MTU in each direction), with no kernel route to another
/// member's subnet.
fn vxlan_members_reach_each_other_across_a_router(switch: &Switch, etcd: &Etcd) {
    let router = Router::new(
        &format!("nft{}-clrt", std::process::id()),
        switch,
        "192.0.2.1",
        "rt",
    );
    for i in 0..3 {
        router.route_back_from(etcd.netns(i));
    }
    let spec = ClusterSpec {
        etcd: etcd.toml_urls(),
        switch,
        pool: "10.201.0.0/22",
        subnet_len: 24,
        lease_ttl: LEASE_TTL,
        backend: "vxlan",
        router: Some(&router),
    };
    let started_at = Instant::now();
    let mut hosts = start_hosts(&spec, "v", 0, 3);
    assert_subnets_distinct(&hosts);
    // One VXLAN device, the LAN's MTU less the encapsulation, and endpoints
    // that fit in it.
    let device = format!("nf{}-vx", hosts[0].net);
    let shown = tool_ok(
        "ip",
        &["-n", hosts[0].sb.host(), "-d", "link", "show", &device],
    );
    for want in ["mtu 1450", "external", "dstport 4789"] {
        assert!(shown.contains(want), "{want} not in: {shown}");
    }
    assert_eq!(hosts[0].sb.network_status(&hosts[0].net)["mtu"], 1450);
    assert_all_pairs_reach_each_other(&hosts);
    eprintln!(
        "vxlan: three hosts started, every pair reaching each other after {:?}",
        started_at.elapsed()
    );
    for from in &hosts {
        for to in hosts.iter().filter(|h| h.node != from.node) {
            assert_seen_by_own_address(from, to);
            assert!(from.route_to(&to.subnet()).is_empty());
        }
    }
    let status = hosts[0].cluster_status();
    assert_eq!(status["backend"], "vxlan", "{status:#}");
    assert!(status["tunnel"]["device"].is_string(), "{status:#}");
    let routes = status["routes"].as_array().expect("routes listed");
    assert_eq!(routes.len(), 2, "{status:#}");
    assert!(routes.iter().all(|r| r["tunnel"] == true), "{status:#}");

    // Out of the tunnel, a member sends with its own endpoints' addresses
    // and the cluster's VNI only: v1 forging v2's endpoint, or sending
    // with another VNI, is dropped as spoofed. (Plain VXLAN flags: scapy's
    // default is VXLAN-GPE's, which the kernel counts as a bad header.)
    let (v0, v1, v2) = (&hosts[0], &hosts[1], &hosts[2]);
    let spoofed = || host_interface_drops(&v0.sb.network_status(&v0.net), "tunnel", "ip_spoofed");
    let before = spoofed();
    let forged = |vni: u32, src: &str| {
        format!(
            "Ether()/IP(src='{}', dst='{}')/UDP(sport=40000, dport=4789)/VXLAN(flags=0x08, vni={vni})/\
             Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/\
             IP(src='{src}', dst='{}')/ICMP()",
            v1.lan_addr,
            v0.lan_addr,
            v0.ep_ip()
        )
    };
    let frames = format!("[{}, {}]", forged(1, &v2.ep_ip()), forged(2, &v1.ep_ip()));
    assert_eq!(scapy_sendp(v1.sb.host(), "lan0", &frames, 5), 10);
    eventually(
        "the forged packets dropped as spoofed",
        WITHDRAW_LIMIT,
        || spoofed() >= before + 10,
    );

    // `down` leaves no device behind.
    let host = &mut hosts[0];
    host.daemon().stop();
    host.sb.netfwd_ok(&["down", "--name", &host.net]);
    let left = tool_ok(
        "ip",
        &["-n", host.sb.host(), "link", "show", "type", "vxlan"],
    );
    assert!(left.trim().is_empty(), "left behind: {left}");
}

fn etcd_stopped_and_started(etcd: &mut Etcd, hosts: &mut [ClusterHost], pool: &str) {
    const OUTAGE: &str = "keeping the last-known routes";
    const BACK: &str = "etcd is back";
    // The healed leader's return may cost an election (and an outage) of
    // its own: each daemon has said it is over first.
    for h in hosts.iter_mut() {
        let daemon = h.daemon();
        eventually(
            "the daemons back from the leader's outage",
            WITHDRAW_LIMIT,
            || daemon.lines_with(BACK).len() >= daemon.lines_with(OUTAGE).len(),
        );
    }
    let said_before: Vec<(usize, usize)> = hosts
        .iter_mut()
        .map(|h| {
            let daemon = h.daemon();
            (
                daemon.lines_with(OUTAGE).len(),
                daemon.lines_with(BACK).len(),
            )
        })
        .collect();
    etcd.stop_all();
    std::thread::sleep(Duration::from_secs(3 * LEASE_TTL));
    assert_ring_reaches(hosts);

    etcd.start_all();
    etcd.wait_for_quorum();
    for (h, (outages, backs)) in hosts.iter_mut().zip(said_before) {
        let node = h.node.clone();
        let daemon = h.daemon();
        eventually(
            &format!("{node} reconciling with etcd"),
            WITHDRAW_LIMIT,
            || daemon.lines_with(BACK).len() > backs,
        );
        // Once, not per attempt (the outage saw several): at most one line
        // more, none if it merged with an outage still open when etcd
        // stopped (the healed leader's election).
        let said = daemon.lines_with(OUTAGE);
        assert!(
            !said.is_empty() && said.len() <= outages + 1,
            "{node}: the outage is logged once: {said:#?}"
        );
    }
    eventually("every subnet record again", WITHDRAW_LIMIT, || {
        records(etcd, 0, pool).len() == hosts.len()
    });
    let recorded: Vec<String> = records(etcd, 0, pool).into_iter().map(|(k, _)| k).collect();
    for h in hosts.iter() {
        let key = h.subnet().replace('/', "-");
        assert!(
            recorded.iter().any(|k| k.ends_with(&key)),
            "{} lost {key}: {recorded:?}",
            h.node
        );
    }
    assert_subnets_distinct(hosts);
    assert_ring_reaches(hosts);
}
