//! All integration tests in one binary: one link instead of one per file keeps the
//! build small (a clean `cargo test` once filled a CI disk) and the suite quick to build.
//! Run one file's tests with `cargo test --test suite <file>::`, e.g.
//! `cargo test --test suite ksm_fidelity:: -- --nocapture`.

mod alg1_cases;
mod common;

mod autoballoon_differential;
mod autoballoon_props;
mod autoballoon_replay;
mod autoballoon_upstream;
mod cli;
mod compare;
mod density;
mod explain;
mod guest_pages;
mod guest_reclaim;
mod host_side;
mod html_report;
mod ksm_fidelity;
mod ksm_host;
mod ksm_real_kernel;
mod ksm_selftests;
mod ksmtuned;
mod ksmtuned_differential;
mod lab_e3;
mod mom;
mod phenomena_balloon;
mod phenomena_ksm;
mod phenomena_ksmtuned;
mod phenomena_lab;
mod policy;
mod quickstart;
mod report;
mod scenario_errors;
mod scenario_fuzz;
mod scenario_load;
mod side_channel;
mod sim_rules;
mod sweep;
