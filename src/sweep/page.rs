//! `report.html` of a sweep: what was swept, the heatmap (its SVG, embedded), sweep.csv
//! as a table with a link to each run's own report, and the scenario file.
//!
//! A page with a row per run stays readable up to a few hundred runs; a larger sweep
//! shows a row per grid point instead (numbers averaged over the seeds), and beyond
//! that many grid points, the first of them — the page says which, and sweep.csv
//! stays the whole table. The page is built from the definition, the table and the
//! scenario text only, so `memsim merge` writes the same bytes as an unsharded sweep.

use super::table::metric_columns;
use super::{Definition, Table};
use crate::report::html::{Page, Section, Svg, Table as HtmlTable};
use crate::report::scenario_file_section;

/// The most rows the page's table shows.
pub(super) const MAX_ROWS: usize = 400;

/// The page; `heatmap` is the heatmap's SVG text, if one was drawn.
pub(super) fn page(
    def: &Definition,
    table: &Table,
    text: &str,
    heatmap: Option<&str>,
) -> anyhow::Result<Page> {
    Ok(Page::new(format!("memsim sweep — {}", def.scenario))
        .intro(format!(
            "{} runs: {} grid points × {} seed{}.",
            def.runs(),
            def.grid_points(),
            def.seeds.len(),
            if def.seeds.len() == 1 { "" } else { "s" }
        ))
        .section(parameters(def))
        .section(heatmap_section(def, heatmap))
        .section(runs(def, table)?)
        .section(scenario_file_section(text)))
}

fn parameters(def: &Definition) -> Section {
    let mut table = HtmlTable::new(&["parameter", "label", "values"]);
    for p in &def.parameters {
        table.row([p.path.clone(), p.label.clone(), p.values.join(", ")]);
    }
    let seeds: Vec<String> = def.seeds.iter().map(u64::to_string).collect();
    Section::new("Parameters")
        .text("The first parameter varies slowest in run order; seeds vary fastest.")
        .table(table)
        .text(format!("Seeds: {}.", seeds.join(", ")))
}

fn heatmap_section(def: &Definition, heatmap: Option<&str>) -> Section {
    let section = Section::new("Heatmap");
    let Some(svg) = heatmap else {
        return section.text("A heatmap is drawn for sweeps of exactly two parameters.");
    };
    let caption = format!(
        "{} per grid point, the mean over the seeds (sweep_heatmap.svg).",
        def.heatmap
    );
    match Svg::new(svg) {
        Ok(svg) => section.figure(svg, caption),
        Err(e) => section.text(format!(
            "sweep_heatmap.svg is not embedded ({e}); open the file itself."
        )),
    }
}

/// sweep.csv, a row per run if it is short enough, or per grid point.
fn runs(def: &Definition, table: &Table) -> anyhow::Result<Section> {
    let section = Section::new("Runs").text(
        "Links lead to each run's own report under runs/ beside this file \
         (after a sharded sweep, copy each shard's runs/ folder here).",
    );
    if table.rows.len() <= MAX_ROWS {
        let mut html = HtmlTable::new(&table.header);
        for row in &table.rows {
            let href = format!("runs/{}/report.html", row.cells[0]);
            html.linked_row(row.cells.iter().cloned(), 0, &href)
                .map_err(anyhow::Error::msg)?;
        }
        return Ok(section
            .text(format!(
                "sweep.csv as written: all {} runs.",
                table.rows.len()
            ))
            .table(html.numeric_where_numbers()));
    }
    let points = table.rows.len().div_ceil(def.seeds.len());
    let shown = points.min(MAX_ROWS);
    let note = match shown < points {
        true => format!(
            "{} runs are too many for one page: one row per grid point, the numbers averaged over its {} seeds, for the first {shown} of {points} grid points. sweep.csv has every run.",
            table.rows.len(),
            def.seeds.len()
        ),
        false => format!(
            "{} runs are too many for one page: one row per grid point, the numbers averaged over its {} seeds. sweep.csv has every run.",
            table.rows.len(),
            def.seeds.len()
        ),
    };
    Ok(section.text(note).table(rolled_up(def, table, shown)?))
}

