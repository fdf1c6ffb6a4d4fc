//! Kernel samepage merging: a model of Linux 6.x ksmd ([`ksmd`]), the workloads and
//! traces shared by the simulator and the real-kernel runner, the simulation of a
//! workload ([`sim`]) and its comparison with a real recording ([`compare`]).

pub mod compare;
pub mod hash;
pub mod ksmd;
pub mod mm;
pub mod real;
pub mod sim;
pub mod stable;
pub mod thp;
pub mod timing;
pub mod trace;
pub mod unstable;
pub mod workload;

pub use ksmd::{KsmError, Ksmd, MmId, MmOptions, MmStat, PageState, Sysfs, SysfsError, Tunables};
