//! Loading the datapath and attaching it. The pins that keep both alive
//! after netfwd exits are `pins`'s; typed map access is `maps`'s; a
//! network's datapath as the rest of netfwd sees it is `handle`'s.

mod attach;
mod batch;
mod bpffs;
mod explain;
mod handle;
mod maps;
pub mod monitor;
pub mod nat_table;
mod pins;
pub mod raw_map;
mod tcx;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Map, MapData, MapInfo, MapType, ProgramArray},
    programs::{
        CgroupSockAddr, CgroupSockAddrAttachType, Program, ProgramError, ProgramFd, ProgramInfo,
        SchedClassifier, TestRun as _, TestRunOptions, Xdp,
    },
};
use aya_obj::programs::XdpAttachType;
use netfwd_common::names::{
    self, BIND4_LINK, BIND6_LINK, CALLS_ROOM, CONNECT4_LINK, CONNECT6_LINK, MAP_CALLS, MAP_NAT,
    MAP_NAT_EXPIRED, MAP_NAT_SWEEP, MAP_NAT6, MAP_NAT6_EXPIRED, MAP_NAT6_SWEEP, MAP_UNREPLIED,
    MAP_UNREPLIED_BY_SENDER, MAP_UNREPLIED_CURSOR, MAP_UNREPLIED6, MAP_UNREPLIED6_BY_SENDER,
    MAP_UNREPLIED6_CURSOR, PROG_BIND4, PROG_BIND6, PROG_CONNECT4, PROG_CONNECT6,
    PROG_FROM_ENDPOINT, PROG_FROM_ENDPOINT6, PROG_FROM_UPLINK, PROG_FROM_UPLINK6, PROG_HAIRPIN6,
    PROG_HAIRPIN6_FLOW, PROG_NAT_ROOM6, PROG_NAT_SOURCE6, PROG_NAT_SWEEP_ARM, PROG_NAT_SWEEP_STEP,
    PROG_TO_REMOTE6, PROG_XDP_FROM_ENDPOINT, PROG_XDP_FROM_UPLINK, TAIL_CALLS,
};
use netfwd_common::{
    counters::IfaceCounters,
    nat::{ENTRIES_PER_FLOW, Ipv6Bytes, NatConfig, NatEntry, NatKey},
};

pub use attach::{AttachOutcome, AttachedProgram};

use crate::{name::NetworkName, private_dir};
pub use bpffs::ensure_bpffs;
pub use explain::{DatapathCopy, ProgramRun};
pub use handle::{EndpointVeth, NetworkDatapath, Remote, Subnets, UplinkAddrs};
pub use maps::{DatapathMaps, Room, sum_counters};
use pins::{
    PROGRAMS_DIR, drop_programs_of_other_builds, pin_dir, program_pin, remove_file_if_exists,
};
pub use pins::{
    attached, pinned_links, pins_shown, prune_uplink_nat, remove_pins, unpin_link,
    uplink_nat_shown, xdp_attached,
};

/// The compiled datapath, built by build.rs.
static DATAPATH_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netfwd"));

