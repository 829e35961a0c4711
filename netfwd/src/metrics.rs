//! `netfwd daemon --metrics ADDR` and `netfwd docker-plugin --metrics ADDR`:
//! the networks' counters in Prometheus's text format on `GET /metrics`,
//! served by [`http`]. Each scrape builds a
//! fresh registry from what `status` and `stats` report (so the values
//! agree with `stats --json`), reading the state and the pinned maps
//! only: no lock taken, nothing changed. Names follow Cilium's; no label
//! carries an address.

use std::{collections::BTreeSet, net::SocketAddr, path::Path, sync::atomic::AtomicU64};

use anyhow::{Context as _, Result};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::net::{TcpListener, TcpStream};

use crate::{
    docker,
    http::{self, Accepting},
    loader::{NetworkDatapath, monitor},
    name::NetworkName,
    network::report::{self, CountersStatus, NetworkStatus},
};

/// What Prometheus's text format (0.0.4) is served as.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr`, so that a bad or taken address stops the daemon at once.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics: binding {addr}"))
}

/// Which networks a scrape reports.
#[derive(Clone)]
pub enum Scope {
    /// The daemon's one network.
    Network(NetworkName),
    /// The Docker plugin's networks in its namespace, listed afresh at each
    /// scrape: Docker makes and removes them while the plugin runs.
    Docker,
}

impl Scope {
    async fn networks(&self) -> Result<Vec<NetworkStatus>> {
        match self {
            Scope::Network(name) => Ok(report::status(Some(name)).await?.networks),
            Scope::Docker => {
                let ours = docker::network_names()?;
                let here = report::status(None).await?.networks;
                Ok(here
                    .into_iter()
                    .filter(|net| !net.orphaned && ours.contains(&net.name))
                    .collect())
            }
        }
    }
}

/// Serves the metrics of `scope`'s networks on `listener` for ever.
pub async fn serve(listener: TcpListener, scope: Scope) {
    let mut accepting = Accepting::default();
    loop {
        let ((stream, _), held) = accepting.next(|| listener.accept()).await;
        let scope = scope.clone();
        tokio::spawn(async move {
            answer(stream, scope).await;
            drop(held);
        });
    }
}

/// One connection: `GET /metrics` gets the metrics, anything else 404 or 405.
async fn answer(stream: TcpStream, scope: Scope) {
    let served = http::serve_connection(stream, move |req| {
        let scope = scope.clone();
        async move {
            let (status, body) = match req {
                Err(why) => (400, why),
                Ok(req) if req.path != "/metrics" => (404, "only /metrics is here".to_owned()),
                Ok(req) if req.method != hyper::Method::GET => {
                    (405, "/metrics takes GET".to_owned())
                }
                Ok(_) => match scrape(&scope).await {
                    Ok(text) => (200, text),
                    Err(e) => {
                        log::warn!("metrics: {e:#}");
                        (500, format!("{e:#}"))
                    }
                },
            };
            http::Response {
                status,
                content_type: CONTENT_TYPE,
                body: body.into_bytes(),
            }
        }
    });
    if let Err(e) = served.await {
        log::debug!("serving metrics: {e}");
    }
}

