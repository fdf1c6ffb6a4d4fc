//! Memory pressure episodes: a guest starts dropping page cache or swapping, the host
//! starts swapping guest RAM.
//!
//! The simulator logs only the onset of an episode (activity after a minute without).
//! What the episode did is in the samples. Reclaim is not sampled itself, so a reclaim
//! episode is taken to last while the page cache keeps falling — until a minute passes
//! without a new low — and is told by the cache before it, its low point, and the
//! refault rate meanwhile (the guest re-reading what it dropped). A swap episode lasts
//! until a minute without swap-out, and is told by its volume out and back in, its
//! peak rate and the most swap it had in use.

use crate::balloon::PAGE;
use crate::metrics::{Event, EventKind, HostSample, VmSample};

use super::format::{clock, rate, size, size_change};
use super::run::Run;
use super::Item;

/// Quiet time after which a swap episode is over (the simulator's episode gap).
const QUIET_S: f64 = 60.0;

pub(super) fn items(run: &Run) -> Vec<Item> {
    run.events()
        .filter_map(|(seq, e)| match e.kind {
            EventKind::ReclaimCache => Some(reclaim(run, seq, e)),
            EventKind::SwapOut => Some(guest_swap(run, seq, e)),
            EventKind::HostSwapOut => Some(host_swap(run, seq, e)),
            _ => None,
        })
        .collect()
}

/// `page cache reclaim starts, 820 MiB in the first second; cache 3.8 → 0.2 GiB by
/// 00:51:20; refaults up to 12 MiB/s`.
fn reclaim(run: &Run, seq: usize, e: &Event) -> Item {
    let mut body = format!(
        "page cache reclaim starts, {} in the first second",
        size(e.value.unsigned_abs())
    );
    let before = run.vm_before(e.vmid, e.t_s);
    let end = run.next_of(seq, e.vmid, EventKind::ReclaimCache);
    let samples = falling(
        run.vm_between(e.vmid, e.t_s, end),
        before.map(|s| s.guest_cached_bytes),
    );
    let low = samples.iter().min_by_key(|s| s.guest_cached_bytes);
    if let (Some(before), Some(low)) = (before, low) {
        let (a, b) = (before.guest_cached_bytes, low.guest_cached_bytes);
        if a >> 20 > b >> 20 {
            body.push_str(&format!(
                "; cache {} by {}",
                size_change(a, b),
                clock(low.t_s)
            ));
        }
    }
    let mut prev = before.map(|s| s.t_s);
    let mut peak: Option<(u64, f64)> = None;
    for s in samples {
        let span = run.sample_span(prev, s.t_s);
        prev = Some(s.t_s);
        let bytes = s.cache_refault_pages * PAGE;
        if bytes > 0 && peak.is_none_or(|(b, d)| bytes as f64 / span > b as f64 / d) {
            peak = Some((bytes, span));
        }
    }
    if let Some((bytes, span)) = peak {
        body.push_str(&format!("; refaults up to {}", rate(bytes, span)));
    }
    Item::vm(e.t_s, seq, "reclaim", e.vmid, body)
}