/// The programs of one network's datapath, bound to the network's pinned
/// maps (created on first load, reused on every later one so state
/// survives reloads). A program is verified once per network and build of
/// the datapath: the first time it is asked for, it is loaded into the
/// kernel from the compiled object and pinned (`pins::program_pin`); every
/// later command opens that pin, and reads the object (and the kernel's
/// BTF) only when a map or a program is missing. The verifier takes a
/// second for `tc_from_endpoint`, which every `attach` and CNI ADD paid.
/// Compare [`NetworkDatapath`]: a network's datapath as the rest of netfwd
/// sees it; [`DatapathMaps`]: its maps alone.
pub struct Programs {
    pin_dir: PathBuf,
    nat_entries: u32,
    /// Flows the table holds: the size of the sweep's marks too.
    nat_max_flows: u32,
    map_pins: Vec<(&'static str, PathBuf)>,
    /// The compiled object bound to the pinned maps, once it was needed.
    object: Option<Ebpf>,
    /// The programs opened from their pins so far.
    opened: BTreeMap<&'static str, Program>,
    /// The pinned maps' IDs by their kernel names, read on first need.
    map_ids: Option<BTreeMap<String, u32>>,
}

impl Programs {
    /// Loads network `network`'s datapath; its pin directories (and
    /// `shared_nat`, the uplink's shared NAT table's, `uplink_nat_dir`,
    /// for a network with an uplink) are made owner-only and checked to be
    /// ours first.
    pub fn load(
        network: &NetworkName,
        nat_max_flows: u32,
        shared_nat: Option<&Path>,
    ) -> Result<Self> {
        ensure_bpffs()?;
        let root = Path::new(names::PIN_ROOT);
        for below in [names::LINKS_DIR, names::XDP_LINKS_DIR, PROGRAMS_DIR] {
            private_dir::ensure(root, &[network.as_str(), below])?;
        }
        if let Some(shared) = shared_nat {
            let name = shared
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{} names no directory", shared.display()))?;
            private_dir::ensure(root, &[name])?;
        }
        Self::load_at(&pin_dir(network), nat_max_flows, shared_nat)
    }

    /// Loads with maps, programs and links pinned under `dir` (tests use a
    /// directory of their own). `NAT` holds the entries of `nat_max_flows`
    /// flows; with `shared_nat` it is the table pinned there, pinned under
    /// `dir` too (where `status`, the collector and bpftool find it), and
    /// early drop's ring of new flows and the unanswered flows per sender
    /// are the table's there too (a flood at one network's published port
    /// must make room for every network's flows, and counts against one
    /// share).
    pub fn load_at(dir: &Path, nat_max_flows: u32, shared_nat: Option<&Path>) -> Result<Self> {
        ensure_bpffs()?;
        for below in [names::LINKS_DIR, names::XDP_LINKS_DIR].map(|d| dir.join(d)) {
            std::fs::create_dir_all(&below)
                .with_context(|| format!("creating pin directory {}", below.display()))?;
        }
        drop_programs_of_other_builds(dir)?;
        let nat_entries = nat_max_flows.saturating_mul(ENTRIES_PER_FLOW);
        // Each family's table: its own pin, or the uplink's shared one.
        let mut table_pins = Vec::new();
        for table in &NAT_TABLES {
            let own = dir.join(table.table);
            let pin = match shared_nat {
                Some(shared) => {
                    std::fs::create_dir_all(shared)
                        .with_context(|| format!("creating pin directory {}", shared.display()))?;
                    let shared = shared.join(table.table);
                    drop_outdated_nat_pin(&shared, nat_entries, table.layout)?;
                    drop_other_nat_pin(&own, &shared)?;
                    shared
                }
                None => {
                    drop_outdated_nat_pin(&own, nat_entries, table.layout)?;
                    own.clone()
                }
            };
            table_pins.push((table.table, own, pin));
        }
        for (map, key_size, value_size) in RESIZED_MAPS {
            drop_pin_of_other_layout(&dir.join(map), key_size, value_size)?;
        }
        let pin_path = |map: &str| {
            if let Some((_, _, pin)) = table_pins.iter().find(|(table, _, _)| *table == map) {
                return pin.clone();
            }
            match shared_nat {
                Some(shared) if NAT_TABLES.iter().any(|t| t.shared().contains(&map)) => {
                    shared.join(map)
                }
                _ => dir.join(map),
            }
        };
        for table in &NAT_TABLES {
            drop_pin_of_other_capacity(&pin_path(table.expired), nat_max_flows)?;
        }
        // The jump table grew (for IPv6's hairpin); the loader fills it.
        drop_pin_of_other_capacity(&pin_path(MAP_CALLS), CALLS_ROOM)?;
        let mut programs = Self {
            pin_dir: dir.to_owned(),
            nat_entries,
            nat_max_flows,
            map_pins: names::MAPS.iter().map(|m| (*m, pin_path(m))).collect(),
            object: None,
            opened: BTreeMap::new(),
            map_ids: None,
        };
        // A missing map is made (and pinned) by loading the object, before
        // any pinned program is judged against the pinned maps.
        if programs.map_pins.iter().any(|(_, path)| !path.exists()) {
            programs.object()?;
        }
        for (table, own, pin) in &table_pins {
            if pin != own && !own.exists() {
                MapData::from_pin(pin)
                    .with_context(|| format!("opening {}", pin.display()))?
                    .pin(own)
                    .with_context(|| {
                        format!("pinning the shared {table} table at {}", own.display())
                    })?;
            }
        }
        // The table's own counts (which `down` forgets a network's
        // endpoints from) and its sweep's record and marks (which the
        // daemon and the bench report) are found beside it, in the
        // network's directory.
        if let Some(shared) = shared_nat {
            for map in NAT_TABLES
                .iter()
                .flat_map(|t| [t.by_sender, t.sweep, t.expired])
            {
                let own = dir.join(map);
                remove_file_if_exists(&own)?;
                let shared = shared.join(map);
                MapData::from_pin(&shared)
                    .with_context(|| format!("opening {}", shared.display()))?
                    .pin(&own)
                    .with_context(|| {
                        format!("pinning {} at {}", shared.display(), own.display())
                    })?;
            }
        }
        Ok(programs)
    }

