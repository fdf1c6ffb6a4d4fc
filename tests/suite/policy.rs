//! Policies switch exactly the controllers they name and nothing else, from a `policy:`
//! key as from code; unknown names are refused with the list of valid ones.

use std::path::Path;

use memsim::policy::Policy;
use memsim::scenario::{load, parse, Scenario};

fn quickstart() -> Scenario {
    load(Path::new("scenarios/quickstart.yaml")).unwrap()
}

/// (auto-ballooning, ksmtuned, ksmd running from boot, every guest with a balloon
/// device reports free pages, MOM)
fn controllers(sc: &Scenario) -> (bool, bool, bool, bool, bool) {
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
        sc.mom.is_some(),
    )
}

#[test]
fn each_policy_switches_its_controllers() {
    let want = [
        (Policy::None, (false, false, false, false, false)),
        (Policy::Balloon, (true, false, false, false, false)),
        (Policy::Ksm, (false, true, false, false, false)),
        (Policy::Both, (true, true, false, false, false)),
        (Policy::KsmAlways, (false, false, true, false, false)),
        (
            Policy::FreePageReporting,
            (false, false, false, true, false),
        ),
        (Policy::Mom, (false, false, false, false, true)),
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
    assert_eq!(controllers(&sc), (false, false, true, false, false));
    let err = parse(&format!("{head}policy: balon\n"), "p.yaml", Path::new(".")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "p.yaml:4: policy: unknown policy \"balon\" (valid: none, balloon, ksm, both, ksm-always, free-page-reporting, mom)"
    );
    for p in Policy::ALL {
        assert_eq!(p.name().parse::<Policy>(), Ok(p));
    }
}

/// MOM in the whole simulation: four 4 GiB guests on a 14 GiB host, each holding
/// 2.5 GiB. Host free memory (MemFree + Buffers + Cached) sits below 20 % of MemTotal,
/// so every 15 s round shrinks each guest — by at most 5 % of its current size
/// (`max_balloon_change_percent`), never below its guaranteed 1 GiB.
#[test]
fn mom_shrinks_guests_in_steps_of_at_most_five_percent_under_pressure() {
    let sc = {
        let mut sc = load(Path::new("tests/fixtures/scenarios/mom.yaml")).unwrap();
        Policy::Mom.apply(&mut sc);
        sc
    };
    let r = memsim::sim::run(&sc);
    let targets: Vec<_> = r
        .events
        .iter()
        .filter(|e| e.kind == memsim::metrics::EventKind::BalloonTarget)
        .collect();
    assert!(!targets.is_empty(), "MOM sent balloon targets");
    // Rounds fall every 15 s.
    assert!(
        targets.iter().all(|e| (e.t_s as u64) % 15 == 0),
        "{:?}",
        targets[0]
    );
    let shrinks: Vec<_> = targets.iter().filter(|e| e.value < 0).collect();
    assert!(!shrinks.is_empty(), "pressure makes MOM shrink");
    for e in &shrinks {
        let current: f64 = e.detail.split(' ').nth(2).unwrap().parse().unwrap();
        let step = -(e.value as f64) / (1 << 20) as f64;
        assert!(
            step <= current * 0.05 + 1.0,
            "{}: step {step} MiB",
            e.detail
        );
    }
    let last = r.vms.iter().rev().take(4).collect::<Vec<_>>();
    assert!(last.iter().all(|v| v.actual_bytes >= 1 << 30));
}
