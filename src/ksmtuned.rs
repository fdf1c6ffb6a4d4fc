//! ksmtuned, the shell daemon that switches KSM on and off, replayed exactly.
//!
//! Linux's KSM thread (`ksmd`) merges identical pages while
//! `/sys/kernel/mm/ksm/run` is 1, scanning `pages_to_scan` pages every
//! `sleep_millisecs`. On Proxmox VE (`ksm-control-daemon`), Fedora/RHEL and Debian
//! (`ksmtuned`) those three files are written by the bash script `ksmtuned`, whose
//! logic has been the same since Dan Kenigsberg's 2009–2010 original
//! (`ksm-control-scripts`, the `adjust` function):
//!
//! * At start-up, once: `total` = MemTotal, the ksmd sleep
//!   `KSM_SLEEP_MSEC × 16 GiB / total` ms (at least 10) and the threshold
//!   `thres = max(total × KSM_THRES_COEF / 100, KSM_THRES_CONST)` KiB. Nothing is
//!   re-read later: hot-plugged memory or a changed config needs a restart.
//! * Every `KSM_MONITOR_INTERVAL` seconds, one [`Ksmtuned::cycle`]: with
//!   `free` = MemFree + Buffers + Cached and `committed` = the QEMU processes' sizes
//!   (the [`CommittedMeasure`] depends on the variant), KSM is stopped (`run` ← 0,
//!   nothing else written) when `committed + thres < total` and `free > thres`.
//!   Otherwise the script's own `npages` grows by `KSM_NPAGES_BOOST` when
//!   `free < thres` and by `KSM_NPAGES_DECAY` (negative) otherwise, clamped into
//!   `[KSM_NPAGES_MIN, KSM_NPAGES_MAX]`, and `pages_to_scan` ← npages,
//!   `sleep_millisecs` ← sleep, `run` ← 1 are written, every cycle. `npages`
//!   starts at 0 and is never reset, not even by a stop.
//!
//! The [`Variant`]s differ in the default `KSM_SLEEP_MSEC`, in how `committed` is
//! measured and in how awk prints the sums. That last point matters on a Debian-based
//! system, whose awk is mawk: mawk prints a number of 2^31 or more (KiB, i.e. 2 TiB)
//! as `%.6g` text such as `2.2e+09`, which bash cannot compute with. A committed sum
//! that large is an arithmetic syntax error that ends the daemon's loop process: the
//! daemon is gone and the sysfs values stay as it left them ([`Status::Exited`]). A
//! free sum that large makes every comparison with it fail, so KSM is never stopped
//! and always decays to `KSM_NPAGES_MIN`. Proxmox's 2024 `awk-printf` patch
//! (`ksm-control-daemon` 1.5-1) prints exact integers and has neither failure.
//!
//! Everything is computed as the script computes it: bash's 64-bit wrapping integer
//! arithmetic with truncating division, `[ … ]` comparisons that are false when an
//! operand is not a 64-bit integer, awk's double sums, and the kernel's acceptance of
//! what is written (`kstrtouint`: a value outside `0..=2^32-1` is rejected and the
//! file keeps its old value). Until the first write, sysfs holds what the variant's
//! packaging left at boot ([`Variant::boot_sysfs`]). The configuration file is
//! [`Config`]; [`replay`] answers traces of `total free committed` lines
//! (`memsim replay ksmtuned`). Tests compare with the real scripts
//! (`tests/suite/ksmtuned_differential.rs`).
//!
//! Sources: the original is `ksmtuned` in `ksm-control-scripts.org.tar.gz` inside
//! Proxmox's `ksm-control-daemon` repository (upstream commit 464093e, 2010-09-27);
//! Proxmox applies `debian/patches/series` to it (`ksmtuned.diff`,
//! `adjust-ksm-slepp.diff`, then `use-vsz-instead-of-rsz.diff` up to 1.4-1, or
//! `awk-printf.diff` and `use-pss-instead-of-rsz.diff` from 1.5-1); Fedora's is
//! `src/ksmtuned.sh.in` of github `ksmtuned/ksmtuned` (0.1.0); Debian's is
//! `/usr/sbin/ksmtuned` of the `ksmtuned` 4.20150326 package. The design notes are
//! `shared/design/ksmtuned.md`.

