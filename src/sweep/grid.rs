//! Grid points: the scenario tree with one value of each parameter put in, written
//! back as YAML and read by the normal loader, so that each point is checked exactly
//! like a scenario file.
//!
//! The loader's problems for a point are traced back to the sweep: a problem at a
//! swept field (or inside it) is reported at the line of the value that caused it, a
//! problem elsewhere (a rule spanning keys) at its own line; both name the grid point.
//! A bad value appears in many grid points; its problem is reported once, with the
//! first point and how many more there are.

use std::path::Path;

use rayon::prelude::*;

use super::definition::Swept;
use super::located::{Node, Value};
use super::{emit, Definition, Problems};
use crate::scenario::{self, Problem, Scenario};

/// The scenario of each grid point, in grid order; `None` after reporting problems.
pub(super) fn load_points(
    p: &mut Problems,
    tree: &Node,
    swept: &[Swept],
    def: &Definition,
    base_dir: &Path,
) -> Option<Vec<Scenario>> {
    let loaded: Vec<Result<Scenario, Vec<Problem>>> = (0..def.grid_points())
        .into_par_iter()
        .map(|point| {
            let text = point_text(tree, swept, &def.coordinates(point));
            scenario::parse(&text, &p.file, base_dir).map_err(|e| e.problems().to_vec())
        })
        .collect();
    let mut seen: Vec<Seen> = Vec::new();
    let mut points = Vec::new();
    for (point, result) in loaded.into_iter().enumerate() {
        match result {
            Ok(sc) => points.push(sc),
            Err(problems) => {
                for problem in problems {
                    let problem = traced(problem, swept, &def.coordinates(point));
                    match seen.iter_mut().find(|s| s.problem == problem) {
                        Some(s) => s.more += 1,
                        None => seen.push(Seen {
                            problem,
                            point,
                            more: 0,
                        }),
                    }
                }
            }
        }
    }
    let ok = seen.is_empty();
    for s in seen {
        let more = match s.more {
            0 => String::new(),
            1 => ", and 1 more point".to_string(),
            n => format!(", and {n} more points"),
        };
        let mut problem = s.problem;
        let point = def.describe_point(s.point);
        problem.message += &format!(" (at sweep point {point}{more})");
        p.list.push(problem);
    }
    ok.then_some(points)
}

/// A problem as reported, the first grid point that had it and how many more did.
struct Seen {
    problem: Problem,
    point: usize,
    more: usize,
}

/// The scenario text of the grid point at `coordinates` (value index per parameter).
fn point_text(tree: &Node, swept: &[Swept], coordinates: &[usize]) -> String {
    let mut tree = tree.clone();
    for (s, &i) in swept.iter().zip(coordinates) {
        s.target.apply(&mut tree, &s.values[i]);
    }
    // After applying: the targets' positions were taken with the section in place.
    if let Value::Map(entries) = &mut tree.value {
        entries.retain(|(key, _)| key != "sweep");
    }
    emit::emit(&tree)
}

/// Moves a problem at (or inside) a swept field to the line of the sweep value that
/// set it, and a problem with a key the sweep added above its value (a misspelt key)
/// to the parameter's line.
fn traced(mut problem: Problem, swept: &[Swept], coordinates: &[usize]) -> Problem {
    let value = swept
        .iter()
        .zip(coordinates)
        .find(|(s, _)| s.target.contains(&problem.path));
    if let Some((s, &i)) = value {
        problem.line = Some(s.values[i].line);
    } else if let Some(s) = swept.iter().find(|s| s.target.adds(&problem.path)) {
        problem.line = Some(s.line);
    }
    problem
}
