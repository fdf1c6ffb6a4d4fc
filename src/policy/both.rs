//! `both`: what a Proxmox VE host does out of the box — pvestatd's auto-ballooning and
//! ksmd driven by ksmtuned.

use crate::scenario::Scenario;

pub(super) fn apply(sc: &mut Scenario) {
    sc.pvestatd.enabled = true;
    sc.qemu_start_target = true;
    sc.mom = None;
    super::ksmtuned_on(sc);
}
