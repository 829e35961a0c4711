//! `netfwd monitor [--name NET] [--type drop|nat|trace] [--endpoint IP]
//! [--json]`: prints the datapath's events as they come, until Ctrl-C or
//! SIGTERM, then what was missed.

use std::{net::IpAddr, time::Duration};

use anyhow::{Context as _, Result};
use netfwd_common::monitor::REFRESH_NS;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    loader::monitor::MissedEvents,
    monitor::{EventKind, Session, event::Flow},
    name::NetworkName,
};

/// What `monitor` prints on stderr once its events are on.
pub const LISTENING: &str = "monitor: listening";

pub async fn exec(
    name: Option<&NetworkName>,
    kinds: &[EventKind],
    endpoint: Option<IpAddr>,
    json: bool,
) -> Result<()> {
    let mut session = Session::open(name, EventKind::bits(kinds), endpoint).await?;
    let mut interrupt = signal(SignalKind::interrupt()).context("catching SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("catching SIGTERM")?;
    let mut refresh = tokio::time::interval(Duration::from_nanos(REFRESH_NS));
    eprintln!("{LISTENING} (Ctrl-C to stop)");
    let mut shown = MissedEvents::default();
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            flow = session.next() => match flow {
                Some(flow) => print_flow(&flow, json)?,
                None => break,
            },
            _ = refresh.tick() => {
                session.keep_on()?;
                let missed = session.missed()?;
                if missed != shown {
                    print_missed(&missed, json)?;
                    shown = missed;
                }
            }
        }
    }
    print_missed(&session.missed()?, json)?;
    Ok(())
}

fn print_flow(flow: &Flow, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(flow)?);
    } else {
        println!("{}", flow.line());
    }
    Ok(())
}

/// Hubble's `lost_events` record in JSON; one line of text otherwise.
fn print_missed(missed: &MissedEvents, json: bool) -> Result<()> {
    if json {
        let record = serde_json::json!({
            "lost_events": {
                "num_events_lost": missed.total(),
                "suppressed": missed.suppressed,
                "lost": missed.lost,
            }
        });
        println!("{record}");
    } else {
        println!(
            "missed {} events: {} over the rate limit, {} with the ring full",
            missed.total(),
            missed.suppressed,
            missed.lost
        );
    }
    Ok(())
}
