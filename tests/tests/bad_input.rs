//! Bad input: `netfwd up` exits 2 with one stderr line `netfwd: error: …`
//! naming the field, and creates nothing — no namespace, no link, no pin dir,
//! no state file, no TCX attachment. A config refused as it is validated
//! is refused before anything is made, whatever its mode: those tests run
//! in the TC pass only (`xtask/src/xdp_pass.rs`); the ones that meet a
//! namespace or a network already up run in both.
//!
//! Run as root, one test at a time: `cargo xtask test` (or
//! `NETFWD_BIN=… cargo test -p netfwd-tests -- --test-threads=1`).

use std::{ffi::OsStr, process::Output};

use netfwd_tests::{
    FileGuard, NetConfig, Sandbox, assert_bad_input, assert_nothing_left,
    assert_nothing_of_network, assert_ping, endpoint, has_link, in_ns_ok, link_names, netns_exists,
    netns_path, tcx_attachments, tool_ok, without_counters,
};

fn up_raw(sb: &Sandbox, toml: &str) -> Output {
    let path = sb.write_config(toml);
    sb.netfwd(&[OsStr::new("up"), OsStr::new("-c"), path.as_os_str()])
}

fn up_cfg(sb: &Sandbox, cfg: &NetConfig) -> Output {
    up_raw(sb, &cfg.to_toml())
}

/// A config of network `net` with endpoints `a` and `b` (named by the
/// sandbox, so cleaned up even if netfwd wrongly creates them).
fn two_endpoints(sb: &Sandbox, net: &str, ips: [&str; 2]) -> (NetConfig, [String; 2]) {
    let ns = [sb.ns("a"), sb.ns("b")];
    let cfg = NetConfig::new(net, "10.88.0.0/24", Some("10.88.0.1"))
        .endpoint(&ns[0], Some(ips[0]))
        .endpoint(&ns[1], Some(ips[1]));
    (cfg, ns)
}

#[test]
fn subnet_overlapping_an_existing_network_is_rejected() {
    let sb = Sandbox::new("biovl");
    let first = sb.net_name();
    let first_ns = sb.ns("first");
    let first_cfg = NetConfig::new(&first, "10.89.0.0/16", Some("10.89.0.1"))
        .endpoint(&first_ns, Some("10.89.0.2"));
    sb.up(&first_cfg);
    let first_status = sb.network_status(&first);
    let links = link_names(sb.host());
    let tcx = tcx_attachments(sb.host());

    let second = sb.net_name();
    let second_ns = sb.ns("second");
    let cfg = NetConfig::new(&second, "10.89.128.0/24", Some("10.89.128.1"))
        .endpoint(&second_ns, Some("10.89.128.2"));
    let out = up_cfg(&sb, &cfg);
    assert_bad_input(&out, "network.subnet");

    assert_nothing_of_network(sb.host(), &second, &[&second_ns]);
    assert_eq!(links, link_names(sb.host()), "host links changed");
    assert_eq!(tcx, tcx_attachments(sb.host()), "TCX attachments changed");
    // The existing network is untouched.
    assert_eq!(
        without_counters(&first_status),
        without_counters(&sb.network_status(&first))
    );
    assert_ping(sb.host(), "10.89.0.2");
}

#[test]
fn duplicate_endpoint_ip_is_rejected() {
    let sb = Sandbox::new("bidup");
    let net = sb.net_name();
    let (cfg, ns) = two_endpoints(&sb, &net, ["10.88.0.7", "10.88.0.7"]);
    assert_bad_input(&up_cfg(&sb, &cfg), "endpoint[1].ip");
    assert_nothing_left(sb.host(), &net, &[&ns[0], &ns[1]]);
}

#[test]
fn endpoint_ip_outside_the_subnet_is_rejected() {
    let sb = Sandbox::new("biout");
    let net = sb.net_name();
    let (cfg, ns) = two_endpoints(&sb, &net, ["10.88.0.7", "10.88.1.7"]);
    assert_bad_input(&up_cfg(&sb, &cfg), "endpoint[1].ip");
    assert_nothing_left(sb.host(), &net, &[&ns[0], &ns[1]]);
}

#[test]
fn gateway_outside_the_subnet_is_rejected() {
    let sb = Sandbox::new("bigw");
    let net = sb.net_name();
    let (mut cfg, ns) = two_endpoints(&sb, &net, ["10.88.0.7", "10.88.0.8"]);
    cfg.gateway = Some("10.99.0.1".to_owned());
    assert_bad_input(&up_cfg(&sb, &cfg), "network.gateway");
    assert_nothing_left(sb.host(), &net, &[&ns[0], &ns[1]]);
}

#[test]
fn network_name_longer_than_8_characters_is_rejected() {
    let sb = Sandbox::new("biname");
    // Unique and 9 characters long: a valid name with one character more.
    let short = sb.net_name();
    let long = format!("{short}{}", "x".repeat(9 - short.len()));
    assert_eq!(long.len(), 9);
    let (mut cfg, ns) = two_endpoints(&sb, &short, ["10.88.0.7", "10.88.0.8"]);
    cfg.name = long.clone();
    assert_bad_input(&up_cfg(&sb, &cfg), "network.name");
    assert_nothing_left(sb.host(), &long, &[&ns[0], &ns[1]]);
    assert_nothing_left(sb.host(), &short, &[]);
}

