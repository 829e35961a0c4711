//! `netfwd explain --name NET --from ENDPOINT|ADDR --to ADDR[:PORT]
//! [--proto tcp|udp|icmp] [--json]`: what the datapath would do with a
//! packet and its answer, hop by hop, without sending either.

use std::process::ExitCode;

use anyhow::Result;

use crate::{
    error::EXIT_DROPPED,
    explain::{self, Answer, Hop, Place, Question},
};

/// Prints the answer; exits `EXIT_DROPPED` when a hop drops the packet.
pub async fn exec(question: &Question<'_>, json: bool) -> Result<ExitCode> {
    let answer = explain::explain(question).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_human(&answer);
    }
    Ok(if answer.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DROPPED)
    })
}

fn print_human(answer: &Answer) {
    println!(
        "network {} (mode {}), run on a copy of its datapath (nothing sent, no map changed):",
        answer.network, answer.mode
    );
    for (n, hop) in answer.hops.iter().enumerate() {
        println!("  {} {}", n + 1, line(hop));
    }
    println!("{}", answer.verdict.to_lowercase());
}

/// One hop: `request from endpoint a (nfx-1): tcp … -> …  TRANSLATED (tc)
/// to … -> …, out of uplink up0`.
fn line(hop: &Hop) -> String {
    let mut line = format!("{:<7} from {}: {}  ", hop.leg, place(&hop.from), hop.packet);
    match hop.drop_reason_desc {
        Some(reason) => line += &format!("DROPPED {reason}"),
        None => line += hop.verdict,
    }
    line += &format!(" ({})", hop.trace_observation_point.to_lowercase());
    if let Some(translated) = &hop.translated {
        line += &format!(" to {translated}");
    }
    if let Some(to) = &hop.to {
        let how = match to.kind {
            "endpoint" => "into",
            "host" => "to",
            _ => "out of",
        };
        line += &format!(", {how} {}", place(to));
    }
    line
}

fn place(place: &Place) -> String {
    match (place.kind, &place.name, &place.interface) {
        ("endpoint", Some(name), Some(interface)) => format!("endpoint {name} ({interface})"),
        ("host", _, _) => "the host's stack".to_owned(),
        (kind, Some(name), _) => format!("{kind} {name}"),
        (kind, None, _) => kind.to_owned(),
    }
}
