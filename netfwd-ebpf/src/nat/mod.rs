//! Source NAT (masquerade) of endpoint traffic leaving by the uplink, and the
//! reverse translation of replies and of ICMP errors about those flows.
//!
//! Egress: the endpoint's tuple finds its uplink port in `NAT` or gets a new
//! one; the packet leaves with the uplink's address and that port, straight
//! out of the uplink. Ingress (uplink): the reply's tuple finds the inside
//! address and port, and the packet goes straight into the endpoint. Only
//! plain headers (IPv4 without options) are translated, fragments through
//! their first one's ports; see `netfwd_common::nat` for the table. Every
//! module is written once over `Family` (the sweep too, a family's table
//! each), ICMP errors too (`icmp_error`), which errors those are the
//! family's.
//!
//! One concern a module, as Cilium's `bpf/lib`: `snat` (egress), `rev_snat`
//! (ingress), `dnat` (published ports), `hairpin` (an endpoint to a published
//! port), `ports` (uplink port
//! reservation), `rewrite` (header rewrites) and `sweep` (expired flows
//! removed, on a timer in the kernel). The keys, entries and expiry rule
//! are `netfwd_common::nat`'s, shared with userspace.

mod dnat;
pub mod hairpin;
mod icmp_error;
mod ports;
pub mod rev_snat;
pub mod rewrite;
pub mod snat;
pub mod sweep;