/// A row per grid point (the first `points`): its first run (linked), the parameter
/// values and the mean of each metric over the point's runs.
fn rolled_up(def: &Definition, table: &Table, points: usize) -> anyhow::Result<HtmlTable> {
    let metrics: Vec<(usize, &String)> = table
        .header
        .iter()
        .enumerate()
        .filter(|(_, h)| metric_columns().contains(h))
        .collect();
    let params = 1..=def.parameters.len();
    let mut header = vec!["first run".to_string(), "runs".to_string()];
    header.extend(table.header[params.clone()].iter().cloned());
    header.extend(metrics.iter().map(|(_, h)| format!("mean {h}")));
    let mut html = HtmlTable::new(&header);
    for point in table.rows.chunk_by(|a, b| a.point == b.point).take(points) {
        let first = &point[0].cells;
        let mut cells = vec![first[0].clone(), point.len().to_string()];
        cells.extend(first[params.clone()].iter().cloned());
        cells.extend(
            metrics
                .iter()
                .map(|&(c, _)| mean(point.iter().map(|r| &r.cells[c]))),
        );
        let href = format!("runs/{}/report.html", first[0]);
        html.linked_row(cells, 0, &href)
            .map_err(anyhow::Error::msg)?;
    }
    Ok(html.numeric_where_numbers())
}

/// The mean of the cells that are numbers; empty if none is.
fn mean<'a>(cells: impl Iterator<Item = &'a String>) -> String {
    let values: Vec<f64> = cells.filter_map(|c| c.parse().ok()).collect();
    match values.len() {
        0 => String::new(),
        n => match values.iter().sum::<f64>() / n as f64 {
            whole if whole.fract() == 0.0 => format!("{whole:.0}"),
            m => format!("{m:.2}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Parameter, Row};
    use super::*;

    /// A sweep of `a` (`points` values) × 2 seeds whose `guest_oom_kills` column holds
    /// the run's index.
    fn sweep(points: usize) -> (Definition, Table) {
        let def = Definition {
            scenario: "s".into(),
            parameters: vec![Parameter {
                path: "a".into(),
                label: "a".into(),
                values: (0..points).map(|v| v.to_string()).collect(),
            }],
            seeds: vec![1, 2],
            heatmap: "guest_oom_kills".into(),
        };
        let header = vec!["run".into(), "a".into(), "guest_oom_kills".into()];
        let rows = (0..def.runs())
            .map(|index| Row {
                index,
                point: index / 2,
                cells: vec![
                    def.run_id(index),
                    (index / 2).to_string(),
                    index.to_string(),
                ],
            })
            .collect();
        (def, Table { header, rows })
    }

    fn html(points: usize) -> String {
        let (def, table) = sweep(points);
        page(&def, &table, "a: 1\n", None).unwrap().render()
    }

    #[test]
    fn small_sweeps_show_every_run() {
        let page = html(MAX_ROWS / 2);
        assert!(page.contains(&format!("sweep.csv as written: all {MAX_ROWS} runs.")));
        assert!(page.contains(
            "<td><a href=\"runs/0001-a=0-seed=2/report.html\">0001-a=0-seed=2</a></td><td class=\"n\">0</td><td class=\"n\">1</td>"
        ));
    }

    #[test]
    fn large_sweeps_show_a_row_per_grid_point_with_the_mean_over_the_seeds() {
        let page = html(MAX_ROWS / 2 + 1);
        assert!(page.contains("one row per grid point, the numbers averaged over its 2 seeds. sweep.csv has every run."));
        assert!(page.contains("<th class=\"n\">mean guest_oom_kills</th>"));
        // Grid point 3: runs 6 and 7, mean 6.5.
        assert!(page.contains(
            "<td><a href=\"runs/0006-a=3-seed=1/report.html\">0006-a=3-seed=1</a></td><td class=\"n\">2</td><td class=\"n\">3</td><td class=\"n\">6.50</td>"
        ), "{page:.3000}");
        assert_eq!(page.matches("<tr>").count(), 3 + MAX_ROWS / 2 + 1);

        let page = html(MAX_ROWS + 10);
        assert!(page.contains(&format!(
            "for the first {MAX_ROWS} of {} grid points",
            MAX_ROWS + 10
        )));
        assert_eq!(page.matches("<tr>").count(), 3 + MAX_ROWS);
        assert!(!page.contains(&format!("a={MAX_ROWS}-seed=1")));
    }
}
