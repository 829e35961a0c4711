//! Typed access to a network's pinned maps, the same for `up` (which writes
//! them) and `status` (which reads them) and usable while no netfwd runs.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::{Context as _, Result};

use aya::{
    Pod,
    maps::{
        Array, DevMapHash, HashMap, Map, MapData, MapError, PerCpuHashMap,
        lpm_trie::{Key, LpmTrie},
    },
};
use ipnet::{Ipv4Net, Ipv6Net};
use netfwd_common::{
    counters::IfaceCounters,
    maps::{EndpointEntry, EndpointKey, EndpointKey6, Network6Config, NetworkConfig, TunnelConfig},
    names::{
        MAP_COUNTERS, MAP_ENDPOINT_TX, MAP_ENDPOINTS, MAP_ENDPOINTS6, MAP_HOST_NETNS, MAP_NAT,
        MAP_NAT_CONFIG, MAP_NAT_SWEEP, MAP_NAT6, MAP_NETWORK, MAP_NETWORK6, MAP_PUBLISHED,
        MAP_PUBLISHED6, MAP_REMOTES, MAP_REMOTES6, MAP_TRUSTED_IFACE, MAP_TUNNEL, MAP_TUNNEL_PEERS,
        MAP_UNREPLIED_BY_SENDER, MAP_UNREPLIED6_BY_SENDER, NON_ENDPOINT_IFACES,
    },
    nat::{
        FlowSender, Ipv6Bytes, NatConfig, NatEntry, NatKey, NatSweep, PublishKey, PublishTarget,
    },
};

use super::nat_table::TableAddr;

/// What a network's maps hold at most (see [`DatapathMaps::room`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    pub endpoints: u32,
    pub published: u32,
}

impl Room {
    /// Refuses a network of `endpoints` endpoints and `published` ports
    /// that would not fit, before any of it is written: a map that fills
    /// half-way would leave a half-built network.
    pub fn check(self, endpoints: usize, published: usize) -> Result<()> {
        if endpoints > self.endpoints as usize {
            return Err(crate::input_error!(
                "endpoint: {endpoints} endpoints (configured and attached) are more than the network's room for {}",
                self.endpoints
            ));
        }
        if published > self.published as usize {
            return Err(crate::input_error!(
                "publish: {published} published ports are more than the network's room for {}",
                self.published
            ));
        }
        Ok(())
    }
}

/// A network's pinned maps, typed, opened without any program: what reading
/// the datapath or changing its tables takes.
pub struct DatapathMaps {
    endpoints: HashMap<MapData, EndpointKey, EndpointEntry>,
    network: Array<MapData, NetworkConfig>,
    /// Absent where an older netfwd made the pins, until the next `up`.
    endpoints6: Option<HashMap<MapData, EndpointKey6, EndpointEntry>>,
    network6: Option<Array<MapData, Network6Config>>,
    counters: PerCpuHashMap<MapData, u32, IfaceCounters>,
    nat: HashMap<MapData, NatKey, NatEntry>,
    /// IPv6's table (NAT66); absent where an older netfwd made the pins.
    nat6: Option<HashMap<MapData, NatKey<Ipv6Bytes>, NatEntry<Ipv6Bytes>>>,
    nat_config: Array<MapData, NatConfig>,
    remotes: LpmTrie<MapData, [u8; 4], u8>,
    /// Absent where an older netfwd made the pins, until the next `up`.
    remotes6: Option<LpmTrie<MapData, [u8; 16], u8>>,
    published: HashMap<MapData, PublishKey, PublishTarget>,
    /// Absent where an older netfwd made the pins, until the next `up`.
    published6: Option<HashMap<MapData, PublishKey, PublishTarget<Ipv6Bytes>>>,
    host_netns: Array<MapData, u64>,
    endpoint_tx: DevMapHash<MapData>,
    trusted_iface: Array<MapData, u32>,
    /// Absent where an older netfwd made the pins, until the next `up`.
    unreplied_by_sender: Option<HashMap<MapData, FlowSender, u32>>,
    unreplied6_by_sender: Option<HashMap<MapData, FlowSender<Ipv6Bytes>, u32>>,
    /// Read only: a write from userspace would cancel the sweep's timer
    /// (the kernel frees a replaced value's timer). Absent as above.
    nat_sweep: Option<Array<MapData, NatSweep>>,
    /// The VXLAN device and the members behind it; absent as above.
    tunnel: Option<Array<MapData, TunnelConfig>>,
    tunnel_peers: Option<LpmTrie<MapData, [u8; 4], [u8; 4]>>,
}

