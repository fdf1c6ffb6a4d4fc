//! Every problem a scenario file has, reported at once.
//!
//! A user who fixes one typo, reruns, and meets the next one after a minute of waiting
//! stops trusting the tool; so the loader keeps going after a problem and collects all of
//! them. Each problem names the file, the line and the key path (`vms[2].balloon`), the
//! three things needed to find and fix it without reading the loader's source.

use std::fmt;

/// One thing wrong with a scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The scenario file as given to [`crate::scenario::load`] / [`crate::scenario::parse`].
    pub file: String,
    /// 1-based line; `None` when the problem concerns the whole file (it cannot be read).
    pub line: Option<usize>,
    /// Key path such as `vms[2].workload.processes[0].anon`, indices from 0; empty for
    /// problems of the file as a whole (empty file, YAML syntax).
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    /// `file:line: path: message`, leaving out the parts that are absent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A scenario that could not be loaded, with all its problems, sorted by line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    problems: Vec<Problem>,
}

impl ScenarioError {
    /// Sorts by line (stable, so problems of one line keep their order) and drops
    /// exact repeats.
    pub(crate) fn new(mut problems: Vec<Problem>) -> ScenarioError {
        problems.sort_by_key(|p| p.line);
        problems.dedup();
        ScenarioError { problems }
    }

    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for ScenarioError {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}
