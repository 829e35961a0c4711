//! Loading the datapath, attaching it, and the pins that keep both alive after
//! netfwd exits: maps and TCX links under `/sys/fs/bpf/netfwd/<network>/`.

mod attach;
mod batch;
mod bpffs;
mod handle;
mod maps;
pub mod nat_table;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, MapInfo, MapType},
    programs::{CgroupSockAddr, SchedClassifier, Xdp},
};
use netfwd_common::names::{
    self, BIND4_LINK, CONNECT4_LINK, MAP_NAT, MAP_UNCONFIRMED, MAP_UNCONFIRMED_CURSOR, PROG_BIND4,
    PROG_CONNECT4, PROG_FROM_ENDPOINT, PROG_FROM_UPLINK, PROG_XDP_FROM_ENDPOINT,
    PROG_XDP_FROM_UPLINK,
};
use netfwd_common::nat::{ENTRIES_PER_FLOW, NatEntry, NatKey};

pub use attach::{AttachOutcome, AttachedProgram};

use crate::{name::NetworkName, netlink::Link, private_dir};
pub use bpffs::ensure_bpffs;
pub use handle::{
    EndpointVeth, NetworkDatapath, Remote, pins_shown, prune_uplink_nat, uplink_nat_shown,
};
pub use maps::{DatapathMaps, sum_counters};

/// The compiled datapath, built by build.rs.
static DATAPATH_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netfwd"));

/// Where a network's maps and links are pinned.
fn pin_dir(network: &NetworkName) -> PathBuf {
    Path::new(names::PIN_ROOT).join(network.as_str())
}

fn links_dir(network: &NetworkName) -> PathBuf {
    pin_dir(network).join(names::LINKS_DIR)
}

fn xdp_links_dir(network: &NetworkName) -> PathBuf {
    pin_dir(network).join(names::XDP_LINKS_DIR)
}

/// Where the NAT table of uplink `uplink` of the namespace with cookie
/// `netns_cookie` (never reused, unlike its inode number) is pinned. One
/// table per uplink, shared by every network masqueraded behind it: an
/// uplink port is then reserved once for the uplink (a `BPF_NOEXIST`
/// insert), never by two networks at once, and any network's uplink program
/// finds any flow's ingress entry (it passes on to the next program an
/// ingress packet whose endpoint is not its own). The `-` keeps the name
/// apart from network names (`[a-z0-9_]`); bpffs refuses dots in names, so
/// an interface name's other bytes are written `%xx`.
fn uplink_nat_dir(netns_cookie: u64, uplink: &str) -> PathBuf {
    let mut name = format!("{UPLINK_NAT_PREFIX}{netns_cookie}-");
    for b in uplink.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02x}"));
        }
    }
    Path::new(names::PIN_ROOT).join(name)
}

const UPLINK_NAT_PREFIX: &str = "uplink-";

/// The shared NAT tables pinned now, by directory name.
fn uplink_nat_dirs() -> Result<Vec<PathBuf>> {
    let root = Path::new(names::PIN_ROOT);
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", root.display())),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", root.display()))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(UPLINK_NAT_PREFIX)
        {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Unpins a shared NAT table no network uses any more (its flows go with it).
fn remove_uplink_nat(dir: &Path) -> Result<()> {
    let is_ours = dir.parent() == Some(Path::new(names::PIN_ROOT))
        && dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(UPLINK_NAT_PREFIX));
    if !is_ours {
        anyhow::bail!("{} is not a shared NAT table's directory", dir.display());
    }
    private_dir::remove_tree(dir)
}

/// The datapath of one network, loaded: its programs share the network's
/// pinned maps (created on first load, reused on every later one so state
/// survives reloads).
pub struct Datapath {
    ebpf: Ebpf,
    pin_dir: PathBuf,
}

