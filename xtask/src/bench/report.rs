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

struct Summary {
    median: f64,
    min: f64,
    max: f64,
    cost: f64,
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn summary(samples: &[Sample]) -> Summary {
    let mut values: Vec<f64> = samples.iter().map(|s| s.value).collect();
    let mut costs: Vec<f64> = samples.iter().map(|s| s.cost).collect();
    Summary {
        median: median(&mut values),
        min: values.first().copied().unwrap_or(f64::NAN),
        max: values.last().copied().unwrap_or(f64::NAN),
        cost: median(&mut costs),
    }
}

fn summaries(samples: &Samples, all: &[Workload], w: Workload) -> Vec<Summary> {
    Kind::ALL
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
        let [base, tc, xdp, limit] = <[Summary; 4]>::try_from(summaries(samples, all, w))
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
    let limit_at = Kind::ALL
        .iter()
        .position(|k| *k == Kind::Limit)
        .unwrap_or(0);
    let height = 60.0 + ROW * all.len() as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">Median as a share of the limit (bare veth / plain routing)</text>\n"
    );
    for (i, k) in Kind::ALL.iter().enumerate() {
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
        let sums = summaries(samples, all, *w);
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
