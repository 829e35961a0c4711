//! TCX attachment through pinned links: a link outlives netfwd while its pin
//! exists, and `bpf_link_update` swaps the program in it atomically.

use std::{fs::File, io, path::Path};

use anyhow::{Context as _, Result};
use aya::{
    programs::{
        CgroupAttachMode, CgroupSockAddr, LinkOrder, ProgramError, ProgramInfo, SchedClassifier,
        TcAttachType, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
        xdp::XdpLink,
    },
    sys::SyscallError,
};
use serde::Serialize;

use super::tcx;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachOutcome {
    /// Attached where nothing of ours was.
    Attached,
    /// Our link was there with an older program; the program was swapped.
    Replaced,
    /// Our link was there with this very program.
    Unchanged,
}

/// Attaches `prog` to the TCX ingress of interface `ifname` (index
/// `ifindex`) through a link pinned at `pin`.
pub fn attach_ingress(
    prog: &mut SchedClassifier,
    (ifname, ifindex): (&str, u32),
    pin: &Path,
) -> Result<AttachOutcome> {
    let wanted = loaded_id(prog.info())?;
    // The common case, an `up` that changes nothing, in one query: only
    // netfwd attaches this program (it is this network's, loaded under its
    // pins), always through a link pinned at `pin`, and an unpinned link
    // goes with its last descriptor; so our program on this device with
    // the pin in place is our pinned link.
    if tcx::ingress_programs(ifindex)?.contains(&wanted) && pin.exists() {
        return Ok(AttachOutcome::Unchanged);
    }
    if let Some(link) = open_pinned(pin)? {
        match attached_program(ifname, &link)? {
            Some(attached) if attached.id == wanted => return Ok(AttachOutcome::Unchanged),
            Some(_) => {
                let link = SchedClassifierLink::try_from(link).context("pinned link is not TCX")?;
                let id = prog.attach_to_link(link).context("replacing the program")?;
                // The pin keeps the link; dropping our handle only closes an fd.
                drop(prog.take_link(id)?);
                return Ok(AttachOutcome::Replaced);
            }
            None => {
                // A link left from an interface that is gone (recreated since).
                std::fs::remove_file(pin)
                    .with_context(|| format!("removing stale link pin {}", pin.display()))?;
            }
        }
    }
    let id = prog
        .attach_with_options(
            ifname,
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .context("TCX attach")?;
    let link = FdLink::try_from(prog.take_link(id)?).context("TCX link is not an fd link")?;
    link.pin(pin)
        .with_context(|| format!("pinning link at {}", pin.display()))?;
    Ok(AttachOutcome::Attached)
}

/// Attaches an XDP program (native mode) through a pinned link.
/// `running` is the XDP program the interface runs now (from netlink): our
/// pinned link is current only if that is its program.
pub fn attach_xdp(
    prog: &mut Xdp,
    ifname: &str,
    running: Option<u32>,
    pin: &Path,
) -> Result<AttachOutcome> {
    let wanted = loaded_id(prog.info())?;
    if let Some(link) = open_pinned(pin)? {
        let linked = link.info().context("reading link info")?.program_id();
        if running == Some(linked) {
            if linked == wanted {
                return Ok(AttachOutcome::Unchanged);
            }
            let link = XdpLink::try_from(link).context("pinned link is not XDP")?;
            let id = prog.attach_to_link(link).context("replacing the program")?;
            // The pin keeps the link; dropping our handle only closes an fd.
            drop(prog.take_link(id)?);
            return Ok(AttachOutcome::Replaced);
        }
        // A link left from an interface that is gone (recreated since).
        std::fs::remove_file(pin)
            .with_context(|| format!("removing stale link pin {}", pin.display()))?;
    }
    let id = prog.attach(ifname, XdpMode::Driver).context("XDP attach")?;
    let link = FdLink::try_from(prog.take_link(id)?).context("XDP link is not an fd link")?;
    link.pin(pin)
        .with_context(|| format!("pinning link at {}", pin.display()))?;
    Ok(AttachOutcome::Attached)
}

/// The kernel's ID of our loaded program. A link runs the datapath we want
/// only if it runs this very program: the loader reuses a program only
/// while it is bound to the pinned maps (a program still bound to an old,
/// unpinned map, such as a NAT table since resized, has another ID), so a
/// link to any other program is swapped. Comparing IDs costs no walk over
/// every program loaded on the host, which `up` would pay per endpoint.
fn loaded_id(info: Result<ProgramInfo, ProgramError>) -> Result<u32> {
    Ok(info.context("reading the program's info")?.id())
}

/// Whether the pinned XDP link's program is the one the interface runs.
pub fn xdp_link_running(link: &FdLink, running: Option<u32>) -> Result<bool> {
    let linked = link.info().context("reading link info")?.program_id();
    Ok(running == Some(linked))
}

/// Attaches a cgroup socket hook through a pinned link; one already there
/// with this very program is kept.
pub fn attach_cgroup(
    prog: &mut CgroupSockAddr,
    cgroup: &Path,
    pin: &Path,
) -> Result<AttachOutcome> {
    let wanted = loaded_id(prog.info())?;
    let mut outcome = AttachOutcome::Attached;
    if let Some(link) = open_pinned(pin)? {
        let prog_id = link.info().context("reading link info")?.program_id();
        if prog_id == wanted {
            return Ok(AttachOutcome::Unchanged);
        }
        // cgroup links cannot swap programs in place; a connect() in the gap
        // goes unrewritten, which only a host client at that instant sees.
        std::fs::remove_file(pin)
            .with_context(|| format!("removing link pin {}", pin.display()))?;
        outcome = AttachOutcome::Replaced;
    }
    let cgroup_dir =
        File::open(cgroup).with_context(|| format!("opening cgroup {}", cgroup.display()))?;
    let id = prog
        // Links always coexist with others; link_create takes no mode flags.
        .attach(&cgroup_dir, CgroupAttachMode::Single)
        .context("cgroup attach")?;
    let link = FdLink::try_from(prog.take_link(id)?).context("cgroup link is not an fd link")?;
    link.pin(pin)
        .with_context(|| format!("pinning link at {}", pin.display()))?;
    Ok(outcome)
}

/// A program our pinned link runs on an interface.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct AttachedProgram {
    pub id: u32,
    pub tag: u64,
}

pub fn open_pinned(pin: &Path) -> Result<Option<FdLink>> {
    match PinnedLink::from_pin(pin) {
        Ok(link) => Ok(Some(link.into())),
        Err(LinkError::SyscallError(SyscallError { io_error, .. }))
            if io_error.kind() == io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("opening link pin {}", pin.display())),
    }
}

/// The program our link runs, if that link is attached to the ingress of
/// `ifname` (a link outlives a deleted interface, detached).
pub fn attached_program(ifname: &str, link: &FdLink) -> Result<Option<AttachedProgram>> {
    let prog_id = link.info().context("reading link info")?.program_id();
    let (_, programs) = SchedClassifier::query_tcx(ifname, TcAttachType::Ingress)
        .with_context(|| format!("listing TCX programs on {ifname}"))?;
    Ok(programs
        .iter()
        .find(|p| p.id() == prog_id)
        .map(|p| AttachedProgram {
            id: p.id(),
            tag: p.tag(),
        }))
}
