//! Simulation speed: simulated seconds per wall-clock second (criterion's throughput
//! line, "elem/s"), for the quickstart and for a day on a 48-VM, 256 GiB host.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;

fn bench_scenario(c: &mut Criterion, file: &str) {
    let sc = memsim::scenario::load(Path::new(file)).expect("scenario loads");
    let mut group = c.benchmark_group("simulate");
    group.sample_size(10);
    group.throughput(Throughput::Elements(sc.duration.as_nanos() / 1_000_000_000));
    group.bench_function(&sc.name, |b| b.iter(|| memsim::sim::run(&sc)));
    group.finish();
}

fn simulate(c: &mut Criterion) {
    bench_scenario(c, "scenarios/quickstart.yaml");
    bench_scenario(c, "scenarios/large-48vm.yaml");
}

criterion_group!(benches, simulate);
criterion_main!(benches);
