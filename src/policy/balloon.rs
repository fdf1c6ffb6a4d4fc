//! `balloon`: pvestatd's auto-ballooning alone (`PVE/AutoBalloon.pm`), KSM off.

use crate::scenario::Scenario;

pub(super) fn apply(sc: &mut Scenario) {
    sc.pvestatd.enabled = true;
    sc.qemu_start_target = true;
    super::ksm_off(sc);
}
