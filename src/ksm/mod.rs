//! Kernel samepage merging: the workloads and traces shared by the simulated ksmd and
//! the real-kernel runner.

pub mod real;
pub mod trace;
pub mod workload;
