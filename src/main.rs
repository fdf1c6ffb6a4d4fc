//! `memsim`: the command line. Each subcommand is a thin call into the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use memsim::metrics::tally;
use memsim::policy::Policy;
use memsim::scenario::{self, Scenario};

/// Discrete-event simulator of memory overcommit on a KVM / Proxmox VE host:
/// guests with working sets and page caches, the virtio-balloon driver, the guest OOM
/// killer, and pvestatd's auto-ballooning replayed exactly.
#[derive(Parser)]
#[command(name = "memsim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and write its CSVs, summary and plots.
    ///
    /// Without SCENARIO, runs the built-in quickstart (scenarios/quickstart.yaml): a
    /// 64 GiB host with a dozen VMs and a memory squeeze. Outputs go to
    /// output/<scenario name>/ unless --out says otherwise.
    Run {
        /// Scenario YAML file.
        scenario: Option<PathBuf>,
        /// Output folder (default: output/<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Worker threads for the guests' steps (default: all cores). Results do not
        /// depend on it.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Run a scenario and tell what happened, in plain sentences with simulated times
    /// and the numbers behind them.
    ///
    /// Levels: `summary` (a handful of lines: first time above target, first reclaim,
    /// swap and OOM kill, totals, KSM savings), `decisions` (the timeline: pvestatd's
    /// cycles told in stretches, pressure episodes, OOM kills, host swap and OOM, ksmd
    /// on and off, VM starts, stops and migrations), `everything` (each of those with
    /// the details under it: every cycle and every VM's balloon command). Writes no
    /// files.
    Explain {
        /// Scenario YAML file.
        scenario: PathBuf,
        /// How much to tell: summary, decisions or everything.
        #[arg(long, default_value = "decisions", value_parser = parse_level)]
        level: memsim::explain::Level,
        /// Tell from this simulated time on (10m, 1h30m, 00:43:10).
        #[arg(long, value_parser = parse_offset)]
        since: Option<memsim::engine::SimTime>,
        /// Tell up to this simulated time (inclusive).
        #[arg(long, value_parser = parse_offset)]
        until: Option<memsim::engine::SimTime>,
    },
    /// Run a scenario over the grid of its `sweep:` section (parameter values ×
    /// seeds) and write one row per run to sweep.csv.
    ///
    /// Each run's outputs go to DIR/runs/<run id>/; with exactly two parameters,
    /// sweep_heatmap.png/.svg shows one metric per grid cell. With --shard I/N only
    /// the runs whose index mod N is I-1 are done, and DIR/shard-I-of-N.json records
    /// them for `memsim merge`. Outputs do not depend on --threads.
    Sweep {
        /// Scenario YAML file with a `sweep:` section.
        scenario: PathBuf,
        /// Output folder (default: output/sweep-<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Runs simulated at once, and their threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Do only the I-th of N shares of the runs (I from 1).
        #[arg(long, value_name = "I/N")]
        shard: Option<memsim::sweep::Shard>,
    },
    /// Run a scenario under several policies with the same seeds, side by side.
    ///
    /// Each run's outputs go to DIR/<policy>/ (DIR/<policy>-seed=S/ with several
    /// seeds). DIR/comparison.csv has one row per policy (means over the seeds, with
    /// min_/max_ columns where seeds differ); compare_host_memory, compare_swap,
    /// compare_oom and compare_bars (.png/.svg) show the policies together. Outputs do
    /// not depend on --threads.
    Compare {
        /// Scenario YAML file.
        scenario: PathBuf,
        /// Policies to compare, in this order (default: all).
        #[arg(long, value_delimiter = ',', value_name = "P1,P2,..", long_help = policy_help())]
        policies: Vec<Policy>,
        /// Seeds per policy, counted up from the scenario's seed.
        #[arg(long, default_value_t = 1)]
        seeds: usize,
        /// Output folder (default: output/compare-<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Runs simulated at once, and their threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// How many VMs of one group the host carries under each policy: the largest count
    /// at which every seed stays within the limits.
    ///
    /// GROUP is a vms: entry with a name and a count:. Its count is searched for per
    /// policy — doubled from the scenario's until a limit breaks (or halved until none
    /// does), then bisected — assuming a count that breaks a limit breaks it at every
    /// larger count too. A count the scenario loader refuses counts as not carried.
    /// Writes DIR/density.csv (every evaluated policy, count and seed, with its
    /// figures) and density.png/.svg. With --shard I/N only the policies whose position
    /// mod N is I-1 are searched, and DIR/density-shard-I-of-N.json records them for
    /// `memsim merge`. Outputs do not depend on --threads.
    Density {
        /// Scenario YAML file.
        scenario: PathBuf,
        /// The name of the vms: entry whose count varies.
        #[arg(long)]
        group: String,
        /// Policies to search, in this order (default: all).
        #[arg(long, value_delimiter = ',', value_name = "P1,P2,..", long_help = policy_help())]
        policies: Vec<Policy>,
        /// Seeds per count, counted up from the scenario's seed.
        #[arg(long, default_value_t = 1)]
        seeds: usize,
        /// Most OOM kills allowed in a run: guest OOM kills plus VMs killed by the host's
        /// OOM killer.
        #[arg(long, default_value_t = 0, value_name = "K")]
        max_oom_kills: u64,
        /// Highest swap-in rate allowed: the peak over the samples of the guests'
        /// swap-in (summed over the VMs) plus the host's, in MiB/s.
        #[arg(long, value_name = "MIB_PER_S")]
        max_swap_in: Option<f64>,
        /// Highest host memory use allowed: the peak of pvestatd's memused, in percent
        /// of MemTotal.
        #[arg(long, value_name = "PCT")]
        max_host_used: Option<f64>,
        /// Smallest count to try.
        #[arg(long, default_value_t = 1)]
        min: u32,
        /// Largest count to try (default: no bound but the limits and the loader's).
        #[arg(long)]
        max: Option<u32>,
        /// Output folder (default: output/density-<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Runs simulated at once, and their threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Search only the I-th of N shares of the policies (I from 1).
        #[arg(long, value_name = "I/N")]
        shard: Option<memsim::sweep::Shard>,
    },
    /// Combine the shards of one sweep (folders with shard-I-of-N.json) into the
    /// sweep.csv and heatmap that the whole sweep writes, or those of one density
    /// search (density-shard-I-of-N.json) into its density.csv and plot.
    ///
    /// Refuses, writing nothing, shards of different sweeps, missing or duplicate
    /// shards.
    Merge {
        /// Shard output folders (or manifest files).
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Output folder (default: the first shard folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a scenario file and list every problem in it (exit status 2 if any).
    Validate {
        /// Scenario YAML file.
        scenario: PathBuf,
    },
    /// Run a KSM-only workload (the format of the real recordings) and write its
    /// counters as CSV, in the simulator or, with --real, on this machine's kernel.
    ///
    /// One row every `sample_ms` (and one per full scan with `row_on_full_scan`), with
    /// the columns of /sys/kernel/mm/ksm and each process's ksm_stat. --real needs root
    /// and a writable /sys/kernel/mm/ksm; every KSM setting is saved first and restored
    /// afterwards, also on Ctrl-C.
    KsmTrace {
        /// Workload file (JSON or YAML).
        workload: PathBuf,
        /// Run on the real kernel instead of the simulator.
        #[arg(long)]
        real: bool,
        /// Output CSV (default: stdout). With --real, the workload's events go to
        /// <out>.events.csv beside it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run a KSM workload on the real kernel and in the simulator, side by side:
    /// per-counter error at each pass end, and an overlay plot.
    ///
    /// Writes real.csv, sim.csv, comparison.csv and calibration.png/.svg to --out
    /// (default: output/calibrate-<workload name>). Needs root and KSM, as ksm-trace --real.
    Calibrate {
        /// Workload file (JSON or YAML).
        workload: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The KSM side channel (CVE-2021-3714): how often an attacker VM that times writes
    /// to its copies of some software's pages guesses right whether a victim VM runs it.
    ///
    /// Runs every ksmd configuration of the experiment file for its trials on the
    /// simulated ksmd, prints a table and writes side_channel.csv and
    /// side_channel.png/.svg (accuracy against wait, chance line) to --out (default:
    /// output/<experiment name>). See docs/side-channel.md.
    SideChannel {
        /// Experiment file (YAML), e.g. scenarios/ksm-side-channel.yaml.
        scenario: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Worker threads for the trials (default: all cores). Results do not depend
        /// on it.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Answer "what would upstream do with these inputs" for a replayed component.
    #[command(subcommand)]
    Replay(Replay),
}

#[derive(Subcommand)]
enum Replay {
    /// pvestatd's allocator, `compute_alg1` (PVE/AutoBalloon.pm).
    ///
    /// Reads JSON lines on stdin, one case per line:
    /// {"goal": <signed bytes>, "maxchange": <bytes, default 104857600>,
    ///  "vms": {"<vmid>": {"balloon": .., "balloon_min": .., "maxmem": .., "shares": ..,
    ///  "freemem": .., "lock": ..}}, "id": <echoed>}
    /// and writes one JSON line per case: {"id": .., "res": {"<vmid>": <target bytes>}},
    /// exactly the hash upstream returns. A malformed line is reported on stderr with
    /// its line number and skipped.
    Autoballoon,
    /// The ksmtuned daemon (all variants), cycle by cycle.
    ///
    /// Reads lines `total_kib free_kib committed_kib`, one per monitor cycle, from TRACE
    /// (stdin if absent) and prints per cycle `run npages sleep_ms`: the sysfs values the
    /// real daemon leaves after that cycle (frozen once a variant's daemon would have
    /// died). Variants: proxmox (ksm-control-daemon 1.5, the current default),
    /// proxmox-1.4, fedora, debian, original-2010.
    Ksmtuned {
        /// Which ksmtuned script to replay.
        #[arg(long, default_value = "proxmox")]
        variant: String,
        /// A ksmtuned.conf to read instead of the variant's defaults.
        #[arg(long)]
        conf: Option<PathBuf>,
        /// Trace file (default: stdin).
        trace: Option<PathBuf>,
    },
}

/// The built-in default scenario, so `memsim run` works from any directory.
const QUICKSTART: &str = include_str!("../scenarios/quickstart.yaml");

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run {
        scenario: None,
        out: None,
        threads: None,
    });
    match command {
        Command::Run {
            scenario,
            out,
            threads,
        } => run(scenario.as_deref(), out, threads),
        Command::Sweep {
            scenario,
            out,
            threads,
            shard,
        } => sweep(&scenario, out, threads, shard),
        Command::Compare {
            scenario,
            policies,
            seeds,
            out,
            threads,
        } => compare(&scenario, &policies, seeds, out, threads),
        Command::Density {
            scenario,
            group,
            policies,
            seeds,
            max_oom_kills,
            max_swap_in,
            max_host_used,
            min,
            max,
            out,
            threads,
            shard,
        } => {
            let options = memsim::density::Options {
                group,
                policies,
                seeds,
                limits: memsim::density::Limits {
                    max_oom_kills,
                    max_swap_in_mib_s: max_swap_in,
                    max_host_used_pct: max_host_used,
                },
                min,
                max,
            };
            density(&scenario, &options, out, threads, shard)
        }
        Command::Merge { shards, out } => merge(&shards, out),
        Command::Explain {
            scenario,
            level,
            since,
            until,
        } => explain(&scenario, level, since, until),
        Command::Validate { scenario } => match scenario::load(&scenario) {
            Ok(sc) => {
                println!("{}: ok ({} VMs)", scenario.display(), sc.vms.len());
                ExitCode::SUCCESS
            }
            Err(e) => bad_input(&e),
        },
        Command::KsmTrace {
            workload,
            real,
            out,
        } => ksm_trace(&workload, real, out.as_deref()),
        Command::Calibrate { workload, out } => calibrate(&workload, out),
        Command::SideChannel {
            scenario,
            out,
            threads,
        } => side_channel(&scenario, out, threads),
        Command::Replay(Replay::Ksmtuned {
            variant,
            conf,
            trace,
        }) => replay_ksmtuned(&variant, conf.as_deref(), trace.as_deref()),
        Command::Replay(Replay::Autoballoon) => {
            let stdin = std::io::stdin();
            let result =
                memsim::autoballoon::replay(stdin.lock(), std::io::stdout(), std::io::stderr());
            match result {
                Ok(stats) if stats.lines_bad == 0 => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(2),
                Err(e) => fail(&anyhow::Error::from(e)),
            }
        }
    }
}

fn replay_ksmtuned(variant: &str, conf: Option<&Path>, trace: Option<&Path>) -> ExitCode {
    let variant: memsim::ksmtuned::Variant = match variant.parse() {
        Ok(v) => v,
        Err(e) => return usage(&e),
    };
    let conf = match conf.map(memsim::ksmtuned::load_conf).transpose() {
        Ok(c) => c,
        Err(e) => return usage(&e.to_string()),
    };
    let (out, err) = (std::io::stdout(), std::io::stderr());
    let result = match trace {
        None => memsim::ksmtuned::replay(variant, conf, std::io::stdin().lock(), out, err),
        Some(path) => match std::fs::File::open(path) {
            Ok(f) => memsim::ksmtuned::replay(variant, conf, std::io::BufReader::new(f), out, err),
            Err(e) => return usage(&format!("{}: {e}", path.display())),
        },
    };
    match result {
        Ok(stats) if stats.lines_bad == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(2),
        Err(e) => fail(&e.into()),
    }
}

fn load_workload(path: &Path) -> Result<memsim::ksm::workload::Workload, ExitCode> {
    memsim::ksm::workload::load_workload(path).map_err(report_problems)
}

fn simulate_ksm(
    w: &memsim::ksm::workload::Workload,
) -> Result<memsim::ksm::trace::Trace, ExitCode> {
    memsim::ksm::sim::simulate(w).map_err(report_problems)
}

/// Bad input: every problem on its own line on stderr, exit status 2.
fn report_problems<P: std::fmt::Display>(problems: Vec<P>) -> ExitCode {
    for p in problems {
        eprintln!("{p}");
    }
    ExitCode::from(2)
}

/// Real-run errors raised before anything on the host changed are bad input or an
/// unsuitable machine (exit status 2); the rest are failures.
fn real_failed(e: &memsim::ksm::real::RealError) -> ExitCode {
    use memsim::ksm::real::RealError as E;
    match e {
        E::NotRoot(_)
        | E::NoKsm(_)
        | E::NotWritable { .. }
        | E::OtherUsers { .. }
        | E::Busy(_)
        | E::Workload(_)
        | E::PageSize(_)
        | E::Memory { .. } => usage(&format!("{e} (nothing changed)")),
        _ => fail(&anyhow::anyhow!("{e}")),
    }
}

fn ksm_trace(path: &Path, real: bool, out: Option<&Path>) -> ExitCode {
    let w = match load_workload(path) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let (trace, events) = if real {
        match memsim::ksm::real::record(&w) {
            Ok(rec) => {
                let mut events = Vec::new();
                if let Err(e) = rec.write_events_csv(&mut events) {
                    return fail(&e.into());
                }
                (rec.trace, Some(events))
            }
            Err(e) => return real_failed(&e),
        }
    } else {
        match simulate_ksm(&w) {
            Ok(t) => (t, None),
            Err(code) => return code,
        }
    };
    let mut csv = Vec::new();
    if let Err(e) = trace.write_csv(&mut csv) {
        return fail(&e.into());
    }
    let written = match out {
        None => std::io::stdout()
            .write_all(&csv)
            .map_err(anyhow::Error::from),
        Some(out) => memsim::report::write_atomic(out, &csv)
            .and_then(|()| match &events {
                Some(ev) => memsim::report::write_atomic(&memsim::ksm::real::events_path(out), ev),
                None => Ok(()),
            })
            .map_err(|e| anyhow::anyhow!("{}: {e}", out.display())),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn side_channel(path: &Path, out: Option<PathBuf>, threads: Option<usize>) -> ExitCode {
    use memsim::sidechannel;
    let e = match sidechannel::load(path) {
        Ok(e) => e,
        Err(err) => return bad_input(&err),
    };
    let pool = match thread_pool(threads) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let rows = match pool.install(|| sidechannel::run(&e)) {
        Ok(rows) => rows,
        Err(err) => return fail(&err),
    };
    print!("{}", sidechannel::table(&e, &rows));
    let dir = out.unwrap_or_else(|| Path::new("output").join(&e.name));
    match sidechannel::write(&dir, &e, &rows) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => fail(&err),
    }
}

fn calibrate(path: &Path, out: Option<PathBuf>) -> ExitCode {
    use memsim::ksm::real;
    let w = match load_workload(path) {
        Ok(w) => w,
        Err(code) => return code,
    };
    if let Err(e) = real::check_available() {
        return real_failed(&e);
    }
    let sim = match simulate_ksm(&w) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let real_trace = match real::run_real(&w) {
        Ok(t) => t,
        Err(e) => return real_failed(&e),
    };
    let cmp = memsim::ksm::compare::compare(&w, &real_trace, &sim);
    let dir = out.unwrap_or_else(|| Path::new("output").join(format!("calibrate-{}", w.name)));
    match real::write_calibration(&dir, &w, &real_trace, &sim, &cmp) {
        Ok(paths) => {
            println!("{cmp}");
            println!("{}", cmp.summary.to_json());
            println!("wrote {} files to {}", paths.len(), dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// A bad argument or input file: one line on stderr, exit status 2.
fn usage(message: &str) -> ExitCode {
    eprintln!("memsim: {message}");
    ExitCode::from(2)
}

fn load(path: Option<&Path>) -> Result<Scenario, scenario::ScenarioError> {
    match path {
        Some(p) => scenario::load(p),
        None => scenario::parse(
            QUICKSTART,
            "scenarios/quickstart.yaml",
            Path::new("scenarios"),
        ),
    }
}

/// The scenario and the YAML text it was read from (for report.html): the file is
/// read once, so the report shows exactly what ran. A file that cannot be read is
/// left to `scenario::load`, which reports it like any other problem (should it have
/// become readable meanwhile, the report shows the resolved scenario instead).
fn load_with_source(
    path: Option<&Path>,
) -> Result<(Scenario, Option<String>), scenario::ScenarioError> {
    let Some(p) = path else {
        return load(None).map(|sc| (sc, Some(QUICKSTART.to_string())));
    };
    match std::fs::read_to_string(p) {
        Ok(text) => {
            let base = p.parent().unwrap_or(Path::new("."));
            scenario::parse(&text, &p.display().to_string(), base).map(|sc| (sc, Some(text)))
        }
        Err(_) => scenario::load(p).map(|sc| (sc, None)),
    }
}

fn run(path: Option<&Path>, out: Option<PathBuf>, threads: Option<usize>) -> ExitCode {
    let (sc, source) = match load_with_source(path) {
        Ok(loaded) => loaded,
        Err(e) => return bad_input(&e),
    };
    let dir = out.unwrap_or_else(|| Path::new("output").join(&sc.name));
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
    {
        Ok(p) => p,
        Err(e) => return fail(&e.into()),
    };
    let started = std::time::Instant::now();
    let result = pool.install(|| memsim::sim::run(&sc));
    let elapsed = started.elapsed();
    match memsim::report::write_run_with_report(&dir, &sc, &result, source.as_deref()) {
        Ok(paths) => {
            let s = &result.summary;
            let mut o = std::io::stdout().lock();
            let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
            let _ = writeln!(
                o,
                "{}: {} VMs, {} simulated in {:.2} s",
                sc.name,
                s.vms,
                humantime(s.duration_s),
                elapsed.as_secs_f64()
            );
            let _ = writeln!(
                o,
                "  host memused peak {:.1} GiB, mean {:.1} GiB; above target {}",
                gib(s.peak_memused_bytes),
                gib(s.mean_memused_bytes),
                humantime(s.time_above_target_s)
            );
            let _ = writeln!(
                o,
                "  balloon: {} commands, {:.1} GiB moved; guest swap-out {:.1} GiB, cache refaults {:.1} GiB",
                s.balloon_commands,
                gib(s.balloon_moved_bytes),
                gib(s.guest_swap_out_pages * 4096),
                gib(s.cache_refault_pages * 4096)
            );
            let _ = writeln!(
                o,
                "  KSM: saved peak {:.1} GiB, mean {:.1} GiB; ksmd scanned {} pages, {:.1} % of a core",
                gib(s.peak_ksm_saved_bytes),
                gib(s.mean_ksm_saved_bytes),
                s.ksm_pages_scanned,
                100.0 * s.ksmd_cpu_s / s.duration_s.max(1.0)
            );
            let _ = writeln!(
                o,
                "  guest OOM kills: {}{}; host OOM kills: {}{}",
                s.guest_oom_kills,
                in_parentheses(tally(&s.guest_oom_victims)),
                s.host_oom_kills,
                in_parentheses(tally(&s.host_oom_victims))
            );
            let _ = writeln!(o, "  wrote {} files to {}", paths.len(), dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn parse_level(text: &str) -> Result<memsim::explain::Level, String> {
    text.parse()
}

fn parse_offset(text: &str) -> Result<memsim::engine::SimTime, String> {
    memsim::explain::parse_offset(text)
}

/// `memsim explain`: arguments are checked before the (possibly long) run.
fn explain(
    path: &Path,
    level: memsim::explain::Level,
    since: Option<memsim::engine::SimTime>,
    until: Option<memsim::engine::SimTime>,
) -> ExitCode {
    let window = match memsim::explain::Window::new(since, until) {
        Ok(w) => w,
        Err(e) => return usage(&e),
    };
    let sc = match scenario::load(path) {
        Ok(sc) => sc,
        Err(e) => return bad_input(&e),
    };
    if let Some(s) = since.filter(|&s| s > sc.duration) {
        let end = memsim::explain::clock(sc.duration.as_secs_f64());
        let since = memsim::explain::clock(s.as_secs_f64());
        return usage(&format!(
            "--since {since} is after the end of the run ({end})"
        ));
    }
    let result = memsim::sim::run(&sc);
    let lines = memsim::explain::explain(&sc, &result, level, window);
    let mut o = std::io::stdout().lock();
    match o.write_all(memsim::explain::to_text(&lines).as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.into()),
    }
}

fn sweep(
    path: &Path,
    out: Option<PathBuf>,
    threads: Option<usize>,
    shard: Option<memsim::sweep::Shard>,
) -> ExitCode {
    let sw = match memsim::sweep::load(path) {
        Ok(sw) => sw,
        Err(e) => return bad_input(&e),
    };
    let def = sw.definition();
    let dir = out.unwrap_or_else(|| Path::new("output").join(format!("sweep-{}", def.scenario)));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build();
    let pool = match pool {
        Ok(p) => p,
        Err(e) => return fail(&e.into()),
    };
    let started = std::time::Instant::now();
    let progress = memsim::sweep::progress_bar(def.runs());
    match pool.install(|| memsim::sweep::execute(&sw, shard, &dir, &progress)) {
        Ok(files) => {
            let done = shard.map_or(def.runs(), |s| s.runs(def.runs()).len());
            let share = shard.map_or(String::new(), |s| format!(", shard {s}: {done} runs"));
            let mut o = std::io::stdout().lock();
            let _ = writeln!(
                o,
                "{}: {} runs ({} grid points × {} seeds{share}) in {:.1} s",
                def.scenario,
                def.runs(),
                def.grid_points(),
                def.seeds.len(),
                started.elapsed().as_secs_f64()
            );
            for f in files {
                let _ = writeln!(o, "  wrote {}", f.display());
            }
            let _ = writeln!(o, "  runs in {}", dir.join("runs").display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// The policies with what each does, for `--help`.
fn policy_help() -> String {
    let lines: Vec<String> = Policy::ALL
        .iter()
        .map(|p| format!("  {:<20} {}", p.name(), p.summary()))
        .collect();
    format!(
        "Policies, in this order (default: all):\n{}",
        lines.join("\n")
    )
}

fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, ExitCode> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| fail(&e.into()))
}

fn compare(
    path: &Path,
    policies: &[Policy],
    seeds: usize,
    out: Option<PathBuf>,
    threads: Option<usize>,
) -> ExitCode {
    use memsim::compare::{self, Plan};
    let plan = match load_with_source(Some(path)) {
        Ok((sc, source)) => Plan::new(sc, policies, seeds).map(|plan| match source {
            Some(yaml) => plan.with_source(yaml),
            None => plan,
        }),
        Err(e) => {
            eprintln!("{e}");
            Err(compare::option_problems(policies, seeds))
        }
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(problems) => return report_problems(problems),
    };
    let name = &plan.scenario().name;
    let dir = out.unwrap_or_else(|| Path::new("output").join(format!("compare-{name}")));
    let pool = match thread_pool(threads) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let started = std::time::Instant::now();
    let progress = memsim::sweep::progress_bar(plan.runs().len());
    match pool.install(|| compare::execute(&plan, &dir, &progress)) {
        Ok(outcome) => {
            let mut o = std::io::stdout().lock();
            let seeds = plan.seeds().len();
            let _ = writeln!(
                o,
                "{name}: {} policies × {seeds} seed{}, {} simulated each; {} runs in {:.1} s",
                plan.policies().len(),
                if seeds == 1 { "" } else { "s" },
                humantime(plan.scenario().duration.as_secs_f64()),
                plan.runs().len(),
                started.elapsed().as_secs_f64()
            );
            let _ = write!(o, "{}", compare::terminal(&outcome.comparison));
            for f in outcome.files {
                let _ = writeln!(o, "  wrote {}", f.display());
            }
            let _ = writeln!(o, "  each run's outputs in {}/<run>/", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn density(
    path: &Path,
    options: &memsim::density::Options,
    out: Option<PathBuf>,
    threads: Option<usize>,
    shard: Option<memsim::sweep::Shard>,
) -> ExitCode {
    let search = match memsim::density::prepare(path, options) {
        Ok(search) => search,
        Err(problems) => return report_problems(problems),
    };
    let def = search.definition();
    let dir = out.unwrap_or_else(|| Path::new("output").join(format!("density-{}", def.scenario)));
    let pool = match thread_pool(threads) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let started = std::time::Instant::now();
    let progress = memsim::sweep::progress_bar(0);
    match pool.install(|| memsim::density::execute(&search, shard, &dir, &progress)) {
        Ok(done) => {
            let mut o = std::io::stdout().lock();
            let share = shard.map_or(String::new(), |s| format!(", shard {s}"));
            let seeds = def.seeds.len();
            let _ = writeln!(
                o,
                "{}: how many {} VMs fit? {} policies × {seeds} seed{}{share}; {} runs in {:.1} s",
                def.scenario,
                def.group,
                done.policies.len(),
                if seeds == 1 { "" } else { "s" },
                done.runs,
                started.elapsed().as_secs_f64()
            );
            let _ = write!(o, "{}", done.results.report(&done.policies));
            for f in done.files {
                let _ = writeln!(o, "  wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn merge_density(shards: &[PathBuf], dir: &Path) -> ExitCode {
    use memsim::sweep::MergeError;
    match memsim::density::merge(shards, dir) {
        Ok(merged) => {
            let mut o = std::io::stdout().lock();
            let def = &merged.results.definition;
            let _ = writeln!(
                o,
                "merged {} density shards, {} evaluations",
                merged.shards,
                merged.results.evaluations.len()
            );
            let _ = write!(o, "{}", merged.results.report(&def.policies));
            for f in merged.files {
                let _ = writeln!(o, "  wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(MergeError::Input(problems)) => report_problems(problems),
        Err(MergeError::Output(e)) => fail(&e),
    }
}

fn merge(shards: &[PathBuf], out: Option<PathBuf>) -> ExitCode {
    use memsim::sweep::MergeError;
    let dir = out.unwrap_or_else(|| shards[0].clone());
    if memsim::density::has_manifests(shards) {
        return merge_density(shards, &dir);
    }
    match memsim::sweep::merge(shards, &dir) {
        Ok(merged) => {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "merged {} shards, {} runs", merged.shards, merged.runs);
            for f in merged.files {
                let _ = writeln!(o, "  wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(MergeError::Input(problems)) => report_problems(problems),
        Err(MergeError::Output(e)) => fail(&e),
    }
}

/// " (201/postgres ×17, 301/job)": victims with their kill counts, in first-kill order.
/// ` (text)`, or nothing for no text.
fn in_parentheses(text: String) -> String {
    if text.is_empty() {
        text
    } else {
        format!(" ({text})")
    }
}

fn humantime(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// Bad user input: every problem on stderr, exit status 2, nothing written.
fn bad_input(e: &scenario::ScenarioError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(2)
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("memsim: {e:#}");
    ExitCode::FAILURE
}
