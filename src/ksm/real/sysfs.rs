//! `/sys/kernel/mm/ksm`: reading counters, and changing the tunables for one run and
//! putting them back afterwards.
//!
//! The directory is a parameter so that the save/apply/restore logic can be tested on a
//! fake directory of plain files.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::RealError;
use crate::ksm::workload::KsmSettings;

/// The host's KSM directory.
pub(super) const HOST_ROOT: &str = "/sys/kernel/mm/ksm";

/// Every tunable a workload may set, with the kernel's default (mm/ksm.c), in the
/// order they are applied. `advisor_mode` is handled apart: switching it resets
/// `pages_to_scan`, and `pages_to_scan` cannot be written while an advisor runs.
const TUNABLES: [(&str, &str); 12] = [
    ("pages_to_scan", "100"),
    ("sleep_millisecs", "20"),
    ("smart_scan", "1"),
    ("use_zero_pages", "0"),
    ("max_page_sharing", "256"),
    ("merge_across_nodes", "1"),
    ("stable_node_chains_prune_millisecs", "2000"),
    ("advisor_target_scan_time", "200"),
    ("advisor_min_pages_to_scan", "500"),
    ("advisor_max_pages_to_scan", "30000"),
    ("advisor_max_cpu", "70"),
    ("advisor_mode", "none"),
];

const ADVISOR: &str = "advisor_mode";

/// Counters that are all zero once everything is unmerged (`run=2` removes every
/// rmap_item and resets `full_scans`).
const UNMERGED: [&str; 6] = [
    "full_scans",
    "pages_shared",
    "pages_sharing",
    "pages_unshared",
    "pages_volatile",
    "ksm_zero_pages",
];

/// A KSM sysfs directory.
#[derive(Clone, Debug)]
pub(super) struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    pub(super) fn new(root: impl Into<PathBuf>) -> Sysfs {
        Sysfs { root: root.into() }
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// A file's value, trimmed; for `advisor_mode` (`[none] scan-time`) the selected
    /// word.
    pub(super) fn read(&self, name: &str) -> Result<String, RealError> {
        let path = self.path(name);
        let text = std::fs::read_to_string(&path).map_err(|source| RealError::Io {
            op: "reading",
            path: path.clone(),
            source,
        })?;
        let text = text.trim();
        Ok(match (text.find('['), text.find(']')) {
            (Some(a), Some(b)) if a < b => text[a + 1..b].to_string(),
            _ => text.to_string(),
        })
    }

    pub(super) fn read_u64(&self, name: &str) -> Result<u64, RealError> {
        let v = self.read(name)?;
        v.parse().map_err(|_| RealError::Parse {
            path: self.path(name),
            content: v,
        })
    }

    pub(super) fn read_i64(&self, name: &str) -> Result<i64, RealError> {
        let v = self.read(name)?;
        v.parse().map_err(|_| RealError::Parse {
            path: self.path(name),
            content: v,
        })
    }

    fn write(&self, name: &str, value: &str) -> Result<(), RealError> {
        let path = self.path(name);
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(|source| RealError::Io {
                op: "writing",
                path,
                source,
            })
    }
}

/// Which settings a run found, wrote, wrote back, and left (file name, value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsReport {
    /// Every tunable and `run` as found before the run.
    pub before: Vec<(String, String)>,
    /// The writes made to set the run up, in order (including `run`).
    pub applied: Vec<(String, String)>,
    /// The writes made afterwards to put things back, in order.
    pub restored: Vec<(String, String)>,
    /// Every tunable and `run` as read back at the end.
    pub after: Vec<(String, String)>,
}

