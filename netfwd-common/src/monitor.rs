//! `netfwd monitor`: the events the datapath writes to a network's ring
//! buffer (`MONITOR_EVENTS`), the switch userspace turns them on with
//! (`MONITOR`) and each CPU's rate limit (`MONITOR_BUDGET`).
//!
//! The numbers here are stable, like drop reasons: a monitor of one release
//! reads the events of another.

/// `MonitorEvent::kind`: a packet dropped (`reason` says why).
pub const EVENT_DROP: u8 = 1;
/// `MonitorEvent::kind`: a packet forwarded, routed, translated or answered
/// (`verdict` says which).
pub const EVENT_TRACE: u8 = 2;
/// `MonitorEvent::kind`: a NAT flow made; the tuple is the endpoint's (or
/// the remote client's, for a published port), `nat_addr`/`nat_port` what
/// its source is translated to.
pub const EVENT_NAT_CREATED: u8 = 3;
/// `MonitorEvent::kind`: a NAT flow removed by the expiry sweep (same
/// fields as `EVENT_NAT_CREATED`).
pub const EVENT_NAT_EXPIRED: u8 = 4;

/// `MonitorConfig::kinds` bits: which events a monitor wants.
pub const WANT_DROP: u32 = 1;
pub const WANT_NAT: u32 = 2;
pub const WANT_TRACE: u32 = 4;

/// `MonitorEvent::verdict` of a trace event.
pub const VERDICT_REDIRECTED: u8 = 1;
pub const VERDICT_ARP_REPLIED: u8 = 2;
pub const VERDICT_ROUTED: u8 = 3;
pub const VERDICT_TRANSLATED: u8 = 4;
pub const VERDICT_TO_HOST: u8 = 5;
/// `MonitorEvent::verdict` of a drop event.
pub const VERDICT_DROPPED: u8 = 6;

/// `MonitorEvent::hook`.
pub const HOOK_TC: u8 = 1;
pub const HOOK_XDP: u8 = 2;
/// The NAT's expiry sweep (a timer, no packet).
pub const HOOK_SWEEP: u8 = 3;

/// `MonitorEvent::direction`: from an endpoint, or from the uplink (or LAN).
pub const DIRECTION_EGRESS: u8 = 1;
pub const DIRECTION_INGRESS: u8 = 2;

/// `MonitorEvent::family`.
pub const FAMILY_IPV4: u8 = 4;
pub const FAMILY_IPV6: u8 = 6;

/// Events each CPU may write per second once its burst is spent; the rest
/// are counted as suppressed (`MonitorBudget::suppressed`).
pub const EVENTS_PER_SECOND: u64 = 1000;
/// Events a CPU may write at once after a quiet second.
pub const EVENT_BURST: u64 = 1000;
/// The credit one event takes, in nanoseconds of quiet.
pub const NS_PER_EVENT: u64 = 1_000_000_000 / EVENTS_PER_SECOND;
/// A monitor refreshes `MonitorConfig::deadline_ns` this often; the
/// datapath stops writing once the deadline passes, so a monitor killed
/// with SIGKILL leaves the events off within `DEADLINE_NS`.
pub const REFRESH_NS: u64 = 1_000_000_000;
/// How far ahead a monitor sets its deadline.
pub const DEADLINE_NS: u64 = 3 * REFRESH_NS;
/// Bytes of `MONITOR_EVENTS` (a power of two of pages).
pub const RING_BYTES: u32 = 256 * 1024;

/// The one entry of `MONITOR`: off while `kinds` is 0, which is all a
/// packet pays for when nobody listens.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct MonitorConfig {
    /// `WANT_*` bits.
    pub kinds: u32,
    /// The monitor that set it (it clears only its own).
    pub pid: u32,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) past which nobody listens.
    pub deadline_ns: u64,
}

/// A CPU's entry of `MONITOR_BUDGET`: its token bucket and what it could
/// not write.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct MonitorBudget {
    /// Credit in nanoseconds, at most `EVENT_BURST * NS_PER_EVENT`.
    pub credit_ns: u64,
    /// When the credit was last topped up.
    pub refilled_ns: u64,
    /// Events over the rate limit, not written.
    pub suppressed: u64,
    /// Events the ring buffer had no room for (the monitor reads too slowly).
    pub lost: u64,
}

/// One event of `MONITOR_EVENTS`. Addresses are 16 bytes, IPv4 in the first
/// four, so IPv6 fits in the same layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct MonitorEvent {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC).
    pub time_ns: u64,
    /// `EVENT_*`.
    pub kind: u8,
    /// `VERDICT_*`.
    pub verdict: u8,
    /// A drop's `DropReason` number; 0 otherwise.
    pub reason: u8,
    /// `HOOK_*`.
    pub hook: u8,
    /// `DIRECTION_*`.
    pub direction: u8,
    /// `FAMILY_*`; 0 when the packet is not IP (ARP).
    pub family: u8,
    /// IP protocol.
    pub proto: u8,
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10).
    pub tcp_flags: u8,
    /// The interface the packet came in on (0 for the sweep).
    pub ifindex: u32,
    /// The packet's length, L2 header included.
    pub len: u32,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Ports in network byte order (an ICMP echo's identifier as the
    /// source port).
    pub src_port: [u8; 2],
    pub dst_port: [u8; 2],
    /// NAT events: the source's translated port, in network byte order.
    pub nat_port: [u8; 2],
    pub _pad: [u8; 2],
    /// NAT events: the source's translated address.
    pub nat_addr: [u8; 16],
}

#[cfg(feature = "user")]
// SAFETY: repr(C), integers and byte arrays, no padding; every bit pattern is valid.
unsafe impl aya::Pod for MonitorConfig {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for MonitorBudget {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for MonitorEvent {}
