//! Training curves as SVG (plotters): loss on the left axis, scores (accuracies, F1) on the
//! right, one point per epoch. Written atomically.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// One curve: its name, colour and `(epoch, value)` points.
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// Line colour.
    pub color: RGBColor,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

/// Draws the loss and the scores (on a 0-1 axis named `score_axis`) against the epoch into an
/// SVG file at `path`.
pub fn write_svg(
    path: &Path,
    title: &str,
    loss: &Series,
    score_axis: &str,
    scores: &[Series],
) -> Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("drawing the curve: {e}"))?;
        let epochs = loss.points.iter().map(|p| p.0).fold(1.0f64, f64::max);
        let max_loss = loss.points.iter().map(|p| p.1).fold(1e-9f64, f64::max) * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .right_y_label_area_size(56)
            .build_cartesian_2d(0f64..epochs, 0f64..max_loss)
            .map_err(|e| anyhow!("drawing the curve: {e}"))?
            .set_secondary_coord(0f64..epochs, 0f64..1f64);
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("training loss")
            .draw()
            .map_err(|e| anyhow!("drawing the curve: {e}"))?;
        chart
            .configure_secondary_axes()
            .y_desc(score_axis)
            .draw()
            .map_err(|e| anyhow!("drawing the curve: {e}"))?;
        let style = |c: RGBColor| ShapeStyle::from(&c).stroke_width(2);
        chart
            .draw_series(LineSeries::new(loss.points.iter().copied(), style(loss.color)))
            .map_err(|e| anyhow!("drawing the curve: {e}"))?
            .label(loss.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style(loss.color)));
        for s in scores {
            let c = s.color;
            chart
                .draw_secondary_series(LineSeries::new(s.points.iter().copied(), style(c)))
                .map_err(|e| anyhow!("drawing the curve: {e}"))?
                .label(s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style(c)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow!("drawing the curve: {e}"))?;
        root.present().map_err(|e| anyhow!("drawing the curve: {e}"))?;
    }
    pigeon::runtime::io::write_atomic(path, svg.as_bytes())?;
    Ok(())
}
