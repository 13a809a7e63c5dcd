//! The chart of memory over time: the heap's live bytes (from the capture) and, when sampled,
//! the process's resident size, with the peak marked. Long runs are downsampled to a fixed
//! number of points, keeping each bucket's highest value so the peak stays visible.

use plotters::prelude::*;

/// At most this many points per series.
pub const MAX_POINTS: usize = 2000;

/// A series of (seconds, bytes).
pub type Series = Vec<(f64, u64)>;

/// Keeps at most `max` points: the highest of each of `max` equal time buckets.
pub fn downsample(points: &[(f64, u64)], max: usize) -> Series {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let span = (t1 - t0).max(f64::MIN_POSITIVE);
    let mut out: Series = Vec::with_capacity(max);
    let mut current: Option<(usize, (f64, u64))> = None;
    for &(t, v) in points {
        let bucket = (((t - t0) / span) * (max - 1) as f64) as usize;
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

/// The chart as an SVG element.
pub fn render(curves: &Curves) -> Result<String, String> {
    let heap = downsample(curves.heap, MAX_POINTS);
    let rss = downsample(curves.rss, MAX_POINTS);
    let base = curves
        .base_heap
        .map(|b| downsample(b, MAX_POINTS))
        .unwrap_or_default();
    let (heap_label, rss_label) = if curves.base_heap.is_some() {
        ("NEW heap (live bytes)", "NEW resident size")
    } else {
        ("heap (live bytes)", "resident size")
    };
    let t_max = heap
        .iter()
        .chain(&rss)
        .chain(&base)
        .map(|p| p.0)
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let y_max = heap
        .iter()
        .chain(&rss)
        .chain(&base)
        .map(|p| p.1)
        .max()
        .unwrap_or(0)
        .max(1) as f64
        / MIB;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Memory over time", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_max, 0.0..y_max * 1.08)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("MiB")
            .draw()
            .map_err(|e| e.to_string())?;
        if curves.base_heap.is_some() {
            let base_color = RGBColor(0x75, 0x70, 0xb3);
            chart
                .draw_series(LineSeries::new(
                    base.iter().map(|&(t, v)| (t, v as f64 / MIB)),
                    base_color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label("BASE heap (live bytes)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], base_color));
        }
        let heap_color = RGBColor(0xd9, 0x5f, 0x02);
        chart
            .draw_series(LineSeries::new(
                heap.iter().map(|&(t, v)| (t, v as f64 / MIB)),
                heap_color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(heap_label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], heap_color));
        if !rss.is_empty() {
            let rss_color = RGBColor(0x1b, 0x9e, 0x77);
            chart
                .draw_series(LineSeries::new(
                    rss.iter().map(|&(t, v)| (t, v as f64 / MIB)),
                    rss_color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(rss_label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], rss_color));
        }
        if let Some((t, v)) = curves.peak {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (t, v as f64 / MIB),
                    5,
                    RED.filled(),
                )))
                .map_err(|e| e.to_string())?
                .label("peak")
                .legend(|(x, y)| Circle::new((x + 10, y), 4, RED.filled()));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
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