    /// The compiled object, its maps bound to the pins (made where missing),
    /// read on first use.
    fn object(&mut self) -> Result<&mut Ebpf> {
        let ebpf = match self.object.take() {
            Some(ebpf) => ebpf,
            None => {
                let mut loader = EbpfLoader::new();
                for table in &NAT_TABLES {
                    loader.map_max_entries(table.table, self.nat_entries);
                    // The sweep's marks have room for every flow: one walk
                    // marks all that expired.
                    loader.map_max_entries(table.expired, self.nat_max_flows);
                }
                for (map, path) in &self.map_pins {
                    loader.map_pin_path(map, path.as_path());
                }
                loader.load(DATAPATH_OBJECT).with_context(|| {
                    format!(
                        "loading the datapath with maps pinned in {}",
                        self.pin_dir.display()
                    )
                })?
            }
        };
        Ok(self.object.insert(ebpf))
    }

    /// Attaches the endpoint program to the ingress of `ifname`, keeping a
    /// current attachment as it is and replacing an outdated one atomically.
    pub fn attach_from_endpoint(&mut self, ifname: &str, ifindex: u32) -> Result<AttachOutcome> {
        self.attach(PROG_FROM_ENDPOINT, ifname, ifindex)
    }

    /// Attaches the uplink program (reverse NAT) to the ingress of `ifname`.
    pub fn attach_from_uplink(&mut self, ifname: &str, ifindex: u32) -> Result<AttachOutcome> {
        self.attach(PROG_FROM_UPLINK, ifname, ifindex)
    }

    fn attach(
        &mut self,
        program: &'static str,
        ifname: &str,
        ifindex: u32,
    ) -> Result<AttachOutcome> {
        let pin = self.pin_dir.join(names::LINKS_DIR).join(ifname);
        let prog = self.program(program)?;
        attach::attach_ingress(prog, (ifname, ifindex), &pin)
            .with_context(|| format!("attaching {program} to {ifname}"))
    }

    /// Opens or loads the XDP programs (if not yet). In XDP mode a program
    /// the kernel refuses fails the command, as a TC one does; only an
    /// interface that cannot take it falls back to TC.
    pub fn load_xdp(&mut self) -> Result<()> {
        for name in [PROG_XDP_FROM_ENDPOINT, PROG_XDP_FROM_UPLINK] {
            self.xdp(name)?;
        }
        Ok(())
    }

    /// Attaches the endpoint XDP program (native mode) to `ifname`, which
    /// runs XDP program `running` now (from netlink).
    pub fn attach_xdp_from_endpoint(
        &mut self,
        ifname: &str,
        running: Option<u32>,
    ) -> Result<AttachOutcome> {
        self.attach_xdp(PROG_XDP_FROM_ENDPOINT, ifname, running)
    }

