//! Loading the datapath, attaching it, and the pins that keep both alive after
//! netfwd exits: maps and TCX links under /sys/fs/bpf/netfwd/<network>/.

mod attach;
mod bpffs;
mod maps;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use aya::{Ebpf, EbpfLoader, programs::SchedClassifier};
use netfwd_common::names::{self, PROG_FROM_ENDPOINT};

pub use attach::{AttachOutcome, AttachedProgram};
pub use bpffs::ensure_bpffs;
pub use maps::{DatapathMaps, sum_counters};

/// The compiled datapath, built by build.rs.
static DATAPATH_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netfwd"));

/// Where a network's maps and links are pinned.
pub fn pin_dir(network: &str) -> PathBuf {
    Path::new(names::PIN_ROOT).join(network)
}

fn links_dir(network: &str) -> PathBuf {
    pin_dir(network).join(names::LINKS_DIR)
}

/// The datapath of one network, loaded: its programs share the network's
/// pinned maps (created on first load, reused on every later one so state
/// survives reloads).
pub struct Datapath {
    ebpf: Ebpf,
    pin_dir: PathBuf,
}

impl Datapath {
    pub fn load(network: &str) -> Result<Self> {
        Self::load_at(&pin_dir(network))
    }

    /// Loads with maps and links pinned under `dir` (tests use a directory of
    /// their own).
    pub fn load_at(dir: &Path) -> Result<Self> {
        ensure_bpffs()?;
        let links = dir.join(names::LINKS_DIR);
        std::fs::create_dir_all(&links)
            .with_context(|| format!("creating pin directory {}", links.display()))?;
        let map_paths: Vec<(&str, PathBuf)> =
            names::MAPS.iter().map(|m| (*m, dir.join(m))).collect();
        let mut loader = EbpfLoader::new();
        for (map, path) in &map_paths {
            loader.map_pin_path(map, path.as_path());
        }
        let mut ebpf = loader.load(DATAPATH_OBJECT).with_context(|| {
            format!("loading the datapath with maps pinned in {}", dir.display())
        })?;
        let prog = classifier(&mut ebpf)?;
        prog.load()
            .with_context(|| format!("loading program {PROG_FROM_ENDPOINT} into the kernel"))?;
        Ok(Self {
            ebpf,
            pin_dir: dir.to_owned(),
        })
    }

    /// Attaches the endpoint program to the ingress of `ifname`, keeping a
    /// current attachment as it is and replacing an outdated one atomically.
    pub fn attach_from_endpoint(&mut self, ifname: &str) -> Result<AttachOutcome> {
        let pin = self.pin_dir.join(names::LINKS_DIR).join(ifname);
        let prog = classifier(&mut self.ebpf)?;
        attach::attach_ingress(prog, ifname, &pin)
            .with_context(|| format!("attaching {PROG_FROM_ENDPOINT} to {ifname}"))
    }

    /// The endpoint program, e.g. to run it on a crafted packet.
    pub fn from_endpoint_program(&mut self) -> Result<&mut SchedClassifier> {
        classifier(&mut self.ebpf)
    }
}

fn classifier(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier> {
    ebpf.program_mut(PROG_FROM_ENDPOINT)
        .with_context(|| format!("program {PROG_FROM_ENDPOINT} missing from the datapath object"))?
        .try_into()
        .with_context(|| format!("program {PROG_FROM_ENDPOINT} is not a TC classifier"))
}

/// The program attached to `ifname` through the network's pinned link, if any.
pub fn attached(network: &str, ifname: &str) -> Result<Option<AttachedProgram>> {
    match attach::open_pinned(&links_dir(network).join(ifname))? {
        Some(link) => attach::attached_program(ifname, &link),
        None => Ok(None),
    }
}

/// Unpins the link of an interface (detaching the program if the interface
/// still exists). Ok if there was none.
pub fn unpin_link(network: &str, ifname: &str) -> Result<()> {
    remove_file_if_exists(&links_dir(network).join(ifname))
}

/// Names of the interfaces that have a pinned link.
pub fn pinned_links(network: &str) -> Result<Vec<String>> {
    let dir = links_dir(network);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    entries
        .map(|e| {
            e.map(|e| e.file_name().to_string_lossy().into_owned())
                .with_context(|| format!("listing {}", dir.display()))
        })
        .collect()
}

/// Removes every pin of a network: links (detaching programs), maps (freed once
/// no program holds them), the directory. Ok if nothing was there.
pub fn remove_pins(network: &str) -> Result<()> {
    let dir = pin_dir(network);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
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
