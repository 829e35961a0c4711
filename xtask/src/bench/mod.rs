//! `cargo xtask bench [--quick]`: netfwd against what it replaces (a Linux
//! bridge with iptables) and against the limit (a bare veth pair; plain
//! routing for the NAT path), built side by side in sandbox namespaces and
//! measured in the same run, interleaved (A B C A B C …) so drift hits every
//! setup alike; then what the monitor costs (`monitor`), four networks on
//! one uplink against one (`networks`), 10,000 endpoints and published
//! ports (`scale`), the control plane's rows (`control`, `docker`) and the
//! cluster's (`cluster`). Results go to
//! `bench-results/<time>/` and the tables to stdout.

mod cluster;
mod control;
mod docker;
mod expiry;
mod monitor;
mod networks;
mod path_cost;
mod progstats;
mod report;
mod scale;
mod setups;
mod workloads;

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result, anyhow};

use self::{
    report::Samples,
    setups::{Kind, Setup},
    workloads::{Sample, Workload},
};
use crate::cmd::{command, output, workspace_root};

/// What a run measures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sections {
    All,
    ControlPlane,
    Cluster,
    Monitor,
    Networks,
    Scale,
    DataPlane,
}

/// The sections `sections` names; `rows`: only the main table's rows whose
/// name contains it.
pub fn exec(netfwd: &Path, quick: bool, sections: Sections, rows: Option<&str>) -> Result<()> {
    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("netfwd-bench-{id}"));
    std::fs::create_dir_all(&dir)?;
    let stamp = output(&mut command("date", &["-u", "+%Y%m%dT%H%M%SZ"]))?;
    let out = workspace_root().join("bench-results").join(stamp.trim());
    let alone = match sections {
        Sections::Cluster => Some(cluster::exec(netfwd, quick, &dir)),
        Sections::Monitor => Some(monitor::exec(netfwd, quick, &dir)),
        Sections::Networks => Some(networks::exec(netfwd, quick, &dir)),
        Sections::Scale => Some(scale::exec(netfwd, quick, &dir)),
        _ => None,
    };
    if let Some(rows) = alone {
        let _ = std::fs::remove_dir_all(&dir);
        return publish(&out, &(machine()? + &rows?));
    }
    let mut md = if sections == Sections::ControlPlane {
        machine()?
    } else {
        let (md, json, svg) = data_plane(netfwd, quick, &dir, rows)?;
        report::write(&out, &md, &json, &svg)?;
        // The monitor's rows and the networks' are sections of many: a
        // failure is reported in their place.
        if sections == Sections::DataPlane {
            let _ = std::fs::remove_dir_all(&dir);
            return publish(&out, &md);
        }
        let md = match monitor::exec(netfwd, quick, &dir) {
            Ok(rows) => md + &rows,
            Err(e) => md + &format!("\nMonitor rows: failed ({e:#}).\n"),
        };
        let md = match networks::exec(netfwd, quick, &dir) {
            Ok(rows) => md + &rows,
            Err(e) => md + &format!("\nMany-networks rows: failed ({e:#}).\n"),
        };
        match scale::exec(netfwd, quick, &dir) {
            Ok(rows) => md + &rows,
            Err(e) => md + &format!("\nScale rows: failed ({e:#}).\n"),
        }
    };
    let control = control::exec(netfwd, quick, &dir);
    // Docker's row is one of many: its failure is reported in its place.
    let docker = control.is_ok().then(|| docker::exec(netfwd, quick, &dir));
    // So are the cluster's rows, after the rest.
    let cluster =
        (sections == Sections::All && control.is_ok()).then(|| cluster::exec(netfwd, quick, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    md.push_str(&control?);
    match docker {
        Some(Ok(row)) => md.push_str(&row),
        Some(Err(e)) => md.push_str(&format!("\n`docker run` row: failed ({e:#}).\n")),
        None => {}
    }
    match cluster {
        Some(Ok(rows)) => md.push_str(&rows),
        Some(Err(e)) => md.push_str(&format!("\nCluster rows: failed ({e:#}).\n")),
        None => {}
    }
    publish(&out, &md)
}

/// Writes `md` to `out/results.md` and prints it.
fn publish(out: &Path, md: &str) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("results.md"), md)?;
    println!("{md}\nresults: {}", out.display());
    Ok(())
}

