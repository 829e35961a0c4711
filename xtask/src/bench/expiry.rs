//! The NAT table's expiry in the kernel at a million flows, on netfwd tc
//! alone (the baseline's conntrack has no counterpart to switch off): what
//! one walk over the full table costs, what removing a million expired flows
//! costs, and request/response on the NAT path while the sweep walks the
//! table every second against the same with the sweep stopped. Costs are
//! the kernel's own clock, from the sweep's record (`NAT_SWEEP`).

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    report::median,
    setups::{Kind, Setup},
    workloads,
};
use crate::cmd::{command, output, run};

/// The table's size.
const MAX_FLOWS: u32 = 1_000_000;

/// `[nat]` for the run: the table sized for a million flows, all of them
/// one endpoint's (nothing answers them), UDP flows kept for 10 minutes and
/// a 2 s ICMP timeout, which paces the sweep to a walk every second.
fn nat_section(udp_secs: u32) -> String {
    format!(
        "[nat]\nmax_flows = {MAX_FLOWS}\nmax_unreplied_share = 100\n\
         [nat.timeouts]\nicmp = 2\nudp = {udp_secs}\n"
    )
}

pub fn exec(netfwd: &Path, dir: &Path, reps: usize, secs: u64) -> Result<String> {
    let id = std::process::id();
    let mut setup = Setup::build(Kind::NetfwdTc, id, netfwd, dir).context("building netfwd tc")?;
    setup.set_nat(&nat_section(600))?;
    let sweep_pin = setup
        .pinned_map("NAT_SWEEP")
        .context("netfwd tc without pins")?;
    let asked = workloads::open_nat_flows(&setup, MAX_FLOWS)?;
    // A walk that finds the table full (nothing expired).
    let walks = record(&sweep_pin)?["walks"].as_u64().unwrap_or(0);
    let full = wait_for(&sweep_pin, Duration::from_secs(10), |r| {
        r["walks"].as_u64().unwrap_or(0) > walks + 1
    })?;
    let (entries, walk_ns) = (
        u64_of(&full, "last_walk_entries")?,
        u64_of(&full, "last_walk_ns")?,
    );

    let (mut with_walks, mut without) = (Vec::new(), Vec::new());
    let mut walks_during = 0;
    // At least 3 samples a cell, quick or not.
    let reps = reps.max(3);
    for _ in 0..reps {
        stop_sweep(&sweep_pin)?;
        without.push(workloads::nat_rr(&setup, secs)?);
        let walks = u64_of(&record(&sweep_pin)?, "walks")?;
        if walks != 0 {
            bail!("the sweep walked {walks} times while stopped");
        }
        setup.set_nat(&nat_section(600))?;
        let before = u64_of(&record(&sweep_pin)?, "walks")?;
        with_walks.push(workloads::nat_rr(&setup, secs)?);
        walks_during += u64_of(&record(&sweep_pin)?, "walks")? - before;
    }

    // Every flow expires at once: the sweep, rearmed from a clean record,
    // removes them all.
    stop_sweep(&sweep_pin)?;
    let started = Instant::now();
    setup.set_nat(&nat_section(2))?;
    let held = u64::from(asked).min(entries / 2);
    let drained = wait_for(&sweep_pin, Duration::from_secs(120), |r| {
        r["flows_removed"].as_u64().unwrap_or(0) >= held
    })?;
    let drain_wall = started.elapsed();
    let drain_ns = u64_of(&drained, "busy_ns")?;
    drop(setup);

    let (rr_with, rr_without) = (median(&mut with_walks), median(&mut without));
    Ok(format!(
        "\nNAT expiry in the kernel at {MAX_FLOWS} flows (netfwd tc, `max_flows = {MAX_FLOWS}`; \
         {reps} interleaved runs of {secs} s; kernel clock):\n\n\
         | measure | value |\n|---|---|\n\
         | flows held | {held} ({entries} entries) |\n\
         | one walk over the full table, nothing expired | {:.1} ms ({:.0} ns per entry) |\n\
         | removing every flow once all expired (walks and removals until empty) | {:.1} ms of one core ({:.0} ns per flow; {:.1} s wall, the `up` that arms it included) |\n\
         | request/response on the NAT path, sweep walking every 1 s ({walks_during} walks) | {rr_with:.0} transactions/s |\n\
         | request/response on the NAT path, sweep stopped | {rr_without:.0} transactions/s |\n\
         | during walks ÷ without | **{:.2}×** |\n",
        walk_ns as f64 / 1e6,
        walk_ns as f64 / entries.max(1) as f64,
        drain_ns as f64 / 1e6,
        drain_ns as f64 / held.max(1) as f64,
        drain_wall.as_secs_f64(),
        rr_with / rr_without,
    ))
}

/// The sweep's record (`NatSweep`, by its BTF field names).
fn record(pin: &Path) -> Result<serde_json::Value> {
    let pin = pin.display().to_string();
    let out = output(&mut command(
        "bpftool",
        &[
            "-j", "map", "lookup", "pinned", &pin, "key", "0", "0", "0", "0",
        ],
    ))?;
    let v: serde_json::Value = serde_json::from_str(&out).context("bpftool's JSON")?;
    Ok(v["formatted"]["value"].clone())
}

fn u64_of(record: &serde_json::Value, field: &str) -> Result<u64> {
    record[field]
        .as_u64()
        .with_context(|| format!("no {field} in the sweep's record: {record}"))
}

/// Polls the sweep's record until `done`, for at most `limit`.
fn wait_for(
    pin: &Path,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let r = record(pin)?;
        if done(&r) {
            return Ok(r);
        }
        if Instant::now() > deadline {
            bail!("the sweep's record stayed {r} for {limit:?}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the sweep: a value written from userspace replaces the record and
/// the kernel frees the timer in it (`up` arms a new one). A callback
/// running on the other CPU at that moment may start the timer again, so
/// the stop is checked: no walk for longer than the sweep's pause, else it
/// is written again.
fn stop_sweep(pin: &Path) -> Result<()> {
    let size = workloads::pinned_map_info(pin)?["bytes_value"]
        .as_u64()
        .context("no bytes_value for NAT_SWEEP")?;
    let pin_arg = pin.display().to_string();
    let mut args = vec![
        "map", "update", "pinned", &pin_arg, "key", "0", "0", "0", "0", "value",
    ];
    args.extend(std::iter::repeat_n("0", size as usize));
    for _ in 0..STOP_ATTEMPTS {
        run(&mut command("bpftool", &args))?;
        thread::sleep(WALK_PAUSE * 3 / 2);
        if u64_of(&record(pin)?, "walks")? == 0 {
            return Ok(());
        }
    }
    bail!("the sweep kept walking after {STOP_ATTEMPTS} stops")
}

/// Writes of a stopped record before the bench gives up on stopping it.
const STOP_ATTEMPTS: usize = 5;
/// The longest pause between two walks at `nat_section`'s 2-s ICMP timeout.
const WALK_PAUSE: Duration = Duration::from_secs(1);
