//! Downsampling for drawing only (the CSVs keep every sample).
//!
//! A 24 h run sampled every 10 s has 8640 points per series, several times the pixel
//! columns of a plot; drawing them all costs time and bloats the SVG without showing
//! more. Samples are split into at most `buckets` consecutive groups by integer
//! arithmetic, so the result depends on the data alone.

use std::ops::Range;

/// `(x, y)` in display units.
pub(super) type Points = Vec<(f64, f64)>;

/// Lines: the first, minimum, maximum and last point of each bucket, in time order
/// (the "M4" reduction), so spikes, dips and the ends of the series stay exact; then
/// interior points of flat stretches are dropped (a constant line becomes two points).
pub(super) fn envelope(points: &[(f64, f64)], buckets: usize) -> Points {
    let mut out = Vec::new();
    for range in bucket_ranges(points.len(), buckets) {
        let bucket = &points[range];
        let (lo, hi) = extremes(bucket);
        let mut picks = vec![0, lo, hi, bucket.len() - 1];
        picks.sort_unstable();
        picks.dedup();
        out.extend(picks.into_iter().map(|i| bucket[i]));
    }
    drop_flat(out)
}

/// Stacked areas: the mean of each bucket. Means of a stack's layers add up like the
/// layers do, so the stack stays consistent.
pub(super) fn means(points: &[(f64, f64)], buckets: usize) -> Points {
    bucket_ranges(points.len(), buckets)
        .map(|range| {
            let n = range.len() as f64;
            let (sx, sy) = points[range]
                .iter()
                .fold((0.0, 0.0), |(sx, sy), &(x, y)| (sx + x, sy + y));
            (sx / n, sy / n)
        })
        .collect()
}

/// Largest y of any point, 0 for none.
pub(super) fn max_y<'a>(lines: impl IntoIterator<Item = &'a Points>) -> f64 {
    lines
        .into_iter()
        .flatten()
        .map(|&(_, y)| y)
        .fold(0.0, f64::max)
}

/// Non-empty, consecutive index ranges covering `0..len`, at most `buckets` of them.
fn bucket_ranges(len: usize, buckets: usize) -> impl Iterator<Item = Range<usize>> {
    let n = buckets.clamp(1, len.max(1));
    (0..n)
        .map(move |i| (i * len / n)..((i + 1) * len / n))
        .filter(|r| !r.is_empty())
}

/// Indices of the first minimum and first maximum y.
fn extremes(bucket: &[(f64, f64)]) -> (usize, usize) {
    let (mut lo, mut hi) = (0, 0);
    for (i, &(_, y)) in bucket.iter().enumerate() {
        if y < bucket[lo].1 {
            lo = i;
        }
        if y > bucket[hi].1 {
            hi = i;
        }
    }
    (lo, hi)
}

fn drop_flat(points: Points) -> Points {
    let last = points.len().saturating_sub(1);
    (0..points.len())
        .filter(|&i| {
            i == 0 || i == last || points[i - 1].1 != points[i].1 || points[i + 1].1 != points[i].1
        })
        .map(|i| points[i])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Points {
        (0..n).map(|i| (i as f64, (i % 7) as f64)).collect()
    }

    #[test]
    fn buckets_cover_everything_once() {
        for (len, n) in [(0, 5), (1, 5), (10, 3), (8640, 1200), (5, 5)] {
            let ranges: Vec<_> = bucket_ranges(len, n).collect();
            assert!(ranges.len() <= n.max(1));
            let covered: Vec<usize> = ranges.into_iter().flatten().collect();
            assert_eq!(covered, (0..len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn envelope_keeps_extremes_and_bounds_size() {
        let points = ramp(8640);
        let out = envelope(&points, 100);
        assert!(out.len() <= 400);
        assert_eq!(out.first(), points.first());
        assert_eq!(out.last(), points.last());
        assert_eq!(max_y([&out]), 6.0);
        assert!(out.iter().any(|&(_, y)| y == 0.0));
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn flat_line_becomes_two_points() {
        let points: Points = (0..1000).map(|i| (i as f64, 3.0)).collect();
        assert_eq!(envelope(&points, 50), vec![(0.0, 3.0), (999.0, 3.0)]);
    }

    #[test]
    fn short_series_pass_through() {
        assert!(envelope(&[], 10).is_empty());
        assert!(means(&[], 10).is_empty());
        assert_eq!(envelope(&[(1.0, 2.0)], 10), vec![(1.0, 2.0)]);
        assert_eq!(means(&[(1.0, 2.0), (3.0, 4.0)], 1), vec![(2.0, 3.0)]);
    }
}
