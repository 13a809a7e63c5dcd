//! Reading each capture of a family (in parallel, one file per task) and the family's combined
//! peak: the highest sum of the processes' live heaps at one moment, every capture's ticks put
//! on the system's monotonic clock (CLOCK_MONOTONIC, shared by all processes).
//!
//! Each image's live heap is followed as a step series of [`SERIES_POINTS`] points (what each
//! tick left, as a snapshot at that moment sees it: exact while a run has fewer changes than
//! that; else the highest value of each time bucket, at the resolution of the run's length
//! divided by it); an image's heap is gone at its end (exit,
//! exec, or the last record of a capture cut short by a kill).
//!
//! A killed process held its heap until it died, after its last record, but nothing in the
//! captures says when it died (the parent's capture records no wait; the root may end before
//! or after it): its heap is counted up to its last record only, and every report of the
//! combined peak says so ([`killed_note`]) rather than guess a death.

use super::Family;
use crate::analysis::Options;
use crate::capture::Capture;
use rayon::prelude::*;
use std::path::PathBuf;

/// Points kept of each image's live-heap series.
pub const SERIES_POINTS: usize = 1 << 18;

/// What one capture (one image of a process) says.
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub path: PathBuf,
    /// Index of its process in the family.
    pub process: usize,
    pub start_mono_ns: u64,
    /// The wall-clock time of the start (ns since the epoch, 0 when the header has none).
    pub start_realtime_ns: u64,
    pub end_mono_ns: u64,
    pub peak_bytes: u64,
    pub total_bytes: u64,
    pub total_allocations: u64,
    pub leaked_bytes: u64,
    pub complete: bool,
    /// It could not be read, or records the tracker wrote are missing from it (the file was
    /// emptied, cut or overwritten).
    pub damaged: bool,
    /// (monotonic ns, live bytes, the event after which it held them: its index in the
    /// replay's order, 0 where the series names none, as an aggregated capture's) in time
    /// order: one nanosecond may hold several ticks, and one tick several events, of
    /// different values.
    pub series: Vec<(u64, u64, u64)>,
    /// Why it could not be read (then its figures are zero).
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// An aggregated capture (`--aggregate`): its series has a point per 100 ms window.
    pub aggregated: bool,
}

/// The combined peak.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peak {
    pub bytes: u64,
    /// When (monotonic ns); 0 when nothing was live.
    pub mono_ns: u64,
    /// What each process held then: (index in the family, bytes), the largest first, processes
    /// holding nothing left out.
    pub by_process: Vec<(usize, u64)>,
    /// What each image held then, by image index.
    pub by_image: Vec<u64>,
    /// The event (of its own capture) after which each image held that, by image index: None
    /// when it held nothing, or its series names no event. A snapshot of the image right after
    /// it holds `by_image`'s value (`Options::peak_at_event`).
    pub by_image_event: Vec<Option<u64>>,
}

/// Reads every capture of `family` (in parallel).
pub fn read(family: &Family, include_startup: bool) -> Vec<Image> {
    let jobs: Vec<(usize, PathBuf)> = family
        .processes
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.captures.iter().map(move |c| (i, c.clone())))
        .collect();
    jobs.into_par_iter()
        .map(|(process, path)| read_image(process, path, include_startup))
        .collect()
}

