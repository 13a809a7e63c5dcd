//! The chart of memory over time: the heap's live bytes (from the capture) and, when sampled,
//! the process's resident size, with the peak marked. Long runs are downsampled to a fixed
//! number of points, keeping each bucket's highest value so the peak stays visible.

use plotters::prelude::*;

/// At most this many points per series.
pub const MAX_POINTS: usize = 2000;

/// A series of (seconds, bytes).
pub type Series = Vec<(f64, u64)>;

/// Keeps at most `max` points: the highest of each of `max - 1` equal time buckets, and the
/// last point.
pub fn downsample(points: &[(f64, u64)], max: usize) -> Series {
    if points.len() <= max || max < 3 {
        return points.to_vec();
    }
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let span = (t1 - t0).max(f64::MIN_POSITIVE);
    let mut out: Series = Vec::with_capacity(max);
    let mut current: Option<(usize, (f64, u64))> = None;
    for &(t, v) in points {
        let bucket = (((t - t0) / span) * (max - 2) as f64) as usize;
        match current {
            Some((b, best)) if b == bucket => {
                if v > best.1 {
                    current = Some((b, (t, v)));
                }
            }
            _ => {
                if let Some((_, p)) = current {
                    out.push(p);
                }
                current = Some((bucket, (t, v)));
            }
        }
    }
    if let Some((_, p)) = current {
        out.push(p);
    }
    // The line ends where the series does (what is live at the end), not at its last
    // stretch's highest point.
    let last = points[points.len() - 1];
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// What the chart shows.
#[derive(Default)]
pub struct Curves<'a> {
    /// The heap's live bytes.
    pub heap: &'a [(f64, u64)],
    /// The resident size (empty when not sampled).
    pub rss: &'a [(f64, u64)],
    /// The peak of the heap.
    pub peak: Option<(f64, u64)>,
    /// Another run's heap to compare with (the differential page's BASE): the other curves are
    /// then NEW's.
    pub base_heap: Option<&'a [(f64, u64)]>,
}

/// The chart as an SVG element: the caption and the legend in a strip above the plot (so they
/// never hide a curve), the curves, and the peak as a red dot.
pub fn render(curves: &Curves) -> Result<String, String> {
    let (heap_label, rss_label) = if curves.base_heap.is_some() {
        ("NEW heap (live bytes)", "NEW resident size")
    } else {
        ("heap (live bytes)", "resident size")
    };
    let mut lines: Vec<(&str, RGBColor, Series)> = Vec::new();
    if let Some(base) = curves.base_heap {
        lines.push((
            "BASE heap (live bytes)",
            RGBColor(0x75, 0x70, 0xb3),
            downsample(base, MAX_POINTS),
        ));
    }
    lines.push((
        heap_label,
        RGBColor(0xd9, 0x5f, 0x02),
        downsample(curves.heap, MAX_POINTS),
    ));
    if !curves.rss.is_empty() {
        lines.push((
            rss_label,
            RGBColor(0x1b, 0x9e, 0x77),
            downsample(curves.rss, MAX_POINTS),
        ));
    }
    let points = || lines.iter().flat_map(|l| l.2.iter()).chain(&curves.peak);
    // A little room on the right, so that a peak at the very end shows whole.
    let t_max = points().map(|p| p.0).fold(0.0f64, f64::max).max(1e-3) * 1.02;
    let y_max = points().map(|p| p.1).max().unwrap_or(0).max(1) as f64 / MIB;
    let e = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let (top, body) = root.split_vertically(34);
        top.draw(&Text::new(
            "Memory over time",
            (80, 8),
            ("sans-serif", 18).into_font(),
        ))
        .map_err(e)?;
        // The legend, left to right after the caption.
        let mut x = 320;
        let y = 17;
        let label = ("sans-serif", 13).into_font();
        let mut entries: Vec<(&str, Option<RGBColor>)> =
            lines.iter().map(|l| (l.0, Some(l.1))).collect();
        if curves.peak.is_some() {
            entries.push(("peak", None));
        }
        for (text, color) in entries {
            match color {
                Some(c) => top
                    .draw(&PathElement::new(
                        vec![(x, y), (x + 20, y)],
                        c.stroke_width(2),
                    ))
                    .map_err(e)?,
                None => top
                    .draw(&Circle::new((x + 10, y), 5, RED.filled()))
                    .map_err(e)?,
            }
            top.draw(&Text::new(text, (x + 26, y - 7), label.clone()))
                .map_err(e)?;
            x += 26 + 7 * text.len() as i32 + 24;
        }
        let mut chart = ChartBuilder::on(&body)
            .margin(10)
            .margin_top(4)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_max, 0.0..y_max * 1.08)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("MiB")
            .draw()
            .map_err(e)?;
        for (_, color, points) in &lines {
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|&(t, v)| (t, v as f64 / MIB)),
                    color.stroke_width(2),
                ))
                .map_err(e)?;
        }
        if let Some((t, v)) = curves.peak {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (t, v as f64 / MIB),
                    5,
                    RED.filled(),
                )))
                .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    Ok(svg)
}

const MIB: f64 = 1024.0 * 1024.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_the_peak_and_bounds_the_points() {
        let points: Series = (0..100_000u64)
            .map(|i| {
                (
                    i as f64 / 1000.0,
                    if i == 54_321 { 10_000_000 } else { i % 1000 },
                )
            })
            .collect();
        let d = downsample(&points, MAX_POINTS);
        assert!(d.len() <= MAX_POINTS, "{}", d.len());
        assert!(d.contains(&(54.321, 10_000_000)));
        // The line ends at the series' last value, however high its last stretch was.
        assert_eq!(d.last(), points.last());
        assert_eq!(downsample(&points[..10], MAX_POINTS), points[..10].to_vec());
    }

    #[test]
    fn the_chart_is_an_svg_with_its_legend() {
        let heap = vec![(0.0, 0), (0.5, 5 << 20), (1.0, 1 << 20)];
        let svg = render(&Curves {
            heap: &heap,
            peak: Some((0.5, 5 << 20)),
            ..Curves::default()
        })
        .expect("chart");
        assert!(svg.contains("<svg"));
        assert!(svg.contains("Memory over time"));
        assert!(svg.contains("heap (live bytes)"));
        assert!(svg.contains("peak"));
        assert!(!svg.contains("BASE"));
        assert!(render(&Curves::default()).is_ok());
        let base = vec![(0.0, 0), (0.7, 3 << 20)];
        let both = render(&Curves {
            heap: &heap,
            base_heap: Some(&base),
            ..Curves::default()
        })
        .expect("chart");
        assert!(both.contains("BASE heap (live bytes)"));
        assert!(both.contains("NEW heap (live bytes)"));
    }
}
