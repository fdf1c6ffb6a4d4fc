pub mod autoballoon;
pub mod engine;
pub mod metrics;
pub mod report;
pub mod scenario;
pub mod workload;
