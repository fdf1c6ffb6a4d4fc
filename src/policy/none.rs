//! `none`: nothing reclaims guest memory. Balloon targets never move after VM start
//! and ksmd never runs — the baseline the other policies are measured against.

use crate::scenario::Scenario;

pub(super) fn apply(sc: &mut Scenario) {
    super::balloon_off(sc);
    super::ksm_off(sc);
}
