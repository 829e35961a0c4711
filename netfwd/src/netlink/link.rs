//! Links as netfwd sees them, decoded from RTM_NEWLINK messages.

use anyhow::{Result, bail};
use rtnetlink::{
    LinkMessageBuilder, LinkUnspec,
    packet_route::link::{
        AfSpecInet, AfSpecInet6, AfSpecUnspec, Inet6DevConf, InetDevConf, InfoKind, LinkAttribute,
        LinkFlags, LinkInfo, LinkMessage, LinkXdp,
    },
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// All zeroes for links without a hardware address (`lo`).
    pub mac: [u8; 6],
    /// `veth`, `bridge`, …; `None` for links without a kind (`lo`, physical).
    pub kind: Option<String>,
    /// For a veth, the ifindex of its peer (in the peer's namespace).
    pub peer_index: Option<u32>,
    /// The XDP program running on it, if any.
    pub xdp_prog_id: Option<u32>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    pub settings: Settings,
}

/// A link's per-interface settings, as its message reports them: what
/// `/proc/sys/net/{ipv4,ipv6}/conf/<link>/` shows, in the dump that lists
/// the link (`None`: that family reports none, as IPv6 on a kernel
/// without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    pub ipv4: Option<InetDevConf>,
    pub ipv6: Option<Inet6DevConf>,
}

/// A MAC address as `ip link` writes it.
pub fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// A MAC address as `ip link` and Docker write it, for an interface: six
/// hex pairs, unicast and not all zeroes; `None` otherwise.
pub fn parse_unicast_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    let unicast = mac[0] & 1 == 0 && mac != [0; 6];
    (parts.next().is_none() && unicast).then_some(mac)
}

impl TryFrom<LinkMessage> for Link {
    type Error = anyhow::Error;

    fn try_from(msg: LinkMessage) -> Result<Link> {
        let mut name = None;
        let mut mac = [0; 6];
        let mut kind = None;
        let mut peer_index = None;
        let mut xdp_prog_id = None;
        let mut mtu = 0;
        let up = msg.header.flags.contains(LinkFlags::Up);
        let mut settings = Settings::default();
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = Some(n),
                LinkAttribute::Address(a) if a.len() == 6 => mac.copy_from_slice(&a),
                LinkAttribute::Link(i) => peer_index = Some(i),
                LinkAttribute::Mtu(m) => mtu = m,
                LinkAttribute::Xdp(xdp) => {
                    xdp_prog_id = xdp.iter().find_map(|x| match x {
                        LinkXdp::ProgId(id) if *id != 0 => Some(*id),
                        _ => None,
                    })
                }
                LinkAttribute::AfSpecUnspec(families) => {
                    for family in families {
                        match family {
                            AfSpecUnspec::Inet(v4) => {
                                settings.ipv4 = v4.into_iter().find_map(|a| match a {
                                    AfSpecInet::DevConf(conf) => Some(conf),
                                    _ => None,
                                });
                            }
                            AfSpecUnspec::Inet6(v6) => {
                                settings.ipv6 = v6.into_iter().find_map(|a| match a {
                                    AfSpecInet6::DevConf(conf) => Some(conf),
                                    _ => None,
                                });
                            }
                            _ => {}
                        }
                    }
                }
                LinkAttribute::LinkInfo(infos) => {
                    kind = infos.into_iter().find_map(|i| match i {
                        LinkInfo::Kind(k) => Some(kind_name(&k)),
                        _ => None,
                    })
                }
                _ => {}
            }
        }
        let Some(name) = name else {
            bail!(
                "link {} has no name in its netlink message",
                msg.header.index
            );
        };
        Ok(Link {
            index: msg.header.index,
            name,
            mac,
            kind,
            peer_index,
            xdp_prog_id,
            mtu,
            up,
            settings,
        })
    }
}

fn kind_name(kind: &InfoKind) -> String {
    match kind {
        InfoKind::Other(s) => s.clone(),
        k => k.to_string(),
    }
}

/// A message builder aimed at an existing link.
pub fn by_index(index: u32) -> LinkMessageBuilder<LinkUnspec> {
    LinkUnspec::new_with_index(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unicast_mac_reads_back_as_written_and_anything_else_is_none() {
        let mac = [0x02, 0x42, 0x0a, 0x51, 0x00, 0x09];
        assert_eq!(parse_unicast_mac("02:42:0a:51:00:09"), Some(mac));
        assert_eq!(parse_unicast_mac(&format_mac(mac)), Some(mac));
        assert_eq!(parse_unicast_mac("02:42:0A:51:00:09"), Some(mac));
        for bad in [
            "",
            "02:42:0a:51:00",
            "02:42:0a:51:00:09:01",
            "02:42:0a:51:00:9",
            "02:42:0a:51:00:zz",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "0242.0a51.0009",
        ] {
            assert_eq!(parse_unicast_mac(bad), None, "{bad:?}");
        }
    }
}
