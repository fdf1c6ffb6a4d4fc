//! `ksm-always`: ksmd scanning all the time at the scenario's `ksm:` rate
//! (`pages_to_scan` every `sleep_millisecs`, kernel defaults 100 per 20 ms), without
//! ksmtuned and without auto-ballooning: what merging alone achieves when it never
//! waits for memory pressure, and what it costs in CPU.

use crate::scenario::Scenario;

pub(super) fn apply(sc: &mut Scenario) {
    super::balloon_off(sc);
    sc.ksm.ksmtuned = None;
    sc.ksm.sysfs.run = 1;
    // no admin starts a daemon either; the admin's sysfs writes stay
    for a in &mut sc.actions {
        a.ksmtuned = None;
    }
}
