//! The plugin under a real runtime: Debian's podman 4.3 with its CNI
//! backend runs busybox containers on a netfwd network, in the sandbox host
//! (podman runs under `nsenter --net=/run/netns/<host>`, so the plugin's
//! host side is the sandbox). Containers reach each other and the internet
//! namespace through SNAT, `-p 8080:80` answers on the uplink, twenty
//! containers started at once get twenty addresses, and `podman rm` leaves
//! no veth, entry or lease. A dual-stack network gives each container an
//! address of each family, reachable over both.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    thread,
    time::Duration,
};

use netfwd_tests::{
    Sandbox, assert_no_bridge_and_no_rules,
    cgroup::Cgroup,
    cni::{CniDirs, Podman},
    describe, endpoints,
    internet::{ECHO_PORT, INTERNET_IP, Internet, UPLINK, UPLINK_IP, in_netns},
    network_links, until_answer,
};
use serde_json::json;

const SUBNET: &str = "10.91.0.0/24";
const PAGE: &str = "served by a podman container on netfwd\n";

/// A sandbox host with the internet behind its uplink, where podman runs
/// containers on a netfwd network; its CNI directories and host cgroup.
struct PodmanHost {
    sb: Sandbox,
    internet: Internet,
    cni: CniDirs,
    cgroup: Cgroup,
    net: String,
}

impl PodmanHost {
    fn new(tag: &str) -> PodmanHost {
        let sb = Sandbox::new(tag);
        let internet = Internet::new(&sb);
        let net = sb.net_name();
        PodmanHost {
            internet,
            cni: CniDirs::new(tag),
            cgroup: Cgroup::new(tag),
            net,
            sb,
        }
    }

    /// podman with the netfwd network (uplink, port mappings) configured.
    fn podman(&self) -> Podman<'_> {
        self.podman_with(|_| {})
    }

    /// podman with the netfwd network configured, then changed by `edit`.
    fn podman_with(&self, edit: impl FnOnce(&mut serde_json::Value)) -> Podman<'_> {
        let podman = Podman::new(&self.cni, self.sb.host());
        let mut plugin = self.cni.conf("0.4.0", &self.net, SUBNET);
        plugin["uplink"] = json!(UPLINK);
        plugin["hostCgroup"] = json!(self.cgroup.0);
        plugin["capabilities"] = json!({ "portMappings": true });
        edit(&mut plugin);
        podman.add_network(&self.net, &plugin);
        podman
    }

    /// After every container is gone: no endpoint, veth, lease or published
    /// port of the network is left.
    fn assert_empty(&self) {
        let status = self.sb.network_status(&self.net);
        assert!(endpoints(&status).is_empty(), "{status:#}");
        assert_eq!(status["published"], json!([]), "{status:#}");
        assert!(network_links(self.sb.host(), &self.net).is_empty());
        assert!(self.cni.leases(&self.net).is_empty());
    }
}