/// Removes the senders `gone` names from a family's counts of unanswered
/// flows.
fn forget_senders_of<A: TableAddr>(
    counts: &mut HashMap<MapData, FlowSender<A>, u32>,
    gone: &impl Fn(IpAddr) -> bool,
) -> Result<(), MapError>
where
    FlowSender<A>: Pod,
{
    let senders = counts.keys().collect::<Result<Vec<_>, _>>()?;
    for sender in senders.iter().filter(|s| gone(s.addr.ip())) {
        already_gone_is_fine(counts.remove(sender))?;
    }
    Ok(())
}

/// A removal's result, with a key that was not there (removed meanwhile,
/// or never made) as success.
fn already_gone_is_fine(result: Result<(), MapError>) -> Result<(), MapError> {
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
        result => result,
    }
}

fn open(dir: &Path, name: &str) -> Result<Map> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    Map::from_map_data(data).with_context(|| format!("reading map {}", path.display()))
}

/// A map pinned by every current release but not by older ones: `None`
/// when its pin is absent (an unopenable pin is an error).
fn open_if_pinned(dir: &Path, name: &str) -> Result<Option<Map>> {
    if dir.join(name).exists() {
        open(dir, name).map(Some)
    } else {
        Ok(None)
    }
}

impl DatapathMaps {
    pub fn open(pin_dir: &Path) -> Result<Self> {
        Ok(Self {
            endpoints: HashMap::try_from(open(pin_dir, MAP_ENDPOINTS)?)
                .context("ENDPOINTS has an unexpected type")?,
            network: Array::try_from(open(pin_dir, MAP_NETWORK)?)
                .context("NETWORK has an unexpected type")?,
            endpoints6: open_if_pinned(pin_dir, MAP_ENDPOINTS6)?
                .map(HashMap::try_from)
                .transpose()
                .context("ENDPOINTS6 has an unexpected type")?,
            network6: open_if_pinned(pin_dir, MAP_NETWORK6)?
                .map(Array::try_from)
                .transpose()
                .context("NETWORK6 has an unexpected type")?,
            counters: PerCpuHashMap::try_from(open(pin_dir, MAP_COUNTERS)?)
                .context("COUNTERS has an unexpected type")?,
            nat: HashMap::try_from(open(pin_dir, MAP_NAT)?)
                .context("NAT has an unexpected type")?,
            nat6: open_if_pinned(pin_dir, MAP_NAT6)?
                .map(HashMap::try_from)
                .transpose()
                .context("NAT6 has an unexpected type")?,
            nat_config: Array::try_from(open(pin_dir, MAP_NAT_CONFIG)?)
                .context("NAT_CONFIG has an unexpected type")?,
            remotes: LpmTrie::try_from(open(pin_dir, MAP_REMOTES)?)
                .context("REMOTES has an unexpected type")?,
            remotes6: open_if_pinned(pin_dir, MAP_REMOTES6)?
                .map(LpmTrie::try_from)
                .transpose()
                .context("REMOTES6 has an unexpected type")?,
            published: HashMap::try_from(open(pin_dir, MAP_PUBLISHED)?)
                .context("PUBLISHED has an unexpected type")?,
            published6: open_if_pinned(pin_dir, MAP_PUBLISHED6)?
                .map(HashMap::try_from)
                .transpose()
                .context("PUBLISHED6 has an unexpected type")?,
            host_netns: Array::try_from(open(pin_dir, MAP_HOST_NETNS)?)
                .context("HOST_NETNS has an unexpected type")?,
            endpoint_tx: DevMapHash::try_from(open(pin_dir, MAP_ENDPOINT_TX)?)
                .context("ENDPOINT_TX has an unexpected type")?,
            trusted_iface: Array::try_from(open(pin_dir, MAP_TRUSTED_IFACE)?)
                .context("TRUSTED_IFACE has an unexpected type")?,
            unreplied_by_sender: open_if_pinned(pin_dir, MAP_UNREPLIED_BY_SENDER)?
                .map(HashMap::try_from)
                .transpose()
                .context("UNREPLIED_BY_SENDER has an unexpected type")?,
            unreplied6_by_sender: open_if_pinned(pin_dir, MAP_UNREPLIED6_BY_SENDER)?
                .map(HashMap::try_from)
                .transpose()
                .context("UNREPLIED6_BY_SENDER has an unexpected type")?,
            nat_sweep: open_if_pinned(pin_dir, MAP_NAT_SWEEP)?
                .map(Array::try_from)
                .transpose()
                .context("NAT_SWEEP has an unexpected type")?,
            tunnel: open_if_pinned(pin_dir, MAP_TUNNEL)?
                .map(Array::try_from)
                .transpose()
                .context("TUNNEL has an unexpected type")?,
            tunnel_peers: open_if_pinned(pin_dir, MAP_TUNNEL_PEERS)?
                .map(LpmTrie::try_from)
                .transpose()
                .context("TUNNEL_PEERS has an unexpected type")?,
        })
    }