/// Packets and bytes one way through a network. `egress`: from its
/// endpoints; `ingress`: from its uplink, LAN and tunnel.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Traffic {
    network: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Dropped {
    network: String,
    /// `DropReason::name()`.
    reason: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NetworkLabel {
    network: String,
}

/// An uplink's NAT flows of one kind: labelled by the uplink, whose table
/// the networks on it share, so that no flow is counted twice.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NatFlows {
    uplink: String,
    proto: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UplinkLabel {
    uplink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MapLabel {
    map: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MissedLabel {
    /// `rate_limit` (suppressed) or `ring_full` (lost).
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GcOutcome {
    outcome: &'static str,
}

/// The metrics of one scrape.
#[derive(Default)]
struct Metrics {
    /// Packets seen less those dropped.
    forward_packets: Family<Traffic, Counter>,
    /// Bytes seen less those dropped.
    forward_bytes: Family<Traffic, Counter>,
    drop_packets: Family<Dropped, Counter>,
    drop_bytes: Family<Dropped, Counter>,
    nat_flows: Family<NatFlows, Gauge>,
    /// The uplinks whose table `nat_flows` holds: each from the first of
    /// its networks (the others read the same table).
    nat_uplinks: BTreeSet<String>,
    nat_max_flows: Family<UplinkLabel, Gauge>,
    map_pressure: Family<MapLabel, Gauge<f64, AtomicU64>>,
    nat_gc_runs: Counter,
    nat_gc_entries: Family<GcOutcome, Counter>,
    nat_gc_duration: Gauge<f64, AtomicU64>,
    endpoints: Family<NetworkLabel, Gauge>,
    published_ports: Family<NetworkLabel, Gauge>,
    monitor_events_lost: Family<MissedLabel, Counter>,
}

/// The metrics of `scope`'s networks now, in Prometheus's text format.
async fn scrape(scope: &Scope) -> Result<String> {
    let mut metrics = Metrics::default();
    for net in &scope.networks().await? {
        metrics.add(net)?;
    }
    metrics.encode()
}

impl Metrics {
    fn add(&mut self, net: &NetworkStatus) -> Result<()> {
        let network = net.name.to_string();
        let egress = net.endpoints.iter().filter_map(|e| e.counters.as_ref());
        for counters in egress {
            self.add_traffic(&network, "egress", counters);
        }
        let ingress = [&net.uplink, &net.lan, &net.tunnel]
            .into_iter()
            .filter_map(|i| i.as_ref()?.counters.as_ref());
        for counters in ingress {
            self.add_traffic(&network, "ingress", counters);
        }
        let labels = NetworkLabel { network };
        self.endpoints
            .get_or_create(&labels)
            .set(gauge_value(net.endpoints.len()));
        self.published_ports
            .get_or_create(&labels)
            .set(gauge_value(net.published.len()));
        if let (Some(nat), Some(uplink)) = (&net.nat, &net.uplink) {
            let uplink = uplink.ifname.clone();
            if self.nat_uplinks.insert(uplink.clone()) {
                for kind in &nat.by_kind {
                    self.nat_flows
                        .get_or_create(&NatFlows {
                            uplink: uplink.clone(),
                            proto: kind.proto,
                            state: kind.state,
                        })
                        .set(gauge_value(kind.flows));
                }
            }
            self.nat_max_flows
                .get_or_create(&UplinkLabel { uplink })
                .set(i64::from(nat.max_flows));
        }
        let missed = monitor::missed_events(Path::new(&net.pin_dir))?;
        for (reason, events) in [
            ("rate_limit", missed.suppressed),
            ("ring_full", missed.lost),
        ] {
            self.monitor_events_lost
                .get_or_create(&MissedLabel { reason })
                .inc_by(events);
        }
        // A network whose pins are gone has no datapath facts (as in `status`).
        let Ok(datapath) = NetworkDatapath::open(&net.name) else {
            return Ok(());
        };
        if net.nat.is_some() {
            self.map_pressure
                .get_or_create(&MapLabel { map: "nat" })
                .set(datapath.nat_fill()?);
        }
        if let Some(sweep) = datapath.nat_sweep()? {
            self.nat_gc_runs.inc_by(sweep.walks);
            for (outcome, removed) in [
                ("expired_flow", sweep.flows_removed),
                ("lone_egress", sweep.lone_removed),
            ] {
                self.nat_gc_entries
                    .get_or_create(&GcOutcome { outcome })
                    .inc_by(removed);
            }
            #[expect(clippy::cast_precision_loss, reason = "seconds")]
            let last_walk = sweep.last_walk_ns as f64 / 1e9;
            self.nat_gc_duration.set(last_walk);
        }
        Ok(())
    }

    fn add_traffic(&self, network: &str, direction: &'static str, counters: &CountersStatus) {
        let traffic = Traffic {
            network: network.to_owned(),
            direction,
        };
        self.forward_packets
            .get_or_create(&traffic)
            .inc_by(counters.rx_packets.saturating_sub(counters.dropped));
        self.forward_bytes
            .get_or_create(&traffic)
            .inc_by(counters.rx_bytes.saturating_sub(counters.dropped_bytes));
        for (&reason, &packets) in &counters.drops {
            let dropped = Dropped {
                network: network.to_owned(),
                reason,
                direction,
            };
            let bytes = counters.drop_bytes.get(reason).copied().unwrap_or(0);
            self.drop_packets.get_or_create(&dropped).inc_by(packets);
            self.drop_bytes.get_or_create(&dropped).inc_by(bytes);
        }
    }

    fn encode(self) -> Result<String> {
        let mut registry = Registry::with_prefix("netfwd");
        // Counters get their `_total` from the encoder.
        registry.register(
            "forward_packets",
            "Packets the datapath passed on (seen less dropped)",
            self.forward_packets,
        );
        registry.register(
            "forward_bytes",
            "Bytes the datapath passed on (seen less dropped)",
            self.forward_bytes,
        );
        registry.register(
            "drop_packets",
            "Packets the datapath dropped, by reason",
            self.drop_packets,
        );
        registry.register(
            "drop_bytes",
            "Bytes the datapath dropped, by reason",
            self.drop_bytes,
        );
        registry.register(
            "nat_flows",
            "The flows in the uplink's NAT table (every network's on it), by protocol and state",
            self.nat_flows,
        );
        registry.register(
            "nat_max_flows",
            "The NAT flows the uplink's table holds at most",
            self.nat_max_flows,
        );
        registry.register(
            "bpf_map_pressure",
            "How full a map is, 0 to 1 (nat: the uplink's NAT table, every network's entries)",
            self.map_pressure,
        );
        registry.register(
            "nat_gc_runs",
            "Walks of the NAT table by the kernel's expiry sweep",
            self.nat_gc_runs,
        );
        registry.register(
            "nat_gc_entries",
            "What the kernel's expiry sweep removed",
            self.nat_gc_entries,
        );
        registry.register(
            "nat_gc_duration_seconds",
            "How long the sweep's last walk of the NAT table took",
            self.nat_gc_duration,
        );
        registry.register("endpoints", "The network's endpoints", self.endpoints);
        registry.register(
            "published_ports",
            "The network's published host ports",
            self.published_ports,
        );
        registry.register(
            "monitor_events_lost",
            "Datapath events `netfwd monitor` did not get: over the per-CPU rate limit, or with its ring buffer full",
            self.monitor_events_lost,
        );
        let mut text = String::new();
        encode(&mut text, &registry).context("encoding the metrics")?;
        Ok(text)
    }
}

/// A count as a gauge's value (no count comes near `i64::MAX`).
fn gauge_value(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