fn read_image(process: usize, path: PathBuf, include_startup: bool) -> Image {
    let capture = match Capture::open(&path) {
        Ok(c) => c,
        Err(e) => {
            return Image {
                path,
                process,
                // The path is the warning's prefix.
                error: Some(e.kind.to_string()),
                damaged: true,
                ..Image::default()
            };
        }
    };
    let a = crate::index::analyze(
        &capture,
        Options {
            include_startup,
            freeze: true,
            heap_points: SERIES_POINTS,
            heap_steps: true,
            ..Options::default()
        },
    );
    let start = capture.header.start_mono_ns;
    let at = |tick: u64| -> u64 { (start as f64 + a.clock.ns(tick)).max(0.0) as u64 };
    let mut series: Vec<(u64, u64, u64)> = a
        .replay
        .heap_series
        .points_with_events()
        .map(|(t, v, event)| (at(t), v, event))
        .collect();
    if let Some(t) = a.replay.peak.tick {
        let peak = &a.replay.peak;
        with_peak(&mut series, (at(t), peak.bytes, peak.event_index));
    }
    let end = start + (a.duration_s() * 1e9) as u64;
    Image {
        path,
        process,
        start_mono_ns: start,
        start_realtime_ns: capture.header.start_realtime_ns,
        end_mono_ns: end,
        peak_bytes: a.replay.peak.bytes,
        total_bytes: a.totals.allocs.bytes,
        total_allocations: a.totals.allocs.count,
        leaked_bytes: a.leaked().bytes,
        complete: a.complete(),
        damaged: a.index.records_missing().is_some()
            || a.index.records_damaged > 0
            || a.index.chunks_damaged > 0,
        series,
        error: None,
        warnings: a.warnings.clone(),
        aggregated: a.index.settings.aggregate,
    }
}

/// Puts the image's exact peak (`bytes` at `t`, after the event `event`) into its step series where
/// the series' points missed it (the last allocation before a fall in the same nanosecond):
/// one tracked process's combined peak read 32 bytes below its own peak. The step after it
/// is kept.
fn with_peak(series: &mut Vec<(u64, u64, u64)>, (t, bytes, event): (u64, u64, u64)) {
    if series.iter().any(|p| p.1 >= bytes) {
        return;
    }
    let i = series.partition_point(|p| p.0 < t);
    match series.get(i).copied() {
        Some((at, after, after_event)) if at == t => {
            series[i] = (t, bytes, event);
            if series.get(i + 1).is_none_or(|p| p.0 > t + 1) {
                series.insert(i + 1, (t + 1, after, after_event));
            }
        }
        _ => series.insert(i, (t, bytes, event)),
    }
}

/// An image that ended without finishing its capture (killed, or still running) while it held
/// memory: its heap leaves the combined sum at its last record, too early.
fn cut_short_holding(img: &Image) -> bool {
    !img.complete && !img.damaged && img.series.last().is_some_and(|p| p.1 > 0)
}

/// What every report of a family's combined peak says of it (each line once): processes
/// killed holding memory ([`killed_note`]), and an aggregated family's resolution.
pub fn notes(family: &Family, images: &[Image]) -> impl Iterator<Item = String> {
    killed_note(family, images)
        .into_iter()
        .chain(resolution_note(images))
}

/// An aggregated family's processes' series hold the highest point of each 100 ms, so highs
/// closer than that are put together (or missed). None for a family of full captures, or of
/// one process.
fn resolution_note(images: &[Image]) -> Option<String> {
    let processes: std::collections::BTreeSet<usize> = images.iter().map(|i| i.process).collect();
    (processes.len() > 1 && images.iter().any(|i| i.aggregated)).then(|| {
        "the combined peak of aggregated captures (--aggregate) is at their series' 100 ms \
         resolution: highs of two processes less than 100 ms apart may be counted as one \
         moment (the figure too high) or missed (too low)"
            .to_string()
    })
}

/// The line every report of a family's combined peak adds when processes were killed holding
/// memory (None when none was): the sum counts their heaps only up to their last event.
fn killed_note(family: &Family, images: &[Image]) -> Option<String> {
    let mut pids: Vec<u32> = images
        .iter()
        .filter(|img| cut_short_holding(img))
        .filter_map(|img| family.processes.get(img.process).map(|p| p.pid))
        .collect();
    pids.dedup();
    if pids.is_empty() {
        return None;
    }
    const SHOWN: usize = 10;
    let mut list: Vec<String> = pids.iter().take(SHOWN).map(|p| p.to_string()).collect();
    if pids.len() > SHOWN {
        list.push(format!("and {} more", pids.len() - SHOWN));
    }
    let (n, were, their) = match pids.len() {
        1 => (
            "1 process".to_string(),
            "was killed or is still running",
            "its",
        ),
        n => (
            format!("{n} processes"),
            "were killed or are still running",
            "their",
        ),
    };
    Some(format!(
        "{n} {were} (pid {}): the combined peak counts {their} memory only up to {their} last event, so it may be low",
        list.join(", ")
    ))
}

