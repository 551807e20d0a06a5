//! `eddy nexmark chart`: draws a chart described in JSON (perf's `Chart`) as SVG and PNG. The
//! Flink comparator, which is Python, uses it to draw its results as the suite draws its own.

use std::path::PathBuf;

use clap::Args;
use perf::chart::{render, Chart};

use crate::Failure;

#[derive(Args)]
pub struct ChartArgs {
    /// The chart's JSON: {"title", "categories": [...], "panels": [{"y_label", "series":
    /// [{"name", "values": [number or null, ...]}]}]}.
    pub spec: PathBuf,
    /// Where to write: <OUT>.svg and <OUT>.png [default: the spec's path without .json].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: ChartArgs) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.spec)
        .map_err(|e| Failure::User(format!("cannot read {}: {e}", args.spec.display())))?;
    let chart: Chart = serde_json::from_str(&text)
        .map_err(|e| Failure::User(format!("{} is not a chart: {e}", args.spec.display())))?;
    let stem = args.out.unwrap_or_else(|| args.spec.with_extension(""));
    let [svg, png] = render(&chart, &stem).map_err(Failure::User)?;
    eprintln!("wrote {} and {}", svg.display(), png.display());
    Ok(())
}
