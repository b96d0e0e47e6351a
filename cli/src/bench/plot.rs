//! The plot: packets per second by frame size, one panel per direction, one line per path.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::report::{medians, Sample, JUMBO};

/// Plots the live generator's figures; where it did not send, the `jumbo` generator's (which
/// stands in for it at sizes above a page); where neither did, the AF_XDP generator's.
pub fn pps_by_size(samples: &[Sample], file: &Path) -> Result<()> {
    let all = medians(samples);
    let order = ["live", JUMBO, "afxdp"];
    let mut m: std::collections::BTreeMap<(String, String, usize), f64> = Default::default();
    let mut by: std::collections::BTreeMap<(String, usize), &str> = Default::default();
    for g in order {
        for ((source, p, d, s), v) in &all {
            if source == g && by.get(&(d.clone(), *s)).is_none_or(|&b| b == g) {
                by.insert((d.clone(), *s), g);
                m.insert((p.clone(), d.clone(), *s), *v);
            }
        }
    }
    let used: Vec<&str> = order.into_iter().filter(|g| by.values().any(|b| b == g)).collect();
    let source = format!("{} generator", used.join(", then "));
    let mut sizes: Vec<usize> = m.keys().map(|k| k.2).collect();
    sizes.sort();
    sizes.dedup();
    let top = m.values().cloned().fold(0.0, f64::max) / 1e6 * 1.15 + 0.01;
    let x_max = sizes.last().copied().unwrap_or(1500) as f64 * 1.05 + 10.0;
    let root = SVGBackend::new(file, (1000, 460)).into_drawing_area();
    let e = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", file.display());
    root.fill(&WHITE).map_err(|x| e(&x))?;
    for (area, dir) in root.split_evenly((1, 2)).iter().zip(["encap", "decap"]) {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{dir}: million packets/s by frame size ({source})"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..x_max, 0f64..top)
            .map_err(|x| e(&x))?;
        chart.configure_mesh().x_desc("frame size (bytes)").y_desc("Mpps").draw().map_err(|x| e(&x))?;
        let colors = [
            ("kernel", RED),
            ("xvtep", BLUE),
            ("xvtep-afxdp", CYAN),
            ("bare", GREEN),
            ("kernel-tso", MAGENTA),
            ("generator", BLACK),
        ];
        for (path, color) in colors {
            let points: Vec<(f64, f64)> = sizes
                .iter()
                .filter_map(|s| m.get(&(path.to_string(), dir.to_string(), *s)).map(|p| (*s as f64, p / 1e6)))
                .collect();
            if points.is_empty() {
                continue;
            }
            let label = match path {
                "bare" => "bare AF_XDP (ceiling)",
                "generator" => "generator alone",
                _ => path,
            };
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|x| e(&x))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(|x| e(&x))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
