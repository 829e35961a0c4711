//! `netfwd explain`'s private copy of a network's datapath: this build's TC
//! programs loaded anew and bound to fresh, unpinned maps of the same shape
//! as the network's pinned ones, filled with what those hold. The live maps
//! are only read; a packet run through the copy (`BPF_PROG_TEST_RUN`) makes
//! its NAT flow and moves its counters in the copy alone, which is gone
//! when the copy is dropped. The copy's monitor is on, so every verdict
//! comes back as the event `netfwd monitor` would print. Where an
//! interface runs XDP, its XDP program runs first and TC gets what it
//! passes on, as on the wire (loaded on first need: the verifier's time is
//! paid only in XDP mode).

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader, TestRunResult,
    maps::{Map, MapData, ProgramArray},
    programs::{Program, SchedClassifier, TestRun, TestRunOptions, Xdp},
};
use netfwd_common::{
    monitor::{MonitorEvent, WANT_DROP, WANT_NAT, WANT_TRACE},
    names::{
        MAP_CALLS, MAP_MONITOR, MAP_MONITOR_BUDGET, MAP_MONITOR_EVENTS, MAPS, PROG_FROM_ENDPOINT,
        PROG_FROM_UPLINK, PROG_XDP_FROM_ENDPOINT, PROG_XDP_FROM_UPLINK, TAIL_CALLS,
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
/// only disturb, and its jump table, which holds the copy's programs.
const OWN_MAPS: [&str; 4] = [
    MAP_MONITOR,
    MAP_MONITOR_BUDGET,
    MAP_MONITOR_EVENTS,
    MAP_CALLS,
];

/// `struct __sk_buff`'s size, and where its `ifindex` is: a test run's
/// context may set the device the packet arrives on.
const SKB_CTX_LEN: usize = 192;
const SKB_IFINDEX: usize = 40;

/// `struct xdp_md`'s size, and where its `data_end` and `ingress_ifindex`
/// are (`data` is 0).
const XDP_CTX_LEN: usize = 24;
const XDP_DATA_END: usize = 4;
const XDP_INGRESS_IFINDEX: usize = 12;

/// `XDP_PASS`: XDP hands the frame on to the stack, and TC behind it.
const XDP_PASS: i32 = 2;

/// Room a run's packet may grow by (an encapsulation, a rewrite).
const GROWTH: usize = 256;

/// A network's datapath, copied.
pub struct DatapathCopy {
    object: Ebpf,
    /// The copied maps, held open: a program loaded after they were taken
    /// out of the object (XDP's) refers to them by these descriptors.
    _maps: Vec<RawMap>,
    /// Held: the kernel empties a jump table with no descriptor left.
    _calls: ProgramArray<MapData>,
    switch: MonitorSwitch,
    ring: MonitorRing,
}

/// What one run of a program did.
pub struct ProgramRun {
    /// Whether XDP finished the packet (else TC did).
    pub xdp: bool,
    /// The XDP or TC action it returned.
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
        let jumped_to = TAIL_CALLS.map(|(_, name)| name);
        for name in [PROG_FROM_ENDPOINT, PROG_FROM_UPLINK]
            .into_iter()
            .chain(jumped_to)
        {
            classifier(&mut object, name)?
                .load()
                .with_context(|| format!("loading the copy of program {name}"))?;
        }
        let calls = super::fill_calls(take_map(&mut object, MAP_CALLS)?, |name| {
            Ok(classifier(&mut object, name)?.fd()?.try_clone()?)
        })?;
        let mut maps = Vec::new();
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
            maps.push(to);
        }
        let switch = MonitorSwitch::new(
            take_map(&mut object, MAP_MONITOR)?,
            take_map(&mut object, MAP_MONITOR_BUDGET)?,
        )?;
        let ring = MonitorRing::new(take_map(&mut object, MAP_MONITOR_EVENTS)?)?;
        Ok(Self {
            object,
            _maps: maps,
            _calls: calls,
            switch,
            ring,
        })
    }

    /// Runs the endpoint's side on `frame` as if it came in on `ifindex`:
    /// `xdp_from_endpoint` first where `xdp`, then `tc_from_endpoint`.
    pub fn run_from_endpoint(
        &mut self,
        frame: &[u8],
        ifindex: u32,
        xdp: bool,
    ) -> Result<ProgramRun> {
        self.run_front(
            [PROG_XDP_FROM_ENDPOINT, PROG_FROM_ENDPOINT],
            frame,
            ifindex,
            xdp,
        )
    }

    /// Runs the uplink's (or LAN's) side, as [`DatapathCopy::run_from_endpoint`].
    pub fn run_from_uplink(&mut self, frame: &[u8], ifindex: u32, xdp: bool) -> Result<ProgramRun> {
        self.run_front(
            [PROG_XDP_FROM_UPLINK, PROG_FROM_UPLINK],
            frame,
            ifindex,
            xdp,
        )
    }

    fn run_front(
        &mut self,
        [xdp_program, tc_program]: [&str; 2],
        frame: &[u8],
        ifindex: u32,
        xdp: bool,
    ) -> Result<ProgramRun> {
        if xdp {
            let run = self.run_xdp(xdp_program, frame, ifindex)?;
            if run.action != XDP_PASS {
                return Ok(run);
            }
        }
        self.run_tc(tc_program, frame, ifindex)
    }

    fn run_tc(&mut self, program: &str, frame: &[u8], ifindex: u32) -> Result<ProgramRun> {
        let mut ctx = [0u8; SKB_CTX_LEN];
        ctx[SKB_IFINDEX..SKB_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
        let prog = classifier(&mut self.object, program)?;
        self.switch.keep_on(WANT_DROP | WANT_NAT | WANT_TRACE)?;
        let (action, frame) = test_run(prog, program, frame, &ctx)?;
        Ok(self.finished(false, action, frame))
    }

    fn run_xdp(&mut self, program: &str, frame: &[u8], ifindex: u32) -> Result<ProgramRun> {
        let mut ctx = [0u8; XDP_CTX_LEN];
        let len = u32::try_from(frame.len()).context("a frame of over 4 GiB")?;
        ctx[XDP_DATA_END..XDP_DATA_END + 4].copy_from_slice(&len.to_ne_bytes());
        ctx[XDP_INGRESS_IFINDEX..XDP_INGRESS_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
        let prog: &mut Xdp = program_as(&mut self.object, program)?;
        if prog.fd().is_err() {
            prog.load()
                .with_context(|| format!("loading the copy of program {program}"))?;
        }
        self.switch.keep_on(WANT_DROP | WANT_NAT | WANT_TRACE)?;
        let (action, frame) = test_run(prog, program, frame, &ctx)?;
        Ok(self.finished(true, action, frame))
    }

    /// A run's result, with the events it wrote.
    fn finished(&mut self, xdp: bool, action: i32, frame: Vec<u8>) -> ProgramRun {
        let mut events = Vec::new();
        while let Some(event) = self.ring.next_event() {
            events.push(event);
        }
        ProgramRun {
            xdp,
            action,
            frame,
            events,
        }
    }
}

/// Runs `prog` (`name`) once on `frame` with context `ctx`: its action and
/// the frame as it left.
fn test_run<P>(prog: &P, name: &str, frame: &[u8], ctx: &[u8]) -> Result<(i32, Vec<u8>)>
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let mut out = vec![0u8; frame.len() + GROWTH];
    let result = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(ctx),
            repeat: 1,
            ..Default::default()
        })
        .with_context(|| format!("running the copy of {name} (BPF_PROG_TEST_RUN)"))?;
    out.truncate(result.data_size_out as usize);
    Ok((result.return_value as i32, out))
}

fn classifier<'a>(object: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    program_as(object, name)
}

/// Program `name` of the copy as `P`.
fn program_as<'a, P>(object: &'a mut Ebpf, name: &str) -> Result<&'a mut P>
where
    &'a mut P: TryFrom<&'a mut Program>,
{
    object
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the datapath object"))?
        .try_into()
        .map_err(|_| anyhow::anyhow!("program {name} is not of the kind expected"))
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