mod conf;
mod replay;
mod shell;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use conf::{load_conf, ConfError, ConfProblem, Config, Settings};
pub use replay::{replay, ReplayStats};
use shell::Word;

/// Which packaging of ksmtuned runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Proxmox VE ≥ 8.2, `ksm-control-daemon` 1.5-1: PSS of `kvm` processes
    /// (`KSM_PS_METRIC`), sums printed exactly, `KSM_SLEEP_MSEC` 100.
    Proxmox,
    /// Proxmox VE 2.0 – 8.1, `ksm-control-daemon` 1.1-1 … 1.4-1: VSZ of `kvm`
    /// processes, mawk-printed sums, `KSM_SLEEP_MSEC` 100.
    Proxmox14,
    /// Fedora / RHEL 9, `ksmtuned` 0.1.0: RSS of processes named like QEMU, gawk,
    /// `KSM_SLEEP_MSEC` 10, `ksm.service` sets `run` = 1 at boot.
    Fedora,
    /// Debian, `ksmtuned` 4.20150326: RSS of `qemu-system…-enable-kvm` command lines,
    /// mawk, `KSM_SLEEP_MSEC` 10, `ksm.service` sets `run` = 1 at boot.
    Debian,
    /// The 2010 original from Fedora's qemu package: RSS of `qemu-kvm` processes,
    /// gawk, `KSM_SLEEP_MSEC` 10, the `ksm` init script sets `run` = 1 at boot.
    Original2010,
}

impl Variant {
    /// Every variant, newest Proxmox first.
    pub const ALL: [Variant; 5] = [
        Variant::Proxmox,
        Variant::Proxmox14,
        Variant::Fedora,
        Variant::Debian,
        Variant::Original2010,
    ];