    /// Attaches the uplink XDP program (native mode), as above.
    pub fn attach_xdp_from_uplink(
        &mut self,
        ifname: &str,
        running: Option<u32>,
    ) -> Result<AttachOutcome> {
        self.attach_xdp(PROG_XDP_FROM_UPLINK, ifname, running)
    }

    fn attach_xdp(
        &mut self,
        program: &'static str,
        ifname: &str,
        running: Option<u32>,
    ) -> Result<AttachOutcome> {
        let pin = self.pin_dir.join(names::XDP_LINKS_DIR).join(ifname);
        let prog = self.xdp(program)?;
        attach::attach_xdp(prog, ifname, running, &pin)
            .with_context(|| format!("attaching {program} to {ifname} (XDP)"))
    }

    /// Attaches the socket hooks (published ports for the host's own
    /// connections, and refused to its binds) to the cgroup at `cgroup`.
    pub fn attach_socket_hooks(&mut self, cgroup: &Path) -> Result<()> {
        for (name, link) in SOCKET_HOOKS {
            let pin = self.pin_dir.join(names::LINKS_DIR).join(link);
            let prog = self.opened_as::<CgroupSockAddr>(name)?;
            attach::attach_cgroup(prog, cgroup, &pin)
                .with_context(|| format!("attaching {name} to {}", cgroup.display()))?;
        }
        Ok(())
    }

    /// Arms the NAT table's expiry sweep, which then runs on a timer in the
    /// kernel, kept by the table's pins (see `PROG_NAT_SWEEP_ARM`): the arming
    /// program is run once and let go.
    pub fn arm_nat_sweep(&mut self) -> Result<()> {
        let prog = self.program(PROG_NAT_SWEEP_ARM)?;
        // A classifier's test run wants at least an Ethernet header.
        let frame = [0u8; 64];
        prog.test_run(TestRunOptions {
            data_in: Some(&frame),
            repeat: 1,
            ..Default::default()
        })
        .with_context(|| format!("running {PROG_NAT_SWEEP_ARM}"))?;
        Ok(())
    }

    /// A TC program of the datapath by name, e.g. to run it on a crafted
    /// packet.
    pub fn program(&mut self, name: &'static str) -> Result<&mut SchedClassifier> {
        self.opened_as(name)
    }

    /// An XDP program of the datapath by name, as [`Programs::program`].
    pub fn xdp(&mut self, name: &'static str) -> Result<&mut Xdp> {
        self.opened_as(name)
    }

    /// Program `name` as `P`, opened from its pin, or loaded into the
    /// kernel and pinned when no current pin is there.
    fn opened_as<'a, P>(&'a mut self, name: &'static str) -> Result<&'a mut P>
    where
        &'a mut P: TryFrom<&'a mut Program>,
    {
        let kind = program_kind(name)?;
        if !self.opened.contains_key(name) {
            let program = match self.open_pinned(name, kind)? {
                Some(program) => program,
                None => {
                    self.load_and_pin(name)?;
                    self.open_pinned(name, kind)?.with_context(|| {
                        format!("program {name} is not bound to the pinned maps once pinned")
                    })?
                }
            };
            self.opened.insert(name, program);
            // Not kept open with its table unfilled: the next ask tries again.
            if JUMPERS.contains(&name)
                && let Err(e) = self.fill_calls()
            {
                self.opened.remove(name);
                return Err(e);
            }
        }
        self.opened
            .get_mut(name)
            .with_context(|| format!("program {name} was not opened"))?
            .try_into()
            .map_err(|_| anyhow::anyhow!("program {name} is not {}", kind.describe()))
    }

