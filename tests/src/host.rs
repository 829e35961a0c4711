//! Facts of a namespace (links, addresses, TCX attachments, kernel
//! counters) and the assertions made of them.

use std::{
    path::Path,
    process::Output,
    thread,
    time::{Duration, Instant},
};

use aya::programs::{SchedClassifier, TcAttachType};
use netfwd::{config::ifname_prefixes, name::NetworkName};
use serde_json::Value;

use crate::{
    BPF_PIN_ROOT, EXIT_BAD_INPUT, STATE_DIR,
    netns::{enter_netns, netns_list, netns_path},
    process::{describe, in_ns_ok, tool_ok},
};

/// Names of the links of namespace `ns` (`ip -n <ns> -j link show`).
pub fn link_names(ns: &str) -> Vec<String> {
    let text = tool_ok("ip", &["-n", ns, "-j", "link", "show"]);
    parse_ifnames(&text)
}

fn parse_ifnames(json: &str) -> Vec<String> {
    if json.trim().is_empty() {
        return Vec::new();
    }
    let v: Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("ip -j printed no JSON ({e}): {json}"));
    v.as_array()
        .map(|links| {
            links
                .iter()
                .filter_map(|l| l["ifname"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether namespace `ns` has a link named `ifname`.
pub fn has_link(ns: &str, ifname: &str) -> bool {
    link_names(ns).iter().any(|n| n == ifname)
}

/// The IPv4 addresses (`a.b.c.d/len`) of `dev` in namespace `ns`.
pub fn ipv4_addrs(ns: &str, dev: &str) -> Vec<String> {
    global_addrs(ns, dev, "-4")
}

/// The addresses (`addr/len`) of `dev` in namespace `ns` of `family` (`ip`'s
/// `-4` or `-6`) but the link's own (IPv6's link-local).
pub fn global_addrs(ns: &str, dev: &str, family: &str) -> Vec<String> {
    let text = tool_ok(
        "ip",
        &[
            "-n", ns, "-j", family, "addr", "show", "dev", dev, "scope", "global",
        ],
    );
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut addrs = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let (Some(local), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                addrs.push(format!("{local}/{len}"));
            }
        }
    }
    addrs
}

/// The TCX attachments in namespace `ns`, one `ifname ingress|egress prog
/// <id> <name>` line each. Asked of the kernel with BPF_PROG_QUERY from a
/// thread inside `ns` (the bpftool here predates TCX in `bpftool net`).
pub fn tcx_attachments(ns: &str) -> Vec<String> {
    let ifnames = link_names(ns);
    let ns = ns.to_owned();
    thread::spawn(move || {
        enter_netns(&ns).unwrap_or_else(|e| panic!("{e:#}"));
        let mut lines = Vec::new();
        for ifname in &ifnames {
            for (dir, attach) in [
                ("ingress", TcAttachType::Ingress),
                ("egress", TcAttachType::Egress),
            ] {
                let (_, progs) = SchedClassifier::query_tcx(ifname, attach)
                    .unwrap_or_else(|e| panic!("querying TCX on {ifname} in {ns}: {e}"));
                for p in progs {
                    let name = p.name_as_str().unwrap_or("?");
                    lines.push(format!("{ifname} {dir} prog {} {name}", p.id()));
                }
            }
        }
        lines
    })
    .join()
    .unwrap()
}

/// Asserts that the sandbox host has no bridge device, no iptables rule and
/// no nftables ruleset.
pub fn assert_no_bridge_and_no_rules(host: &str) {
    let bridges = parse_ifnames(&tool_ok(
        "ip",
        &["-n", host, "-j", "link", "show", "type", "bridge"],
    ));
    assert!(bridges.is_empty(), "bridges in {host}: {bridges:?}");

    let save = in_ns_ok(host, &["iptables-save"]);
    let rules: Vec<&str> = save
        .lines()
        .map(str::trim)
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with('#')
                || l.starts_with('*')
                || l.starts_with(':')
                || *l == "COMMIT")
        })
        .collect();
    assert!(
        rules.is_empty(),
        "iptables rules in {host}: {rules:#?}\n{save}"
    );

    let ruleset = in_ns_ok(host, &["nft", "list", "ruleset"]);
    assert!(
        ruleset.trim().is_empty(),
        "nftables ruleset in {host}:\n{ruleset}"
    );
}

/// Host-side link names of network `net`: `nf<net>-*` (and `np<net>-*`, the
/// name an endpoint's end may carry before it moves into its namespace).
pub fn network_links(host: &str, net: &str) -> Vec<String> {
    let prefixes = veth_prefixes(net);
    link_names(host)
        .into_iter()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .collect()
}

/// The prefixes of network `net`'s veth ends: netfwd's own for a name it
/// takes. A test also checks that a name netfwd refuses left nothing, and
/// netfwd gives no prefixes for such a name, so for it the rule is written
/// out here; a unit test keeps the two equal.
fn veth_prefixes(net: &str) -> [String; 2] {
    match NetworkName::parse("network", net) {
        Ok(name) => ifname_prefixes(&name),
        Err(_) => written_out_prefixes(net),
    }
}

