//! A network's monitor maps (see `netfwd_common::monitor`): the switch
//! that turns the datapath's events on, each CPU's suppressed and lost
//! counts, and the ring buffer the events are read from.

use std::path::Path;

use anyhow::{Context as _, Result};
use aya::maps::{Array, Map, MapData, PerCpuArray, RingBuf};
use netfwd_common::{
    monitor::{DEADLINE_NS, MonitorBudget, MonitorConfig, MonitorEvent},
    names::{MAP_MONITOR, MAP_MONITOR_BUDGET, MAP_MONITOR_EVENTS},
};
use nix::time::{ClockId, clock_gettime};

fn open(dir: &Path, name: &str) -> Result<Map> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| {
        format!(
            "opening {} (a network brought up by an older netfwd has no monitor maps until its next `up`)",
            path.display()
        )
    })?;
    Map::from_map_data(data).with_context(|| format!("reading map {}", path.display()))
}

/// The switch of one network's events, and what the datapath could not
/// write. Turned off on drop (Ctrl-C included); if the process dies
/// without dropping it, the datapath stops on its own once the deadline
/// `keep_on` last set passes.
pub struct MonitorSwitch {
    switch: Array<MapData, MonitorConfig>,
    budget: PerCpuArray<MapData, MonitorBudget>,
    kinds: u32,
}

impl MonitorSwitch {
    pub fn open(pin_dir: &Path) -> Result<Self> {
        Self::new(
            open(pin_dir, MAP_MONITOR)?,
            open(pin_dir, MAP_MONITOR_BUDGET)?,
        )
    }

    /// The switch of the datapath holding `switch` (`MONITOR`) and `budget`
    /// (`MONITOR_BUDGET`): a network's pinned ones, or `explain`'s copy's.
    pub fn new(switch: Map, budget: Map) -> Result<Self> {
        Ok(Self {
            switch: Array::try_from(switch).context("map MONITOR: unexpected type")?,
            budget: PerCpuArray::try_from(budget).context("map MONITOR_BUDGET: unexpected type")?,
            kinds: 0,
        })
    }

    /// Turns events of `kinds` (`WANT_*` bits) on for the next
    /// `DEADLINE_NS`; called again every `REFRESH_NS` to keep them on.
    pub fn keep_on(&mut self, kinds: u32) -> Result<()> {
        let now = clock_gettime(ClockId::CLOCK_MONOTONIC).context("reading CLOCK_MONOTONIC")?;
        let now_ns = u64::try_from(now.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(now.tv_nsec()).unwrap_or(0);
        let config = MonitorConfig {
            kinds,
            pid: std::process::id(),
            deadline_ns: now_ns + DEADLINE_NS,
        };
        self.switch
            .set(0, config, 0)
            .context("turning the monitor's events on")?;
        self.kinds = kinds;
        Ok(())
    }

    /// The events over the rate limit and those the ring had no room for,
    /// summed over the CPUs, since the network came up.
    pub fn missed(&self) -> Result<MissedEvents> {
        let per_cpu = self.budget.get(&0, 0).context("reading MONITOR_BUDGET")?;
        Ok(MissedEvents::sum(per_cpu.iter()))
    }

    fn turn_off(&mut self) -> Result<()> {
        let current = self.switch.get(&0, 0).context("reading MONITOR")?;
        // Another monitor took the switch over since: it is its to clear.
        if current.pid == std::process::id() {
            self.switch
                .set(0, MonitorConfig::default(), 0)
                .context("turning the monitor's events off")?;
        }
        Ok(())
    }
}

impl Drop for MonitorSwitch {
    fn drop(&mut self) {
        if self.kinds != 0
            && let Err(e) = self.turn_off()
        {
            log::warn!("{e:#}");
        }
    }
}

/// Events the datapath did not write: over the per-CPU rate limit
/// (suppressed) or without room in the ring (lost).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MissedEvents {
    pub suppressed: u64,
    pub lost: u64,
}

impl MissedEvents {
    pub fn sum<'a>(per_cpu: impl Iterator<Item = &'a MonitorBudget>) -> Self {
        per_cpu.fold(Self::default(), |sum, cpu| Self {
            suppressed: sum.suppressed + cpu.suppressed,
            lost: sum.lost + cpu.lost,
        })
    }

    pub fn total(&self) -> u64 {
        self.suppressed + self.lost
    }
}

/// The missed events of the network pinned at `pin_dir`, without touching
/// its switch (for metrics); none where an older netfwd made the pins.
pub fn missed_events(pin_dir: &Path) -> Result<MissedEvents> {
    if !pin_dir.join(MAP_MONITOR_BUDGET).exists() {
        return Ok(MissedEvents::default());
    }
    MonitorSwitch::open(pin_dir)?.missed()
}

/// One network's ring of events.
pub struct MonitorRing {
    ring: RingBuf<MapData>,
}

impl MonitorRing {
    pub fn open(pin_dir: &Path) -> Result<Self> {
        Self::new(open(pin_dir, MAP_MONITOR_EVENTS)?)
    }

    /// The ring `ring` (`MONITOR_EVENTS`), as [`MonitorSwitch::new`].
    pub fn new(ring: Map) -> Result<Self> {
        Ok(Self {
            ring: RingBuf::try_from(ring).context("map MONITOR_EVENTS: unexpected type")?,
        })
    }

    /// The next event written, if any (a record of another size, from
    /// another build of the datapath, is skipped).
    pub fn next_event(&mut self) -> Option<MonitorEvent> {
        loop {
            let item = self.ring.next()?;
            if let Ok(event) = bytemuck::try_pod_read_unaligned::<MonitorEvent>(&item) {
                return Some(event);
            }
        }
    }
}

impl std::os::fd::AsRawFd for MonitorRing {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.ring.as_raw_fd()
    }
}
