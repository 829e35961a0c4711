//! `cargo xtask bench --scale`: request/response and packet rates between
//! the same two endpoints with 10 and then 10,000 endpoints on the network,
//! then request/response from the internet to the last of 1,000 and then
//! of 10,000 published ports; netfwd's default
//! mode beside the baseline and the limit, interleaved as the main rows
//! are. Each row is read against its own setup's smaller figure: the cost
//! of the size alone.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};

use super::{
    Rounds, build_all, grow_each, path_cost,
    report::{self, Samples},
    setups::{BRIDGE_MAX_PORTS, Kind, PUBLISHED, PUBLISHED_SCALE, Setup},
    warm_up,
    workloads::Workload,
};

/// The setups compared: a network of 10,000 endpoints takes minutes and
/// 10,000 namespaces to build, so XDP mode (measured at 1,000 in the main
/// rows) sits this out.
const KINDS: [Kind; 3] = [Kind::Baseline, Kind::NetfwdTc, Kind::Limit];
/// The endpoint counts compared.
const FEW: u32 = 10;
const MANY: u32 = 10_000;

/// Each row, and the row of the smaller size it is read against.
const ROWS: [(Workload, Option<Workload>); 6] = [
    (Workload::ScaleRr(FEW), None),
    (Workload::ScalePps(FEW), None),
    (Workload::ScaleRr(MANY), Some(Workload::ScaleRr(FEW))),
    (Workload::ScalePps(MANY), Some(Workload::ScalePps(FEW))),
    (Workload::ScalePublishedRr(PUBLISHED), None),
    (
        Workload::ScalePublishedRr(PUBLISHED_SCALE),
        Some(Workload::ScalePublishedRr(PUBLISHED)),
    ),
];

pub fn exec(netfwd: &Path, quick: bool, dir: &Path) -> Result<String> {
    let (reps, secs) = if quick { (3, 1) } else { (5, 2) };
    let mut built = build_all(&KINDS, netfwd, dir)?;
    let all: Vec<Workload> = ROWS.iter().map(|(w, _)| *w).collect();
    let mut samples = Samples::new();
    let mut notes = Vec::new();
    let mut rounds = Rounds {
        reps,
        secs,
        all: &all,
        samples: &mut samples,
        notes: &mut notes,
    };
    let mut costs = String::new();
    for n in [FEW, MANY] {
        grow_each(&mut built, n)?;
        let scaled = Workload::scaled(n);
        let every: Vec<&Setup> = built.iter().collect();
        if n == FEW {
            warm_up(&scaled, &every);
        }
        rounds.run(&scaled, &every)?;
        if n == MANY {
            costs += &path_cost::exec(&scaled, &every, secs)?;
        }
    }
    // New connections are the main table's rows: here one port would be
    // connected to again within TIME_WAIT of its last run.
    let at_first = [Workload::ScalePublishedRr(PUBLISHED)];
    {
        let every: Vec<&Setup> = built.iter().collect();
        warm_up(&at_first, &every);
        rounds.run(&at_first, &every)?;
    }
    for setup in &mut built {
        setup
            .grow_published(PUBLISHED_SCALE)
            .with_context(|| format!("publishing more on {}", setup.kind.name()))?;
    }
    eprintln!("bench: {PUBLISHED_SCALE} published ports on each setup");
    let every: Vec<&Setup> = built.iter().collect();
    let published = [Workload::ScalePublishedRr(PUBLISHED_SCALE)];
    rounds.run(&published, &every)?;
    costs += &path_cost::exec(&published, &every, secs)?;
    drop(every);
    drop(built);
    Ok(table(&samples, &all, reps, secs) + &report::notes(&notes) + path_cost::HEADER + &costs)
}

/// The rows as a share of the limit, and of their own smaller size.
fn table(samples: &Samples, all: &[Workload], reps: usize, secs: u64) -> String {
    let mut md = format!(
        "\n## At scale: 10,000 endpoints and 10,000 published ports\n\n\
         Medians of {reps} interleaved runs of {secs} s each (min–max); ratios of medians. \
         \"÷ smaller\" is the row against the same setup's row at 10 endpoints (or 1,000 \
         published ports), all other endpoints idle; all 10,000 endpoints and ports stay in \
         place for the published rows.\n\n\
         | workload | unit | bridge+iptables | netfwd tc | limit | tc ÷ baseline | tc ÷ limit | \
         tc ÷ smaller | baseline ÷ smaller |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    let median = |w: Workload, k: Kind| {
        let list = samples.get(&report::key(all, w, k));
        report::summary(list.map_or(&[][..], Vec::as_slice))
    };
    for (w, smaller) in ROWS {
        let [base, tc, limit] = KINDS.map(|k| median(w, k));
        let cell = |x: &report::Summary| match x.median.is_nan() {
            true => "–".to_owned(),
            false => format!("{:.3} ({:.3}–{:.3})", x.median, x.min, x.max),
        };
        let ratio = |x: f64| match x.is_nan() {
            true => "–".to_owned(),
            false => format!("{x:.2}×"),
        };
        let against = |k: Kind, now: f64| match smaller {
            Some(s) => ratio(now / median(s, k).median),
            None => "–".to_owned(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | **{}** | **{}** | {} | {} |",
            w.name(),
            w.unit(),
            cell(&base),
            cell(&tc),
            cell(&limit),
            ratio(tc.median / base.median),
            ratio(tc.median / limit.median),
            against(Kind::NetfwdTc, tc.median),
            against(Kind::Baseline, base.median),
        );
    }
    let _ = writeln!(
        md,
        "\nNo baseline at 10,000 endpoints: a Linux bridge holds at most {BRIDGE_MAX_PORTS} \
         ports (`BR_MAX_PORTS`; the next is refused with EXFULL), and so does a Docker bridge \
         network. The published rows' baseline has the 10 endpoints.\n"
    );
    md
}
