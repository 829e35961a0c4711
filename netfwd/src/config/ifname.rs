//! Interface names: the host-side veth names netfwd gives its endpoints, the
//! prefixes that find them again, and the check of a name the user gives.

use std::{collections::HashSet, fmt, net::Ipv4Addr};

use anyhow::Result;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::model::Network;
use crate::{input_error, name::NetworkName};

/// Longest interface name Linux allows.
const MAX_IFNAME_LEN: usize = 15;
/// First letters of an endpoint's host-side veth end.
const HOST_END: &str = "nf";
/// First letters of an endpoint's namespace end while it is still in the host
/// namespace (it is renamed when it moves in).
const PEER_TMP_END: &str = "np";

/// `<end><network>-`: the dash ends the network's name, so no network's
/// prefix is the start of another's.
fn prefix(end: &str, name: &NetworkName) -> String {
    format!("{end}{name}-")
}

/// Which of its network's endpoints a veth belongs to: the number its names
/// end in. Given once and recorded in the state, never derived from an
/// address, so that an endpoint keeps its veth whatever its families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slot(u16);

impl Slot {
    /// The slot a netfwd before slots gave the endpoint with address `ip`:
    /// its host part (below 2^16: subnets are /16 or longer), so that a
    /// state of that netfwd names the veths it made.
    pub fn of_v1_address(subnet: Ipv4Net, ip: Ipv4Addr) -> Result<Slot> {
        let host = u32::from(ip) & u32::from(subnet.hostmask());
        u16::try_from(host)
            .map(Slot)
            .map_err(|_| anyhow::anyhow!("{ip} is too far into {subnet} to name a veth"))
    }

    /// The `i`th slot: the one a fresh network gives its `i`th endpoint.
    pub fn nth(i: usize) -> Result<Slot> {
        u16::try_from(i)
            .map(Slot)
            .map_err(|_| input_error!("the network has {i} endpoints, more than it can name"))
    }

    /// The slots not in `taken`, lowest first.
    pub fn unused(taken: &HashSet<Slot>) -> impl Iterator<Item = Slot> + '_ {
        (0..=u16::MAX)
            .map(Slot)
            .filter(|slot| !taken.contains(slot))
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl Network {
    /// Host-side veth of an endpoint: `nf<network>-<slot in hex>`.
    pub fn host_ifname(&self, slot: Slot) -> String {
        format!("{}{slot}", prefix(HOST_END, &self.name))
    }

    /// Name the namespace end carries while it is still in the host namespace.
    pub fn peer_tmp_ifname(&self, slot: Slot) -> String {
        format!("{}{slot}", prefix(PEER_TMP_END, &self.name))
    }

    /// The network's VXLAN device (`backend = "vxlan"`): `nf<network>-vx`,
    /// under the network's own prefix (so `down` and a failed `up` remove
    /// it with the veths), and no endpoint's: slots are written in hex.
    pub fn vxlan_ifname(&self) -> String {
        format!("{}vx", prefix(HOST_END, &self.name))
    }
}

/// Prefixes of every veth end network `name` names in the host namespace (and
/// of nothing else: names are at most 8 characters and the dash ends them).
pub fn ifname_prefixes(name: &NetworkName) -> [String; 2] {
    [prefix(HOST_END, name), prefix(PEER_TMP_END, name)]
}

pub fn validate_ifname(field: &str, name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    if name.is_empty() || name.len() > MAX_IFNAME_LEN || !ok_chars {
        return Err(input_error!(
            "{field}: {name:?} is not an interface name (1 to {MAX_IFNAME_LEN} printable characters, no '/' or ':')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Slot;
    use crate::config::parse;
    use std::net::Ipv4Addr;

    #[test]
    fn longest_ifname_fits() {
        let net = parse("[network]\nname = \"abcdefgh\"\nsubnet = \"10.0.0.0/16\"\n").unwrap();
        assert!(net.host_ifname(Slot(u16::MAX)).len() <= 15);
        assert!(net.peer_tmp_ifname(Slot(u16::MAX)).len() <= 15);
        assert!(net.vxlan_ifname().len() <= 15);
    }

    #[test]
    fn a_v1_slot_is_the_host_part() {
        let subnet = "172.18.0.0/16".parse().unwrap();
        let slot = Slot::of_v1_address(subnet, Ipv4Addr::new(172, 18, 255, 254)).unwrap();
        assert_eq!(slot, Slot(0xfffe));
        let net = parse("[network]\nname = \"a\"\nsubnet = \"172.18.0.0/16\"\n").unwrap();
        assert_eq!(net.host_ifname(slot), "nfa-fffe");
    }

    #[test]
    fn unused_slots_fill_the_gaps_first() {
        let unused = |taken: &[u16]| {
            let taken = taken.iter().copied().map(Slot).collect();
            Slot::unused(&taken).take(2).collect::<Vec<_>>()
        };
        assert_eq!(unused(&[]), [Slot(0), Slot(1)]);
        assert_eq!(unused(&[1, 0, 3]), [Slot(2), Slot(4)]);
        assert_eq!(unused(&[2, 5]), [Slot(0), Slot(1)]);
        let all: Vec<u16> = (0..=u16::MAX).collect();
        assert_eq!(unused(&all), []);
    }
}