    /// Points every slot of the pinned jump table at its program (opened or
    /// loaded as any other), whenever a program that jumps is opened: a
    /// reload of the programs, or a table made anew, is never left empty.
    fn fill_calls(&mut self) -> Result<()> {
        let path = self
            .map_pins
            .iter()
            .find(|(map, _)| *map == MAP_CALLS)
            .map(|(_, path)| path.clone())
            .context("no pin path for the jump table")?;
        let calls = MapData::from_pin(&path)
            .with_context(|| format!("opening the jump table {}", path.display()))?;
        let calls = Map::ProgramArray(calls);
        fill_calls(calls, |name| Ok(self.program(name)?.fd()?.try_clone()?)).map(drop)
    }

    /// Program `name` from its pin, if it is pinned by this build and bound
    /// to the maps pinned now; a pin of a program bound to a map since made
    /// anew (a resized `NAT`) goes.
    fn open_pinned(&mut self, name: &str, kind: ProgramKind) -> Result<Option<Program>> {
        let path = program_pin(&self.pin_dir, name);
        if !path.exists() {
            return Ok(None);
        }
        let program = kind
            .open(&path)
            .with_context(|| format!("opening program pin {}", path.display()))?;
        let info = program
            .info()
            .with_context(|| format!("reading the info of program {name}"))?;
        if self.bound_to_pinned_maps(&info)? {
            return Ok(Some(program));
        }
        remove_file_if_exists(&path)?;
        Ok(None)
    }

