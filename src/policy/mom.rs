//! `mom`: oVirt MOM's memory policies as vdsm installs them (`src/mom.rs`) instead of
//! pvestatd and ksmtuned: every 15 s, guests shrink when host free memory (averaged over
//! the last 10 samples) is under 20 % and grow otherwise, and ksmd is run like
//! ksmtuned does it. `balloonEnabled` is on, as the oVirt engine sets it for a cluster
//! with memory balloon optimization (vdsm's own default is off).

use crate::mom::MomConfig;
use crate::scenario::Scenario;

pub(super) fn apply(sc: &mut Scenario) {
    super::balloon_off(sc);
    super::ksm_off(sc);
    sc.mom = Some(MomConfig {
        balloon_enabled: true,
        ..MomConfig::vdsm()
    });
}