    /// The name [`Variant::from_str`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Proxmox => "proxmox",
            Variant::Proxmox14 => "proxmox-1.4",
            Variant::Fedora => "fedora",
            Variant::Debian => "debian",
            Variant::Original2010 => "original-2010",
        }
    }

    /// The default of `KSM_SLEEP_MSEC`: Proxmox raised it from 10 to 100 in 2010
    /// (`adjust-ksm-slepp.diff`, "reduce cpu load").
    pub fn default_sleep_msec(self) -> i64 {
        match self {
            Variant::Proxmox | Variant::Proxmox14 => 100,
            Variant::Fedora | Variant::Debian | Variant::Original2010 => 10,
        }
    }

    /// What `committed` measures with the default configuration (for
    /// [`Variant::Proxmox`] `KSM_PS_METRIC` can change it, see
    /// [`Ksmtuned::committed_measure`]). The processes summed are those named
    /// exactly `kvm` on Proxmox (PVE starts guests as `/usr/bin/kvm`), those whose
    /// name matches `^qemu(-(kvm|system-.+)|:.{1,11})$` on Fedora, those whose full
    /// command line matches `^qemu-system.*-enable-kvm` on Debian (guests started
    /// with `-accel kvm` are missed and count 0), and those named `qemu-kvm` in the
    /// original.
    pub fn committed_measure(self) -> CommittedMeasure {
        match self {
            Variant::Proxmox => CommittedMeasure::Pss,
            Variant::Proxmox14 => CommittedMeasure::Vsz,
            Variant::Fedora | Variant::Debian | Variant::Original2010 => CommittedMeasure::Rss,
        }
    }

    /// The awk the variant's distribution runs as `awk`: mawk on Debian and
    /// therefore Proxmox, gawk on Fedora/RHEL (where the original came from too).
    pub fn awk(self) -> Awk {
        match self {
            Variant::Proxmox | Variant::Proxmox14 | Variant::Debian => Awk::Mawk,
            Variant::Fedora | Variant::Original2010 => Awk::Gawk,
        }
    }

    /// The sysfs values before the daemon's first cycle on a freshly booted host.
    /// ksmtuned itself writes nothing at start-up. Proxmox ships no other KSM unit, so
    /// the kernel's defaults hold (run 0, 100 pages, 20 ms). Fedora's and Debian's
    /// packages also ship and enable `ksm.service` (`ksmctl start`, which ksmtuned's
    /// unit requires), and the original came with the `ksm` init script; both write
    /// `run` = 1 at boot and leave the other two files alone. This shows only when
    /// the daemon never writes: it died in its first cycle or never started.
    pub fn boot_sysfs(self) -> Decision {
        match self {
            Variant::Proxmox | Variant::Proxmox14 => Decision::KERNEL_DEFAULT,
            Variant::Fedora | Variant::Debian | Variant::Original2010 => Decision {
                run: 1,
                ..Decision::KERNEL_DEFAULT
            },
        }
    }

    /// Whether SIGUSR1 (`systemctl reload ksmtuned`) starts a cycle at once. Upstream
    /// sleeps with `sleep N & wait $!`, which the signal interrupts; the next cycle
    /// is then a full interval later. Proxmox's `ksmtuned.diff` sleeps in the
    /// foreground, and bash runs the trap only after `sleep` ends, so on Proxmox
    /// the signal changes nothing.
    pub fn usr1_wakes_early(self) -> bool {
        match self {
            Variant::Proxmox | Variant::Proxmox14 => false,
            Variant::Fedora | Variant::Debian | Variant::Original2010 => true,
        }
    }

    /// How the script's awk prints the two sums: `printf("%.0f")` (exact) from
    /// Proxmox 1.5-1 on, `print` (the awk's own number format) before.
    fn prints_exactly(self) -> bool {
        self == Variant::Proxmox
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(name: &str) -> Result<Variant, String> {
        Variant::ALL
            .into_iter()
            .find(|variant| variant.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Variant::ALL.iter().map(|v| v.name()).collect();
                format!(
                    "unknown ksmtuned variant `{name}` (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// The awk implementation, which decides how sums of 2^31 KiB or more are printed
/// by the variants that use `print`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Awk {
    /// mawk 1.3.4 (Debian's default): integers only below 2^31, `%.6g` above.
    Mawk,
    /// GNU awk: integral values always as exact integers.
    Gawk,
}

/// The per-process size ksmtuned sums into `committed` (KiB, as `ps` prints it). The
/// caller computes the sum; this says which one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CommittedMeasure {
    /// Proportional set size (`ps -o pss`): shared pages, KSM-merged ones included,
    /// divided among their mappers, so merging lowers it.
    Pss,
    /// Resident set size (`ps -o rsz`): every mapper counts a merged page in full,
    /// so merging does not lower it; ballooning does.
    Rss,
    /// Virtual size (`ps -o vsz=`): about the configured guest RAM plus QEMU's
    /// overhead, however much is touched, ballooned or merged.
    Vsz,
    /// Any other `ps` column set with `KSM_PS_METRIC`, as written there; awk sums
    /// its first field.
    Column(String),
}

impl CommittedMeasure {
    /// The measure for a `ps -o` column name (procps aliases included).
    fn from_ps_column(column: &str) -> CommittedMeasure {
        // `name=` only suppresses the header line, which sums as 0 anyway
        match column.strip_suffix('=').unwrap_or(column) {
            "pss" => CommittedMeasure::Pss,
            "rss" | "rsz" | "rssize" => CommittedMeasure::Rss,
            "vsz" | "vsize" => CommittedMeasure::Vsz,
            _ => CommittedMeasure::Column(column.to_owned()),
        }
    }
}

/// The values in `/sys/kernel/mm/ksm` after a cycle (the kernel's `unsigned int`s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// `run`: 1 = ksmd scans, 0 = stopped (merged pages stay merged).
    pub run: u8,
    /// `pages_to_scan`: pages ksmd scans per wake-up; ksmtuned's `npages`.
    pub pages_to_scan: u32,
    /// `sleep_millisecs`: ksmd's sleep between scans.
    pub sleep_millisecs: u32,
}

impl Decision {
    /// The kernel's values before anyone writes: stopped, 100 pages per 20 ms.
    pub const KERNEL_DEFAULT: Decision = Decision {
        run: 0,
        pages_to_scan: 100,
        sleep_millisecs: 20,
    };
}

impl fmt::Display for Decision {
    /// `run pages_to_scan sleep_millisecs`, the replay output format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.run, self.pages_to_scan, self.sleep_millisecs
        )
    }
}

/// Whether the daemon's loop is running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The loop never started: the script could not `touch` its PIDFILE (modelled
    /// for an empty `PIDFILE=`; bash's `${PIDFILE-…}` keeps an empty value). Nothing
    /// is ever written.
    NotStarted,
    /// Cycles run.
    Running,
    /// The loop process exited in cycle `cycle` (1-based) with bash's `error`; the
    /// sysfs values stay as they were.
    Exited { cycle: u64, error: String },
}