impl Datapath {
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
        for links in [names::LINKS_DIR, names::XDP_LINKS_DIR] {
            private_dir::ensure(root, &[network.as_str(), links])?;
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

    /// Loads with maps and links pinned under `dir` (tests use a directory of
    /// their own). `NAT` holds the entries of `nat_max_flows` flows; with
    /// `shared_nat` it is the table pinned there, pinned under `dir` too
    /// (where `status`, the collector and bpftool find it), and early drop's
    /// rings of unconfirmed flows are the table's there too (a SYN flood at
    /// one network's published port must make room for every network's
    /// flows).
    pub fn load_at(dir: &Path, nat_max_flows: u32, shared_nat: Option<&Path>) -> Result<Self> {
        ensure_bpffs()?;
        for links in [names::LINKS_DIR, names::XDP_LINKS_DIR].map(|d| dir.join(d)) {
            std::fs::create_dir_all(&links)
                .with_context(|| format!("creating pin directory {}", links.display()))?;
        }
        let nat_entries = nat_max_flows.saturating_mul(ENTRIES_PER_FLOW);
        let own_nat = dir.join(MAP_NAT);
        let nat_pin = match shared_nat {
            Some(shared) => {
                std::fs::create_dir_all(shared)
                    .with_context(|| format!("creating pin directory {}", shared.display()))?;
                let shared = shared.join(MAP_NAT);
                drop_outdated_nat_pin(&shared, nat_entries)?;
                drop_other_nat_pin(&own_nat, &shared)?;
                shared
            }
            None => {
                drop_outdated_nat_pin(&own_nat, nat_entries)?;
                own_nat.clone()
            }
        };
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(MAP_NAT, nat_entries);
        let pin_path = |map: &str| match (map, shared_nat) {
            (MAP_NAT, _) => nat_pin.clone(),
            (MAP_UNCONFIRMED | MAP_UNCONFIRMED_CURSOR, Some(shared)) => shared.join(map),
            _ => dir.join(map),
        };
        let map_paths: Vec<(&str, PathBuf)> =
            names::MAPS.iter().map(|m| (*m, pin_path(m))).collect();
        for (map, path) in &map_paths {
            loader.map_pin_path(map, path.as_path());
        }
        let mut ebpf = loader.load(DATAPATH_OBJECT).with_context(|| {
            format!("loading the datapath with maps pinned in {}", dir.display())
        })?;
        if nat_pin != own_nat && !own_nat.exists() {
            MapData::from_pin(&nat_pin)
                .with_context(|| format!("opening {}", nat_pin.display()))?
                .pin(&own_nat)
                .with_context(|| {
                    format!("pinning the shared NAT table at {}", own_nat.display())
                })?;
        }
        for name in [PROG_FROM_ENDPOINT, PROG_FROM_UPLINK] {
            classifier(&mut ebpf, name)?
                .load()
                .with_context(|| format!("loading program {name} into the kernel"))?;
        }
        for name in [PROG_XDP_FROM_ENDPOINT, PROG_XDP_FROM_UPLINK] {
            xdp_program(&mut ebpf, name)?
                .load()
                .with_context(|| format!("loading program {name} into the kernel"))?;
        }
        for (name, _) in SOCKET_HOOKS {
            socket_hook(&mut ebpf, name)?
                .load()
                .with_context(|| format!("loading program {name} into the kernel"))?;
        }
        Ok(Self {
            ebpf,
            pin_dir: dir.to_owned(),
        })
    }

    /// Attaches the endpoint program to the ingress of `ifname`, keeping a
    /// current attachment as it is and replacing an outdated one atomically.
    pub fn attach_from_endpoint(&mut self, ifname: &str) -> Result<AttachOutcome> {
        self.attach(PROG_FROM_ENDPOINT, ifname)
    }

    /// Attaches the uplink program (reverse NAT) to the ingress of `ifname`.
    pub fn attach_from_uplink(&mut self, ifname: &str) -> Result<AttachOutcome> {
        self.attach(PROG_FROM_UPLINK, ifname)
    }

    fn attach(&mut self, program: &str, ifname: &str) -> Result<AttachOutcome> {
        let pin = self.pin_dir.join(names::LINKS_DIR).join(ifname);
        let prog = classifier(&mut self.ebpf, program)?;
        attach::attach_ingress(prog, ifname, &pin)
            .with_context(|| format!("attaching {program} to {ifname}"))
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
        program: &str,
        ifname: &str,
        running: Option<u32>,
    ) -> Result<AttachOutcome> {
        let pin = self.pin_dir.join(names::XDP_LINKS_DIR).join(ifname);
        let prog = xdp_program(&mut self.ebpf, program)?;
        attach::attach_xdp(prog, ifname, running, &pin)
            .with_context(|| format!("attaching {program} to {ifname} (XDP)"))
    }

    /// Attaches the socket hooks (published ports for the host's own
    /// connections, and refused to its binds) to the cgroup at `cgroup`.
    pub fn attach_socket_hooks(&mut self, cgroup: &Path) -> Result<()> {
        for (name, link) in SOCKET_HOOKS {
            let pin = self.pin_dir.join(names::LINKS_DIR).join(link);
            let prog = socket_hook(&mut self.ebpf, name)?;
            attach::attach_cgroup(prog, cgroup, &pin)
                .with_context(|| format!("attaching {name} to {}", cgroup.display()))?;
        }
        Ok(())
    }

    /// A program of the datapath by name, e.g. to run it on a crafted packet.
    pub fn program(&mut self, name: &str) -> Result<&mut SchedClassifier> {
        classifier(&mut self.ebpf, name)
    }

    /// An XDP program of the datapath by name, as [`Datapath::program`].
    pub fn xdp(&mut self, name: &str) -> Result<&mut Xdp> {
        xdp_program(&mut self.ebpf, name)
    }
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    ebpf.program_mut(name)
        .with_context(|| format!("program {name} missing from the datapath object"))?
        .try_into()
        .with_context(|| format!("program {name} is not a TC classifier"))
}

fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    ebpf.program_mut(name)
        .with_context(|| format!("program {name} missing from the datapath object"))?
        .try_into()
        .with_context(|| format!("program {name} is not an XDP program"))
}

