//! Comparing a real-kernel KSM recording with a simulated trace of the same workload
//! (`memsim calibrate`). Needs no kernel.

mod calibration;
mod compare;

pub use calibration::write_calibration;
pub use compare::{compare, Comparison, CounterDiff, Mismatch, PassEnd, Summary};
