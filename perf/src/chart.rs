//! Grouped bar charts of per-query throughput (eddy alone, or eddy beside Flink), written as SVG
//! for documents and PNG for anything that shows pictures. Text is drawn with DejaVu Sans
//! compiled into the binary, so no system font library is needed on any machine.
//!
//! A chart is plain data (serde), so the Python comparator writes the same JSON that the suite
//! builds in memory and has `eddy nexmark chart` draw it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

/// A chart: one panel per measure, stacked; in each, a group of bars per category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    pub title: String,
    /// The groups along the x axis, in order (the queries).
    pub categories: Vec<String>,
    pub panels: Vec<Panel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Panel {
    /// The y axis' description, with its unit ("M events/s").
    pub y_label: String,
    pub series: Vec<Series>,
}

/// One engine's bars: a value per category, in the panel's unit; `None` where it has none
/// (the query did not run), drawn as a dash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// Colour-blind-safe pairs first: eddy blue, the peer orange.
const PALETTE: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];
const PANEL_HEIGHT: u32 = 340;
const TITLE_HEIGHT: u32 = 40;

impl Chart {
    /// Whether the chart can be drawn: something to draw, every series as long as the
    /// categories, and no value negative or not finite.
    pub fn check(&self) -> Result<(), String> {
        if self.categories.is_empty() || self.panels.is_empty() {
            return Err("the chart has no categories or no panels".into());
        }
        for panel in &self.panels {
            if panel.series.is_empty() {
                return Err(format!("panel '{}' has no series", panel.y_label));
            }
            for s in &panel.series {
                if s.values.len() != self.categories.len() {
                    return Err(format!(
                        "series '{}' of panel '{}' has {} values for {} categories",
                        s.name,
                        panel.y_label,
                        s.values.len(),
                        self.categories.len()
                    ));
                }
                if let Some(v) = s
                    .values
                    .iter()
                    .flatten()
                    .find(|v| !v.is_finite() || **v < 0.0)
                {
                    return Err(format!(
                        "series '{}' of panel '{}' has the value {v}; values must be finite and \
                         not negative",
                        s.name, panel.y_label
                    ));
                }
            }
        }
        Ok(())
    }

    /// Pixels: wide enough for every bar to be at least ~14 px, at least 720.
    fn size(&self) -> (u32, u32) {
        let bars = self
            .panels
            .iter()
            .map(|p| p.series.len())
            .max()
            .unwrap_or(1);
        let width = 120 + self.categories.len() as u32 * (bars as u32 * 18 + 24);
        (
            width.max(720),
            TITLE_HEIGHT + PANEL_HEIGHT * self.panels.len() as u32,
        )
    }
}

/// Draws `chart` to `<stem>.svg` and `<stem>.png`, and returns both paths.
pub fn render(chart: &Chart, stem: &Path) -> Result<[PathBuf; 2], String> {
    chart.check()?;
    register_font()?;
    let svg = PathBuf::from(format!("{}.svg", stem.display()));
    let png = PathBuf::from(format!("{}.png", stem.display()));
    let size = chart.size();
    draw(SVGBackend::new(&svg, size).into_drawing_area(), chart)
        .map_err(|e| format!("cannot draw {}: {e}", svg.display()))?;
    draw(BitMapBackend::new(&png, size).into_drawing_area(), chart)
        .map_err(|e| format!("cannot draw {}: {e}", png.display()))?;
    Ok([svg, png])
}

fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    ok.then_some(())
        .ok_or_else(|| "the embedded font did not load".to_string())
}