    /// Lets XDP redirect to the host-side veth `ifindex` (its endpoint end
    /// is ready for XDP frames), or no longer.
    pub fn set_xdp_target(&mut self, ifindex: u32, allowed: bool) -> Result<()> {
        let context = || format!("writing ENDPOINT_TX[{ifindex}]");
        if allowed {
            return self
                .endpoint_tx
                .insert(ifindex, ifindex, None, 0)
                .with_context(context);
        }
        match self.endpoint_tx.remove(ifindex) {
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(())
            }
            Err(e) => Err(e).with_context(context),
        }
    }

    /// Drops the unanswered-flow counts of the endpoints `gone` names (and
    /// of their published ports): an address given to a new endpoint starts
    /// with none.
    pub fn forget_senders(&mut self, gone: impl Fn(IpAddr) -> bool) -> Result<()> {
        if let Some(counts) = &mut self.unreplied_by_sender {
            forget_senders_of(counts, &gone).context("forgetting in UNREPLIED_BY_SENDER")?;
        }
        if let Some(counts) = &mut self.unreplied6_by_sender {
            forget_senders_of(counts, &gone).context("forgetting in UNREPLIED6_BY_SENDER")?;
        }
        Ok(())
    }

    pub fn set_network(&mut self, config: NetworkConfig) -> Result<()> {
        self.network.set(0, config, 0).context("writing NETWORK")
    }

    /// A dual-stack network's IPv6 (all zero: IPv4 only).
    pub fn set_network6(&mut self, config: Network6Config) -> Result<()> {
        let network6 = self
            .network6
            .as_mut()
            .context("NETWORK6 is not pinned (pins of an older netfwd: run `up`)")?;
        network6.set(0, config, 0).context("writing NETWORK6")
    }

    /// The endpoints' IPv6 addresses the datapath forwards to.
    pub fn endpoints6(&self) -> Result<BTreeMap<Ipv6Addr, EndpointEntry>> {
        let Some(endpoints6) = &self.endpoints6 else {
            return Ok(BTreeMap::new());
        };
        endpoints6
            .iter()
            .map(|r| {
                r.map(|(k, v)| (Ipv6Addr::from(k.addr), v))
                    .context("reading ENDPOINTS6")
            })
            .collect()
    }

    pub fn set_endpoint6(&mut self, ip6: Ipv6Addr, entry: EndpointEntry) -> Result<()> {
        self.endpoints6
            .as_mut()
            .context("ENDPOINTS6 is not pinned (pins of an older netfwd: run `up`)")?
            .insert(EndpointKey6 { addr: ip6.octets() }, entry, 0)
            .with_context(|| format!("writing ENDPOINTS6[{ip6}]"))
    }

    /// Ok if it was not there.
    pub fn remove_endpoint6(&mut self, ip6: Ipv6Addr) -> Result<()> {
        let Some(endpoints6) = &mut self.endpoints6 else {
            return Ok(());
        };
        already_gone_is_fine(endpoints6.remove(&EndpointKey6 { addr: ip6.octets() }))
            .with_context(|| format!("removing ENDPOINTS6[{ip6}]"))
    }

    pub fn endpoints(&self) -> Result<BTreeMap<Ipv4Addr, EndpointEntry>> {
        self.endpoints
            .iter()
            .map(|r| {
                r.map(|(k, v)| (Ipv4Addr::from(k.addr), v))
                    .context("reading ENDPOINTS")
            })
            .collect()
    }

    pub fn set_endpoint(&mut self, ip: Ipv4Addr, entry: EndpointEntry) -> Result<()> {
        self.endpoints
            .insert(EndpointKey { addr: ip.octets() }, entry, 0)
            .with_context(|| format!("writing ENDPOINTS[{ip}]"))
    }

    pub fn remove_endpoint(&mut self, ip: Ipv4Addr) -> Result<()> {
        self.endpoints
            .remove(&EndpointKey { addr: ip.octets() })
            .with_context(|| format!("removing ENDPOINTS[{ip}]"))
    }

    /// Creates zeroed counters for an interface unless it has some: the
    /// datapath only updates existing entries, and a repeated `up` must not
    /// reset them.
    pub fn ensure_counters(&mut self, ifindex: u32) -> Result<()> {
        if self.counters.get(&ifindex, 0).is_ok() {
            return Ok(());
        }
        let zero = aya::maps::PerCpuValues::try_from(vec![
            IfaceCounters::default();
            aya::util::nr_cpus()
                .map_err(|(_, e)| e)
                .context("counting CPUs")?
        ])
        .context("building per-CPU counters")?;
        self.counters
            .insert(ifindex, zero, 0)
            .with_context(|| format!("creating COUNTERS[{ifindex}]"))
    }

    pub fn remove_counters(&mut self, ifindex: u32) -> Result<()> {
        already_gone_is_fine(self.counters.remove(&ifindex))
            .with_context(|| format!("removing COUNTERS[{ifindex}]"))
    }

    /// Counters of every interface, summed over CPUs.
    pub fn counters(&self) -> Result<BTreeMap<u32, IfaceCounters>> {
        self.counters
            .iter()
            .map(|r| {
                r.map(|(ifindex, per_cpu)| (ifindex, sum_counters(per_cpu.iter())))
                    .context("reading COUNTERS")
            })
            .collect()
    }

    pub fn nat_config(&self) -> Result<NatConfig> {
        self.nat_config.get(&0, 0).context("reading NAT_CONFIG")
    }

    pub fn set_nat_config(&mut self, config: NatConfig) -> Result<()> {
        self.nat_config
            .set(0, config, 0)
            .context("writing NAT_CONFIG")
    }

    /// Removes one `NAT` entry; already gone is fine.
    pub fn remove_nat_entry(&mut self, key: &NatKey) -> Result<()> {
        already_gone_is_fine(self.nat.remove(key)).context("removing a NAT entry")
    }

    /// What the NAT table's expiry sweep has done, if it has a record here
    /// (a network with an uplink, made by this release).
    pub fn nat_sweep(&self) -> Result<Option<NatSweep>> {
        self.nat_sweep
            .as_ref()
            .map(|sweep| sweep.get(&0, 0).context("reading NAT_SWEEP"))
            .transpose()
    }

    /// Every entry of `NAT` (both directions of every flow), read in
    /// batches while the datapath keeps changing it.
    pub fn nat_entries(&self) -> Result<Vec<(NatKey, NatEntry)>> {
        super::batch::entries(&self.nat).context("reading NAT")
    }

    /// Every entry of `NAT6`, as [`DatapathMaps::nat_entries`].
    pub fn nat6_entries(&self) -> Result<Vec<(NatKey<Ipv6Bytes>, NatEntry<Ipv6Bytes>)>> {
        match &self.nat6 {
            Some(nat6) => super::batch::entries(nat6).context("reading NAT6"),
            None => Ok(Vec::new()),
        }
    }

    /// Removes one `NAT6` entry; already gone is fine.
    pub fn remove_nat6_entry(&mut self, key: &NatKey<Ipv6Bytes>) -> Result<()> {
        match &mut self.nat6 {
            Some(nat6) => already_gone_is_fine(nat6.remove(key)).context("removing a NAT6 entry"),
            None => Ok(()),
        }
    }

    /// Makes `REMOTES` hold exactly `wanted` (prefix -> `REMOTE_*` flags).
    pub fn set_remotes(&mut self, wanted: &[(Ipv4Net, u8)]) -> Result<()> {
        replace_prefixes(&mut self.remotes, wanted).context("writing REMOTES")
    }

    /// Makes `REMOTES6` hold exactly `wanted`.
    pub fn set_remotes6(&mut self, wanted: &[(Ipv6Net, u8)]) -> Result<()> {
        match &mut self.remotes6 {
            Some(map) => replace_prefixes(map, wanted).context("writing REMOTES6"),
            // Pinned by an older netfwd, whose programs send no IPv6 beyond
            // the prefix: nothing to keep apart until its next `up`.
            None => Ok(()),
        }
    }

    /// Makes `TUNNEL_PEERS` hold exactly `wanted` (prefix -> the tunnel's
    /// far end).
    pub fn set_tunnel_peers(&mut self, wanted: &[(Ipv4Net, Ipv4Addr)]) -> Result<()> {
        let wanted: Vec<(Ipv4Net, [u8; 4])> =
            wanted.iter().map(|(n, a)| (*n, a.octets())).collect();
        match &mut self.tunnel_peers {
            Some(map) => replace_prefixes(map, &wanted).context("writing TUNNEL_PEERS"),
            None if wanted.is_empty() => Ok(()),
            None => anyhow::bail!("TUNNEL_PEERS is not pinned: bring the network up again"),
        }
    }

    /// Points the datapath at the network's VXLAN device (`None`: it has
    /// none).
    pub fn set_tunnel(&mut self, tunnel: Option<TunnelConfig>) -> Result<()> {
        match &mut self.tunnel {
            Some(map) => map
                .set(0, tunnel.unwrap_or_default(), 0)
                .context("writing TUNNEL"),
            None if tunnel.is_none() => Ok(()),
            None => anyhow::bail!("TUNNEL is not pinned: bring the network up again"),
        }
    }

    /// Makes `PUBLISHED` hold exactly `wanted`.
    pub fn set_published(&mut self, wanted: &[(PublishKey, PublishTarget)]) -> Result<()> {
        replace_all(&mut self.published, wanted).context("writing PUBLISHED")
    }

    /// Makes `PUBLISHED6` hold exactly `wanted`.
    pub fn set_published6(
        &mut self,
        wanted: &[(PublishKey, PublishTarget<Ipv6Bytes>)],
    ) -> Result<()> {
        match &mut self.published6 {
            Some(map) => replace_all(map, wanted).context("writing PUBLISHED6"),
            None if wanted.is_empty() => Ok(()),
            None => anyhow::bail!("PUBLISHED6 is not pinned: bring the network up again"),
        }
    }

    /// How many endpoints and published ports the pinned maps have room
    /// for: this build's `MAX_ENDPOINTS` and `MAX_PUBLISHED`, or less in a
    /// network an older build made (its maps keep their size until `down`).
    pub fn room(&self) -> Result<Room> {
        use aya::maps::IterableMap as _;
        let max_entries = |map: &MapData, name: &str| -> Result<u32> {
            Ok(map
                .info()
                .with_context(|| format!("reading {name}'s info"))?
                .max_entries())
        };
        let counted = max_entries(self.counters.map(), MAP_COUNTERS)?;
        Ok(Room {
            endpoints: max_entries(self.endpoints.map(), MAP_ENDPOINTS)?
                .min(counted.saturating_sub(NON_ENDPOINT_IFACES)),
            published: max_entries(self.published.map(), MAP_PUBLISHED)?,
        })
    }

    /// What the kernel charges for `NAT` (its `memlock` in fdinfo) and how
    /// many entries it holds at most.
    pub fn nat_memory(&self) -> Result<(u64, u32)> {
        use std::os::fd::{AsFd as _, AsRawFd as _};

        use aya::maps::IterableMap as _;
        let map = self.nat.map();
        let max_entries = map.info().context("reading NAT's info")?.max_entries();
        let fd = map.fd().as_fd().as_raw_fd();
        let path = format!("/proc/self/fdinfo/{fd}");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let memlock = text
            .lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no memlock in {path}"))?;
        Ok((memlock, max_entries))
    }

    /// Trusts sources of `REMOTE_TRUSTED` prefixes arriving on `ifindex`
    /// only (0: nowhere).
    pub fn set_trusted_iface(&mut self, ifindex: u32) -> Result<()> {
        self.trusted_iface
            .set(0, ifindex, 0)
            .context("writing TRUSTED_IFACE")
    }

    pub fn set_host_netns(&mut self, cookie: u64) -> Result<()> {
        self.host_netns
            .set(0, cookie, 0)
            .context("writing HOST_NETNS")
    }

    pub fn counter_ifindexes(&self) -> Result<Vec<u32>> {
        self.counters
            .keys()
            .map(|k| k.context("reading COUNTERS"))
            .collect()
    }
}