/// The cgroup socket hooks for published ports, with their links' names.
const SOCKET_HOOKS: [(&str, &str); 2] = [(PROG_CONNECT4, CONNECT4_LINK), (PROG_BIND4, BIND4_LINK)];

fn socket_hook<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut CgroupSockAddr> {
    ebpf.program_mut(name)
        .with_context(|| format!("program {name} missing from the datapath object"))?
        .try_into()
        .with_context(|| format!("program {name} is not a cgroup sock_addr program"))
}

/// Detaches the socket hooks (the network publishes nothing any more).
pub fn unpin_socket_hooks(network: &NetworkName) -> Result<()> {
    for (_, link) in SOCKET_HOOKS {
        remove_file_if_exists(&links_dir(network).join(link))?;
    }
    Ok(())
}

/// A pinned map is reused as it is, whatever size or kind the program asks
/// for: when the configured size, the kind or the entry layout changed, the
/// old `NAT` goes (and its flows with it).
fn drop_outdated_nat_pin(path: &Path, max_entries: u32) -> Result<()> {
    let Ok(info) = MapInfo::from_pin(path) else {
        return Ok(());
    };
    // A table pinned by an older netfwd may be an LRU hash, or hold entries
    // of an older layout (before TCP state had sequence numbers).
    let kind = info.map_type().ok();
    let layout = (info.key_size() as usize, info.value_size() as usize);
    let current_layout = (size_of::<NatKey>(), size_of::<NatEntry>());
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

/// The program attached to `ifname` through the network's pinned link, if any.
pub fn attached(network: &NetworkName, ifname: &str) -> Result<Option<AttachedProgram>> {
    match attach::open_pinned(&links_dir(network).join(ifname))? {
        Some(link) => attach::attached_program(ifname, &link),
        None => Ok(None),
    }
}

/// Whether our XDP program runs on `link` (through the network's pinned
/// link).
pub fn xdp_attached(network: &NetworkName, link: &Link) -> Result<bool> {
    match attach::open_pinned(&xdp_links_dir(network).join(&link.name))? {
        Some(pinned) => attach::xdp_link_running(&pinned, link.xdp_prog_id),
        None => Ok(false),
    }
}

/// Unpins the links (TC and XDP) of an interface, detaching the programs if
/// the interface still exists. Ok if there were none.
pub fn unpin_link(network: &NetworkName, ifname: &str) -> Result<()> {
    remove_file_if_exists(&links_dir(network).join(ifname))?;
    unpin_xdp_link(network, ifname)
}

/// Unpins the XDP link of an interface (back to TC alone there).
pub fn unpin_xdp_link(network: &NetworkName, ifname: &str) -> Result<()> {
    remove_file_if_exists(&xdp_links_dir(network).join(ifname))
}

/// Names of the interfaces that have a pinned link (TC or XDP).
pub fn pinned_links(network: &NetworkName) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for dir in [links_dir(network), xdp_links_dir(network)] {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for e in entries {
            let name = e
                .with_context(|| format!("listing {}", dir.display()))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// Removes every pin of a network: links (detaching programs), maps (freed once
/// no program holds them), the directory. Ok if nothing was there. The pin
/// root and the network's directory must be directories of ours, not
/// symbolic links.
pub fn remove_pins(network: &NetworkName) -> Result<()> {
    match private_dir::existing(Path::new(names::PIN_ROOT), &[network.as_str()])? {
        Some(dir) => private_dir::remove_tree(&dir),
        None => Ok(()),
    }
}

fn remove_file_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}