/// Output of `podman exec`, which must succeed.
fn exec_ok(podman: &Podman<'_>, name: &str, argv: &[&str]) -> String {
    let out = podman.exec(name, argv);
    assert!(
        out.status.success(),
        "{}",
        describe(&format!("podman exec {name} {}", argv.join(" ")), &out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An HTTP GET of `/` from the internet namespace; the body.
fn get_from_internet(inet: &str, ip: &str, port: u16) -> anyhow::Result<String> {
    let addr = format!("{ip}:{port}");
    in_netns(inet, move || {
        let mut s = TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        Ok(reply)
    })
}

#[test]
fn containers_reach_each_other_the_internet_and_published_ports() {
    let lab = PodmanHost::new("pod");
    let podman = lab.podman();
    std::fs::create_dir_all(podman.rootfs().join("www")).unwrap();
    std::fs::write(podman.rootfs().join("www/index.html"), PAGE).unwrap();

    podman.run(
        "web",
        &lab.net,
        &["-p", "8080:80"],
        &["httpd", "-f", "-p", "80", "-h", "/www"],
    );
    podman.run("client", &lab.net, &[], &["sleep", "300"]);
    let web_ip = podman.ip_of("web");
    assert!(web_ip.starts_with("10.91.0."), "{web_ip}");

    exec_ok(&podman, "client", &["ping", "-c", "1", "-W", "2", &web_ip]);
    // The server listens a moment after `podman run -d` returns.
    let url = format!("http://{web_ip}/");
    let page = until_answer(PAGE.trim(), || {
        podman.exec("client", &["wget", "-q", "-O", "-", &url])
    });
    assert_eq!(page, PAGE.trim());

    // To the internet namespace, masqueraded: the echo server names the
    // uplink's address as the peer.
    let echoed = exec_ok(
        &podman,
        "client",
        &[
            "sh",
            "-c",
            &format!("echo hello | nc -w 3 {INTERNET_IP} {ECHO_PORT}"),
        ],
    );
    assert!(
        echoed.starts_with(&format!("{UPLINK_IP}:")) && echoed.ends_with("hello\n"),
        "{echoed:?}"
    );

    let reply = get_from_internet(&lab.internet.ns, UPLINK_IP, 8080).unwrap();
    assert!(reply.ends_with(PAGE), "{reply}");

    let status = lab.sb.network_status(&lab.net);
    let ids: Vec<String> = endpoints(&status)
        .iter()
        .map(|e| e["attached"]["container_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{status:#}");
    assert!(ids.iter().all(|id| id.len() == 64), "{ids:?}");
    assert_no_bridge_and_no_rules(lab.sb.host());

    podman.podman_ok(&["rm", "-f", "-t", "0", "web", "client"]);
    lab.assert_empty();
    assert!(get_from_internet(&lab.internet.ns, UPLINK_IP, 8080).is_err());
}

#[test]
fn twenty_containers_started_at_once() {
    const N: usize = 20;
    let lab = PodmanHost::new("pod20");
    let podman = lab.podman();
    let names: Vec<String> = (0..N).map(|i| format!("c{i}")).collect();
    thread::scope(|s| {
        for name in &names {
            let (podman, net) = (&podman, &lab.net);
            s.spawn(move || podman.run(name, net, &[], &["sleep", "300"]));
        }
    });
    let mut ips: Vec<String> = names.iter().map(|n| podman.ip_of(n)).collect();
    for (i, name) in names.iter().enumerate() {
        exec_ok(
            &podman,
            name,
            &["ping", "-c", "1", "-W", "2", &ips[(i + 1) % N]],
        );
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), N, "an address handed out twice: {ips:?}");
    assert_eq!(lab.cni.leases(&lab.net).len(), N);

    podman.podman_ok(&["rm", "-a", "-f", "-t", "0"]);
    lab.assert_empty();
}

/// Dual-stack under podman: host-local hands out one address of each
/// family, podman reports both, and the containers reach each other and the
/// gateway over IPv6 too.
#[test]
fn dual_stack_containers_reach_each_other_over_both_families() {
    const SUBNET6: &str = "2001:db8:91::/64";
    let lab = PodmanHost::new("pod6");
    let podman = lab.podman_with(|plugin| {
        plugin["ipam"]["ranges"] = json!([[{ "subnet": SUBNET }], [{ "subnet": SUBNET6 }]]);
    });
    podman.run("one", &lab.net, &[], &["sleep", "300"]);
    podman.run("two", &lab.net, &[], &["sleep", "300"]);
    let ip6_of = |name: &str| {
        podman.podman_ok(&[
            "inspect",
            name,
            "--format",
            "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}",
        ])
    };
    let (one6, two6) = (ip6_of("one"), ip6_of("two"));
    assert!(one6.starts_with("2001:db8:91::"), "{one6:?}");
    assert_ne!(one6, two6);
    exec_ok(
        &podman,
        "one",
        &["ping", "-c", "1", "-W", "2", &podman.ip_of("two")],
    );
    exec_ok(&podman, "one", &["ping", "-6", "-c", "1", "-W", "2", &two6]);
    exec_ok(&podman, "two", &["ping", "-6", "-c", "1", "-W", "2", &one6]);
    exec_ok(
        &podman,
        "two",
        &["ping", "-6", "-c", "1", "-W", "2", "2001:db8:91::1"],
    );

    podman.podman_ok(&["rm", "-f", "-t", "0", "one", "two"]);
    lab.assert_empty();
}
