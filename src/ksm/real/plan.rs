//! Checking a workload before anything on the host changes, and laying out each
//! process's mapping.

use crate::ksm::workload::{Process, Segment, Workload};

/// The longest run the real runner accepts (FORMAT.md: `duration_s` ≤ 120).
pub(super) const MAX_DURATION_S: f64 = 120.0;

/// How the pages of one run of a mapping are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fill {
    /// Page `i` of the run holds content `base + (i mod k)` (a template is `k` = 1).
    Numbered {
        base: u64,
        k: u64,
    },
    Unique,
    Zero,
    Untouched,
}

/// `pages` pages from page `start` of the mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Run {
    pub start: u64,
    pub pages: u64,
    pub fill: Fill,
}

/// What one page held once laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Original {
    Numbered(u64),
    Unique,
    Zero,
    Untouched,
}

/// A process's mapping: its segments back to back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Layout {
    runs: Vec<Run>,
    pages: u64,
}

impl Layout {
    /// Expands the `pages`/`shared_fraction`/`template` shorthand: `round(fraction ×
    /// pages)` template pages, then the rest unique.
    pub(super) fn of(p: &Process) -> Result<Layout, String> {
        let shorthand = p.pages.is_some() || p.shared_fraction.is_some() || p.template.is_some();
        let segments: Vec<Segment> = if p.segments.is_empty() {
            let Some(pages) = p.pages else {
                return Err("needs `segments` or `pages`".into());
            };
            let fraction = p.shared_fraction.unwrap_or(0.0);
            if !(0.0..=1.0).contains(&fraction) {
                return Err(format!("shared_fraction {fraction} is not within 0..1"));
            }
            let shared = (pages as f64 * fraction).round() as u64;
            match (shared, p.template) {
                (0, _) => vec![Segment::Unique { pages }],
                (_, None) => return Err("shared_fraction > 0 needs a `template`".into()),
                (shared, Some(id)) => vec![
                    Segment::Template { id, pages: shared },
                    Segment::Unique {
                        pages: pages - shared,
                    },
                ],
            }
        } else if shorthand {
            return Err("`segments` and the `pages` shorthand exclude each other".into());
        } else {
            p.segments.clone()
        };
        let mut runs = Vec::with_capacity(segments.len());
        let mut start = 0u64;
        for s in segments {
            let (pages, fill) = match s {
                Segment::Template { id, pages } => (pages, Fill::Numbered { base: id, k: 1 }),
                Segment::Distinct { k: 0, .. } => {
                    return Err("a distinct segment needs k ≥ 1".into())
                }
                Segment::Distinct { k, base, pages } => (pages, Fill::Numbered { base, k }),
                Segment::Unique { pages } => (pages, Fill::Unique),
                Segment::Zero { pages } => (pages, Fill::Zero),
                Segment::Untouched { pages } => (pages, Fill::Untouched),
            };
            runs.push(Run { start, pages, fill });
            start = start
                .checked_add(pages)
                .ok_or_else(|| "too many pages".to_string())?;
        }
        if start == 0 {
            return Err("has no pages".into());
        }
        Ok(Layout { runs, pages: start })
    }

    pub(super) fn pages(&self) -> u64 {
        self.pages
    }

    /// Pages that are faulted in (all but `untouched` ones).
    pub(super) fn touched(&self) -> u64 {
        self.runs
            .iter()
            .filter(|r| r.fill != Fill::Untouched)
            .map(|r| r.pages)
            .sum()
    }

    pub(super) fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The original content of page `i` (< [`Layout::pages`]).
    pub(super) fn original(&self, i: u64) -> Original {
        let run = self
            .runs
            .iter()
            .find(|r| i >= r.start && i - r.start < r.pages)
            .expect("page index within the mapping");
        match run.fill {
            Fill::Numbered { base, k } => {
                Original::Numbered(base.wrapping_add((i - run.start) % k))
            }
            Fill::Unique => Original::Unique,
            Fill::Zero => Original::Zero,
            Fill::Untouched => Original::Untouched,
        }
    }
}

