//! A family's time buckets for the interactive page: one grid over the family's whole run (the
//! root's start to the last process's end, on CLOCK_MONOTONIC), and in each bucket the moment
//! the sum of the processes' live heaps was highest. Every capture is then read with its
//! snapshots at those moments ([`crate::analysis::BucketMoments`]), so that what the page shows
//! at a bucket adds up across processes at one instant.

use super::combined::{steps, Image};
use crate::analysis::BucketMoments;

/// The grid and what each image held at each bucket's moment.
pub struct Grid {
    pub moments: BucketMoments,
    /// Each bucket's highest sum of the images' live heaps (the sum of `held` at its moment).
    pub hwm: Vec<u64>,
    /// By image, by bucket: its live heap at the bucket's moment (0 before it started and from
    /// its end on).
    pub held: Vec<Vec<u64>>,
}

/// `n` buckets from `origin_ns` to `end_ns` over `images`.
pub fn grid(images: &[Image], origin_ns: u64, end_ns: u64, n: usize) -> Grid {
    let n = n.max(1);
    let width = (end_ns.saturating_sub(origin_ns) + 1)
        .div_ceil(n as u64)
        .max(1);
    let bucket_of = |t: u64| ((t.saturating_sub(origin_ns) / width) as usize).min(n - 1);
    let start_of = |b: usize| origin_ns + b as u64 * width;
    // (sum, moment) of each bucket: the highest sum reached in it, at first its start's.
    let mut best: Vec<(u64, u64)> = Vec::with_capacity(n);
    let mut current = vec![0u64; images.len()];
    let mut sum = 0u64;
    for (t, i, v, _) in steps(images) {
        let b = bucket_of(t);
        while best.len() <= b {
            let start = start_of(best.len());
            best.push((sum, start));
        }
        sum = sum - current[i] + v;
        current[i] = v;
        if sum > best[b].0 {
            best[b] = (sum, t);
        }
    }
    while best.len() < n {
        let start = start_of(best.len());
        best.push((sum, start));
    }
    let moments: Vec<u64> = best.iter().map(|b| b.1).collect();
    let held: Vec<Vec<u64>> = images
        .iter()
        .map(|im| moments.iter().map(|&m| live_at(im, m)).collect())
        .collect();
    let hwm = (0..n).map(|b| held.iter().map(|h| h[b]).sum()).collect();
    Grid {
        moments: BucketMoments {
            start_mono_ns: origin_ns,
            width_ns: width,
            moments_mono_ns: moments,
        },
        hwm,
        held,
    }
}

/// An image's live heap at `at`: its last step at or before it; nothing from its end on.
pub fn live_at(image: &Image, at: u64) -> u64 {
    if at >= end_of(image) {
        return 0;
    }
    let i = image.series.partition_point(|p| p.0 <= at);
    if i == 0 {
        0
    } else {
        image.series[i - 1].1
    }
}

/// The first bucket whose moment is at or after the image's end (its heap is gone there).
pub fn end_bucket(image: &Image, moments: &[u64]) -> usize {
    let end = end_of(image);
    moments.partition_point(|&m| m < end)
}

/// When the image's heap is gone: its end, or its last step if that is later (as
/// [`steps`] orders them).
fn end_of(image: &Image) -> u64 {
    image
        .end_mono_ns
        .max(image.series.last().map_or(0, |p| p.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(process: usize, series: &[(u64, u64)], end: u64) -> Image {
        Image {
            process,
            start_mono_ns: series.first().map_or(0, |p| p.0),
            end_mono_ns: end,
            series: series.iter().map(|&(t, v)| (t, v, t)).collect(),
            ..Image::default()
        }
    }

    #[test]
    fn each_bucket_holds_the_highest_sum_and_what_each_image_held_then() {
        // Buckets of 10 ns from 0 to 39. A holds 100 over 2..12, B 50 from 5 and 80 from 25.
        let a = image(0, &[(2, 100), (12, 0)], 30);
        let b = image(1, &[(5, 50), (25, 80)], 40);
        let g = grid(&[a.clone(), b.clone()], 0, 39, 4);
        assert_eq!(g.moments.width_ns, 10);
        assert_eq!(g.moments.moments_mono_ns, vec![5, 10, 25, 30]);
        assert_eq!(g.hwm, vec![150, 150, 80, 80]);
        assert_eq!(g.held[0], vec![100, 100, 0, 0]);
        assert_eq!(g.held[1], vec![50, 50, 80, 80]);
        assert_eq!(end_bucket(&a, &g.moments.moments_mono_ns), 3);
        assert_eq!(end_bucket(&b, &g.moments.moments_mono_ns), 4);
    }
}