/// One ksmtuned daemon, from its start-up on.
#[derive(Clone, Debug)]
pub struct Ksmtuned {
    variant: Variant,
    awk: Awk,
    settings: Settings,
    /// MemTotal as the script holds it: the field's text, exact at any size.
    total: Word,
    /// `sleep`: `None` when its arithmetic failed at start-up (MemTotal 0), which
    /// leaves the shell variable unset; writing it then writes an empty line.
    sleep: Option<i64>,
    thres: i64,
    npages: i64,
    sysfs: Decision,
    status: Status,
    cycles: u64,
}

impl Ksmtuned {
    /// Starts the daemon of `variant` with configuration `conf` on a host whose
    /// MemTotal is `total_kib`: computes the start-up values once. The awk and the
    /// sysfs values before the first cycle are the variant's ([`Variant::awk`],
    /// [`Variant::boot_sysfs`]); see [`Ksmtuned::with_awk`] and
    /// [`Ksmtuned::with_boot_sysfs`].
    pub fn new(variant: Variant, conf: &Config, total_kib: u64) -> Ksmtuned {
        let settings = Settings::new(variant, conf);
        // `$[total]`: bash wraps the digits modulo 2^64
        let total_arith = total_kib as i64;
        // sleep=$[KSM_SLEEP_MSEC * 16 * 1024 * 1024 / total]; division by 0 aborts
        // the assignment and the script goes on with `sleep` unset
        let sleep = (total_arith != 0)
            .then(|| {
                settings
                    .sleep_msec
                    .wrapping_mul(16)
                    .wrapping_mul(1024)
                    .wrapping_mul(1024)
                    .wrapping_div(total_arith)
            })
            // [ $sleep -le 10 ] && sleep=10 (with `sleep` unset the test is an error)
            .map(|sleep| sleep.max(10));
        let thres = total_arith
            .wrapping_mul(settings.thres_coef)
            .wrapping_div(100)
            .max(settings.thres_const);
        let status = if conf.pidfile.as_deref() == Some("") {
            Status::NotStarted
        } else {
            Status::Running
        };
        Ksmtuned {
            variant,
            awk: variant.awk(),
            settings,
            total: Word::from_u64(total_kib),
            sleep,
            thres,
            npages: 0,
            sysfs: variant.boot_sysfs(),
            status,
            cycles: 0,
        }
    }

    /// The same daemon running with another awk, e.g. Fedora's script on a system
    /// whose `awk` is mawk.
    pub fn with_awk(mut self, awk: Awk) -> Ksmtuned {
        self.awk = awk;
        self
    }

    /// The same daemon on a host whose sysfs holds `boot` before the first cycle.
    /// Meant for a daemon that has not cycled yet.
    pub fn with_boot_sysfs(mut self, boot: Decision) -> Ksmtuned {
        self.sysfs = boot;
        self
    }

    /// One monitor cycle (`adjust`): `free_kib` = MemFree + Buffers + Cached,
    /// `committed_kib` = the sum of [`Ksmtuned::committed_measure`] over the QEMU
    /// processes (0 without any). Both are taken as awk's double sums, which are
    /// exact below 2^53 KiB. Returns the sysfs values after the cycle; once the
    /// daemon is gone (or never started) those never change.
    pub fn cycle(&mut self, free_kib: u64, committed_kib: u64) -> Decision {
        if self.status != Status::Running {
            return self.sysfs;
        }
        self.cycles += 1;
        let (free, committed) = if self.variant.prints_exactly() {
            (Word::from_u64(free_kib), Word::from_u64(committed_kib))
        } else {
            (self.awk.print(free_kib), self.awk.print(committed_kib))
        };
        // `$[committed + thres]` is expanded first; text bash cannot compute with
        // aborts the loop function, which is the whole daemon process
        let load = match committed.arith() {
            Ok(committed) => committed.wrapping_add(self.thres),
            Err(error) => {
                self.status = Status::Exited {
                    cycle: self.cycles,
                    error,
                };
                return self.sysfs;
            }
        };
        // [ $[committed + thres] -lt $total -a $free -gt $thres ]: an operand that is
        // not an integer makes `[` fail as a whole (status 2), i.e. no stop
        let stop = match (self.total.test_int(), free.test_int()) {
            (Some(total), Some(free)) => load < total && free > self.thres,
            _ => false,
        };
        if stop {
            self.sysfs.run = 0;
            return self.sysfs;
        }
        let delta = if free.test_int().is_some_and(|free| free < self.thres) {
            self.settings.npages_boost
        } else {
            self.settings.npages_decay
        };
        // increase_npages: the minimum is tested first, the maximum only otherwise
        let npages = self.npages.wrapping_add(delta);
        self.npages = if npages < self.settings.npages_min {
            self.settings.npages_min
        } else if npages > self.settings.npages_max {
            self.settings.npages_max
        } else {
            npages
        };
        // KSMCTL start: three writes; the kernel refuses values outside unsigned int
        if let Some(pages) = kernel_accepts(Some(self.npages)) {
            self.sysfs.pages_to_scan = pages;
        }
        if let Some(sleep) = kernel_accepts(self.sleep) {
            self.sysfs.sleep_millisecs = sleep;
        }
        self.sysfs.run = 1;
        self.sysfs
    }

