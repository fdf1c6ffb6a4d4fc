//! The run as the narration reads it: names and settings by vmid, samples in time
//! order with "as of time t" lookups, the events inside the window.

use std::collections::BTreeMap;

use crate::metrics::{Event, EventKind, HostSample, RunResult, VmSample};
use crate::scenario::{Scenario, VmConfig};

use super::Window;

pub(super) struct Run<'a> {
    pub sc: &'a Scenario,
    pub result: &'a RunResult,
    /// Indices into `result.events` of the events inside the window, in order.
    events: Vec<usize>,
    pub window: Window,
    vms: BTreeMap<u32, Vec<&'a VmSample>>,
    names: BTreeMap<u32, String>,
}

impl<'a> Run<'a> {
    pub fn new(sc: &'a Scenario, result: &'a RunResult, window: Window) -> Run<'a> {
        let mut vms: BTreeMap<u32, Vec<&VmSample>> = BTreeMap::new();
        let mut names = BTreeMap::new();
        for s in &result.vms {
            vms.entry(s.vmid).or_default().push(s);
            names.entry(s.vmid).or_insert_with(|| s.name.clone());
        }
        for samples in vms.values_mut() {
            samples.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        }
        // The scenario's names win: samples may be absent (an empty run).
        for vm in &sc.vms {
            names.insert(vm.vmid, vm.name.clone());
        }
        let events = (0..result.events.len())
            .filter(|&i| window.contains(result.events[i].t_s))
            .collect();
        Run {
            sc,
            result,
            events,
            window,
            vms,
            names,
        }
    }

    /// The events inside the window, with their index in the whole log (a stable
    /// tie-breaker for sentences at the same instant).
    pub fn events(&self) -> impl Iterator<Item = (usize, &'a Event)> + '_ {
        self.events.iter().map(|&i| (i, &self.result.events[i]))
    }

    pub fn events_of(&self, kind: EventKind) -> impl Iterator<Item = (usize, &'a Event)> + '_ {
        self.events().filter(move |(_, e)| e.kind == kind)
    }

    pub fn name(&self, vmid: u32) -> String {
        self.names
            .get(&vmid)
            .cloned()
            .unwrap_or_else(|| format!("VM {vmid}"))
    }

    pub fn config(&self, vmid: u32) -> Option<&'a VmConfig> {
        self.sc.vms.iter().find(|v| v.vmid == vmid)
    }

    /// A VM whose guest ignores balloon targets: it has a balloon device but no driver.
    pub fn ignores_balloon(&self, vmid: u32) -> bool {
        self.config(vmid).is_some_and(|c| !c.balloon_driver)
    }

    /// The last host sample taken at or before `t`.
    pub fn host_at(&self, t: f64) -> Option<&'a HostSample> {
        let host = &self.result.host;
        let n = host.partition_point(|s| s.t_s <= t);
        n.checked_sub(1).map(|i| &host[i])
    }

    /// The last host sample taken strictly before `t`.
    pub fn host_before(&self, t: f64) -> Option<&'a HostSample> {
        let host = &self.result.host;
        let n = host.partition_point(|s| s.t_s < t);
        n.checked_sub(1).map(|i| &host[i])
    }

    /// Host samples from `from` (inclusive) to `to` (exclusive).
    pub fn host_between(&self, from: f64, to: f64) -> &'a [HostSample] {
        let host = &self.result.host;
        let a = host.partition_point(|s| s.t_s < from);
        let b = host.partition_point(|s| s.t_s < to);
        &host[a..b.max(a)]
    }

    /// One VM's samples in time order.
    pub fn vm_samples(&self, vmid: u32) -> &[&'a VmSample] {
        self.vms.get(&vmid).map_or(&[], Vec::as_slice)
    }

    pub fn vm_before(&self, vmid: u32, t: f64) -> Option<&'a VmSample> {
        let s = self.vm_samples(vmid);
        let n = s.partition_point(|x| x.t_s < t);
        n.checked_sub(1).map(|i| s[i])
    }

    /// A VM's samples from `from` (inclusive) to `to` (exclusive).
    pub fn vm_between(&self, vmid: u32, from: f64, to: f64) -> &[&'a VmSample] {
        let s = self.vm_samples(vmid);
        let a = s.partition_point(|x| x.t_s < from);
        let b = s.partition_point(|x| x.t_s < to);
        &s[a..b.max(a)]
    }

    /// Every vmid with samples or configuration, ascending.
    pub fn vmids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.names.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The time of the next event of `kind` for `vmid` after event `index`, in the
    /// whole log (not only the window): an episode lasts until the next one begins.
    pub fn next_of(&self, index: usize, vmid: u32, kind: EventKind) -> f64 {
        self.result.events[index + 1..]
            .iter()
            .find(|e| e.vmid == vmid && e.kind == kind)
            .map_or(f64::INFINITY, |e| e.t_s)
    }

    /// Seconds a sample stands for: the time since the sample before it (the
    /// scenario's interval for the first).
    pub fn sample_span(&self, prev: Option<f64>, t: f64) -> f64 {
        match prev {
            Some(p) if t > p => t - p,
            _ => self.sc.sample_interval.as_secs_f64(),
        }
    }

    pub fn names_of(&self, vmids: &[u32]) -> String {
        let names: Vec<String> = vmids.iter().map(|&v| self.name(v)).collect();
        super::format::names(&names)
    }
}
