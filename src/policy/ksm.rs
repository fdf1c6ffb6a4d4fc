//! `ksm`: ksmd driven by ksmtuned (the scenario's variant, Proxmox's by default), no
//! auto-ballooning.

use crate::scenario::Scenario;

pub(super) fn apply(sc: &mut Scenario) {
    super::balloon_off(sc);
    super::ksmtuned_on(sc);
}
