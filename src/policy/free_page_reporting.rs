//! `free-page-reporting`: no auto-ballooning; instead every guest with a balloon
//! device reports its free memory to the host (virtio-balloon free page reporting),
//! which discards it. KSM off.

use crate::scenario::Scenario;

pub(super) fn apply(sc: &mut Scenario) {
    super::balloon_off(sc);
    super::ksm_off(sc);
    for vm in &mut sc.vms {
        vm.free_page_reporting = vm.balloon_device;
    }
}