/// Every image's steps as (time, image, value, its event), in time order, each image's heap
/// gone at its end (event 0; equal times: an image's end after its own last step; the sort
/// is stable).
pub(crate) fn steps(images: &[Image]) -> Vec<(u64, usize, u64, u64)> {
    let mut points: Vec<(u64, usize, u64, u64)> = Vec::new();
    for (i, img) in images.iter().enumerate() {
        points.extend(img.series.iter().map(|&(t, v, event)| (t, i, v, event)));
        let last = img.series.last().map_or(0, |p| p.0);
        points.push((img.end_mono_ns.max(last), i, 0, 0));
    }
    points.sort_by_key(|p| p.0);
    points
}

/// The sum of the images' live heaps over time: (seconds after `origin_ns`, bytes), at most
/// `max_points` points, each the highest sum of its time bucket (the chart of a family).
pub fn sum_series(images: &[Image], origin_ns: u64, max_points: usize) -> Vec<(f64, u64)> {
    let mut series = crate::analysis::series::Series::with_capacity(max_points);
    let mut current = vec![0u64; images.len()];
    let mut sum = 0u64;
    for (t, i, v, _) in steps(images) {
        sum = sum - current[i] + v;
        current[i] = v;
        series.record(t.saturating_sub(origin_ns), sum);
    }
    series.points().map(|(t, v)| (t as f64 / 1e9, v)).collect()
}