/// A bar's label: two decimals for small values, fewer as they grow.
fn value_label(v: f64) -> String {
    match v {
        v if v < 10.0 => format!("{v:.2}"),
        v if v < 100.0 => format!("{v:.1}"),
        v => format!("{v:.0}"),
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let body = root.titled(&chart.title, ("sans-serif", 20))?;
    let panels = body.split_evenly((chart.panels.len(), 1));
    for (panel, area) in chart.panels.iter().zip(&panels) {
        draw_panel(&root, area, &chart.categories, panel)?;
    }
    root.present()
}

fn draw_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    area: &DrawingArea<DB, Shift>,
    categories: &[String],
    panel: &Panel,
) -> DrawResult<DB> {
    let groups = categories.len() as f64;
    let highest = panel
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    // Headroom for the value labels and the legend.
    let top = if highest > 0.0 { highest * 1.25 } else { 1.0 };
    let mut cc = ChartBuilder::on(area)
        .margin(12)
        .margin_bottom(6)
        .x_label_area_size(26)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..groups, 0f64..top)?;
    cc.configure_mesh()
        .disable_x_mesh()
        .y_max_light_lines(1)
        .x_labels(0)
        .y_desc(panel.y_label.as_str())
        .label_style(("sans-serif", 13))
        .draw()?;

    // Each group spans 0.8 of its unit; its bars share that evenly.
    let width = 0.8 / panel.series.len() as f64;
    let value_style =
        TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (j, series) in panel.series.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let bar = |i: usize| {
            let x0 = i as f64 + 0.1 + j as f64 * width;
            (x0, x0 + width * 0.9)
        };
        let values = || series.values.iter().enumerate();
        cc.draw_series(values().filter_map(|(i, v)| {
            let (x0, x1) = bar(i);
            v.map(|v| Rectangle::new([(x0, 0.0), (x1, v)], color.filled()))
        }))?
        .label(series.name.as_str())
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        cc.draw_series(values().map(|(i, v)| {
            let (x0, x1) = bar(i);
            let text = v.map_or_else(|| "–".to_string(), value_label);
            Text::new(
                text,
                ((x0 + x1) / 2.0, v.unwrap_or(0.0)),
                value_style.clone(),
            )
        }))?;
    }
    if panel.series.len() > 1 {
        cc.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    // Category names under the axis, placed in picture pixels: plotters' own x labels sit at
    // round numbers, not at the middle of each group.
    let label_style =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, name) in categories.iter().enumerate() {
        let (x, y) = cc.backend_coord(&(i as f64 + 0.5, 0.0));
        root.draw(&Text::new(name.as_str(), (x, y + 6), label_style.clone()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> Chart {
        Chart {
            title: "eddy vs Flink".into(),
            categories: vec!["q0".into(), "q1".into(), "q5".into()],
            panels: vec![Panel {
                y_label: "M events/s".into(),
                series: vec![
                    Series {
                        name: "eddy".into(),
                        values: vec![Some(4.1), Some(3.0), None],
                    },
                    Series {
                        name: "Flink".into(),
                        values: vec![Some(1.0), Some(1.0), Some(0.2)],
                    },
                ],
            }],
        }
    }

    #[test]
    fn draws_svg_and_png_with_text() {
        let dir = tempfile::tempdir().unwrap();
        let [svg, png] = render(&chart(), &dir.path().join("throughput")).unwrap();
        let svg = std::fs::read_to_string(svg).unwrap();
        for text in ["eddy vs Flink", "M events/s", "q5", "4.10", "Flink", "–"] {
            assert!(svg.contains(text), "the SVG lacks {text}");
        }
        let png = std::fs::read(png).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn refuses_what_it_cannot_draw() {
        let mut c = chart();
        c.panels[0].series[0].values.pop();
        assert!(c.check().unwrap_err().contains("2 values for 3 categories"));
        let mut c = chart();
        c.panels[0].series[1].values[0] = Some(f64::NAN);
        assert!(c.check().unwrap_err().contains("must be finite"));
        let mut c = chart();
        c.categories.clear();
        assert!(c.check().is_err());
        let json = serde_json::to_string(&chart()).unwrap();
        assert_eq!(serde_json::from_str::<Chart>(&json).unwrap(), chart());
    }
}