/// Checks everything the real runner needs from a workload and lays out every
/// process. Returns all problems at once, `key: problem`, separated by `; `.
pub(super) fn check(w: &Workload) -> Result<Vec<Layout>, String> {
    let mut problems = Vec::new();
    if !(w.duration_s.is_finite() && w.duration_s > 0.0 && w.duration_s <= MAX_DURATION_S) {
        problems.push(format!(
            "duration_s: {} is not within (0, {MAX_DURATION_S}]",
            w.duration_s
        ));
    }
    if w.sample_ms == 0 {
        problems.push("sample_ms: must be ≥ 1".into());
    }
    if w.poll_ms == 0 {
        problems.push("poll_ms: must be ≥ 1".into());
    }
    check_settings(w, &mut problems);
    if w.processes.is_empty() {
        problems.push("processes: none".into());
    }
    let mut layouts = Vec::with_capacity(w.processes.len());
    for (i, p) in w.processes.iter().enumerate() {
        let key = format!("processes[{i}]");
        if p.name.is_empty() {
            problems.push(format!("{key}.name: empty"));
        } else if w.processes[..i].iter().any(|q| q.name == p.name) {
            problems.push(format!("{key}.name: `{}` used twice", p.name));
        }
        for (what, t) in [
            ("madvise_at_s", Some(p.madvise_at_s)),
            ("unmerge_at_s", p.unmerge_at_s),
            ("exit_at_s", p.exit_at_s),
        ] {
            if let Some(t) = t.filter(|t| !(t.is_finite() && *t >= 0.0)) {
                problems.push(format!("{key}.{what}: {t} is not a time ≥ 0"));
            }
        }
        match Layout::of(p) {
            Ok(layout) => {
                check_writers(&key, p, layout.pages(), &mut problems);
                layouts.push(layout);
            }
            Err(e) => problems.push(format!("{key}: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(layouts)
    } else {
        Err(problems.join("; "))
    }
}

fn check_settings(w: &Workload, problems: &mut Vec<String>) {
    let s = &w.ksm;
    for (key, v) in [
        ("smart_scan", s.smart_scan),
        ("use_zero_pages", s.use_zero_pages),
        ("merge_across_nodes", s.merge_across_nodes),
    ] {
        if let Some(v) = v.filter(|v| *v > 1) {
            problems.push(format!("ksm.{key}: {v} is not 0 or 1"));
        }
    }
    if let Some(mode) = s
        .advisor_mode
        .as_deref()
        .filter(|m| !["none", "scan-time"].contains(m))
    {
        problems.push(format!(
            "ksm.advisor_mode: `{mode}` is not `none` or `scan-time`"
        ));
    }
}

fn check_writers(key: &str, p: &Process, pages: u64, problems: &mut Vec<String>) {
    for (j, wr) in p.writers.iter().enumerate() {
        let key = format!("{key}.writers[{j}]");
        let (a, b) = wr.range;
        if !(a < b && b <= pages) {
            problems.push(format!(
                "{key}.range: [{a}, {b}) is not a non-empty range within the {pages} pages"
            ));
        }
        if wr.pages_per_tick == 0 {
            problems.push(format!("{key}.pages_per_tick: must be ≥ 1"));
        }
        if wr.every_ms == 0 {
            problems.push(format!("{key}.every_ms: must be ≥ 1"));
        }
        if !(wr.start_s.is_finite() && wr.start_s >= 0.0) {
            problems.push(format!("{key}.start_s: {} is not a time ≥ 0", wr.start_s));
        }
        if let Some(stop) = wr.stop_s.filter(|s| !(s.is_finite() && *s >= wr.start_s)) {
            problems.push(format!("{key}.stop_s: {stop} is before start_s"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(json: &str) -> Workload {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn segments_are_laid_out_back_to_back() {
        let w = workload(
            r#"{"name": "x", "processes": [{"name": "p", "segments": [
                {"kind": "template", "id": 1, "pages": 3},
                {"kind": "distinct", "k": 2, "base": 50, "pages": 3},
                {"kind": "zero", "pages": 1}, {"kind": "unique", "pages": 1},
                {"kind": "untouched", "pages": 2}]}]}"#,
        );
        let l = &check(&w).unwrap()[0];
        assert_eq!(l.pages(), 10);
        assert_eq!(l.touched(), 8);
        let originals: Vec<Original> = (0..10).map(|i| l.original(i)).collect();
        use Original::*;
        assert_eq!(
            originals,
            [
                Numbered(1),
                Numbered(1),
                Numbered(1),
                Numbered(50),
                Numbered(51),
                Numbered(50),
                Zero,
                Unique,
                Untouched,
                Untouched
            ]
        );
    }

    #[test]
    fn the_shorthand_is_template_pages_then_unique_ones() {
        let w = workload(
            r#"{"name": "x", "processes": [
                {"name": "a", "pages": 10, "shared_fraction": 0.25, "template": 7},
                {"name": "b", "pages": 4}]}"#,
        );
        let l = check(&w).unwrap();
        assert_eq!(
            l[0].runs(),
            [
                Run {
                    start: 0,
                    pages: 3,
                    fill: Fill::Numbered { base: 7, k: 1 }
                },
                Run {
                    start: 3,
                    pages: 7,
                    fill: Fill::Unique
                }
            ]
        );
        assert_eq!(
            l[1].runs(),
            [Run {
                start: 0,
                pages: 4,
                fill: Fill::Unique
            }]
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let w = workload(
            r#"{"name": "x", "duration_s": 500, "sample_ms": 0,
                "ksm": {"smart_scan": 2, "advisor_mode": "fast"},
                "processes": [
                  {"name": "p", "segments": [{"kind": "unique", "pages": 10}],
                   "writers": [{"range": [5, 20], "pages_per_tick": 0, "every_ms": 5, "mode": "byte"}]},
                  {"name": "p", "pages": 10, "shared_fraction": 0.5},
                  {"name": "q", "segments": [], "exit_at_s": -1}]}"#,
        );
        let err = check(&w).unwrap_err();
        for needle in [
            "duration_s: 500",
            "sample_ms",
            "ksm.smart_scan: 2",
            "ksm.advisor_mode: `fast`",
            "processes[0].writers[0].range: [5, 20)",
            "processes[0].writers[0].pages_per_tick",
            "processes[1].name: `p` used twice",
            "processes[1]: shared_fraction > 0 needs a `template`",
            "processes[2].exit_at_s: -1",
            "processes[2]: needs `segments` or `pages`",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
    }

    #[test]
    fn every_committed_workload_passes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ksm-real");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.ends_with(".meta.json") {
                let w: Workload = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                check(&w).unwrap_or_else(|e| panic!("{name}: {e}"));
                n += 1;
            }
        }
        assert!(n >= 8);
    }
}