pub fn sum_counters<'a>(per_cpu: impl Iterator<Item = &'a IfaceCounters>) -> IfaceCounters {
    per_cpu.fold(IfaceCounters::default(), |mut sum, c| {
        sum.add(c);
        sum
    })
}

/// Makes a hash map hold exactly `wanted`.
/// Makes LPM trie `map` hold exactly `wanted` (prefix -> value).
fn replace_prefixes<N: Prefix, V: aya::Pod>(
    map: &mut LpmTrie<MapData, N::Bytes, V>,
    wanted: &[(N, V)],
) -> Result<()> {
    let present: Vec<Key<N::Bytes>> = map.keys().collect::<Result<_, _>>()?;
    for old in present {
        let still = wanted.iter().any(|(net, _)| {
            let k = net.key();
            k.prefix_len() == old.prefix_len() && k.data() == old.data()
        });
        if !still {
            map.remove(&old)?;
        }
    }
    for (net, value) in wanted {
        map.insert(&net.key(), value, 0)
            .with_context(|| format!("writing {net}"))?;
    }
    Ok(())
}

/// A prefix as an LPM trie's key.
trait Prefix: std::fmt::Display {
    type Bytes: aya::Pod + PartialEq;
    fn key(&self) -> Key<Self::Bytes>;
}