fn written_out_prefixes(net: &str) -> [String; 2] {
    [format!("nf{net}-"), format!("np{net}-")]
}

/// Asserts that nothing of network `net` is left: none of `namespaces`
/// exists, no `nf<net>-*` link in `host`, no pin dir, no state file (nor
/// its temp file), and no TCX attachment in `host`.
pub fn assert_nothing_left(host: &str, net: &str, namespaces: &[&str]) {
    assert_nothing_of_network(host, net, namespaces);
    // An unpinned link is freed from a kernel work queue (`bpf_link_put`
    // defers), not by the unlink itself: on a busy machine an attachment
    // of a kept device (a LAN interface) outlives `down` for a moment.
    let deadline = Instant::now() + TCX_RELEASE;
    let mut tcx = tcx_attachments(host);
    while !tcx.is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        tcx = tcx_attachments(host);
    }
    assert!(tcx.is_empty(), "TCX attachments left in {host}: {tcx:#?}");
}

/// How long a freed link's attachment may take to go.
const TCX_RELEASE: Duration = Duration::from_secs(5);

/// Like [`assert_nothing_left`] but without the TCX check, for a host that
/// holds another network.
pub fn assert_nothing_of_network(host: &str, net: &str, namespaces: &[&str]) {
    let list = netns_list();
    let left: Vec<&&str> = namespaces
        .iter()
        .filter(|ns| list.iter().any(|n| n == **ns))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    for ns in namespaces {
        assert!(
            std::fs::symlink_metadata(netns_path(ns)).is_err(),
            "{} left",
            netns_path(ns).display()
        );
    }
    let links = network_links(host, net);
    assert!(links.is_empty(), "links of {net} left in {host}: {links:?}");
    let pins = Path::new(BPF_PIN_ROOT).join(net);
    assert!(!pins.exists(), "{} left", pins.display());
    // The temp file of a save cut short (`up` killed while writing) too.
    for file in [format!("{net}.json"), format!("{net}.json.tmp")] {
        let state = Path::new(STATE_DIR).join(file);
        assert!(!state.exists(), "{} left", state.display());
    }
}

/// Asserts that a netfwd run failed on bad input: exit code 2 and exactly one
/// stderr line, starting `netfwd: error:` and containing `field`. Returns
/// that line.
pub fn assert_bad_input(out: &Output, field: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(i32::from(EXIT_BAD_INPUT)),
        "expected exit code {EXIT_BAD_INPUT}\n{}",
        describe("netfwd", out)
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got:\n{stderr}");
    let line = lines[0];
    assert!(
        line.starts_with("netfwd: error:"),
        "stderr line does not start with `netfwd: error:`: {line}"
    );
    assert!(
        line.contains(field),
        "stderr line does not name {field}: {line}"
    );
    line.to_owned()
}

/// Runs the calling thread on CPU 0 only (per-CPU datapath state, such as
/// early drop's ring, is then the one the test filled).
pub fn stay_on_cpu0() {
    let mut cpus = nix::sched::CpuSet::new();
    cpus.set(0).unwrap();
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus).unwrap();
}

/// Counter `field` of group `group` of `ns`: `Ip`, `Icmp`, `Udp`, … from
/// /proc/net/snmp; IPv6's `Ip6`, `Icmp6`, `Udp6`, … from /proc/net/snmp6,
/// which writes each counter on a line of its own (`Icmp6InEchos 3`).
pub fn snmp_counter(ns: &str, group: &str, field: &str) -> u64 {
    let value = if group.ends_with('6') {
        let snmp = in_ns_ok(ns, &["cat", "/proc/net/snmp6"]);
        let name = format!("{group}{field}");
        snmp.lines()
            .map(str::split_whitespace)
            .find_map(|mut words| (words.next() == Some(&name)).then(|| words.next()))
            .flatten()
            .map(str::to_owned)
    } else {
        let snmp = in_ns_ok(ns, &["cat", "/proc/net/snmp"]);
        let prefix = format!("{group}:");
        let mut lines = snmp.lines().filter(|l| l.starts_with(&prefix));
        let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
        names
            .split_whitespace()
            .position(|n| n == field)
            .and_then(|at| values.split_whitespace().nth(at))
            .map(str::to_owned)
    };
    value
        .unwrap_or_else(|| panic!("no {group} {field} in {ns}'s /proc/net/snmp(6)"))
        .parse()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_written_out_are_netfwds() {
        for net in ["a", "demo", "t1234567"] {
            let name = NetworkName::parse("network", net).unwrap();
            assert_eq!(written_out_prefixes(net), ifname_prefixes(&name));
        }
    }

    #[test]
    fn ifnames_parse_from_ip_json() {
        assert!(parse_ifnames("").is_empty());
        assert!(parse_ifnames("[]").is_empty());
        assert_eq!(
            parse_ifnames(r#"[{"ifindex":1,"ifname":"lo"},{"ifindex":2,"ifname":"nfx-1"}]"#),
            ["lo", "nfx-1"]
        );
    }
}