/// The host's KSM settings changed for one run. Created by [`Session::begin`] before
/// its first write; [`Session::restore`] (or, on an error or a panic, `Drop`) writes
/// back every value found, `run` last.
pub(super) struct Session {
    ksm: Sysfs,
    before: Vec<(&'static str, String)>,
    report: SettingsReport,
    /// run=1 was written: ksmd may have merged our pages since.
    started: bool,
    done: bool,
    /// Only the process that changed the settings restores them (never a forked child).
    owner: u32,
    unmerge_timeout: Duration,
}

impl Session {
    /// Saves every setting, stops ksmd unmerging everything (`run=2`: `full_scans`
    /// restarts from 0), waits until nothing is merged, then applies `settings`. A
    /// tunable the workload leaves out is set to the kernel default so that a run does
    /// not depend on how the host was tuned (on the reference machine the defaults were
    /// also what was found); a tunable this kernel lacks is an error if the workload
    /// sets it, and skipped otherwise. Files already holding the wanted value are not
    /// written.
    pub(super) fn begin(
        ksm: Sysfs,
        settings: &KsmSettings,
        unmerge_timeout: Duration,
    ) -> Result<Session, RealError> {
        let targets = targets(&ksm, settings)?;
        let mut before = vec![("run", ksm.read("run")?)];
        for (name, _) in TUNABLES {
            if ksm.has(name) {
                before.push((name, ksm.read(name)?));
            }
        }
        let mut session = Session {
            report: SettingsReport {
                before: owned(&before),
                ..SettingsReport::default()
            },
            ksm,
            before,
            started: false,
            done: false,
            owner: std::process::id(),
            unmerge_timeout,
        };
        if session.ksm.read("run")? == "2" {
            // Writing the current value does nothing: stop first so that run=2
            // really unmerges and resets full_scans.
            session.set("run", "0")?;
        }
        session.set("run", "2")?;
        session.wait_unmerged()?;
        session.apply(&targets)?;
        Ok(session)
    }

    /// Starts ksmd (`run=1`): t = 0 of the run.
    pub(super) fn start(&mut self) -> Result<(), RealError> {
        self.started = true;
        self.set("run", "1")
    }

    pub(super) fn ksm(&self) -> &Sysfs {
        &self.ksm
    }

    /// Writes one file and records the write.
    fn set(&mut self, name: &str, value: &str) -> Result<(), RealError> {
        let log = if self.done {
            &mut self.report.restored
        } else {
            &mut self.report.applied
        };
        log.push((name.to_string(), value.to_string()));
        self.ksm.write(name, value)
    }

