//! The results: medians and spread per workload and setup, ratios against
//! the baseline and the limit, as a Markdown table, a JSON file with every
//! sample, and an SVG chart of the ratios to the limit.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};
use serde_json::json;

use super::{
    setups::Kind,
    workloads::{Sample, Workload},
};

/// Every sample, by workload and setup, in the order taken.
pub type Samples = BTreeMap<(usize, usize), Vec<Sample>>;

/// `all`: every workload of the run, in report order.
pub fn key(all: &[Workload], w: Workload, k: Kind) -> (usize, usize) {
    (
        all.iter().position(|x| *x == w).unwrap_or(0),
        Kind::ALL.iter().position(|x| *x == k).unwrap_or(0),
    )
}

pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    cost: f64,
}

/// Sorts `values` and returns their median.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub fn summary(samples: &[Sample]) -> Summary {
    let mut values: Vec<f64> = samples.iter().map(|s| s.value).collect();
    let mut costs: Vec<f64> = samples.iter().map(|s| s.cost).collect();
    Summary {
        median: median(&mut values),
        min: values.first().copied().unwrap_or(f64::NAN),
        max: values.last().copied().unwrap_or(f64::NAN),
        cost: median(&mut costs),
    }
}

/// Workload `w`'s summary on each of `kinds`.
fn summaries(samples: &Samples, all: &[Workload], w: Workload, kinds: &[Kind]) -> Vec<Summary> {
    kinds
        .iter()
        .map(|k| summary(samples.get(&key(all, w, *k)).map_or(&[][..], Vec::as_slice)))
        .collect()
}

pub fn markdown(
    samples: &Samples,
    all: &[Workload],
    reps: usize,
    secs: u64,
    machine: &str,
) -> String {
    let mut s = format!(
        "Medians of {reps} interleaved runs of {secs} s each (min–max); ratios of medians. {machine}\n\n\
         | workload | unit | bridge+iptables | netfwd tc | netfwd xdp | limit | tc ÷ baseline | tc ÷ limit | xdp ÷ baseline | xdp ÷ limit | CPU cost: baseline / tc / xdp / limit |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for &w in all {
        let [base, tc, xdp, limit] =
            <[Summary; 4]>::try_from(summaries(samples, all, w, &Kind::COMPARED))
                .unwrap_or_else(|_| unreachable!("four setups"));
        let cell = |x: &Summary| format!("{:.3} ({:.3}–{:.3})", x.median, x.min, x.max);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | **{:.2}×** | **{:.2}×** | {:.2}× | {:.2}× | {:.2} / {:.2} / {:.2} / {:.2} {} |",
            w.name(),
            w.unit(),
            cell(&base),
            cell(&tc),
            cell(&xdp),
            cell(&limit),
            tc.median / base.median,
            tc.median / limit.median,
            xdp.median / base.median,
            xdp.median / limit.median,
            base.cost,
            tc.cost,
            xdp.cost,
            limit.cost,
            w.cost_unit(),
        );
    }
    s
}

/// The spread this run saw: each cell's max ÷ min, their median and the
/// widest, so the reader knows how far one ratio can be trusted.
pub fn spread(samples: &Samples, all: &[Workload]) -> String {
    let mut cells: Vec<(f64, String)> = samples
        .iter()
        .filter(|(_, list)| list.len() > 1)
        .map(|((w, k), list)| {
            let sum = summary(list);
            (
                sum.max / sum.min,
                format!("{} on {}", all[*w].name(), Kind::ALL[*k].name()),
            )
        })
        .collect();
    let mut ratios: Vec<f64> = cells.iter().map(|(r, _)| *r).collect();
    let typical = median(&mut ratios);
    cells.sort_by(|a, b| a.0.total_cmp(&b.0));
    match cells.last() {
        Some((widest, cell)) => format!(
            "\nSpread (max ÷ min of a cell's samples): {typical:.2}× in the median cell, \
             {widest:.2}× at the widest ({cell}).\n"
        ),
        None => "\nSpread: one sample a cell, none to show.\n".to_owned(),
    }
}

/// The east-west rows against the baseline without the published ports'
/// rules too, so that the headline ratio is not the rules' cost alone.
/// Empty without east-west rows (a run of chosen rows).
pub fn without_port_rules(samples: &Samples, all: &[Workload]) -> String {
    if !all.iter().any(|w| w.east_west()) {
        return String::new();
    }
    let kinds = [Kind::Baseline, Kind::BaselineNoPorts, Kind::NetfwdTc];
    let mut s = format!(
        "\nEast-west rows against the baseline with and without its 1,000 published-port \
         rules (medians):\n\n| workload | {} | {} | {} | tc ÷ no port rules |\n|---|---|---|---|---|\n",
        kinds[0].name(),
        kinds[1].name(),
        kinds[2].name()
    );
    for &w in all.iter().filter(|w| w.east_west()) {
        let sums = summaries(samples, all, w, &kinds);
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {:.3} | **{:.2}×** |",
            w.name(),
            sums[0].median,
            sums[1].median,
            sums[2].median,
            sums[2].median / sums[1].median
        );
    }
    s
}

