//! The scenario tests' second pass, with XDP in front of TC. Every test of
//! the datapath runs in it. A few tests that drive a client (the CNI
//! plugin, podman, dockerd) test only that client's own logic, which no
//! packet decides; a few others set their mode themselves, or test input
//! refused before anything is made, so the mode changes nothing they
//! exercise. They are skipped here by name, each with its reason, and the
//! pass ends by listing them, so a skipped test is never counted as a
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
    (
        "xdp_takes_endpoint_traffic_and_nat_replies_in_front_of_tc",
        "sets its own mode (xdp, then tc): the TC pass's run is this one",
    ),
    (
        "xdp_falls_back_to_tc_where_it_cannot_attach",
        "sets its own mode (xdp): the TC pass's run is this one",
    ),
    ("duplicate_endpoint_ip_is_rejected", CONFIG_REFUSED),
    ("endpoint_ip_outside_the_subnet_is_rejected", CONFIG_REFUSED),
    ("gateway_outside_the_subnet_is_rejected", CONFIG_REFUSED),
    (
        "network_name_longer_than_8_characters_is_rejected",
        CONFIG_REFUSED,
    ),
    ("subnet_prefix_outside_16_to_30_is_rejected", CONFIG_REFUSED),
    ("malformed_toml_is_rejected", CONFIG_REFUSED),
    ("unknown_key_is_rejected", CONFIG_REFUSED),
    (
        "a_malformed_option_value_is_one_line_naming_the_option",
        "a command line refused as it is parsed; no config, no datapath",
    ),
    (
        "bad_names_on_the_command_line_exit_2_and_touch_nothing",
        NAME_REFUSED,
    ),
    (
        "bad_names_in_a_config_exit_2_and_touch_nothing",
        NAME_REFUSED,
    ),
    (
        "bad_names_in_a_cni_config_are_an_error_and_touch_nothing",
        NAME_REFUSED,
    ),
    (
        "state_files_that_are_links_or_name_no_network_are_skipped",
        "status and down reading state files; no config, no datapath",
    ),
];

/// Why a config refused as it is parsed and validated needs one pass: it
/// is refused before any device or program is made, whatever its mode.
const CONFIG_REFUSED: &str = "a config refused as it is validated, before anything is made";

/// Likewise a name refused at the boundary, before any path is joined.
const NAME_REFUSED: &str = "names refused at the boundary, before anything is made";

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
