//! Interface names: the host-side veth names netfwd gives its endpoints, the
//! prefixes that find them again, and the check of a name the user gives.

use std::net::Ipv4Addr;

use anyhow::Result;

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

impl Network {
    /// Host-side veth of an endpoint: `nf<network>-<host offset in hex>`,
    /// stable for as long as the endpoint keeps its address.
    pub fn host_ifname(&self, ip: Ipv4Addr) -> String {
        self.endpoint_ifname(HOST_END, ip)
    }

    /// Name the namespace end carries while it is still in the host namespace.
    pub fn peer_tmp_ifname(&self, ip: Ipv4Addr) -> String {
        self.endpoint_ifname(PEER_TMP_END, ip)
    }

    /// The network's VXLAN device (`backend = "vxlan"`): `nf<network>-vx`,
    /// under the network's own prefix (so `down` and a failed `up` remove
    /// it with the veths), and no endpoint's: its host offsets are hex.
    pub fn vxlan_ifname(&self) -> String {
        format!("{}vx", prefix(HOST_END, &self.name))
    }

    fn endpoint_ifname(&self, end: &str, ip: Ipv4Addr) -> String {
        format!(
            "{}{:x}",
            prefix(end, &self.name),
            u32::from(ip) & u32::from(self.subnet.hostmask())
        )
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
    use crate::config::parse;
    use std::net::Ipv4Addr;

    #[test]
    fn longest_ifname_fits() {
        let net = parse("[network]\nname = \"abcdefgh\"\nsubnet = \"10.0.0.0/16\"\n").unwrap();
        assert!(net.host_ifname(Ipv4Addr::new(10, 0, 255, 254)).len() <= 15);
        assert!(net.peer_tmp_ifname(Ipv4Addr::new(10, 0, 255, 254)).len() <= 15);
        assert!(net.vxlan_ifname().len() <= 15);
    }
}