impl Prefix for Ipv4Net {
    type Bytes = [u8; 4];
    fn key(&self) -> Key<[u8; 4]> {
        Key::new(u32::from(self.prefix_len()), self.network().octets())
    }
}

impl Prefix for Ipv6Net {
    type Bytes = [u8; 16];
    fn key(&self) -> Key<[u8; 16]> {
        Key::new(u32::from(self.prefix_len()), self.network().octets())
    }
}

fn replace_all<K, V>(map: &mut HashMap<MapData, K, V>, wanted: &[(K, V)]) -> Result<()>
where
    K: aya::Pod + PartialEq,
    V: aya::Pod,
{
    let present: Vec<K> = map.keys().collect::<Result<_, _>>()?;
    for old in present
        .iter()
        .filter(|k| !wanted.iter().any(|(w, _)| w == *k))
    {
        map.remove(old)?;
    }
    for (key, value) in wanted {
        map.insert(key, value, 0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Room;
    use crate::error::is_input_error;

    #[test]
    fn a_network_that_fits_its_room_passes_and_one_more_is_bad_input() {
        let room = Room {
            endpoints: 16384,
            published: 16384,
        };
        room.check(16384, 16384).unwrap();
        let endpoints = room.check(16385, 0).unwrap_err();
        assert!(is_input_error(&endpoints));
        assert!(
            endpoints.to_string().contains("room for 16384"),
            "{endpoints}"
        );
        assert!(is_input_error(&room.check(0, 16385).unwrap_err()));
    }
}