/// A sample this far above the one below it splits a cell in two modes.
const MODE_GAP: f64 = 1.5;
/// Samples a mode needs to be one (fewer is an outlier, not a mode).
const MODE_SAMPLES: usize = 2;

/// The connection-rate cells whose samples fall in two modes (on two
/// vCPUs they do: a median would flip between them from run to run), each
/// mode's median and share of the samples. Empty when none does.
pub fn bimodal(samples: &Samples, all: &[Workload]) -> String {
    let mut s = String::new();
    for ((w, k), list) in samples {
        if all[*w].unit() != "connections/s" {
            continue;
        }
        let mut values: Vec<f64> = list.iter().map(|x| x.value).collect();
        values.sort_by(f64::total_cmp);
        let split = values
            .windows(2)
            .enumerate()
            .map(|(i, pair)| (i + 1, pair[1] / pair[0]))
            .filter(|&(at, gap)| {
                gap > MODE_GAP && at >= MODE_SAMPLES && values.len() - at >= MODE_SAMPLES
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(at, _)| at);
        if let Some(split) = split {
            let (low, high) = values.split_at_mut(split);
            let _ = writeln!(
                s,
                "- {} on {}: {:.3} in {} of {} samples, {:.3} in {}",
                all[*w].name(),
                Kind::ALL[*k].name(),
                median(low),
                low.len(),
                list.len(),
                median(high),
                high.len(),
            );
        }
    }
    if s.is_empty() {
        return s;
    }
    format!("\nCells in two modes (each mode's median, and how many samples fell in it):\n\n{s}")
}

/// The samples taken again, and why (none is a clean run).
pub fn notes(notes: &[String]) -> String {
    if notes.is_empty() {
        return "\nNo sample was taken again: every workload succeeded, read more than zero \
                and stayed within the limit's spread.\n"
            .to_owned();
    }
    let mut s = String::from("\nSamples taken again:\n\n");
    for n in notes {
        let _ = writeln!(s, "- {n}");
    }
    s
}

pub fn json(
    samples: &Samples,
    all: &[Workload],
    reps: usize,
    secs: u64,
    machine: &str,
) -> serde_json::Value {
    let mut rows = Vec::new();
    for ((w, k), list) in samples {
        for (rep, sample) in list.iter().enumerate() {
            rows.push(json!({
                "workload": all[*w].name(),
                "unit": all[*w].unit(),
                "setup": Kind::ALL[*k].name(),
                "rep": rep,
                "value": sample.value,
                "cpu_cost": sample.cost,
                "cpu_cost_unit": all[*w].cost_unit(),
            }));
        }
    }
    json!({ "machine": machine, "repetitions": reps, "seconds": secs, "samples": rows })
}

/// Bars of each setup's median relative to the limit, per workload.
pub fn svg(samples: &Samples, all: &[Workload]) -> String {
    const ROW: f64 = 86.0;
    const LEFT: f64 = 330.0;
    const WIDTH: f64 = 420.0;
    let colours = ["#c0504d", "#4f81bd", "#8064a2", "#9bbb59"];
    let limit_at = Kind::COMPARED
        .iter()
        .position(|k| *k == Kind::Limit)
        .unwrap_or(0);
    let height = 60.0 + ROW * all.len() as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">Median as a share of the limit (bare veth / plain routing)</text>\n"
    );
    for (i, k) in Kind::COMPARED.iter().enumerate() {
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"30\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"40\">{}</text>",
            LEFT - 120.0 + i as f64 * 120.0,
            colours[i],
            LEFT - 104.0 + i as f64 * 120.0,
            k.name()
        );
    }
    for (row, w) in all.iter().enumerate() {
        let y = 60.0 + row as f64 * ROW;
        let sums = summaries(samples, all, *w, &Kind::COMPARED);
        let limit = sums[limit_at].median;
        let _ = writeln!(s, "<text x=\"10\" y=\"{}\">{}</text>", y + 28.0, w.name());
        for (i, sum) in sums.iter().enumerate() {
            let ratio = (sum.median / limit).clamp(0.0, 1.5);
            let _ = writeln!(
                s,
                "<rect x=\"{LEFT}\" y=\"{}\" width=\"{:.1}\" height=\"16\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{}\">{:.2}</text>",
                y + i as f64 * 18.0,
                ratio * WIDTH / 1.5,
                colours[i],
                LEFT + ratio * WIDTH / 1.5 + 4.0,
                y + 12.0 + i as f64 * 18.0,
                sum.median / limit
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

pub fn write(dir: &Path, md: &str, json: &serde_json::Value, svg: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("results.md"), md)?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(json)?,
    )?;
    std::fs::write(dir.join("chart.svg"), svg)?;
    Ok(())
}
