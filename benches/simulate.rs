//! Simulation speed: simulated seconds per wall-clock second (criterion's throughput
//! line, "elem/s"): the quickstart as shipped (ksmtuned starts KSM under pressure), the
//! quickstart without KSM (`balloon` policy), and a day on a 48-VM, 256 GiB host
//! without KSM. With KSM, ksmd's per-page work dominates; the 48-VM day with KSM takes
//! minutes and is measured with `memsim run` instead (README, "Determinism and speed").

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use memsim::policy::Policy;
use std::path::Path;

fn bench_scenario(c: &mut Criterion, file: &str, policy: Option<Policy>) {
    let mut sc = memsim::scenario::load(Path::new(file)).expect("scenario loads");
    if let Some(p) = policy {
        p.apply(&mut sc);
    }
    let name = match policy {
        Some(p) => format!("{} ({p})", sc.name),
        None => sc.name.clone(),
    };
    let mut group = c.benchmark_group("simulate");
    group.sample_size(10);
    group.throughput(Throughput::Elements(sc.duration.as_nanos() / 1_000_000_000));
    group.bench_function(&name, |b| b.iter(|| memsim::sim::run(&sc)));
    group.finish();
}

fn simulate(c: &mut Criterion) {
    bench_scenario(c, "scenarios/quickstart.yaml", None);
    bench_scenario(c, "scenarios/quickstart.yaml", Some(Policy::Balloon));
    bench_scenario(c, "scenarios/large-48vm.yaml", Some(Policy::Balloon));
}

criterion_group!(benches, simulate);
criterion_main!(benches);
