//! The datapath's own cost per packet, which this machine's noise cannot
//! hide: nanoseconds per program run from the kernel's run-time stats
//! (`kernel.bpf_stats_enabled`), per program of a netfwd setup, over one
//! workload. The stats cost every program run two clock reads, so they are
//! on only in the pass that reads them, never while rates are measured.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, Result};

use crate::cmd::{command, output};

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// The kernel's run-time stats, on while this lives; the setting before
/// it comes back on drop.
pub struct StatsOn {
    previous: String,
}

impl StatsOn {
    pub fn enable() -> Result<StatsOn> {
        let previous =
            std::fs::read_to_string(STATS_SYSCTL).context("reading bpf_stats_enabled")?;
        std::fs::write(STATS_SYSCTL, "1").context("enabling bpf_stats_enabled")?;
        Ok(StatsOn { previous })
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        let _ = std::fs::write(STATS_SYSCTL, self.previous.trim());
    }
}

/// Run time (ns) and run count of a program, cumulative since it loaded.
#[derive(Clone, Copy, Default)]
struct Totals {
    run_time_ns: u64,
    run_cnt: u64,
}

/// Each program network `name` pinned (`programs/<build>/<program>`), by
/// program name: every attachment of one program shares its totals.
pub struct Snapshot(BTreeMap<String, Totals>);

impl Snapshot {
    pub fn take(network: &str) -> Result<Snapshot> {
        let programs = Path::new("/sys/fs/bpf/netfwd")
            .join(network)
            .join("programs");
        let mut totals = BTreeMap::new();
        for build in std::fs::read_dir(&programs)
            .with_context(|| format!("listing {}", programs.display()))?
        {
            let build = build?.path();
            for pin in std::fs::read_dir(&build)? {
                let pin = pin?.path();
                let name = pin
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                totals.insert(name, read(&pin)?);
            }
        }
        Ok(Snapshot(totals))
    }

    /// Nanoseconds per run and runs, of each program that ran between
    /// `before` and `self`.
    pub fn since(&self, before: &Snapshot) -> Vec<ProgramCost> {
        self.0
            .iter()
            .filter_map(|(name, after)| {
                let was = before.0.get(name).copied().unwrap_or_default();
                let runs = after.run_cnt.checked_sub(was.run_cnt)?;
                let ns = after.run_time_ns.checked_sub(was.run_time_ns)?;
                (runs > 0).then(|| ProgramCost {
                    program: name.clone(),
                    ns_per_run: ns as f64 / runs as f64,
                    runs,
                })
            })
            .collect()
    }
}

/// One program's cost over one workload.
#[derive(Clone, Debug)]
pub struct ProgramCost {
    pub program: String,
    pub ns_per_run: f64,
    pub runs: u64,
}

fn read(pin: &Path) -> Result<Totals> {
    let pin_arg = pin.display().to_string();
    let text = output(&mut command(
        "bpftool",
        &["-j", "prog", "show", "pinned", &pin_arg],
    ))?;
    let v: serde_json::Value = serde_json::from_str(&text).context("bpftool's JSON")?;
    // Absent until a program first runs with the stats on.
    Ok(Totals {
        run_time_ns: v["run_time_ns"].as_u64().unwrap_or(0),
        run_cnt: v["run_cnt"].as_u64().unwrap_or(0),
    })
}