    /// `KSM_MONITOR_INTERVAL`: the time from start-up to the first cycle and between
    /// cycles (plus the few milliseconds a cycle takes). Zero makes the daemon cycle
    /// without pause.
    pub fn monitor_interval(&self) -> Duration {
        self.settings.monitor_interval
    }

    /// What the caller must sum into `committed`: the variant's measure, or for
    /// [`Variant::Proxmox`] the column `KSM_PS_METRIC` names.
    pub fn committed_measure(&self) -> CommittedMeasure {
        match (&self.variant, &self.settings.ps_metric) {
            (Variant::Proxmox, Some(column)) => CommittedMeasure::from_ps_column(column),
            _ => self.variant.committed_measure(),
        }
    }

    /// The values in effect.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The sysfs values now.
    pub fn sysfs(&self) -> Decision {
        self.sysfs
    }

    /// Whether the daemon runs, never started or exited.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The threshold `thres` in KiB, computed at start-up.
    pub fn thres(&self) -> i64 {
        self.thres
    }

    /// The `sleep` computed at start-up, which every start writes to
    /// `sleep_millisecs`; `None` when MemTotal was 0 (the division failed).
    pub fn sleep_msec(&self) -> Option<i64> {
        self.sleep
    }

    /// The script's `npages`, which a stop does not reset. It differs from
    /// `pages_to_scan` only when the kernel refused it (negative limits).
    pub fn npages(&self) -> i64 {
        self.npages
    }
}

/// What `kstrtouint` makes of `echo $value`: only `0..=2^32-1` is stored; anything
/// else, including the empty line of an unset variable, fails with EINVAL.
fn kernel_accepts(value: Option<i64>) -> Option<u32> {
    value.and_then(|value| u32::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_round_trip() {
        for variant in Variant::ALL {
            assert_eq!(variant.name().parse::<Variant>(), Ok(variant));
            assert_eq!(variant.to_string(), variant.name());
        }
        let err = "pve".parse::<Variant>().unwrap_err();
        assert!(
            err.contains("`pve`") && err.contains("original-2010"),
            "{err}"
        );
    }

    #[test]
    fn ps_columns() {
        assert_eq!(
            CommittedMeasure::from_ps_column("pss="),
            CommittedMeasure::Pss
        );
        assert_eq!(
            CommittedMeasure::from_ps_column("rsz"),
            CommittedMeasure::Rss
        );
        assert_eq!(
            CommittedMeasure::from_ps_column("vsize"),
            CommittedMeasure::Vsz
        );
        assert_eq!(
            CommittedMeasure::from_ps_column("size"),
            CommittedMeasure::Column("size".to_owned())
        );
    }

    #[test]
    fn kernel_refuses_values_outside_unsigned_int() {
        assert_eq!(kernel_accepts(Some(0)), Some(0));
        assert_eq!(kernel_accepts(Some(4_294_967_295)), Some(u32::MAX));
        assert_eq!(kernel_accepts(Some(4_294_967_296)), None);
        assert_eq!(kernel_accepts(Some(-1)), None);
        assert_eq!(kernel_accepts(None), None);
    }
}
