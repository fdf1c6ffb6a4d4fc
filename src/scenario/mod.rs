mod model;
pub mod units;
pub use model::*;
