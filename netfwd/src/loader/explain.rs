//! `netfwd explain`'s private copy of a network's datapath: this build's TC
//! programs loaded anew and bound to fresh, unpinned maps of the same shape
//! as the network's pinned ones, filled with what those hold. The live maps
//! are only read; a packet run through the copy (`BPF_PROG_TEST_RUN`) makes
//! its NAT flow and moves its counters in the copy alone, which is gone
//! when the copy is dropped. The copy's monitor is on, so every verdict
//! comes back as the event `netfwd monitor` would print.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Map, MapData},
    programs::{SchedClassifier, TestRun as _, TestRunOptions},
};
use netfwd_common::{
    monitor::{MonitorEvent, WANT_DROP, WANT_NAT, WANT_TRACE},
    names::{
        MAP_MONITOR, MAP_MONITOR_BUDGET, MAP_MONITOR_EVENTS, MAPS, PROG_FROM_ENDPOINT,
        PROG_FROM_UPLINK,
    },
};

use super::{
    DATAPATH_OBJECT,
    monitor::{MonitorRing, MonitorSwitch},
    pins::pin_dir,
    raw_map::RawMap,
};
use crate::name::NetworkName;

/// The maps the copy does not take from the network: its monitor's own
/// (its switch, rate limit and ring), which the live ones' state would
/// only disturb.
const OWN_MAPS: [&str; 3] = [MAP_MONITOR, MAP_MONITOR_BUDGET, MAP_MONITOR_EVENTS];

/// `struct __sk_buff`'s size, and where its `ifindex` is: a test run's
/// context may set the device the packet arrives on.
const SKB_CTX_LEN: usize = 192;
const SKB_IFINDEX: usize = 40;

/// Room a run's packet may grow by (an encapsulation, a rewrite).
const GROWTH: usize = 256;

/// A network's datapath, copied.
pub struct DatapathCopy {
    object: Ebpf,
    switch: MonitorSwitch,
    ring: MonitorRing,
}

/// What one run of a program did.
pub struct ProgramRun {
    /// The TC action it returned.
    pub action: i32,
    /// The packet as it left the program.
    pub frame: Vec<u8>,
    /// The monitor's events it wrote, in order.
    pub events: Vec<MonitorEvent>,
}

impl DatapathCopy {
    /// The copy of network `network`'s datapath.
    pub fn of(network: &NetworkName) -> Result<Self> {
        Self::of_pins(&pin_dir(network))
    }

    /// The copy of the datapath whose maps are pinned in `dir`.
    pub fn of_pins(dir: &Path) -> Result<Self> {
        let mut live = Vec::new();
        for name in MAPS {
            let path = dir.join(name);
            // A map an older netfwd did not pin stays empty in the copy.
            if !OWN_MAPS.contains(&name) && path.exists() {
                live.push((name, RawMap::from_pin(&path)?));
            }
        }
        let mut loader = EbpfLoader::new();
        for (name, map) in &live {
            loader.map_max_entries(name, map.shape().max_entries);
        }
        let mut object = loader
            .load(DATAPATH_OBJECT)
            .context("loading a copy of the datapath")?;
        for name in [PROG_FROM_ENDPOINT, PROG_FROM_UPLINK] {
            classifier(&mut object, name)?
                .load()
                .with_context(|| format!("loading the copy of program {name}"))?;
        }
        for (name, from) in &live {
            let to = RawMap::new(map_data(name, take_map(&mut object, name)?)?)?;
            if to.shape() != from.shape() {
                bail!(
                    "map {name} of {} is not this netfwd's ({:?}, here {:?}): run `netfwd up` with this netfwd first",
                    dir.display(),
                    from.shape(),
                    to.shape()
                );
            }
            to.write(&from.entries()?)
                .with_context(|| format!("copying map {name} of {}", dir.display()))?;
        }
        let switch = MonitorSwitch::new(
            take_map(&mut object, MAP_MONITOR)?,
            take_map(&mut object, MAP_MONITOR_BUDGET)?,
        )?;
        let ring = MonitorRing::new(take_map(&mut object, MAP_MONITOR_EVENTS)?)?;
        Ok(Self {
            object,
            switch,
            ring,
        })
    }

    /// Runs `tc_from_endpoint` on `frame` as if it came in on `ifindex`.
    pub fn run_from_endpoint(&mut self, frame: &[u8], ifindex: u32) -> Result<ProgramRun> {
        self.run(PROG_FROM_ENDPOINT, frame, ifindex)
    }

    /// Runs `tc_from_uplink` on `frame` as if it came in on `ifindex`.
    pub fn run_from_uplink(&mut self, frame: &[u8], ifindex: u32) -> Result<ProgramRun> {
        self.run(PROG_FROM_UPLINK, frame, ifindex)
    }

    fn run(&mut self, program: &str, frame: &[u8], ifindex: u32) -> Result<ProgramRun> {
        self.switch.keep_on(WANT_DROP | WANT_NAT | WANT_TRACE)?;
        let mut out = vec![0u8; frame.len() + GROWTH];
        let mut ctx = [0u8; SKB_CTX_LEN];
        ctx[SKB_IFINDEX..SKB_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
        let result = classifier(&mut self.object, program)?
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                repeat: 1,
                ..Default::default()
            })
            .with_context(|| format!("running the copy of {program} (BPF_PROG_TEST_RUN)"))?;
        out.truncate(result.data_size_out as usize);
        let mut events = Vec::new();
        while let Some(event) = self.ring.next_event() {
            events.push(event);
        }
        Ok(ProgramRun {
            action: result.return_value as i32,
            frame: out,
            events,
        })
    }
}

fn classifier<'a>(object: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    object
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the datapath object"))?
        .try_into()
        .with_context(|| format!("program {name} is not a TC classifier"))
}

/// Map `name` of the copy, taken out of the object (its programs hold it).
fn take_map(object: &mut Ebpf, name: &str) -> Result<Map> {
    object
        .take_map(name)
        .with_context(|| format!("map {name} missing from the datapath object"))
}

/// The map behind `map` (`name`), whatever its kind.
fn map_data(name: &str, map: Map) -> Result<MapData> {
    Ok(match map {
        Map::Array(data)
        | Map::HashMap(data)
        | Map::LruHashMap(data)
        | Map::PerCpuArray(data)
        | Map::PerCpuHashMap(data)
        | Map::PerCpuLruHashMap(data)
        | Map::LpmTrie(data)
        | Map::DevMapHash(data)
        | Map::RingBuf(data) => data,
        _ => bail!("map {name} is of a kind the datapath does not use"),
    })
}
