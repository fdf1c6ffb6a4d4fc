//! Scenario files: YAML in, a resolved [`Scenario`] out, or every problem at once.
//!
//! A scenario describes one host, its pvestatd settings and its VMs (see
//! `docs/scenario-format.md` for the user's reference). Loading happens in three steps,
//! each in its own file:
//!
//! 1. `located.rs`: YAML text → a tree whose nodes know their line (yaml-rust2 events).
//! 2. `load.rs`, `vm.rs`, `workload.rs` walk that tree by hand with the helpers in
//!    `read.rs`: unknown keys, units ([`units`]), types and ranges are checked key by key;
//!    templates are layered under VMs; rules spanning keys are checked after layering;
//!    `count:` is expanded; trace files are read.
//! 3. The result is plain data (`model.rs`) with every default filled in, so the
//!    simulator never sees an option that is "unset" or a size that is a string.
//!
//! Walking by hand instead of deriving `Deserialize` is deliberate: a derived
//! deserializer stops at the first problem and knows no line numbers, while users
//! deserve the whole list, each as `file:line: key.path: message`.

mod actions;
mod error;
mod ksm;
mod load;
pub(crate) mod located;
mod model;
pub(crate) mod read;
pub mod units;
mod vm;
mod workload;

pub use error::{Problem, ScenarioError};
pub(crate) use load::read_text;
pub use load::{load, parse};
pub use model::*;