/// The data path's rows (those whose name contains `rows`, if given): the
/// table, every sample as JSON and the chart.
fn data_plane(
    netfwd: &Path,
    quick: bool,
    dir: &Path,
    rows: Option<&str>,
) -> Result<(String, serde_json::Value, String)> {
    // Even a quick run takes three samples a cell: one shows no spread.
    let (reps, secs, scale) = if quick {
        (3, 1, &workloads::SCALE_QUICK[..])
    } else {
        (5, 2, &workloads::SCALE_FULL[..])
    };
    let picked = |w: &Workload| rows.is_none_or(|text| w.name().contains(text));
    let all: Vec<Workload> = Workload::all(scale).into_iter().filter(picked).collect();
    anyhow::ensure!(!all.is_empty(), "no row's name contains {rows:?}");
    let base: Vec<Workload> = Workload::BASE.into_iter().filter(picked).collect();
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|&k| all.iter().any(|w| w.runs_on(k)))
        .collect();
    let mut built = build_all(&kinds, netfwd, dir)?;
    let mut samples = Samples::new();
    let mut notes = Vec::new();
    let every: Vec<&Setup> = built.iter().collect();
    warm_up(&base, &every);
    let mut rounds = Rounds {
        reps,
        secs,
        all: &all,
        samples: &mut samples,
        notes: &mut notes,
    };
    rounds.run(&base, &every)?;
    let costs = path_cost::HEADER.to_owned() + &path_cost::exec(&base, &every, secs)?;
    drop(every);
    for &n in scale {
        let scaled: Vec<Workload> = Workload::scaled(n).into_iter().filter(picked).collect();
        if scaled.is_empty() {
            continue;
        }
        grow_each(&mut built, n)?;
        // The limit is a bare veth pair whatever the count, measured in the
        // same rounds as the rest all the same.
        let every: Vec<&Setup> = built.iter().collect();
        rounds.run(&scaled, &every)?;
    }
    {
        let every: Vec<&Setup> = built.iter().collect();
        rounds.beyond_the_limit(&every)?;
    }
    let machine = machine()?;
    let md = report::markdown(&samples, &all, reps, secs, &machine)
        + &report::spread(&samples, &all)
        + &report::without_port_rules(&samples, &all)
        + &report::bimodal(&samples, &all)
        + &report::notes(&notes)
        + &costs;
    let json = report::json(&samples, &all, reps, secs, &machine);
    let svg = report::svg(&samples, &all);
    // The NAT's memory and expiry are no rows: a run of chosen rows skips them.
    let md = match rows {
        Some(_) => md,
        None => md + &nat_memory(built, netfwd, dir, reps, secs)?,
    };
    Ok((md, json, svg))
}

/// What each setup's NAT state costs at about 100,000 flows, then NAT
/// expiry at a million flows (after `built` is gone).
fn nat_memory(
    built: Vec<Setup>,
    netfwd: &Path,
    dir: &Path,
    reps: usize,
    secs: u64,
) -> Result<String> {
    let mut memory =
        String::from("\nNAT state for about 100,000 flows (UDP, one datagram each):\n\n");
    for setup in &built {
        if let Some(held) = workloads::nat_table_memory(setup, netfwd)? {
            let _ = write!(
                memory,
                "- {}: {} flows held, {:.1} MiB, {:.0} bytes per held flow",
                setup.kind.name(),
                held.flows,
                held.bytes as f64 / (1 << 20) as f64,
                held.bytes as f64 / held.flows.max(1) as f64,
            );
            memory.push_str(&match held.preallocated_flows {
                Some(capacity) => format!(
                    " (preallocated for {capacity} flows: {:.0} bytes per flow of room, \
                     charged whether held or not)\n",
                    held.bytes as f64 / capacity.max(1) as f64
                ),
                None => " (allocated per flow)\n".to_owned(),
            });
        }
    }
    drop(built);
    eprintln!("bench: NAT expiry at a million flows");
    memory.push_str(&expiry::exec(netfwd, dir, reps, secs)?);
    Ok(memory)
}

/// A setup of each of `kinds`, side by side.
fn build_all(kinds: &[Kind], netfwd: &Path, dir: &Path) -> Result<Vec<Setup>> {
    let id = std::process::id();
    kinds
        .iter()
        .map(|k| {
            Setup::build(*k, id, netfwd, dir).with_context(|| format!("building {}", k.name()))
        })
        .collect()
}

/// Grows each setup that runs the rows of `n` endpoints to `n` (a
/// baseline has no more than a bridge's ports).
fn grow_each(built: &mut [Setup], n: u32) -> Result<()> {
    let scaled = Workload::scaled(n);
    for setup in built.iter_mut().filter(|s| scaled[0].runs_on(s.kind)) {
        setup
            .grow(n)
            .with_context(|| format!("growing {} to {n} endpoints", setup.kind.name()))?;
    }
    eprintln!("bench: {n} endpoints on each setup");
    Ok(())
}

/// A sample is taken again, up to this many times, when its workload
/// fails, reads zero, or netfwd's daemon is found dead after it.
const RETRIES: usize = 2;

