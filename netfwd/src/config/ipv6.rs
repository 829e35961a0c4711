//! A dual-stack network's IPv6, validated: its prefix, its gateway and each
//! endpoint's address (the lowest free where none is written), as strictly
//! as IPv4's. The IPv4 subnet stays mandatory; IPv6 is beside it.

use std::{collections::HashSet, net::Ipv6Addr};

use anyhow::Result;
use ipnet::Ipv6Net;

use super::{
    file::{EndpointSection, NetworkSection},
    model::Ipv6Network,
};
use crate::{
    input_error,
    subnet::{self, Subnet as _},
};

/// Widest prefix: a network's own, not a site's.
pub const MIN_PREFIX6_LEN: u8 = 48;
/// Narrowest: room for a gateway and one endpoint.
pub const MAX_PREFIX6_LEN: u8 = 126;

/// Prefixes no network may use: the link-local (which every link has of its
/// own), multicast, IPv4-mapped addresses, and the unspecified and loopback
/// addresses.
const RESERVED: [&str; 4] = ["fe80::/10", "ff00::/8", "::ffff:0:0/96", "::/127"];

/// The network's IPv6 (none unless `subnet6` is written) and each
/// endpoint's address in it, in config order.
pub fn validate(
    net: &NetworkSection,
    endpoints: &[EndpointSection],
) -> Result<(Option<Ipv6Network>, Vec<Option<Ipv6Addr>>)> {
    let Some(subnet) = &net.subnet6 else {
        if net.gateway6.is_some() {
            return Err(input_error!("network.gateway6: needs network.subnet6"));
        }
        if net.nat6.is_some() {
            return Err(input_error!("network.nat6: needs network.subnet6"));
        }
        if let Some(i) = endpoints.iter().position(|e| e.ip6.is_some()) {
            return Err(input_error!(
                "endpoint[{i}].ip6: the network has no network.subnet6"
            ));
        }
        return Ok((None, vec![None; endpoints.len()]));
    };
    let subnet: Ipv6Net =
        subnet::parse(subnet).map_err(|e| input_error!("network.subnet6: {e}"))?;
    // Without an uplink the prefix never leaves the host (its own routes
    // and allowed networks aside): there is nothing to translate or not.
    if net.nat6.is_some() && net.uplink.is_none() {
        return Err(input_error!(
            "network.nat6: needs network.uplink (without one, IPv6 is not translated and does not leave the host)"
        ));
    }
    if !(MIN_PREFIX6_LEN..=MAX_PREFIX6_LEN).contains(&subnet.prefix_len()) {
        return Err(input_error!(
            "network.subnet6: prefix length must be {MIN_PREFIX6_LEN} to {MAX_PREFIX6_LEN}, got {}",
            subnet.prefix_len()
        ));
    }
    if let Some(reserved) = RESERVED
        .iter()
        .filter_map(|r| r.parse::<Ipv6Net>().ok())
        .find(|r| r.overlaps(&subnet))
    {
        return Err(input_error!(
            "network.subnet6: {subnet} is within {reserved}, which no network may use"
        ));
    }
    let gateway = match &net.gateway6 {
        Some(gw) => {
            let gw = parse_ip6("network.gateway6", gw)?;
            if !subnet.is_host(gw) {
                return Err(input_error!(
                    "network.gateway6: {gw} is not a host address of {subnet}"
                ));
            }
            gw
        }
        None => lowest_free_ip6(subnet, &HashSet::new())?,
    };
    let mut taken = HashSet::from([gateway]);
    let mut fixed = Vec::with_capacity(endpoints.len());
    for (i, ep) in endpoints.iter().enumerate() {
        let ip = match &ep.ip6 {
            Some(ip) => {
                let field = format!("endpoint[{i}].ip6");
                let ip = parse_ip6(&field, ip)?;
                if !subnet.is_host(ip) {
                    return Err(input_error!(
                        "{field}: {ip} is not a host address of {subnet}"
                    ));
                }
                if ip == gateway {
                    return Err(input_error!("{field}: {ip} is the gateway's address"));
                }
                if !taken.insert(ip) {
                    return Err(input_error!("{field}: {ip} is assigned twice"));
                }
                Some(ip)
            }
            None => None,
        };
        fixed.push(ip);
    }
    let mut addresses = Vec::with_capacity(endpoints.len());
    for ip in fixed {
        let ip = match ip {
            Some(ip) => ip,
            None => {
                let ip = lowest_free_ip6(subnet, &taken)?;
                taken.insert(ip);
                ip
            }
        };
        addresses.push(Some(ip));
    }
    let network = Ipv6Network {
        subnet,
        gateway,
        nat: net.nat6.unwrap_or(true),
    };
    Ok((Some(network), addresses))
}

/// The lowest host address of `subnet` not in `taken`.
pub fn lowest_free_ip6(subnet: Ipv6Net, taken: &HashSet<Ipv6Addr>) -> Result<Ipv6Addr> {
    subnet
        .hosts()
        .find(|ip| subnet.is_host(*ip) && !taken.contains(ip))
        .ok_or_else(|| input_error!("network.subnet6: {subnet} has no free address left"))
}

fn parse_ip6(field: &str, s: &str) -> Result<Ipv6Addr> {
    s.parse()
        .map_err(|_| input_error!("{field}: {s:?} is not an IPv6 address"))
}

