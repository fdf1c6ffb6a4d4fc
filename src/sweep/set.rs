//! One field of a scenario set to one value, for commands that choose their values as
//! they go (`memsim density` searches a VM count) instead of over a fixed grid.
//!
//! It is the grid's mechanism for a single point: the value is put into the YAML tree
//! at a path (`vms[0].count`), the tree is written back on its own lines and read by
//! the normal loader, so the value gets every check a scenario file gets, and a
//! problem it causes is reported at the line of the field it replaced.

use std::path::Path;

use super::located::{self, Value};
use super::{emit, path};
use crate::scenario::{self, Problem, Scenario, ScenarioError};

/// The scenario in `text` with the field at `field` (a sweep parameter path) set to
/// `value` (YAML), loaded; a `sweep:` section in `text` is left out, as for a grid
/// point.
pub fn load_with(
    text: &str,
    file: &str,
    base_dir: &Path,
    field: &str,
    value: &str,
) -> Result<Scenario, ScenarioError> {
    let problem = |message: String| {
        ScenarioError::new(vec![Problem {
            file: file.to_string(),
            line: None,
            path: field.to_string(),
            message,
        }])
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Ok(Some(mut tree)) = located::parse(text) else {
        // The loader reports the syntax error or the empty file.
        return scenario::parse(text, file, base_dir);
    };
    let target = path::resolve(&tree, field).map_err(problem)?;
    let value = match located::parse(value) {
        Ok(Some(node)) => node,
        _ => return Err(problem(format!("{value:?} is not a YAML value"))),
    };
    target.apply(&mut tree, &value);
    if let Value::Map(entries) = &mut tree.value {
        entries.retain(|(key, _)| key != "sweep");
    }
    scenario::parse(&emit::emit(&tree), file, base_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
duration: 10m
host: {memory: 16GiB}
vms:
  - vmid: 100
    name: web
    count: 2
    memory: 1GiB
  - {vmid: 110, name: db, memory: 2GiB}
sweep:
  parameters:
    vms[name=web].count: [1, 2]
";

    fn load(value: &str) -> Result<Scenario, ScenarioError> {
        load_with(TEXT, "s.yaml", Path::new("."), "vms[0].count", value)
    }

    #[test]
    fn the_value_reaches_the_scenario() {
        let names: Vec<String> = load("4").unwrap().vms.into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["web-1", "web-2", "web-3", "web-4", "db"]);
    }

    #[test]
    fn the_loader_checks_the_value_at_the_fields_line() {
        // vmids 100..=110 reach the db's 110.
        let err = load("11").unwrap_err().to_string();
        assert!(
            err.starts_with("s.yaml:8: vms[1].vmid: vmid 110 is already used"),
            "{err}"
        );
        let err = load("lots").unwrap_err().to_string();
        assert_eq!(
            err,
            "s.yaml:6: vms[0].count: expected an integer, found \"lots\""
        );
    }

    #[test]
    fn a_path_that_names_nothing_says_why() {
        let err = load_with(TEXT, "s.yaml", Path::new("."), "vms[5].count", "1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "s.yaml: vms[5].count: vms has 2 items (indices from 0): there is no [5]"
        );
    }
}
