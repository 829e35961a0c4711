//! A map as keys and values of bytes, through the raw map syscalls
//! (`BPF_MAP_GET_NEXT_KEY`, `BPF_MAP_LOOKUP_ELEM`, `BPF_MAP_UPDATE_ELEM`):
//! aya's typed maps want their key and value types at compile time, and
//! copying any map of the datapath (`explain`'s private copy), or comparing
//! one before and after (its tests), wants none.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, MapInfo, MapType};
use nix::libc;

/// `enum bpf_cmd` (uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

/// The element form of `union bpf_attr` (`value` is `next_key` for
/// `BPF_MAP_GET_NEXT_KEY`).
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// What a map is made of: two maps of one shape hold the same entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapShape {
    /// `enum bpf_map_type`'s number.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

impl MapShape {
    fn of(info: &MapInfo) -> Result<Self> {
        let map_type = info.map_type().context("reading a map's type")?;
        Ok(Self {
            map_type: map_type as u32,
            key_size: info.key_size(),
            value_size: info.value_size(),
            max_entries: info.max_entries(),
            flags: info.map_flags(),
        })
    }

    /// Whether the map has keys to walk (a ring buffer has none).
    fn has_entries(&self) -> bool {
        self.map_type != MapType::RingBuf as u32
    }

    /// Bytes of one value as the syscalls read and write it: a per-CPU
    /// map's value is every possible CPU's, each rounded up to 8 bytes.
    fn value_bytes(&self) -> Result<usize> {
        let per_cpu = [
            MapType::PerCpuHash,
            MapType::PerCpuArray,
            MapType::LruPerCpuHash,
            MapType::PerCpuCgroupStorage,
        ]
        .iter()
        .any(|t| *t as u32 == self.map_type);
        let size = self.value_size as usize;
        if !per_cpu {
            return Ok(size);
        }
        let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
        Ok(size.next_multiple_of(8) * cpus)
    }
}

/// One map, untyped.
pub struct RawMap {
    data: MapData,
    shape: MapShape,
}

/// A map's entries as bytes, in the order the kernel walks them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

impl RawMap {
    pub fn from_pin(path: &Path) -> Result<Self> {
        let data =
            MapData::from_pin(path).with_context(|| format!("opening {}", path.display()))?;
        Self::new(data).with_context(|| format!("reading map {}", path.display()))
    }

    pub fn new(data: MapData) -> Result<Self> {
        let shape = MapShape::of(&data.info().context("reading a map's info")?)?;
        Ok(Self { data, shape })
    }

    pub fn shape(&self) -> MapShape {
        self.shape
    }

    /// Every entry. Only reads: no lookup from userspace moves an LRU
    /// map's recency. A walk of a map the datapath changes meanwhile may
    /// miss an entry or see one twice; it stops after `max_entries` keys.
    pub fn entries(&self) -> Result<Entries> {
        let mut out = Vec::new();
        if !self.shape.has_entries() {
            return Ok(out);
        }
        let mut key: Option<Vec<u8>> = None;
        let mut value = vec![0u8; self.shape.value_bytes()?];
        for _ in 0..self.shape.max_entries {
            let mut next = vec![0u8; self.shape.key_size as usize];
            if !self.next_key(key.as_deref(), &mut next)? {
                break;
            }
            if self.lookup(&next, &mut value)? {
                out.push((next.clone(), value.clone()));
            }
            key = Some(next);
        }
        Ok(out)
    }

    /// Writes every entry of `entries` (made or replaced).
    pub fn write(&self, entries: &Entries) -> Result<()> {
        for (key, value) in entries {
            let attr = ElemAttr {
                key: key.as_ptr() as u64,
                value: value.as_ptr() as u64,
                ..self.attr()
            };
            self.call(BPF_MAP_UPDATE_ELEM, attr)
                .context("writing a map entry (BPF_MAP_UPDATE_ELEM)")?;
        }
        Ok(())
    }

    /// The key after `key` (the first without one) into `next`; false at
    /// the end.
    fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool> {
        let attr = ElemAttr {
            key: key.map_or(0, |k| k.as_ptr() as u64),
            value: next.as_mut_ptr() as u64,
            ..self.attr()
        };
        match self.call(BPF_MAP_GET_NEXT_KEY, attr) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e).context("walking a map (BPF_MAP_GET_NEXT_KEY)"),
        }
    }

    /// `key`'s value into `value`; false when it is gone.
    fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<bool> {
        let attr = ElemAttr {
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..self.attr()
        };
        match self.call(BPF_MAP_LOOKUP_ELEM, attr) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e).context("reading a map entry (BPF_MAP_LOOKUP_ELEM)"),
        }
    }

    fn attr(&self) -> ElemAttr {
        ElemAttr {
            map_fd: self.data.fd().as_fd().as_raw_fd() as u32,
            ..ElemAttr::default()
        }
    }

    fn call(&self, cmd: libc::c_long, mut attr: ElemAttr) -> std::io::Result<()> {
        // SAFETY: `attr` is the element form of `union bpf_attr` (the
        // kernel zero-fills a shorter attr); its pointers are to buffers of
        // the map's key size and of `value_bytes` (the per-CPU size where
        // it applies), which the callers allocate and keep alive across
        // the call; the map's fd is open as long as `self`.
        let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, &raw mut attr, size_of::<ElemAttr>()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attr_is_the_kernels_element_layout() {
        // map_fd (4) and its padding, key, value and flags (8 each).
        assert_eq!(size_of::<ElemAttr>(), 32);
        assert_eq!(std::mem::offset_of!(ElemAttr, key), 8);
        assert_eq!(std::mem::offset_of!(ElemAttr, flags), 24);
    }
}