#[cfg(test)]
mod tests {
    use crate::{
        config::parse,
        error::{EXIT_BAD_INPUT, exit_code},
    };

    const BASE: &str = "[network]\nname = \"demo\"\nsubnet = \"10.88.0.0/24\"\n";

    #[test]
    fn dual_stack_endpoints_get_the_lowest_free_addresses() {
        let net = parse(&format!(
            "{BASE}subnet6 = \"2001:db8:1::/64\"\n\
             [[endpoint]]\nnetns = \"a\"\n\
             [[endpoint]]\nnetns = \"b\"\nip6 = \"2001:db8:1::2\"\n\
             [[endpoint]]\nnetns = \"c\"\n"
        ))
        .unwrap();
        let ipv6 = net.ipv6.unwrap();
        assert_eq!(ipv6.gateway.to_string(), "2001:db8:1::1");
        let ips: Vec<String> = net
            .endpoints
            .iter()
            .map(|e| e.ip6.unwrap().to_string())
            .collect();
        assert_eq!(ips, ["2001:db8:1::3", "2001:db8:1::2", "2001:db8:1::4"]);
    }

    #[test]
    fn nat6_is_on_by_default_and_off_with_nat6_false() {
        let with = |keys: &str| {
            let text = format!(
                "{BASE}uplink = \"eth0\"\nsubnet6 = \"2001:db8:1::/64\"\n{keys}\
                 [[endpoint]]\nnetns = \"a\"\n"
            );
            parse(&text).unwrap().ipv6.unwrap().nat
        };
        assert!(with(""));
        assert!(with("nat6 = true\n"));
        assert!(!with("nat6 = false\n"));
    }

    #[test]
    fn an_ipv4_only_network_has_no_ipv6() {
        let net = parse(&format!("{BASE}[[endpoint]]\nnetns = \"a\"\n")).unwrap();
        assert!(net.ipv6.is_none() && net.endpoints[0].ip6.is_none());
    }

    #[test]
    fn bad_ipv6_input_names_the_field() {
        let cases = [
            (
                "gateway6 = \"2001:db8::1\"\n",
                "",
                "network.gateway6: needs",
            ),
            (
                "",
                "ip6 = \"2001:db8::2\"\n",
                "endpoint[0].ip6: the network has no",
            ),
            (
                "subnet6 = \"2001:db8::1/64\"\n",
                "",
                "did you mean 2001:db8::/64",
            ),
            (
                "subnet6 = \"10.0.0.0/24\"\n",
                "",
                "network.subnet6: \"10.0.0.0/24\" is not",
            ),
            (
                "subnet6 = \"2001:db8::/32\"\n",
                "",
                "prefix length must be 48 to 126",
            ),
            (
                "subnet6 = \"2001:db8::/127\"\n",
                "",
                "prefix length must be 48 to 126",
            ),
            ("subnet6 = \"fe80::/64\"\n", "", "within fe80::/10"),
            ("subnet6 = \"ff02::/64\"\n", "", "within ff00::/8"),
            (
                "subnet6 = \"::ffff:0:0/96\"\n",
                "",
                "which no network may use",
            ),
            (
                "subnet6 = \"2001:db8::/64\"\ngateway6 = \"2001:db8:1::1\"\n",
                "",
                "network.gateway6: 2001:db8:1::1 is not a host",
            ),
            (
                "subnet6 = \"2001:db8::/64\"\ngateway6 = \"2001:db8::\"\n",
                "",
                "network.gateway6: 2001:db8:: is not a host",
            ),
            (
                "subnet6 = \"2001:db8::/64\"\n",
                "ip6 = \"2001:db8::1\"\n",
                "endpoint[0].ip6: 2001:db8::1 is the gateway's",
            ),
            (
                "subnet6 = \"2001:db8::/64\"\n",
                "ip6 = \"2001:db9::2\"\n",
                "endpoint[0].ip6: 2001:db9::2 is not a host",
            ),
            (
                "subnet6 = \"2001:db8::/64\"\n",
                "ip6 = \"10.88.0.5\"\n",
                "is not an IPv6 address",
            ),
            ("nat6 = false\n", "", "network.nat6: needs network.subnet6"),
            (
                "uplink = \"eth0\"\nnat6 = false\n",
                "",
                "network.nat6: needs network.subnet6",
            ),
            (
                "subnet6 = \"2001:db8::/64\"\nnat6 = false\n",
                "",
                "network.nat6: needs network.uplink",
            ),
        ];
        for (network, endpoint, want) in cases {
            let text = format!("{BASE}{network}[[endpoint]]\nnetns = \"a\"\n{endpoint}");
            let err = parse(&text).unwrap_err();
            assert_eq!(exit_code(&err), EXIT_BAD_INPUT, "{err:#}");
            assert!(format!("{err:#}").contains(want), "{text}: {err:#}");
        }
        let twice = format!(
            "{BASE}subnet6 = \"2001:db8::/64\"\n[[endpoint]]\nnetns = \"a\"\nip6 = \"2001:db8::5\"\n\
             [[endpoint]]\nnetns = \"b\"\nip6 = \"2001:db8::5\"\n"
        );
        let err = parse(&twice).unwrap_err();
        assert!(format!("{err:#}").contains("endpoint[1].ip6: 2001:db8::5 is assigned twice"));
    }
}