    /// Whether every map of a loaded program that has a pinned namesake is
    /// that pinned map.
    fn bound_to_pinned_maps(&mut self, info: &ProgramInfo) -> Result<bool> {
        let pinned = self.pinned_map_ids()?;
        let used = info
            .map_ids()
            .context("reading a program's maps")?
            .unwrap_or_default();
        for id in used {
            let map = MapInfo::from_id(id).with_context(|| format!("reading map {id}"))?;
            if let Some(name) = map.name_as_str()
                && pinned.get(name).is_some_and(|pinned| *pinned != id)
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn pinned_map_ids(&mut self) -> Result<&BTreeMap<String, u32>> {
        let ids = match self.map_ids.take() {
            Some(ids) => ids,
            None => {
                let mut ids = BTreeMap::new();
                for (_, path) in &self.map_pins {
                    let info = MapInfo::from_pin(path)
                        .with_context(|| format!("reading map pin {}", path.display()))?;
                    if let Some(name) = info.name_as_str() {
                        ids.insert(name.to_owned(), info.id());
                    }
                }
                ids
            }
        };
        Ok(self.map_ids.insert(ids))
    }

    /// Loads program `name` from the object into the kernel (the verifier's
    /// work) and pins it, in place of a pin of a program no longer current.
    fn load_and_pin(&mut self, name: &str) -> Result<()> {
        let path = program_pin(&self.pin_dir, name);
        let program = self
            .object()?
            .program_mut(name)
            .with_context(|| format!("program {name} missing from the datapath object"))?;
        if program.fd().is_err() {
            match program {
                Program::SchedClassifier(p) => p.load(),
                Program::Xdp(p) => p.load(),
                Program::CgroupSockAddr(p) => p.load(),
                other => anyhow::bail!(
                    "program {name} is of unexpected type {:?}",
                    other.prog_type()
                ),
            }
            .with_context(|| format!("loading program {name} into the kernel"))?;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating pin directory {}", parent.display()))?;
        }
        remove_file_if_exists(&path)?;
        program
            .pin(&path)
            .with_context(|| format!("pinning program {name} at {}", path.display()))
    }
}

/// What opening a program's pin needs to know of it.
#[derive(Clone, Copy)]
enum ProgramKind {
    Classifier,
    Xdp,
    SockAddr(CgroupSockAddrAttachType),
}

impl ProgramKind {
    fn open(self, path: &Path) -> Result<Program, ProgramError> {
        Ok(match self {
            ProgramKind::Classifier => Program::SchedClassifier(SchedClassifier::from_pin(path)?),
            ProgramKind::Xdp => Program::Xdp(Xdp::from_pin(path, XdpAttachType::Interface)?),
            ProgramKind::SockAddr(attach) => {
                Program::CgroupSockAddr(CgroupSockAddr::from_pin(path, attach)?)
            }
        })
    }

    fn describe(self) -> &'static str {
        match self {
            ProgramKind::Classifier => "a TC classifier",
            ProgramKind::Xdp => "an XDP program",
            ProgramKind::SockAddr(_) => "a cgroup sock_addr program",
        }
    }
}

fn program_kind(name: &str) -> Result<ProgramKind> {
    Ok(match name {
        PROG_FROM_ENDPOINT | PROG_FROM_ENDPOINT6 | PROG_TO_REMOTE6 | PROG_NAT_SOURCE6
        | PROG_NAT_ROOM6 | PROG_HAIRPIN6_FLOW | PROG_HAIRPIN6 | PROG_FROM_UPLINK
        | PROG_FROM_UPLINK6 | PROG_NAT_SWEEP_ARM | PROG_NAT_SWEEP_STEP => ProgramKind::Classifier,
        PROG_XDP_FROM_ENDPOINT | PROG_XDP_FROM_UPLINK => ProgramKind::Xdp,
        PROG_CONNECT4 => ProgramKind::SockAddr(CgroupSockAddrAttachType::Connect4),
        PROG_BIND4 => ProgramKind::SockAddr(CgroupSockAddrAttachType::Bind4),
        PROG_CONNECT6 => ProgramKind::SockAddr(CgroupSockAddrAttachType::Connect6),
        PROG_BIND6 => ProgramKind::SockAddr(CgroupSockAddrAttachType::Bind6),
        other => anyhow::bail!("no program {other} in the datapath"),
    })
}

/// The programs that jump through `MAP_CALLS`.
const JUMPERS: [&str; 2] = [PROG_FROM_ENDPOINT, PROG_FROM_UPLINK];

/// Sets every slot of the jump table `calls` (`MAP_CALLS`) to its
/// `program`'s descriptor.
/// The kernel empties a jump table when its last descriptor and pin are
/// gone: an unpinned one must be held while its programs run.
fn fill_calls(
    calls: Map,
    mut program: impl FnMut(&'static str) -> Result<ProgramFd>,
) -> Result<ProgramArray<MapData>> {
    let mut calls = ProgramArray::try_from(calls).context("the jump table is no program array")?;
    for (slot, name) in TAIL_CALLS {
        calls
            .set(slot, &program(name)?, 0)
            .with_context(|| format!("setting slot {slot} of the jump table"))?;
    }
    Ok(calls)
}

/// The cgroup socket hooks for published ports, with their links' names.
pub(super) const SOCKET_HOOKS: [(&str, &str); 4] = [
    (PROG_CONNECT4, CONNECT4_LINK),
    (PROG_BIND4, BIND4_LINK),
    (PROG_CONNECT6, CONNECT6_LINK),
    (PROG_BIND6, BIND6_LINK),
];

/// A family's NAT table and the maps that go with it: shared per uplink
/// with it (`shared`), and those of them also pinned in each network's
/// directory (`by_sender`, `sweep`, `expired`).
struct NatTableMaps {
    table: &'static str,
    unreplied: &'static str,
    cursor: &'static str,
    by_sender: &'static str,
    sweep: &'static str,
    expired: &'static str,
    /// Its key's and entry's sizes.
    layout: (usize, usize),
}

impl NatTableMaps {
    /// The maps shared per uplink beside the table.
    fn shared(&self) -> [&'static str; 5] {
        [
            self.unreplied,
            self.cursor,
            self.by_sender,
            self.sweep,
            self.expired,
        ]
    }
}

/// IPv4's NAT table and IPv6's.
const NAT_TABLES: [NatTableMaps; 2] = [
    NatTableMaps {
        table: MAP_NAT,
        unreplied: MAP_UNREPLIED,
        cursor: MAP_UNREPLIED_CURSOR,
        by_sender: MAP_UNREPLIED_BY_SENDER,
        sweep: MAP_NAT_SWEEP,
        expired: MAP_NAT_EXPIRED,
        layout: (size_of::<NatKey>(), size_of::<NatEntry>()),
    },
    NatTableMaps {
        table: MAP_NAT6,
        unreplied: MAP_UNREPLIED6,
        cursor: MAP_UNREPLIED6_CURSOR,
        by_sender: MAP_UNREPLIED6_BY_SENDER,
        sweep: MAP_NAT6_SWEEP,
        expired: MAP_NAT6_EXPIRED,
        layout: (
            size_of::<NatKey<Ipv6Bytes>>(),
            size_of::<NatEntry<Ipv6Bytes>>(),
        ),
    },
];

/// A pinned map is reused as it is, whatever size or kind the program asks
/// for: when the configured size, the kind or the entry layout changed, the
/// old `NAT` goes (and its flows with it).
fn drop_outdated_nat_pin(
    path: &Path,
    max_entries: u32,
    current_layout: (usize, usize),
) -> Result<()> {
    let Ok(info) = MapInfo::from_pin(path) else {
        return Ok(());
    };
    // A table pinned by an older netfwd may be an LRU hash, or hold entries
    // of an older layout (before TCP state had sequence numbers).
    let kind = info.map_type().ok();
    let layout = (info.key_size() as usize, info.value_size() as usize);
    if info.max_entries() == max_entries && kind == Some(MapType::Hash) && layout == current_layout
    {
        return Ok(());
    }
    log::warn!(
        "{}: recreating it ({:?} of {} entries of {} bytes) as a hash of {max_entries} of {}; its flows are dropped",
        path.display(),
        kind,
        info.max_entries(),
        layout.1,
        current_layout.1,
    );
    remove_file_if_exists(path)
}

/// Maps whose entries grew in a release: pinned by an older netfwd, they
/// are made anew (`COUNTERS` got room for more drop reasons, then the
/// dropped bytes; `NAT_CONFIG` the unanswered-flow share).
const RESIZED_MAPS: [(&str, usize, usize); 2] = [
    (
        names::MAP_COUNTERS,
        size_of::<u32>(),
        size_of::<IfaceCounters>(),
    ),
    (
        names::MAP_NAT_CONFIG,
        size_of::<u32>(),
        size_of::<NatConfig>(),
    ),
];

/// A pinned map is reused as it is: one whose entries have another layout
/// than the program's goes, and what it held with it (the loader writes
/// `NAT_CONFIG` afresh; the counters start again).
fn drop_pin_of_other_layout(path: &Path, key_size: usize, value_size: usize) -> Result<()> {
    let Ok(info) = MapInfo::from_pin(path) else {
        return Ok(());
    };
    let layout = (info.key_size() as usize, info.value_size() as usize);
    if layout == (key_size, value_size) {
        return Ok(());
    }
    log::warn!(
        "{}: recreating it with entries of {value_size} bytes (pinned with {})",
        path.display(),
        layout.1
    );
    remove_file_if_exists(path)
}

/// A pinned map is reused as it is: one of another capacity than
/// `max_entries` goes, and what it held with it (the sweep's marks, sized
/// with the table).
fn drop_pin_of_other_capacity(path: &Path, max_entries: u32) -> Result<()> {
    match MapInfo::from_pin(path) {
        Ok(info) if info.max_entries() != max_entries => remove_file_if_exists(path),
        _ => Ok(()),
    }
}

/// A network's own pin of `NAT` that is not the shared table at `shared`
/// (its own table from before, or another uplink's) goes; its flows with it.
fn drop_other_nat_pin(own: &Path, shared: &Path) -> Result<()> {
    let Ok(own_info) = MapInfo::from_pin(own) else {
        return Ok(());
    };
    if MapInfo::from_pin(shared).is_ok_and(|s| s.id() == own_info.id()) {
        return Ok(());
    }
    log::warn!(
        "{}: moving to the uplink's shared NAT table {}; this network's flows are dropped",
        own.display(),
        shared.display()
    );
    remove_file_if_exists(own)
}
