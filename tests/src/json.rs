//! Accessors for the JSON of `netfwd status --json`.

use netfwd_common::drop::DropReason;
use serde_json::Value;

/// `reason`, checked to be a name in the product's drop table: a test that
/// asks for a reason netfwd does not have fails saying so, instead of
/// reading a counter that is not there.
fn drop_reason(reason: &str) -> &str {
    assert!(
        DropReason::ALL.iter().any(|r| r.name() == reason),
        "{reason} is not a drop reason of netfwd_common::drop"
    );
    reason
}

/// The endpoints array of a network's status.
pub fn endpoints(network: &Value) -> &Vec<Value> {
    network["endpoints"]
        .as_array()
        .unwrap_or_else(|| panic!("no endpoints array in {network:#}"))
}

/// The endpoint of `network` in namespace `netns`.
pub fn endpoint<'a>(network: &'a Value, netns: &str) -> &'a Value {
    endpoints(network)
        .iter()
        .find(|e| e["netns"] == netns)
        .unwrap_or_else(|| panic!("no endpoint in {netns} in {network:#}"))
}

/// The endpoint of `network` with address `ip` (an attached one's
/// namespace has no name of ours).
pub fn endpoint_with_ip<'a>(network: &'a Value, ip: &str) -> &'a Value {
    endpoints(network)
        .iter()
        .find(|e| e["ip"] == ip)
        .unwrap_or_else(|| panic!("no endpoint {ip} in {network:#}"))
}

/// Packets the endpoint in `netns` had dropped under `reason`.
pub fn drops(network: &Value, netns: &str, reason: &str) -> u64 {
    endpoint_drops(endpoint(network, netns), reason)
}

/// Packets the endpoint with address `ip` had dropped under `reason`.
pub fn drops_of_ip(network: &Value, ip: &str, reason: &str) -> u64 {
    endpoint_drops(endpoint_with_ip(network, ip), reason)
}

fn endpoint_drops(ep: &Value, reason: &str) -> u64 {
    ep["counters"]["drops"][drop_reason(reason)]
        .as_u64()
        .unwrap_or_else(|| panic!("no drop reason {reason}: {ep:#}"))
}

/// Packets the uplink of a network's status had dropped under `reason`.
pub fn uplink_drops(network: &Value, reason: &str) -> u64 {
    host_interface_drops(network, "uplink", reason)
}

/// Packets a host interface of a network's status (`uplink`, `lan`,
/// `tunnel`) had dropped under `reason`.
pub fn host_interface_drops(network: &Value, iface: &str, reason: &str) -> u64 {
    network[iface]["counters"]["drops"][drop_reason(reason)]
        .as_u64()
        .unwrap_or_else(|| panic!("no drop reason {reason} for the {iface}: {network:#}"))
}

/// Counter `field` of the endpoint in `netns`.
pub fn counters(network: &Value, netns: &str, field: &str) -> u64 {
    let ep = endpoint(network, netns);
    ep["counters"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {field} for {netns}: {ep:#}"))
}

/// Sum of counter `field` over every endpoint of `network`.
pub fn sum_counters(network: &Value, field: &str) -> u64 {
    endpoints(network)
        .iter()
        .map(|ep| {
            ep["counters"][field]
                .as_u64()
                .unwrap_or_else(|| panic!("no counter {field}: {ep:#}"))
        })
        .sum()
}

/// A copy of `network` without the counters of its endpoints.
pub fn without_counters(network: &Value) -> Value {
    let mut v = network.clone();
    if let Some(eps) = v["endpoints"].as_array_mut() {
        for ep in eps {
            if let Some(obj) = ep.as_object_mut() {
                obj.remove("counters");
            }
        }
    }
    v
}