    fn wait_unmerged(&self) -> Result<(), RealError> {
        let deadline = Instant::now() + self.unmerge_timeout;
        loop {
            let mut left = Vec::new();
            for name in UNMERGED.iter().filter(|n| self.ksm.has(n)) {
                let v = self.ksm.read_u64(name)?;
                if v != 0 {
                    left.push(format!("{name}={v}"));
                }
            }
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RealError::Timeout(format!(
                    "KSM not unmerged {:.0} s after run=2 ({})",
                    self.unmerge_timeout.as_secs_f64(),
                    left.join(", ")
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn apply(&mut self, targets: &[(&'static str, String)]) -> Result<(), RealError> {
        let advisor = targets.iter().find(|(n, _)| *n == ADVISOR);
        // pages_to_scan can only be written with the advisor off.
        if advisor.is_some() && self.ksm.read(ADVISOR)? != "none" {
            self.set(ADVISOR, "none")?;
        }
        for (name, value) in targets.iter().filter(|(n, _)| *n != ADVISOR) {
            if self.ksm.read(name)? != *value {
                self.set(name, value)?;
            }
        }
        if let Some((_, mode)) = advisor {
            if self.ksm.read(ADVISOR)? != *mode {
                self.set(ADVISOR, mode)?;
            }
        }
        let scan_time = advisor.is_some_and(|(_, m)| m != "none");
        for (name, value) in targets {
            // Under the advisor, pages_to_scan is the advisor's.
            if scan_time && *name == "pages_to_scan" {
                continue;
            }
            let now = self.ksm.read(name)?;
            if now != *value {
                return Err(RealError::NotApplied {
                    path: self.ksm.path(name),
                    wanted: value.clone(),
                    got: now,
                });
            }
        }
        Ok(())
    }

    /// Puts every setting back as found: after a started run first `run=2` (so the
    /// dead children's rmap_items and KSM pages are gone and `max_page_sharing`,
    /// `merge_across_nodes` may be written), then the tunables, `run` last; then reads
    /// everything back. Tries every step even when one fails. Restoring `advisor_mode`
    /// = `scan-time` restarts the advisor, which sets its own `pages_to_scan`.
    pub(super) fn restore(&mut self) -> Result<SettingsReport, RealError> {
        self.done = true;
        let mut errors = Vec::new();
        if self.started && self.ksm.read("run").ok().as_deref() != Some("2") {
            if let Err(e) = self.set("run", "2").and_then(|()| self.wait_unmerged()) {
                errors.push(e.to_string());
            }
        }
        let before = self.before.clone();
        let advisor_before = before.iter().find(|(n, _)| *n == ADVISOR).map(|(_, v)| v);
        let differs = |s: &Session, name: &str, value: &str| {
            s.ksm.read(name).map_or(true, |now| now != value)
        };
        let tunables_differ = before
            .iter()
            .any(|(n, v)| *n != "run" && differs(self, n, v));
        if tunables_differ {
            if advisor_before.is_some() && differs(self, ADVISOR, "none") {
                if let Err(e) = self.set(ADVISOR, "none") {
                    errors.push(e.to_string());
                }
            }
            for (name, value) in before.iter().filter(|(n, _)| *n != "run" && *n != ADVISOR) {
                if differs(self, name, value) {
                    if let Err(e) = self.set(name, value) {
                        errors.push(e.to_string());
                    }
                }
            }
            if let Some(mode) = advisor_before {
                if differs(self, ADVISOR, mode) {
                    if let Err(e) = self.set(ADVISOR, mode) {
                        errors.push(e.to_string());
                    }
                }
            }
        }
        let run = &before[0].1;
        if differs(self, "run", run) {
            if let Err(e) = self.set("run", run) {
                errors.push(e.to_string());
            }
        }
        for (name, value) in &before {
            match self.ksm.read(name) {
                Ok(now) => {
                    let advised =
                        *name == "pages_to_scan" && advisor_before.is_some_and(|m| m != "none");
                    if now != *value && !advised {
                        errors.push(format!("{name} is {now}, was {value}"));
                    }
                    self.report.after.push((name.to_string(), now));
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        if errors.is_empty() {
            Ok(self.report.clone())
        } else {
            Err(RealError::Restore(errors.join("; ")))
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.done && std::process::id() == self.owner {
            if let Err(e) = self.restore() {
                eprintln!("memsim: {e}");
            }
        }
    }
}

fn owned(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect()
}

/// The value each tunable should have for the run, in [`TUNABLES`] order.
fn targets(ksm: &Sysfs, s: &KsmSettings) -> Result<Vec<(&'static str, String)>, RealError> {
    let explicit = |name: &str| -> Option<String> {
        let n = |v: Option<u64>| v.map(|v| v.to_string());
        let b = |v: Option<u8>| v.map(|v| v.to_string());
        match name {
            "pages_to_scan" => n(s.pages_to_scan),
            "sleep_millisecs" => n(s.sleep_millisecs),
            "smart_scan" => b(s.smart_scan),
            "use_zero_pages" => b(s.use_zero_pages),
            "max_page_sharing" => n(s.max_page_sharing),
            "merge_across_nodes" => b(s.merge_across_nodes),
            "stable_node_chains_prune_millisecs" => n(s.stable_node_chains_prune_millisecs),
            "advisor_target_scan_time" => n(s.advisor_target_scan_time),
            "advisor_min_pages_to_scan" => n(s.advisor_min_pages_to_scan),
            "advisor_max_pages_to_scan" => n(s.advisor_max_pages_to_scan),
            "advisor_max_cpu" => n(s.advisor_max_cpu),
            ADVISOR => s.advisor_mode.clone(),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (name, default) in TUNABLES {
        let value = explicit(name);
        if ksm.has(name) {
            out.push((name, value.unwrap_or_else(|| default.to_string())));
        } else if value.is_some() {
            missing.push(format!("ksm.{name}"));
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(RealError::Workload(format!(
            "{}: not supported by this kernel (no such file in {})",
            missing.join(", "),
            ksm.root.display()
        )))
    }
}

/// Whether `root` holds a KSM directory that this process may change, and nothing else
/// is merged there: the run starts with `run=2`, which would unmerge every other KSM
/// user of the host.
pub(super) fn check_dir(root: &Path) -> Result<(), RealError> {
    let ksm = Sysfs::new(root);
    if !ksm.has("run") {
        return Err(RealError::NoKsm(root.to_path_buf()));
    }
    let run = ksm.path("run");
    OpenOptions::new()
        .write(true)
        .open(&run)
        .map_err(|source| RealError::NotWritable { path: run, source })?;
    let pages_sharing = ksm.read_u64("pages_sharing")?;
    let zero_pages = if ksm.has("ksm_zero_pages") {
        ksm.read_u64("ksm_zero_pages")?
    } else {
        0
    };
    if pages_sharing > 0 || zero_pages > 0 {
        return Err(RealError::OtherUsers {
            pages_sharing,
            zero_pages,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake KSM directory holding `files`.
    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, value) in files {
            std::fs::write(dir.path().join(name), format!("{value}\n")).unwrap();
        }
        dir
    }

    const COUNTERS: [(&str, &str); 6] = [
        ("full_scans", "0"),
        ("pages_shared", "0"),
        ("pages_sharing", "0"),
        ("pages_unshared", "0"),
        ("pages_volatile", "0"),
        ("ksm_zero_pages", "0"),
    ];

    /// A host tuned away from the defaults, KSM running.
    fn tuned_host() -> tempfile::TempDir {
        let mut files = vec![
            ("run", "1"),
            ("pages_to_scan", "1000"),
            ("sleep_millisecs", "200"),
            ("smart_scan", "0"),
            ("use_zero_pages", "1"),
            ("max_page_sharing", "256"),
            ("merge_across_nodes", "1"),
            ("stable_node_chains_prune_millisecs", "2000"),
            ("advisor_mode", "[none] scan-time"),
            ("advisor_target_scan_time", "200"),
            ("advisor_min_pages_to_scan", "500"),
            ("advisor_max_pages_to_scan", "30000"),
            ("advisor_max_cpu", "70"),
        ];
        files.extend(COUNTERS);
        fake(&files)
    }

    fn contents(dir: &Path) -> Vec<(String, String)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    }

    fn settings(json: &str) -> KsmSettings {
        serde_json::from_str(json).unwrap()
    }

    fn value(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap()
    }

    const T: Duration = Duration::from_secs(1);

    #[test]
    fn applies_the_workload_and_defaults_then_restores_everything_as_found() {
        let dir = tuned_host();
        let ksm = Sysfs::new(dir.path());
        let mut s = Session::begin(
            ksm,
            &settings(r#"{"pages_to_scan": 100, "max_page_sharing": 4096}"#),
            T,
        )
        .unwrap();
        // Workload values, kernel defaults for the rest, ksmd unmerged and stopped.
        for (name, v) in [
            ("run", "2"),
            ("pages_to_scan", "100"),
            ("max_page_sharing", "4096"),
            ("sleep_millisecs", "20"),
            ("smart_scan", "1"),
            ("use_zero_pages", "0"),
        ] {
            assert_eq!(value(dir.path(), name).trim(), v, "{name}");
        }
        // Values already right were not written: the fake file keeps its newline.
        assert_eq!(value(dir.path(), "merge_across_nodes"), "1\n");
        assert_eq!(value(dir.path(), "advisor_mode"), "[none] scan-time\n");
        s.start().unwrap();
        assert_eq!(value(dir.path(), "run"), "1");
        let report = s.restore().unwrap();
        for (name, v) in [
            ("run", "1"),
            ("pages_to_scan", "1000"),
            ("sleep_millisecs", "200"),
            ("smart_scan", "0"),
            ("use_zero_pages", "1"),
            ("max_page_sharing", "256"),
        ] {
            assert_eq!(value(dir.path(), name).trim(), v, "{name}");
        }
        assert_eq!(report.before, report.after);
        let applied: Vec<&str> = report.applied.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            applied,
            [
                "run",
                "pages_to_scan",
                "sleep_millisecs",
                "smart_scan",
                "use_zero_pages",
                "max_page_sharing",
                "run"
            ]
        );
        // After a started run: unmerge (run=2) first, run last.
        assert_eq!(
            report.restored.first().unwrap(),
            &("run".into(), "2".into())
        );
        assert_eq!(report.restored.last().unwrap(), &("run".into(), "1".into()));
    }

    #[test]
    fn dropping_a_session_restores_too() {
        let dir = tuned_host();
        let before = contents(dir.path());
        {
            let mut s = Session::begin(
                Sysfs::new(dir.path()),
                &settings(r#"{"sleep_millisecs": 0}"#),
                T,
            )
            .unwrap();
            s.start().unwrap();
            assert_eq!(value(dir.path(), "sleep_millisecs"), "0");
        }
        let after = contents(dir.path());
        for ((name, b), (_, a)) in before.iter().zip(&after) {
            assert_eq!(b.trim(), a.trim(), "{name}");
        }
    }

    #[test]
    fn run_zero_is_left_zero_and_run_two_is_really_rewritten() {
        let mut files = vec![("run", "0"), ("pages_to_scan", "100")];
        files.extend(COUNTERS);
        let dir = fake(&files);
        let s = Session::begin(Sysfs::new(dir.path()), &KsmSettings::default(), T).unwrap();
        drop(s);
        assert_eq!(value(dir.path(), "run").trim(), "0");

        let mut files = vec![("run", "2"), ("pages_to_scan", "100")];
        files.extend(COUNTERS);
        let dir = fake(&files);
        let mut s = Session::begin(Sysfs::new(dir.path()), &KsmSettings::default(), T).unwrap();
        let report = s.restore().unwrap();
        let runs: Vec<&str> = report.applied.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(runs, ["0", "2"]);
        assert_eq!(value(dir.path(), "run").trim(), "2");
    }

    #[test]
    fn a_setting_this_kernel_lacks_fails_before_any_write() {
        let mut files = vec![("run", "1"), ("pages_to_scan", "100")];
        files.extend(COUNTERS);
        let dir = fake(&files);
        let before = contents(dir.path());
        let err = Session::begin(
            Sysfs::new(dir.path()),
            &settings(r#"{"smart_scan": 1, "advisor_mode": "none"}"#),
            T,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("ksm.smart_scan, ksm.advisor_mode: not supported"),
            "{err}"
        );
        assert_eq!(contents(dir.path()), before);
    }

    #[test]
    fn the_advisor_is_switched_off_around_pages_to_scan_and_back_on() {
        let mut files = vec![
            ("run", "1"),
            ("pages_to_scan", "777"),
            ("advisor_mode", "none [scan-time]"),
        ];
        files.extend(COUNTERS);
        let dir = fake(&files);
        let mut s = Session::begin(
            Sysfs::new(dir.path()),
            &settings(r#"{"pages_to_scan": 50}"#),
            T,
        )
        .unwrap();
        let report = s.restore().unwrap();
        let applied: Vec<(&str, &str)> = report
            .applied
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            applied,
            [
                ("run", "2"),
                ("advisor_mode", "none"),
                ("pages_to_scan", "50")
            ]
        );
        let restored: Vec<(&str, &str)> = report
            .restored
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            restored,
            [
                ("pages_to_scan", "777"),
                ("advisor_mode", "scan-time"),
                ("run", "1")
            ]
        );
    }

    #[test]
    fn a_value_that_does_not_take_is_an_error_and_everything_is_restored() {
        let mut files = vec![("run", "1"), ("pages_to_scan", "100")];
        files.extend(COUNTERS);
        let dir = fake(&files);
        // Reads as empty whatever is written: like a value the kernel does not keep.
        std::os::unix::fs::symlink("/dev/null", dir.path().join("max_page_sharing")).unwrap();
        let err = Session::begin(
            Sysfs::new(dir.path()),
            &settings(r#"{"pages_to_scan": 5}"#),
            T,
        )
        .err()
        .unwrap();
        assert!(
            matches!(&err, RealError::NotApplied { wanted, .. } if wanted == "256"),
            "{err}"
        );
        // pages_to_scan had been written before; the dropped session put it back.
        assert_eq!(value(dir.path(), "pages_to_scan").trim(), "100");
        assert_eq!(value(dir.path(), "run").trim(), "1");
    }

    #[test]
    fn unmerging_that_never_finishes_times_out() {
        let mut files = vec![("run", "1"), ("pages_to_scan", "100")];
        files.extend(COUNTERS);
        files.push(("pages_sharing", "5"));
        let dir = fake(&files);
        let err = Session::begin(
            Sysfs::new(dir.path()),
            &KsmSettings::default(),
            Duration::from_millis(30),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("pages_sharing=5"), "{err}");
        assert_eq!(value(dir.path(), "run").trim(), "1");
    }

    #[test]
    fn check_dir_wants_ksm_and_no_other_merged_pages() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(check_dir(dir.path()), Err(RealError::NoKsm(_))));
        let mut files = vec![("run", "0")];
        files.extend(COUNTERS);
        let dir = fake(&files);
        check_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("pages_sharing"), "12\n").unwrap();
        let err = check_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("pages_sharing=12"), "{err}");
    }
}
