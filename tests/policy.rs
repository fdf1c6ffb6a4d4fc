//! Policies switch exactly the controllers they name and nothing else, from a `policy:`
//! key as from code; unknown names are refused with the list of valid ones.

use std::path::Path;

use memsim::policy::Policy;
use memsim::scenario::{load, parse, Scenario};

fn quickstart() -> Scenario {
    load(Path::new("scenarios/quickstart.yaml")).unwrap()
}

/// (auto-ballooning, ksmtuned, ksmd running from boot, every guest with a balloon
/// device reports free pages)
fn controllers(sc: &Scenario) -> (bool, bool, bool, bool) {
    let fpr = sc
        .vms
        .iter()
        .filter(|v| v.balloon_device)
        .all(|v| v.free_page_reporting);
    (
        sc.pvestatd.enabled,
        sc.ksm.ksmtuned.is_some(),
        sc.ksm.sysfs.run == 1,
        fpr,
    )
}

#[test]
fn each_policy_switches_its_controllers() {
    let want = [
        (Policy::None, (false, false, false, false)),
        (Policy::Balloon, (true, false, false, false)),
        (Policy::Ksm, (false, true, false, false)),
        (Policy::Both, (true, true, false, false)),
        (Policy::KsmAlways, (false, false, true, false)),
        (Policy::FreePageReporting, (false, false, false, true)),
    ];
    assert_eq!(want.len(), Policy::ALL.len());
    for (policy, expected) in want {
        let mut sc = quickstart();
        let before = sc.clone();
        policy.apply(&mut sc);
        assert_eq!(controllers(&sc), expected, "{policy}");
        assert_eq!(sc.policy, Some(policy));
        // Everything else stays as the scenario says.
        assert_eq!(sc.host, before.host);
        assert_eq!(sc.vms.len(), before.vms.len());
        for (a, b) in sc.vms.iter().zip(&before.vms) {
            assert_eq!(
                (a.memory, a.balloon_min, a.shares),
                (b.memory, b.balloon_min, b.shares)
            );
        }
    }
}

#[test]
fn the_quickstart_is_the_proxmox_default() {
    let sc = quickstart();
    assert_eq!(
        controllers(&sc),
        controllers(&{
            let mut b = sc.clone();
            Policy::Both.apply(&mut b);
            b
        })
    );
}

#[test]
fn a_policy_key_applies_the_preset_and_names_are_checked() {
    let head = "duration: 1h\nhost: {memory: 16GiB}\nvms: [{vmid: 100, memory: 2GiB}]\n";
    let sc = parse(
        &format!("{head}policy: ksm-always\n"),
        "p.yaml",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(sc.policy, Some(Policy::KsmAlways));
    assert_eq!(controllers(&sc), (false, false, true, false));
    let err = parse(&format!("{head}policy: balon\n"), "p.yaml", Path::new(".")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "p.yaml:4: policy: unknown policy \"balon\" (valid: none, balloon, ksm, both, ksm-always, free-page-reporting)"
    );
    for p in Policy::ALL {
        assert_eq!(p.name().parse::<Policy>(), Ok(p));
    }
}
