//! Sweep speed: a 64-run sweep (4 web VM counts × 4 ballooning targets × 4 seeds) of
//! the quickstart cut to 30 simulated minutes, whole (simulation and every output
//! written) with 1 and with 2 threads, and the simulations alone with 1 thread.
//! Criterion's throughput line is runs per second; the 2-thread speed-up is the ratio
//! of the first two, and the per-run cost of the sweep around the simulation (loading
//! its scenario, writing its CSVs, summary and six plots, its sweep.csv row) is the
//! difference between the first and the third, divided by 64. Outputs go to a
//! temporary folder: `TMPDIR=/dev/shm cargo bench --bench sweep` leaves the disk's
//! fsync latency out.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use indicatif::ProgressBar;
use memsim::sweep::{self, Sweep};

const RUNS: u64 = 64;

fn quickstart_sweep() -> Sweep {
    let quickstart = std::fs::read_to_string("scenarios/quickstart.yaml").expect("quickstart");
    let text = quickstart.replacen("duration: 2h", "duration: 30m", 1)
        + "\nsweep:\n  parameters:\n    vms[name=web].count: [3, 4, 5, 6]\n    pvestatd.ballooning-target: [70, 75, 80, 85]\n  seeds: 4\n";
    let sw = sweep::parse(&text, "bench-sweep.yaml", Path::new("scenarios")).expect("sweep loads");
    assert_eq!(sw.runs().len() as u64, RUNS);
    sw
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

fn bench_sweep(c: &mut Criterion) {
    let sw = quickstart_sweep();
    let out = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("sweep");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RUNS));
    for threads in [1, 2] {
        let pool = pool(threads);
        group.bench_function(format!("64 runs, {threads} thread(s)"), |b| {
            b.iter(|| {
                pool.install(|| sweep::execute(&sw, None, out.path(), &ProgressBar::hidden()))
                    .expect("sweep runs")
            })
        });
    }
    let one = pool(1);
    group.bench_function("64 simulations only, 1 thread", |b| {
        b.iter(|| {
            one.install(|| {
                for run in sw.runs() {
                    std::hint::black_box(memsim::sim::run(&sw.scenario(&run)));
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_sweep);
criterion_main!(benches);