#[test]
fn subnet_prefix_outside_16_to_30_is_rejected() {
    let sb = Sandbox::new("bipfx");
    let net = sb.net_name();
    let ns = sb.ns("a");
    let cfg = NetConfig::new(&net, "10.88.0.0/31", None).endpoint(&ns, Some("10.88.0.1"));
    assert_bad_input(&up_cfg(&sb, &cfg), "network.subnet");
    assert_nothing_left(sb.host(), &net, &[&ns]);
}

#[test]
fn netns_path_that_is_a_plain_file_is_rejected() {
    let sb = Sandbox::new("bifile");
    let net = sb.net_name();
    // A sandbox name: unique, and deleted with `ip netns del` should netfwd
    // wrongly turn the file into a namespace.
    let name = sb.ns("plainfile");
    let file = FileGuard::create(&netns_path(&name), "not a namespace\n");
    let other = sb.ns("b");
    let cfg = NetConfig::new(&net, "10.88.0.0/24", None)
        .endpoint(&name, Some("10.88.0.7"))
        .endpoint(&other, Some("10.88.0.8"));
    assert_bad_input(&up_cfg(&sb, &cfg), "endpoint[0].netns");

    let meta = std::fs::symlink_metadata(file.path()).unwrap();
    assert!(
        meta.is_file(),
        "{} is no longer a plain file",
        file.path().display()
    );
    assert_eq!(
        std::fs::read_to_string(file.path()).unwrap(),
        "not a namespace\n",
        "{} was changed",
        file.path().display()
    );
    assert_nothing_left(sb.host(), &net, &[&other]);
}

#[test]
fn netns_that_already_has_an_eth0_is_rejected() {
    let sb = Sandbox::new("bieth0");
    let net = sb.net_name();
    let busy = sb.precreated_ns("busy");
    tool_ok(
        "ip",
        &[
            "-n",
            busy.name(),
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "tmp0",
        ],
    );
    let other = sb.ns("b");
    let cfg = NetConfig::new(&net, "10.88.0.0/24", None)
        .endpoint(busy.name(), Some("10.88.0.7"))
        .endpoint(&other, Some("10.88.0.8"));
    assert_bad_input(&up_cfg(&sb, &cfg), "endpoint[0].netns");

    assert!(netns_exists(busy.name()), "{} was deleted", busy.name());
    assert!(has_link(busy.name(), "eth0") && has_link(busy.name(), "tmp0"));
    let addrs = in_ns_ok(
        busy.name(),
        &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
    );
    assert!(
        addrs.trim().is_empty(),
        "eth0 of {} got {addrs}",
        busy.name()
    );
    assert_nothing_left(sb.host(), &net, &[&other]);
}

#[test]
fn malformed_toml_is_rejected() {
    let sb = Sandbox::new("bitoml");
    let net = sb.net_name();
    let ns = sb.ns("a");
    // Line 3: the subnet is not a quoted string.
    let text = format!(
        "[network]\nname = \"{net}\"\nsubnet = 10.88.0.0/24\n\n[[endpoint]]\nnetns = \"{ns}\"\n"
    );
    let line = assert_bad_input(&up_raw(&sb, &text), "");
    assert!(
        line.contains("subnet") || line.contains("line 3"),
        "error does not say where: {line}"
    );
    assert_nothing_left(sb.host(), &net, &[&ns]);
}

#[test]
fn unknown_key_is_rejected() {
    let sb = Sandbox::new("bikey");
    let net = sb.net_name();
    let ns = sb.ns("a");
    let text = format!(
        "[network]\nname = \"{net}\"\nsubnet = \"10.88.0.0/24\"\nsubnett = \"10.88.0.0/24\"\n\n\
         [[endpoint]]\nnetns = \"{ns}\"\n"
    );
    assert_bad_input(&up_raw(&sb, &text), "subnett");
    assert_nothing_left(sb.host(), &net, &[&ns]);

    let text = format!(
        "[network]\nname = \"{net}\"\nsubnet = \"10.88.0.0/24\"\n\n\
         [[endpoint]]\nnetns = \"{ns}\"\naddress = \"10.88.0.9\"\n"
    );
    assert_bad_input(&up_raw(&sb, &text), "address");
    assert_nothing_left(sb.host(), &net, &[&ns]);
}

#[test]
fn rejected_config_for_an_existing_network_leaves_it_unchanged() {
    // A bad config for an existing network must not tear down or change it.
    let sb = Sandbox::new("bikeep");
    let net = sb.net_name();
    let (cfg, ns) = two_endpoints(&sb, &net, ["10.88.0.7", "10.88.0.8"]);
    sb.up(&cfg);
    let before = sb.network_status(&net);

    let mut bad = cfg.clone();
    bad.endpoints[1].ip = Some("10.88.0.7".to_owned());
    assert_bad_input(&up_cfg(&sb, &bad), "endpoint[1].ip");

    let after = sb.network_status(&net);
    assert_eq!(without_counters(&before), without_counters(&after));
    assert_eq!(endpoint(&after, &ns[1])["ip"], "10.88.0.8");
    assert_ping(&ns[0], "10.88.0.8");
}

#[test]
fn a_malformed_option_value_is_one_line_naming_the_option() {
    let sb = Sandbox::new("biopt");
    let net = sb.net_name();
    let out = sb.netfwd(&[
        "unpublish",
        "--name",
        &net,
        "--proto",
        "tcp",
        "--host-port",
        "http",
    ]);
    assert_bad_input(&out, "--host-port");
}
