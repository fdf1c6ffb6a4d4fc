pub mod autoballoon;
pub mod balloon;
pub mod engine;
pub mod guest;
pub mod host;
pub mod metrics;
pub mod scenario;
pub mod workload;
