//! What `netfwd monitor` costs the datapath, three ways on the same
//! workloads: the datapath as built with nobody listening ("off"), the same
//! with `netfwd monitor --type drop` listening ("drop events on"), and a
//! build without the events compiled in (netfwd's `datapath-monitor`
//! feature off). Off must cost nothing measurable against compiled out.
//! The figure is nanoseconds per program run from the kernel's run-time
//! stats (`progstats`), which this machine's noise does not move much;
//! the three take turns in a new random order each round.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};

use super::{
    progstats::{Snapshot, StatsOn},
    report::median,
    setups::{Kind, Setup},
    workloads::{self, Workload},
};
use crate::cmd::{command, output, run, workspace_root};

/// The workloads each condition runs: the L2 path at request/response and
/// at packet rate, the NAT path, and a flood every packet of which is a
/// drop (the case the events are for).
const ROWS: [Row; 4] = [
    Row::Traffic(Workload::TcpRr),
    Row::Traffic(Workload::Udp64Raw),
    Row::Traffic(Workload::NatTcpRr),
    Row::SpoofedFlood,
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Row {
    Traffic(Workload),
    SpoofedFlood,
}

impl Row {
    fn name(self) -> String {
        match self {
            Row::Traffic(w) => w.name(),
            Row::SpoofedFlood => {
                "endpoint→endpoint 64-byte UDP with a forged source (trafgen): every packet \
                 dropped"
                    .to_owned()
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Condition {
    Off,
    DropEventsOn,
    CompiledOut,
}

const CONDITIONS: [Condition; 3] = [
    Condition::Off,
    Condition::DropEventsOn,
    Condition::CompiledOut,
];

/// The monitor's rows (Markdown).
pub fn exec(netfwd: &Path, quick: bool, dir: &Path) -> Result<String> {
    let (rounds, secs) = if quick { (3, 1) } else { (5, 2) };
    let without = build_without_monitor()?;
    let id = std::process::id();
    let built = Setup::build(Kind::NetfwdTc, id, netfwd, dir).context("building netfwd (TC)")?;
    let compiled_out = Setup::build(Kind::NetfwdTc, id + 1, &without, dir)
        .context("building netfwd (TC) without the monitor")?;
    // By row (its index in `ROWS`), program and condition.
    let mut ns: BTreeMap<(usize, &'static str, Condition), Vec<f64>> = BTreeMap::new();
    let _stats = StatsOn::enable()?;
    for round in 0..rounds {
        eprintln!("bench: monitor, round {} of {rounds}", round + 1);
        let mut order = CONDITIONS;
        fastrand::shuffle(&mut order);
        for condition in order {
            let setup = match condition {
                Condition::CompiledOut => &compiled_out,
                _ => &built,
            };
            let _listener = match condition {
                Condition::DropEventsOn => Some(Listener::start(netfwd, setup)?),
                _ => None,
            };
            for (index, row) in ROWS.into_iter().enumerate() {
                for (program, per_run) in costs(row, setup, secs)
                    .with_context(|| format!("monitor row {}", row.name()))?
                {
                    ns.entry((index, program, condition))
                        .or_default()
                        .push(per_run);
                }
            }
        }
    }
    Ok(table(&mut ns, rounds, secs))
}

/// ns per run of the programs a row is about: the endpoint program, and
/// on the NAT path the uplink program too.
fn costs(row: Row, setup: &Setup, secs: u64) -> Result<Vec<(&'static str, f64)>> {
    let network = setup.network().context("a netfwd setup has a network")?;
    let before = Snapshot::take(network)?;
    match row {
        Row::Traffic(w) => {
            workloads::measure(w, setup, secs)?;
        }
        Row::SpoofedFlood => workloads::spoofed_flood(setup, secs)?,
    }
    let after = Snapshot::take(network)?.since(&before);
    let mut wanted = vec!["tc_from_endpoint"];
    if row == Row::Traffic(Workload::NatTcpRr) {
        wanted.push("tc_from_uplink");
    }
    wanted
        .into_iter()
        .map(|program| {
            let cost = after
                .iter()
                .find(|c| c.program == program)
                .with_context(|| format!("{program} did not run: {after:?}"))?;
            Ok((program, cost.ns_per_run))
        })
        .collect()
}

fn table(
    ns: &mut BTreeMap<(usize, &'static str, Condition), Vec<f64>>,
    rounds: usize,
    secs: u64,
) -> String {
    let mut md = format!(
        "\nThe monitor's cost: nanoseconds per program run (kernel run-time stats), median of \
         {rounds} rounds of {secs} s (min–max), the three conditions in a new random order each \
         round. Off: nobody listens (one map lookup and a branch a packet). Drop events on: \
         `netfwd monitor --type drop` listening. Compiled out: netfwd built without its \
         `datapath-monitor` feature.\n\n\
         | workload | program | compiled out | off | drop events on | off ÷ compiled out | \
         on ÷ off |\n|---|---|---|---|---|---|---|\n"
    );
    let mut keys: Vec<(usize, &'static str)> = ns.keys().map(|(r, p, _)| (*r, *p)).collect();
    keys.dedup();
    for key in keys {
        let mut cell = |condition| {
            let values = ns.get_mut(&(key.0, key.1, condition))?;
            let med = median(values);
            Some((med, values[0], values[values.len() - 1]))
        };
        let (Some(out), Some(off), Some(on)) = (
            cell(Condition::CompiledOut),
            cell(Condition::Off),
            cell(Condition::DropEventsOn),
        ) else {
            continue;
        };
        let show = |(m, lo, hi): (f64, f64, f64)| format!("{m:.0} ({lo:.0}–{hi:.0})");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | **{:.2}×** | **{:.2}×** |",
            ROWS[key.0].name(),
            key.1,
            show(out),
            show(off),
            show(on),
            off.0 / out.0,
            on.0 / off.0
        );
    }
    md
}

/// `netfwd monitor --type drop` listening on a setup's network, its output
/// thrown away, while this lives.
struct Listener(Child);

impl Listener {
    fn start(netfwd: &Path, setup: &Setup) -> Result<Listener> {
        let network = setup.network().context("a netfwd setup has a network")?;
        let child = command(
            &netfwd.display().to_string(),
            &[
                "--netns",
                &setup.host,
                "monitor",
                "--name",
                network,
                "--type",
                "drop",
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting netfwd monitor")?;
        let listener = Listener(child);
        // Listening once the switch (the pinned `MONITOR`) says so.
        let pin = setup
            .pinned_map("MONITOR")
            .context("a netfwd setup has pins")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !switched_on(&pin)? {
            ensure!(
                Instant::now() < deadline,
                "netfwd monitor did not switch events on within 10 s"
            );
            thread::sleep(Duration::from_millis(100));
        }
        Ok(listener)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

/// Whether the monitor's switch has any kind of event on (its first
/// field, `kinds`, not zero).
fn switched_on(pin: &Path) -> Result<bool> {
    let text = output(&mut command(
        "bpftool",
        &["-j", "map", "dump", "pinned", &pin.display().to_string()],
    ))?;
    let v: serde_json::Value = serde_json::from_str(&text).context("bpftool's JSON")?;
    let Some(value) = v[0]["formatted"]["value"].as_object() else {
        bail!("no formatted value in {text}");
    };
    Ok(value.get("kinds").and_then(|k| k.as_u64()).unwrap_or(0) != 0)
}

/// netfwd built without the monitor's events, in a target directory of
/// its own (a full build the first time).
fn build_without_monitor() -> Result<PathBuf> {
    let target = workspace_root().join("target/bench-no-monitor");
    eprintln!("bench: building netfwd without the monitor (first time: a few minutes)");
    let target_arg = target.display().to_string();
    run(command(
        "cargo",
        &[
            "build",
            "--release",
            "--package",
            "netfwd",
            "--no-default-features",
            "--target-dir",
            &target_arg,
        ],
    )
    .current_dir(workspace_root()))?;
    Ok(target.join("release/netfwd"))
}
