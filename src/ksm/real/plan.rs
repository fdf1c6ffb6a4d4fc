//! Checking a workload before anything on the host changes, and laying out each
//! process's mapping.

use crate::ksm::workload::{validate, Layout, Problem, Workload};

/// The longest run the real runner accepts (FORMAT.md: `duration_s` ≤ 120).
pub(super) const MAX_DURATION_S: f64 = 120.0;

/// Checks a workload for a real run — [`validate`] (the simulator's checks) plus what
/// only a real run needs — and lays out every process. Returns all problems at once,
/// `key: problem`, separated by `; `.
pub(super) fn check(w: &Workload) -> Result<Vec<Layout>, String> {
    let mut problems = validate(w);
    if w.duration_s.is_finite() && w.duration_s > MAX_DURATION_S {
        // In key order, as `validate` lists them: after `name` and `duration_s`.
        let at = problems
            .iter()
            .take_while(|p| p.key == "name" || p.key == "duration_s")
            .count();
        problems.insert(
            at,
            Problem {
                key: "duration_s".into(),
                message: format!(
                    "{} s is longer than a real run may last ({MAX_DURATION_S} s)",
                    w.duration_s
                ),
            },
        );
    }
    if problems.is_empty() {
        Ok(w.processes.iter().map(Layout::of).collect())
    } else {
        Err(problems
            .iter()
            .map(Problem::to_string)
            .collect::<Vec<_>>()
            .join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ksm::workload::{Fill, Original, Run};

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
            "processes[1].template: missing (needed with shared_fraction)",
            "processes[2].exit_at_s: -1",
            "processes[2].segments: no pages: give segments or pages",
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
