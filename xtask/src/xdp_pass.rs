//! The scenario tests' second pass, with XDP in front of TC. Every test of
//! the datapath runs in it. A few tests that drive a client (the CNI
//! plugin, podman, dockerd) test only that client's own logic, which no
//! packet decides; they are skipped here by name, each with its reason, and
//! the pass ends by listing them, so a skipped test is never counted as a
//! passed one.

use anyhow::{Result, bail};

use crate::cmd::{command, output, workspace_root};

/// Tests the XDP pass leaves out, and why.
pub const SKIPPED: &[(&str, &str)] = &[
    (
        "twenty_concurrent_adds_get_distinct_addresses",
        "the CNI plugin's lock and address leases under concurrency",
    ),
    (
        "bad_calls_get_spec_errors_and_change_nothing",
        "refused before any program is loaded",
    ),
    (
        "an_add_into_a_namespace_another_container_holds_is_refused",
        "refused before any program is attached",
    ),
    (
        "gc_with_another_config_of_the_name_removes_nothing",
        "CNI GC's bookkeeping; no packet",
    ),
    (
        "version_lists_supported_versions",
        "CNI VERSION; no datapath",
    ),
    (
        "check_gc_and_status",
        "CNI CHECK, GC and STATUS bookkeeping; no packet",
    ),
    (
        "without_ipam_netfwd_allocates",
        "the plugin's own address allocation",
    ),
    (
        "twenty_containers_started_at_once",
        "podman and the CNI plugin under concurrency",
    ),
    (
        "what_netfwd_cannot_honour_is_refused_naming_it",
        "Docker options refused before any program is loaded",
    ),
    (
        "a_running_container_joins_and_leaves_a_second_network_and_a_mac_address_is_kept",
        "the Docker plugin's endpoint bookkeeping",
    ),
    (
        "containers_keep_their_traffic_across_restarts_of_the_plugin_and_of_dockerd",
        "process restarts; the pinned programs' survival in XDP mode is faults.rs's",
    ),
    (
        "twenty_docker_runs_at_once_give_twenty_working_containers",
        "dockerd and the Docker plugin under concurrency",
    ),
    (
        "the_plugin_outlives_its_descriptors_running_out_and_a_held_network_lock",
        "the Docker plugin's socket; no datapath",
    ),
];

/// The harness arguments that skip [`SKIPPED`]. Each name must be exactly
/// one test of the scenario crate and no part of another's name (the
/// harness's `--skip` matches substrings), so a renamed test cannot slip
/// back in unnoticed, nor a skip take a second test with it.
pub fn skip_args() -> Result<Vec<String>> {
    let listing = output(
        command(
            "cargo",
            &[
                "test",
                "--release",
                "--package",
                "netfwd-tests",
                "--",
                "--list",
                "--format",
                "terse",
            ],
        )
        .current_dir(workspace_root()),
    )?;
    let tests: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .collect();
    let mut args = Vec::new();
    for (name, _) in SKIPPED {
        let matching: Vec<&&str> = tests.iter().filter(|t| t.contains(name)).collect();
        if matching != [name] {
            bail!("the XDP pass's skip {name:?} matches {matching:?}, not exactly that one test");
        }
        args.extend(["--skip".to_owned(), (*name).to_owned()]);
    }
    Ok(args)
}

/// What the pass's end prints: each skipped test with its reason.
pub fn print_skipped() {
    eprintln!(
        "XDP pass: {} tests skipped by name (they test a client's own logic; each ran in the TC pass):",
        SKIPPED.len()
    );
    for (name, why) in SKIPPED {
        eprintln!("  {name}: {why}");
    }
}
