//! `docker network create -d netfwd`: a real dockerd (Debian's docker.io
//! 20.10) in the sandbox host, with netfwd's Docker plugin as the only
//! datapath. Containers are busybox, imported; nothing comes from a
//! registry.

use netfwd_tests::{
    Sandbox, assert_no_bridge_and_no_rules, assert_nothing_of_network,
    docker::DockerLab,
    in_ns,
    internet::{INTERNET_IP, Internet, UPLINK_IP},
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
    lab.docker_ok(&["network", "rm", "front"]);
    assert_nothing_of_network(sb.host(), &netfwd_name(&id), &[]);
}

#[test]
fn a_published_port_is_reached_from_the_internet() {
    let sb = Sandbox::new("dkpub");
    let internet = Internet::new(&sb);
    let lab = DockerLab::new(&sb);
    let id = lab.network("web", "10.78.0.0/24", &[]);
    lab.run_cmd(
        "nfweb",
        &[
            "--network",
            "web",
            "-p",
            "8080:80",
            "-p",
            "9000-9001:9000-9001",
            "-p",
            "9002:9002/udp",
        ],
        &[
            "sh",
            "-c",
            "mkdir /www && echo hello > /www/index.html && httpd -f -p 80 -h /www",
        ],
    );
    let url = format!("http://{UPLINK_IP}:8080/");
    // (The host's busybox wget dies of SIGSEGV with -T; in_ns bounds it.)
    // Until httpd listens: the container starts after `docker run` returns.
    let mut got = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let out = in_ns(&internet.ns, &["busybox", "wget", "-O", "-", &url]);
        got = String::from_utf8_lossy(&out.stdout).into_owned();
        if got.trim() == "hello" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(got.trim(), "hello");
    let status = sb.network_status(&netfwd_name(&id));
    let mut published: Vec<String> = status["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}/{}", p["host_port"], p["proto"].as_str().unwrap()))
        .collect();
    published.sort();
    assert_eq!(published, ["8080/tcp", "9000/tcp", "9001/tcp", "9002/udp"]);
    lab.docker_ok(&["rm", "-f", "nfweb"]);
    let out = in_ns(&internet.ns, &["busybox", "wget", "-O", "-", &url]);
    assert!(!ok(&out), "the port went with its container");
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
    let two = lab.ip_of("nftwo", "two");
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
}
