//! The tabular outputs: three CSVs and `summary.json`, streamed to a writer.
//!
//! Column names come from the `Serialize` field names in [`crate::metrics`], so the
//! CSV headers cannot drift from the structs. Floats are formatted by `ryu` (through
//! `csv` and `serde_json`): shortest round-trip form, identical on every run.

use std::io::Write;

use serde::Serialize;

use crate::metrics::{Event, EventKind, HostSample, RunResult, VmSample};

pub(super) fn host_csv(result: &RunResult, out: &mut dyn Write) -> anyhow::Result<()> {
    write_csv(out, &result.host, &HostSample::default())
}

pub(super) fn vms_csv(result: &RunResult, out: &mut dyn Write) -> anyhow::Result<()> {
    write_csv(out, &result.vms, &VmSample::default())
}

pub(super) fn events_csv(result: &RunResult, out: &mut dyn Write) -> anyhow::Result<()> {
    let placeholder = Event {
        t_s: 0.0,
        vmid: 0,
        kind: EventKind::VmStart,
        value: 0,
        detail: String::new(),
    };
    write_csv(out, &result.events, &placeholder)
}

/// Pretty-printed, with a trailing newline like any text file.
pub(super) fn summary_json(result: &RunResult, out: &mut dyn Write) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &result.summary)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Header row plus one row per element. `csv` writes the header only together with
/// the first row, so an empty table takes its header from `placeholder`: a file with
/// columns and no rows is still a valid, self-describing table.
fn write_csv<T: Serialize>(out: &mut dyn Write, rows: &[T], placeholder: &T) -> anyhow::Result<()> {
    if rows.is_empty() {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.serialize(placeholder)?;
        let bytes = writer.into_inner().map_err(|e| e.into_error())?;
        let header_end = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        out.write_all(&bytes[..header_end])?;
        return Ok(());
    }
    let mut writer = csv::Writer::from_writer(out);
    for row in rows {
        writer.serialize(row)?;
    }
    writer.flush()?;
    Ok(())
}