/// The samples of a reclaim episode: from its onset until a minute without a new low
/// of the page cache (`start` is the cache before the onset).
fn falling<'s>(samples: &'s [&'s VmSample], start: Option<u64>) -> &'s [&'s VmSample] {
    let mut low = start.unwrap_or(u64::MAX);
    let mut low_t = samples.first().map_or(0.0, |s| s.t_s);
    for (i, s) in samples.iter().enumerate() {
        if s.guest_cached_bytes < low {
            low = s.guest_cached_bytes;
            low_t = s.t_s;
        } else if s.t_s - low_t >= QUIET_S {
            return &samples[..i];
        }
    }
    samples
}

/// One sample as the swap narration reads it, in bytes.
struct Point {
    t: f64,
    /// Seconds the sample stands for.
    span: f64,
    out: u64,
    back: u64,
    used: u64,
}

/// The samples of a swap episode: from its onset to the last sample with swap-out
/// before a minute without; empty if none swapped out.
fn episode(points: &[Point]) -> &[Point] {
    let mut end = 0;
    for (i, p) in points.iter().enumerate() {
        if end > 0 && p.t - points[end - 1].t > QUIET_S {
            break;
        }
        if p.out > 0 {
            end = i + 1;
        }
    }
    &points[..end]
}

/// `; 1.0 GiB out and 200 MiB back in by 00:26:40, peak 44 MiB/s; up to 1.0 GiB of
/// 4.0 GiB swap in use`.
fn swap_figures(points: &[Point], swap_total: Option<u64>) -> String {
    let ep = episode(points);
    let Some(last) = ep.last() else {
        return String::new();
    };
    let out: u64 = ep.iter().map(|p| p.out).sum();
    let back: u64 = ep.iter().map(|p| p.back).sum();
    let peak = ep
        .iter()
        .max_by(|a, b| (a.out as f64 / a.span).total_cmp(&(b.out as f64 / b.span)))
        .map_or(String::new(), |p| rate(p.out, p.span));
    let used = ep.iter().map(|p| p.used).max().unwrap_or(0);
    let back = if back > 0 {
        format!(" and {} back in", size(back))
    } else {
        String::new()
    };
    let of = swap_total.map_or(String::new(), |t| format!(" of {}", size(t)));
    format!(
        "; {} out{back} by {}, peak {peak}; up to {}{of} swap in use",
        size(out),
        clock(last.t),
        size(used)
    )
}

/// A swap episode's samples as points: `fields` gives (time, pages out, pages in, bytes
/// in use) of a guest's or the host's sample; `prev` is the sample time before the first.
fn swap_points<'s, S: 's>(
    run: &Run,
    mut prev: Option<f64>,
    samples: impl Iterator<Item = &'s S>,
    fields: impl Fn(&S) -> (f64, u64, u64, u64),
) -> Vec<Point> {
    samples
        .map(|s| {
            let (t, out, back, used) = fields(s);
            let span = run.sample_span(prev, t);
            prev = Some(t);
            Point {
                t,
                span,
                out: out * PAGE,
                back: back * PAGE,
                used,
            }
        })
        .collect()
}

/// `swap-out starts, 256 MiB in the first second; 1.0 GiB out by 00:26:40, …`.
fn guest_swap(run: &Run, seq: usize, e: &Event) -> Item {
    let end = run.next_of(seq, e.vmid, EventKind::SwapOut);
    let prev = run.vm_before(e.vmid, e.t_s).map(|s| s.t_s);
    let points = swap_points(
        run,
        prev,
        run.vm_between(e.vmid, e.t_s, end).iter().copied(),
        |s: &VmSample| {
            (
                s.t_s,
                s.swap_out_pages,
                s.swap_in_pages,
                s.guest_swap_used_bytes,
            )
        },
    );
    let body = format!(
        "swap-out starts, {} in the first second{}",
        size(e.value.unsigned_abs()),
        swap_figures(&points, run.config(e.vmid).map(|c| c.swap))
    );
    Item::vm(e.t_s, seq, "swap", e.vmid, body)
}

/// The host swapping guest RAM: double paging, the guests stall on the host's disk.
fn host_swap(run: &Run, seq: usize, e: &Event) -> Item {
    let end = run.next_of(seq, 0, EventKind::HostSwapOut);
    let prev = run.host_before(e.t_s).map(|s| s.t_s);
    let points = swap_points(
        run,
        prev,
        run.host_between(e.t_s, end).iter(),
        |s: &HostSample| {
            (
                s.t_s,
                s.host_swap_out_pages,
                s.host_swap_in_pages,
                s.swap_used_bytes,
            )
        },
    );
    let total = run.result.host.first().map(|s| s.swap_total_bytes);
    let body = format!(
        "swap-out of guest RAM starts, {} in the first second{}",
        size(e.value.unsigned_abs()),
        swap_figures(&points, total)
    );
    Item::host(e.t_s, seq, "host swap", "host", body)
}
