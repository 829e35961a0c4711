//! `cargo xtask bench [--quick]`: netfwd against what it replaces (a Linux
//! bridge with iptables) and against the limit (a bare veth pair; plain
//! routing for the NAT path), built side by side in sandbox namespaces and
//! measured in the same run, interleaved (A B C A B C …) so drift hits every
//! setup alike; then the control plane's rows (`control`, `docker`). Results go to
//! `bench-results/<time>/` and the tables to stdout.

mod control;
mod docker;
mod expiry;
mod report;
mod setups;
mod workloads;

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};

use self::{
    report::Samples,
    setups::{Kind, Setup},
    workloads::Workload,
};
use crate::cmd::{command, output, workspace_root};

/// The whole bench, or with `control_plane_only` its control-plane rows
/// alone.
pub fn exec(netfwd: &Path, quick: bool, control_plane_only: bool) -> Result<()> {
    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("netfwd-bench-{id}"));
    std::fs::create_dir_all(&dir)?;
    let stamp = output(&mut command("date", &["-u", "+%Y%m%dT%H%M%SZ"]))?;
    let out = workspace_root().join("bench-results").join(stamp.trim());
    let mut md = if control_plane_only {
        machine()?
    } else {
        let (md, json, svg) = data_plane(netfwd, quick, &dir)?;
        report::write(&out, &md, &json, &svg)?;
        md
    };
    let control = control::exec(netfwd, quick, &dir);
    // Docker's row is one of many: its failure is reported in its place.
    let docker = control.is_ok().then(|| docker::exec(netfwd, quick, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    md.push_str(&control?);
    match docker {
        Some(Ok(row)) => md.push_str(&row),
        Some(Err(e)) => md.push_str(&format!("\n`docker run` row: failed ({e:#}).\n")),
        None => {}
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("results.md"), &md)?;
    println!("{md}\nresults: {}", out.display());
    Ok(())
}

/// The data path's rows: the table, every sample as JSON and the chart.
fn data_plane(
    netfwd: &Path,
    quick: bool,
    dir: &Path,
) -> Result<(String, serde_json::Value, String)> {
    let (reps, secs, scale) = if quick {
        (1, 1, &workloads::SCALE_QUICK[..])
    } else {
        (5, 2, &workloads::SCALE_FULL[..])
    };
    let all = Workload::all(scale);
    let id = std::process::id();
    let mut built: Vec<Setup> = Kind::ALL
        .iter()
        .map(|k| {
            Setup::build(*k, id, netfwd, dir).with_context(|| format!("building {}", k.name()))
        })
        .collect::<Result<_>>()?;
    let mut samples = Samples::new();
    let every: Vec<&Setup> = built.iter().collect();
    run_interleaved(&Workload::BASE, &every, reps, secs, &all, &mut samples)?;
    drop(every);
    for &n in scale {
        for setup in &mut built {
            setup
                .grow(n)
                .with_context(|| format!("growing {} to {n} endpoints", setup.kind.name()))?;
        }
        eprintln!("bench: {n} endpoints on each setup");
        // The limit is a bare veth pair whatever the count: its base runs
        // stand for it.
        let growing: Vec<&Setup> = built.iter().filter(|s| s.kind != Kind::Limit).collect();
        run_interleaved(
            &Workload::scaled(n),
            &growing,
            reps,
            secs,
            &all,
            &mut samples,
        )?;
        for (scaled, base) in Workload::scaled(n).into_iter().zip(Workload::scaled_base()) {
            if let Some(limit) = samples.get(&report::key(&all, base, Kind::Limit)).cloned() {
                samples.insert(report::key(&all, scaled, Kind::Limit), limit);
            }
        }
    }
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

    let machine = machine()?;
    let md = report::markdown(&samples, &all, reps, secs, &machine) + &memory;
    let json = report::json(&samples, &all, reps, secs, &machine);
    let svg = report::svg(&samples, &all);
    Ok((md, json, svg))
}

/// `reps` rounds of every workload on every setup, interleaved
/// (A B C D A B C D …) so drift hits every setup alike.
fn run_interleaved(
    workloads: &[Workload],
    built: &[&Setup],
    reps: usize,
    secs: u64,
    all: &[Workload],
    samples: &mut Samples,
) -> Result<()> {
    for rep in 0..reps {
        for &w in workloads {
            for &setup in built {
                let sample = workloads::measure(w, setup, secs).with_context(|| {
                    format!("{} on {} (run {rep})", w.name(), setup.kind.name())
                })?;
                samples
                    .entry(report::key(all, w, setup.kind))
                    .or_default()
                    .push(sample);
            }
        }
        eprintln!("bench: run {}/{reps} done", rep + 1);
    }
    Ok(())
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
    Ok(format!(
        "Machine: {cpus} vCPU {model}, kernel {}.",
        kernel.trim()
    ))
}
