//! `netfwd monitor`'s session: each network's events turned on, its ring
//! buffer read under tokio's `AsyncFd` by a task of its own, and the events
//! handed over one channel; the events turned off again when the session
//! is dropped (see `loader::monitor::MonitorSwitch`).

pub mod event;

use std::{collections::BTreeMap, net::IpAddr};

use anyhow::{Context as _, Result};
use netfwd_common::monitor::{
    FAMILY_IPV4, FAMILY_IPV6, MonitorEvent, WANT_DROP, WANT_NAT, WANT_TRACE,
};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::mpsc,
};

use crate::{
    loader::monitor::{MissedEvents, MonitorRing, MonitorSwitch},
    monitor::event::{Clock, Flow},
    name::NetworkName,
    network::report,
};

/// Which events a monitor asks for (`--type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EventKind {
    /// Packets dropped, with the reason.
    Drop,
    /// NAT flows made and removed by the expiry sweep.
    Nat,
    /// Every other verdict, packet by packet (forwarded, redirected,
    /// translated, to the host): heavy, and rate-limited like the rest.
    Trace,
}

impl EventKind {
    /// The `MonitorConfig::kinds` bits of `kinds`; none given means drops
    /// and NAT flows.
    pub fn bits(kinds: &[EventKind]) -> u32 {
        if kinds.is_empty() {
            return WANT_DROP | WANT_NAT;
        }
        kinds.iter().fold(0, |bits, kind| {
            bits | match kind {
                EventKind::Drop => WANT_DROP,
                EventKind::Nat => WANT_NAT,
                EventKind::Trace => WANT_TRACE,
            }
        })
    }
}

/// One network being listened to.
struct Listened {
    name: NetworkName,
    switch: MonitorSwitch,
    /// Its missed events when the session began.
    missed_before: MissedEvents,
}

/// The networks listened to, and their events as they come.
pub struct Session {
    networks: Vec<Listened>,
    kinds: u32,
    events: mpsc::Receiver<(usize, MonitorEvent)>,
    ifnames: BTreeMap<u32, String>,
    clock: Clock,
    endpoint: Option<IpAddr>,
}

/// Events waiting between the readers and the printer.
const QUEUE: usize = 4096;

impl Session {
    /// Turns events of `kinds` on for network `name` (every network of this
    /// namespace without), only those to or from `endpoint` kept.
    pub async fn open(
        name: Option<&NetworkName>,
        kinds: u32,
        endpoint: Option<IpAddr>,
    ) -> Result<Self> {
        let status = report::status(name).await?;
        let (sender, events) = mpsc::channel(QUEUE);
        let mut networks = Vec::new();
        let mut ifnames = BTreeMap::new();
        for net in status.networks.into_iter().filter(|n| !n.orphaned) {
            let pin_dir = std::path::Path::new(&net.pin_dir);
            let mut switch = MonitorSwitch::open(pin_dir)?;
            let ring = MonitorRing::open(pin_dir)?;
            // SAFETY: the ring owns its map's file descriptor, which stays
            // open and the same for as long as the `AsyncFd` holds the ring.
            let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
                .map_err(std::io::Error::from)
                .context("polling the monitor's ring buffer")?;
            tokio::spawn(read(ring, networks.len(), sender.clone()));
            let missed_before = switch.missed()?;
            switch.keep_on(kinds)?;
            let interfaces = net
                .endpoints
                .into_iter()
                .map(|e| (e.host_ifindex, e.host_ifname))
                .chain(
                    [net.uplink, net.lan]
                        .into_iter()
                        .flatten()
                        .map(|i| (i.ifindex, i.ifname)),
                );
            ifnames.extend(interfaces.filter_map(|(index, name)| Some((index?, name))));
            networks.push(Listened {
                name: net.name,
                switch,
                missed_before,
            });
        }
        if networks.is_empty() {
            return Err(crate::input_error!(
                "no network in this network namespace to monitor"
            ));
        }
        Ok(Self {
            networks,
            kinds,
            events,
            ifnames,
            clock: Clock::now()?,
            endpoint,
        })
    }

    /// The next event asked for, decoded.
    pub async fn next(&mut self) -> Option<Flow> {
        loop {
            let (index, event) = self.events.recv().await?;
            if !self.wanted(&event) {
                continue;
            }
            let network = self.networks.get(index)?.name.as_str();
            let ifnames = &self.ifnames;
            let ifname = |index: u32| {
                ifnames
                    .get(&index)
                    .cloned()
                    .unwrap_or_else(|| format!("if{index}"))
            };
            return Some(event::decode(&event, network, &self.clock, ifname));
        }
    }

    fn wanted(&self, event: &MonitorEvent) -> bool {
        self.endpoint.is_none_or(|ip| involves(event, ip))
    }

    /// Keeps the events on (call every `REFRESH_NS`).
    pub fn keep_on(&mut self) -> Result<()> {
        for net in &mut self.networks {
            net.switch.keep_on(self.kinds)?;
        }
        Ok(())
    }

    /// Events missed since the session began, over every network.
    pub fn missed(&self) -> Result<MissedEvents> {
        let mut sum = MissedEvents::default();
        for net in &self.networks {
            let now = net.switch.missed()?;
            sum.suppressed += now.suppressed.saturating_sub(net.missed_before.suppressed);
            sum.lost += now.lost.saturating_sub(net.missed_before.lost);
        }
        Ok(sum)
    }
}

/// Whether `event` is from or to `ip`.
fn involves(event: &MonitorEvent, ip: IpAddr) -> bool {
    let (family, bytes) = match ip {
        IpAddr::V4(v4) => {
            let mut bytes = [0; 16];
            bytes[..4].copy_from_slice(&v4.octets());
            (FAMILY_IPV4, bytes)
        }
        IpAddr::V6(v6) => (FAMILY_IPV6, v6.octets()),
    };
    event.family == family && (event.src == bytes || event.dst == bytes)
}

/// Reads one network's ring into the channel until the session is gone.
async fn read(
    mut ring: AsyncFd<MonitorRing>,
    index: usize,
    events: mpsc::Sender<(usize, MonitorEvent)>,
) {
    loop {
        let Ok(mut guard) = ring.readable_mut().await else {
            return;
        };
        while let Some(event) = guard.get_inner_mut().next_event() {
            if events.send((index, event)).await.is_err() {
                return;
            }
        }
        guard.clear_ready();
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use netfwd_common::monitor::{FAMILY_IPV4, MonitorEvent};

    use super::involves;

    #[test]
    fn an_event_involves_its_source_and_destination_only() {
        let mut event = MonitorEvent {
            family: FAMILY_IPV4,
            ..MonitorEvent::default()
        };
        event.src[..4].copy_from_slice(&[10, 0, 0, 2]);
        event.dst[..4].copy_from_slice(&[203, 0, 113, 1]);
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        assert!(involves(&event, ip("10.0.0.2")));
        assert!(involves(&event, ip("203.0.113.1")));
        assert!(!involves(&event, ip("10.0.0.3")));
        assert!(!involves(&event, ip("::a00:2")));
    }
}
