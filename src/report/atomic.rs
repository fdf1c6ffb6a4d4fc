//! Replacing files so that readers see either the old content or the new, never a mix.
//!
//! New content goes to a hidden temporary file in the *same* directory (a rename is
//! only atomic within one file system) and is flushed to disk with `fsync`: the file is
//! then *staged*. Committing renames it over the target; syncing the directory
//! afterwards makes the renames survive a crash. A staged file that is dropped without
//! being committed — because writing it failed, or because another output of the same
//! run failed — is removed, so no temporary file outlives an error and the target keeps
//! its old content. Temporary names carry the process id and a per-process counter, so
//! concurrent writers (threads or processes) never share one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename,
/// fsync of the directory. On error the temp file is removed and `path` is left as it
/// was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    stage(path, |tmp| write_new(tmp, bytes))?.commit()?;
    sync_dir(parent(path))
}

/// A file written and synced under a temporary name next to its target, not yet
/// renamed over it. Dropping it uncommitted removes the temporary file.
pub(super) struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staged {
    /// Renames the staged file over its target; returns the target. The rename is
    /// durable only once the directory is synced ([`sync_dir`]).
    pub(super) fn commit(mut self) -> io::Result<PathBuf> {
        fs::rename(&self.tmp, &self.target)?;
        self.committed = true;
        Ok(std::mem::take(&mut self.target))
    }

    pub(super) fn target(&self) -> &Path {
        &self.target
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            // It may not exist (`fill` failed before creating it): nothing to report.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Stages new content for `target`. `fill` must create and write the file at the path
/// it is given (it keeps `target`'s extension: image encoders choose their format by
/// it); the file is then synced to disk.
pub(super) fn stage<E: From<io::Error>>(
    target: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<Staged, E> {
    let staged = Staged {
        tmp: temp_path(target)?,
        target: target.to_path_buf(),
        committed: false,
    };
    fill(&staged.tmp)?;
    OpenOptions::new()
        .write(true)
        .open(&staged.tmp)?
        .sync_all()?;
    Ok(staged)
}

/// Creates `path`, which must not exist, holding `bytes`.
pub(super) fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    File::create_new(path)?.write_all(bytes)
}

/// Makes renames in `dir` durable. Directories cannot be opened for syncing on every
/// platform; where they can (Unix), a failure is an error.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `dir/.name.tmp-<pid>-<n>.ext` next to `dir/name.ext`.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let stem = path
        .file_stem()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!(".{stem}.tmp-{pid}-{n}.{}", ext.to_string_lossy()),
        None => format!(".{stem}.tmp-{pid}-{n}"),
    };
    Ok(path.with_file_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn temp_name_is_hidden_unique_and_keeps_extension() {
        let a = temp_path(Path::new("out/plot.png")).unwrap();
        let b = temp_path(Path::new("out/plot.png")).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(Path::new("out")));
        assert_eq!(a.extension().unwrap(), "png");
        assert!(a
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".plot.tmp-"));
    }

    #[test]
    fn failed_fill_keeps_old_content_and_removes_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("data.csv");
        write_atomic(&target, b"old\n").unwrap();
        let err = stage(&target, |tmp| {
            fs::write(tmp, b"half-writ")?;
            Err(io::Error::other("interrupted"))
        })
        .err()
        .unwrap();
        assert_eq!(err.to_string(), "interrupted");
        assert_eq!(fs::read(&target).unwrap(), b"old\n");
        assert_eq!(entries(dir.path()), ["data.csv"]);
    }

    #[test]
    fn dropped_stage_leaves_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("plot.svg");
        write_atomic(&target, b"old").unwrap();
        let staged = stage(&target, |tmp| write_new(tmp, b"new")).unwrap();
        assert_eq!(
            entries(dir.path()).len(),
            2,
            "staged under a temporary name"
        );
        drop(staged);
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["plot.svg"]);
    }

    #[test]
    fn failed_rename_removes_temp() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory cannot be replaced by a file.
        let target = dir.path().join("busy");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"x").unwrap();
        assert!(write_atomic(&target, b"new").is_err());
        assert_eq!(entries(dir.path()), ["busy"]);
        assert_eq!(entries(&target), ["keep"]);
    }

    #[test]
    fn replaces_existing_content() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("summary.json");
        write_atomic(&target, b"first, longer content").unwrap();
        write_atomic(&target, b"second").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"second");
        assert_eq!(entries(dir.path()), ["summary.json"]);
    }
}