/// The combined peak of the images (of `processes` processes).
pub fn peak(images: &[Image], processes: usize) -> Peak {
    let points = steps(images);
    let mut current = vec![0u64; images.len()];
    let mut sum: u64 = 0;
    let mut best = (0u64, 0u64, 0usize);
    for (k, &(t, i, v, _)) in points.iter().enumerate() {
        sum = sum - current[i] + v;
        current[i] = v;
        if sum > best.0 {
            best = (sum, t, k);
        }
    }
    if best.0 == 0 {
        return Peak::default();
    }
    // What each image held at that moment: the sweep again, up to it.
    let mut held = vec![0u64; images.len()];
    let mut held_event = vec![None; images.len()];
    for &(_, i, v, event) in &points[..=best.2] {
        held[i] = v;
        held_event[i] = Some(event).filter(|&e| e > 0 && v > 0);
    }
    let mut by_process = vec![0u64; processes];
    let held_by_image = held.clone();
    for (i, img) in images.iter().enumerate() {
        if let Some(slot) = by_process.get_mut(img.process) {
            *slot += held[i];
        }
    }
    let mut by_process: Vec<(usize, u64)> = by_process
        .into_iter()
        .enumerate()
        .filter(|&(_, b)| b > 0)
        .collect();
    by_process.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Peak {
        bytes: best.0,
        mono_ns: best.1,
        by_process,
        by_image: held_by_image,
        by_image_event: held_event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image of (ns, bytes) steps, each at the tick of its nanosecond.
    fn image(process: usize, series: &[(u64, u64)], end: u64) -> Image {
        Image {
            process,
            start_mono_ns: series.first().map_or(0, |p| p.0),
            end_mono_ns: end,
            series: series.iter().map(|&(t, v)| (t, v, here(t))).collect(),
            ..Image::default()
        }
    }

    /// The event of a series' point at `tick`: a thousand times further (a tick may hold
    /// several events).
    fn here(tick: u64) -> u64 {
        tick * 1000
    }

    /// `(ns, bytes, tick)` points with their events.
    fn placed(points: &[(u64, u64, u64)]) -> Vec<(u64, u64, u64)> {
        points.iter().map(|&(t, v, k)| (t, v, here(k))).collect()
    }

    #[test]
    fn an_image_s_series_holds_its_exact_peak() {
        // The series' point at the peak's nanosecond holds what followed it (tick 105, the
        // nanosecond's last); the peak was at tick 103 of that nanosecond.
        let mut s = placed(&[(0, 0, 0), (10, 90, 105), (20, 0, 200)]);
        with_peak(&mut s, (10, 100, here(103)));
        assert_eq!(
            s,
            placed(&[(0, 0, 0), (10, 100, 103), (11, 90, 105), (20, 0, 200)])
        );
        // Between two points.
        let mut s = placed(&[(0, 0, 0), (10, 90, 100), (20, 0, 200)]);
        with_peak(&mut s, (15, 100, here(150)));
        assert_eq!(
            s,
            placed(&[(0, 0, 0), (10, 90, 100), (15, 100, 150), (20, 0, 200)])
        );
        // Already there: unchanged.
        let mut s = placed(&[(0, 0, 0), (10, 100, 100), (20, 0, 200)]);
        with_peak(&mut s, (10, 100, here(100)));
        assert_eq!(s, placed(&[(0, 0, 0), (10, 100, 100), (20, 0, 200)]));
        let p = peak(&[image(0, &[(0, 0), (10, 100), (11, 90), (20, 0)], 30)], 1);
        assert_eq!(p.bytes, 100);
    }

    #[test]
    fn the_peak_names_where_each_image_held_it() {
        // A's peak (100) at tick 103 and what followed in its nanosecond (52, tick 105); B
        // holds 40 from ns 5. A snapshot of A at the end of ns 10 would hold 52, not 100; the
        // peak's event is named, since its tick may hold later events too.
        let mut a = image(0, &[(0, 0)], 30);
        a.series.extend(placed(&[(10, 52, 105), (20, 0, 200)]));
        let peak_event = 103_007;
        with_peak(&mut a.series, (10, 100, peak_event));
        let b = image(1, &[(5, 40)], 30);
        let p = peak(&[a, b], 2);
        assert_eq!((p.bytes, p.mono_ns), (140, 10));
        assert_eq!(p.by_image, vec![100, 40]);
        assert_eq!(p.by_image_event, vec![Some(peak_event), Some(here(5))]);
        // A series without events (an aggregated capture's) names none: the moment is taken
        // by time.
        let mut c = image(0, &[(5, 40)], 30);
        c.series[0].2 = 0;
        assert_eq!(peak(&[c], 1).by_image_event, vec![None]);
    }

    #[test]
    fn the_combined_peak_is_the_highest_sum_at_one_moment() {
        // A peaks at 100 (t 10..20), B at 80 (t 30..40): apart, the highest sum is A's 100
        // plus B's 5; together at t 50..60, 60 + 70.
        let a = image(0, &[(0, 0), (10, 100), (20, 10), (50, 60), (60, 0)], 70);
        let b = image(1, &[(0, 5), (30, 80), (40, 5), (55, 70), (65, 0)], 70);
        let p = peak(&[a, b], 2);
        assert_eq!(p.bytes, 130);
        assert_eq!(p.mono_ns, 55);
        assert_eq!(p.by_process, vec![(1, 70), (0, 60)]);
    }

    #[test]
    fn an_ended_image_holds_nothing() {
        // A ends at 20 holding 100: B's 90 at 30 is alone.
        let a = image(0, &[(0, 100)], 20);
        let b = image(1, &[(30, 90)], 40);
        let p = peak(&[a, b], 2);
        assert_eq!(p.bytes, 100);
        assert_eq!(p.by_process, vec![(0, 100)]);
        // Two images of one process (an exec) add up under it.
        let c = image(0, &[(0, 10)], 50);
        let d = image(0, &[(5, 20)], 50);
        let p = peak(&[c, d], 1);
        assert_eq!((p.bytes, p.by_process), (30, vec![(0, 30)]));
    }
}
