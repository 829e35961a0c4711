//! One more round of the base workloads, apart from the rate rounds: with
//! the kernel's run-time stats on, what each netfwd program costs per run on
//! each row, and proof that every row took the path it names (netfwd's
//! programs for that path ran; the baseline's NAT rules, IPv4's or IPv6's,
//! counted packets).

use std::fmt::Write as _;

use anyhow::{Context as _, Result, ensure};

use super::{
    progstats::{ProgramCost, Snapshot, StatsOn},
    setups::{Kind, Setup},
    workloads::{self, Workload},
};
use crate::cmd::{command, output};

/// The cost table's title and head, above the rows of every `exec`.
pub const HEADER: &str = "\nThe datapath's cost per packet: nanoseconds per program run, from the \
     kernel's run-time stats (`kernel.bpf_stats_enabled`, on only for this pass), with the runs \
     counted over the row's workload.\n\n\
     | workload | setup | program: ns per run (runs) |\n|---|---|---|\n";

/// Runs every workload once on every setup; fails if one took another
/// path than its row says. Returns the cost table's rows (Markdown).
pub fn exec(ws: &[Workload], setups: &[&Setup], secs: u64) -> Result<String> {
    let _stats = StatsOn::enable()?;
    let mut md = String::new();
    for &w in ws {
        for &setup in setups.iter().filter(|s| w.runs_on(s.kind)) {
            let costs = one(w, setup, secs)
                .with_context(|| format!("path check: {} on {}", w.name(), setup.kind.name()))?;
            if let Some(costs) = costs {
                let cells: Vec<String> = costs
                    .iter()
                    .map(|c| format!("{}: {:.0} ns ({})", c.program, c.ns_per_run, c.runs))
                    .collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    w.name(),
                    setup.kind.name(),
                    cells.join("; ")
                );
            }
        }
    }
    Ok(md)
}

/// One workload on one setup, its path checked; netfwd's program costs.
fn one(w: Workload, setup: &Setup, secs: u64) -> Result<Option<Vec<ProgramCost>>> {
    match (setup.kind, setup.network()) {
        (Kind::NetfwdTc | Kind::NetfwdXdp, Some(network)) => {
            let before = Snapshot::take(network)?;
            workloads::measure(w, setup, secs)?;
            let costs = Snapshot::take(network)?.since(&before);
            let ran = |end: &str| costs.iter().any(|c| c.program.ends_with(end));
            ensure!(ran("_from_endpoint"), "no endpoint program ran: {costs:?}");
            ensure!(
                w.east_west() || ran("_from_uplink"),
                "no uplink program ran on the NAT path: {costs:?}"
            );
            Ok(Some(costs))
        }
        (Kind::Baseline | Kind::BaselineNoPorts, _) => {
            let before = nat_rule_hits(&setup.host)?;
            workloads::measure(w, setup, secs)?;
            let hits = nat_rule_hits(&setup.host)? - before;
            ensure!(
                w.east_west() || hits > 0,
                "the baseline's NAT rules counted no packet"
            );
            Ok(None)
        }
        _ => {
            workloads::measure(w, setup, secs)?;
            Ok(None)
        }
    }
}

/// Packets the NAT tables' rules of both families counted in namespace `ns`
/// (iptables counts a connection's first packet only).
fn nat_rule_hits(ns: &str) -> Result<u64> {
    let mut hits = 0;
    for tool in ["iptables-save", "ip6tables-save"] {
        let rules = output(&mut command(
            "nsenter",
            &[&format!("--net=/run/netns/{ns}"), tool, "-c", "-t", "nat"],
        ))?;
        hits += rules
            .lines()
            .filter(|l| l.contains("-j MASQUERADE") || l.contains("-j DNAT"))
            .filter_map(|l| l.strip_prefix('[')?.split(':').next()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(hits)
}