/// One unrecorded second of every workload on every setup: caches, ARP and
/// the first flows in place before anything counts. A failure here is the
/// measured rounds' to report.
fn warm_up(workloads: &[Workload], built: &[&Setup]) {
    for &w in workloads {
        for &setup in built.iter().filter(|s| w.runs_on(s.kind)) {
            if let Err(e) = workloads::measure(w, setup, 1) {
                eprintln!(
                    "bench: warm-up {} on {}: {e:#}",
                    w.name(),
                    setup.kind.name()
                );
            }
        }
    }
}

/// The measured rounds and what they found.
struct Rounds<'a> {
    reps: usize,
    secs: u64,
    all: &'a [Workload],
    samples: &'a mut Samples,
    /// Samples taken again, and why.
    notes: &'a mut Vec<String>,
}

impl Rounds<'_> {
    /// `reps` rounds of every workload on every setup, interleaved (A B C D
    /// A B C D …) so drift hits every setup alike, the setups in a new
    /// random order each time so none always runs first or after another.
    fn run(&mut self, workloads: &[Workload], built: &[&Setup]) -> Result<()> {
        for rep in 0..self.reps {
            for &w in workloads {
                let mut order: Vec<&Setup> = built
                    .iter()
                    .copied()
                    .filter(|s| w.runs_on(s.kind))
                    .collect();
                fastrand::shuffle(&mut order);
                for setup in order {
                    let sample = self.sample(w, setup)?;
                    self.samples
                        .entry(report::key(self.all, w, setup.kind))
                        .or_default()
                        .push(sample);
                }
            }
            eprintln!("bench: run {}/{} done", rep + 1, self.reps);
        }
        Ok(())
    }

    /// One sample that can be trusted at a glance: its workload succeeded,
    /// it reads more than zero, and netfwd's daemon lived through it.
    fn sample(&mut self, w: Workload, setup: &Setup) -> Result<Sample> {
        let mut why = anyhow!("not run");
        for _ in 0..=RETRIES {
            let taken = workloads::measure(w, setup, self.secs)
                .and_then(|s| setup.daemon_alive().map(|()| s));
            match taken {
                Ok(s) if s.value.is_finite() && s.value > 0.0 => return Ok(s),
                Ok(s) => why = anyhow!("it read {}", s.value),
                Err(e) => why = e,
            }
            self.notes.push(format!(
                "{} on {}: taken again ({why:#})",
                w.name(),
                setup.kind.name()
            ));
        }
        Err(why.context(format!(
            "{} on {}: failed {} times",
            w.name(),
            setup.kind.name(),
            RETRIES + 1
        )))
    }

    /// Takes again, once, each sample that beats the limit's median by more
    /// than the limit's own spread in this run, and notes it with both
    /// readings: a reading past the limit is more likely noise or a broken
    /// path than a result.
    fn beyond_the_limit(&mut self, built: &[&Setup]) -> Result<()> {
        for (i, &w) in self.all.iter().enumerate() {
            let Some(limit) = self.samples.get(&report::key(self.all, w, Kind::Limit)) else {
                continue;
            };
            let report::Summary {
                median, min, max, ..
            } = report::summary(limit);
            let spread = (max - min) / median;
            let ceiling = median * (1.0 + spread);
            for &setup in built.iter().filter(|s| s.kind != Kind::Limit) {
                let key = report::key(self.all, w, setup.kind);
                let past: Vec<usize> = self.samples.get(&key).map_or_else(Vec::new, |list| {
                    (0..list.len())
                        .filter(|&j| list[j].value > ceiling)
                        .collect()
                });
                for j in past {
                    let again = self.sample(w, setup)?;
                    if let Some(list) = self.samples.get_mut(&key) {
                        self.notes.push(format!(
                            "{} on {}: {:.3} was past the limit's {median:.3} (spread {:.0}%); \
                             taken again: {:.3}",
                            self.all[i].name(),
                            setup.kind.name(),
                            list[j].value,
                            spread * 100.0,
                            again.value
                        ));
                        list[j] = again;
                    }
                }
            }
        }
        Ok(())
    }
}

fn machine() -> Result<String> {
    let kernel = output(&mut command("uname", &["-r"]))?;
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")?
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let bridge_nf = if Path::new(setups::BRIDGE_NF_CALL_IPTABLES).exists() {
        "br_netfilter loaded: the baseline's bridged frames pass iptables \
         (bridge-nf-call-iptables=1, as dockerd sets it)"
    } else {
        "br_netfilter not loaded: the baseline's bridged (east-west) frames skip iptables"
    };
    Ok(format!(
        "Machine: {cpus} vCPU {model}, kernel {}; {bridge_nf}.",
        kernel.trim()
    ))
}
