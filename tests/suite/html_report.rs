//! `report.html`, written by every `memsim run`, `compare`, `sweep` and `density` (and
//! by `memsim merge` of their shards): one self-contained file (inline SVG figures,
//! inline style, no script, nothing fetched) with the command's tables, figures and
//! scenario; and, where Chromium is installed, that a real browser renders each kind
//! of page without errors into a page that is not blank.
//!
//! The browser test is skipped with a notice when no Chromium is found, unless
//! `MEMSIM_REQUIRE_CHROMIUM=1` (set by `.ci/run`, which installs it): then a missing
//! browser fails the test.

use crate::common::cli::{csv_cells, memsim};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIO: &str = "tests/fixtures/scenarios/squeeze_small.yaml";

/// Runs the small fixture into `dir` and returns report.html's text.
fn run_report(dir: &Path) -> String {
    let o = memsim(&["run", SCENARIO, "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("wrote 13 files"), "{stdout}");
    std::fs::read_to_string(dir.join("report.html")).unwrap()
}

/// Every value of `attr="…"` in `html`.
fn attribute_values<'h>(html: &'h str, attr: &str) -> Vec<&'h str> {
    let key = format!("{attr}=\"");
    html.match_indices(&key)
        .filter_map(|(i, _)| {
            let rest = &html[i + key.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

#[test]
fn report_is_self_contained_with_figures_tables_timeline_and_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let html = run_report(tmp.path());
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));

    // Nothing outside the file: no scripts, no external sources or links.
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "no script");
    assert!(!lower.contains("<link"), "no stylesheet link");
    assert!(
        !lower.contains("<img"),
        "figures are inline SVG, not images"
    );
    for attr in ["src", "href"] {
        for value in attribute_values(&html, attr) {
            assert!(value.starts_with('#'), "{attr}=\"{value}\" leaves the page");
        }
    }
    assert!(!lower.contains("url("), "no CSS fetches");

    // The four figures, as the run's own SVG files, embedded.
    assert_eq!(html.matches("<svg ").count(), 4);
    for name in ["host_memory", "balloons", "pressure", "ksm"] {
        let svg = std::fs::read_to_string(tmp.path().join(format!("{name}.svg"))).unwrap();
        assert!(
            html.contains(svg.trim()),
            "{name}.svg not embedded as written"
        );
    }

    // Tables from summary.json and the VMs.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("summary.json")).unwrap())
            .unwrap();
    let commands = summary["balloon_commands"].as_u64().unwrap();
    assert!(html.contains(&format!(
        "<td class=\"n\">{commands}</td><td>balloon_commands</td>"
    )));
    assert!(html.contains("<td class=\"n\">201</td><td>db</td><td class=\"n\">6.0 GiB</td><td class=\"n\">1.0 GiB</td>"));

    // The timeline: the first OOM kill with the event's badness.
    let events = std::fs::read_to_string(tmp.path().join("events.csv")).unwrap();
    let kill = events
        .lines()
        .find(|l| l.contains(",guest_oom_kill,"))
        .expect("the fixture has an OOM kill");
    let badness = kill.split(',').nth(3).unwrap();
    let want = format!("db: guest OOM — killed postgres, badness {badness}");
    assert!(html.contains(&want), "{want} not in the timeline");
    assert!(html.contains("<table class=\"timeline\">"));

    // The scenario as run, escaped.
    assert!(html.contains("name: squeeze-small"));
    assert!(html.contains("anon: {shape: ramp, from: 1GiB"));
}

#[test]
fn report_escapes_names_and_is_byte_identical_on_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(SCENARIO)
        .unwrap()
        .replace("name: squeeze-small", "name: \"<b>squeeze & co</b>\"")
        .replace("name: web,", "name: \"w<i>\",");
    let scenario = tmp.path().join("evil.yaml");
    std::fs::write(&scenario, yaml).unwrap();
    let out = tmp.path().join("out");
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = memsim(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let first = std::fs::read(out.join("report.html")).unwrap();
    let html = String::from_utf8(first.clone()).unwrap();
    assert!(
        !html.contains("<b>") && !html.contains("<i>"),
        "names became markup"
    );
    assert!(html.contains("<title>memsim — &lt;b&gt;squeeze &amp; co&lt;/b&gt;</title>"));
    assert!(html.contains("w&lt;i&gt;-1, w&lt;i&gt;-2: started with 2.0 GiB"));
    assert!(memsim(&args).status.success());
    assert_eq!(std::fs::read(out.join("report.html")).unwrap(), first);
}

/// `chromium` (Debian), `chromium-browser` or `google-chrome` on PATH, or the binary
/// named by `MEMSIM_CHROMIUM`.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MEMSIM_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name))
        })
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `page` with `args` and returns its stdout and stderr;
/// kills it after two minutes.
fn chromium(browser: &Path, profile: &Path, args: &[String], page: &Path) -> (String, String) {
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .args(["--enable-logging=stderr", "--v=0", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("waiting for chromium").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (stdout.join().unwrap(), stderr.join().unwrap())
}

/// Messages the page itself logged (Chromium prefixes them with `CONSOLE`), and
/// uncaught errors; Chromium's own complaints (no D-Bus, no GPU) are not the page's.
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

/// Fraction of pixels of an 8-bit PNG that are not (near) white.
fn ink(png_path: &Path) -> (u32, u32, f64) {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = &buf[..info.buffer_size()];
    let inked = pixels
        .chunks(channels)
        .filter(|p| p.iter().take(3.min(channels)).any(|&c| c < 235))
        .count();
    let total = (info.width * info.height) as f64;
    (info.width, info.height, inked as f64 / total)
}

/// Headless Chromium, or `None` (with a notice) when there is none and none is required.
fn browser() -> Option<PathBuf> {
    let required = std::env::var("MEMSIM_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1");
    let browser = find_chromium();
    if browser.is_none() {
        assert!(
            !required,
            "MEMSIM_REQUIRE_CHROMIUM=1 but no chromium found (apt-get install chromium)"
        );
        eprintln!("skipped: no chromium on PATH (set MEMSIM_REQUIRE_CHROMIUM=1 to require it)");
    }
    browser
}

/// Renders `page` in Chromium: no console errors, a screenshot that is not blank, and
/// a DOM with the heading `h1`, `svgs` figures and the text `text`.
fn renders(browser: &Path, page: &Path, h1: &str, svgs: usize, text: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let page = page.canonicalize().unwrap();
    let shot = tmp.path().join("shot.png");

    let (_, stderr) = chromium(
        browser,
        &tmp.path().join("profile-shot"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,3000".to_string(),
        ],
        &page,
    );
    assert_eq!(console_errors(&stderr), Vec::<&str>::new(), "{stderr}");
    let size = std::fs::metadata(&shot).expect("a screenshot").len();
    assert!(size > 20_000, "screenshot of {size} bytes: blank?");
    let (width, height, inked) = ink(&shot);
    assert_eq!((width, height), (1400, 3000));
    assert!(
        inked > 0.02,
        "only {:.2} % of the page is not white",
        inked * 100.0
    );

    let (dom, stderr) = chromium(
        browser,
        &tmp.path().join("profile-dom"),
        &["--dump-dom".to_string()],
        &page,
    );
    assert_eq!(console_errors(&stderr), Vec::<&str>::new(), "{stderr}");
    assert!(dom.contains(&format!("<h1>{h1}</h1>")), "DOM: {dom:.300}");
    assert_eq!(dom.matches("<svg ").count(), svgs, "figures in the DOM");
    assert!(dom.contains(text), "{text} not in the DOM");
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(browser) = browser() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    run_report(&out);
    renders(
        &browser,
        &out.join("report.html"),
        "memsim — squeeze-small",
        4,
        "guest OOM — killed postgres",
    );
}

#[test]
fn compare_sweep_and_density_reports_render_in_headless_chromium() {
    let Some(browser) = browser() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("compare");
    compare_report(&out);
    renders(
        &browser,
        &out.join("report.html"),
        "memsim compare — squeeze-small",
        4,
        "host memused peak, GiB",
    );
    let out = tmp.path().join("sweep");
    sweep_report(tmp.path(), &out);
    renders(
        &browser,
        &out.join("report.html"),
        "memsim sweep — squeeze-small",
        1,
        "0003-count=2-ballooning-target=90-seed=7",
    );
    let out = tmp.path().join("density");
    density_report(&out);
    renders(
        &browser,
        &out.join("report.html"),
        "memsim density — squeeze-small: how many web VMs fit?",
        1,
        "per seed: min / median / max",
    );
}

// --- compare, sweep and density pages, without a browser ---

/// `memsim compare` of the small fixture: two policies, two seeds.
fn compare_report(dir: &Path) -> String {
    let o = memsim(&[
        "compare",
        SCENARIO,
        "--policies",
        "none,balloon",
        "--seeds",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(dir.join("report.html")).unwrap()
}

/// The small fixture cut to ten simulated minutes, with a 2 × 2 sweep (web VMs ×
/// ballooning target), one seed.
const SWEEP: &str = "
sweep:
  parameters:
    vms[name=web].count: [1, 2]
    pvestatd.ballooning-target: [70, 90]
";

fn sweep_file(dir: &Path) -> PathBuf {
    let path = dir.join("sweep.yaml");
    let text = std::fs::read_to_string(SCENARIO)
        .unwrap()
        .replace("\nduration: 30m\n", "\nduration: 10m\n");
    assert!(text.contains("duration: 10m"));
    std::fs::write(&path, format!("{text}{SWEEP}")).unwrap();
    path
}

fn sweep_report(tmp: &Path, dir: &Path) -> String {
    let file = sweep_file(tmp);
    let o = memsim(&[
        "sweep",
        file.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(dir.join("report.html")).unwrap()
}

/// `memsim density` of the fixture's web group, 1 to 8 VMs, within 10 OOM kills and
/// 95 % memused.
fn density_report(dir: &Path) -> String {
    let o = memsim(&[
        "density",
        SCENARIO,
        "--group",
        "web",
        "--policies",
        "none,balloon",
        "--seeds",
        "2",
        "--max-oom-kills",
        "10",
        "--max-host-used",
        "95",
        "--min",
        "1",
        "--max",
        "8",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(dir.join("report.html")).unwrap()
}

/// HTML character data back to text.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The text of `<section id="{id}">`.
fn section<'h>(html: &'h str, id: &str) -> &'h str {
    let start = html
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = html[start..].find("</section>").unwrap();
    &html[start..start + end]
}

/// The header and body cells of the first table in `html`, as text.
fn table_cells(html: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let start = html.find("<table>").expect("a table");
    let end = html[start..].find("</table>").unwrap();
    let table = &html[start..start + end];
    let cells = |row: &str, tag: &str| -> Vec<String> {
        let open = format!("<{tag}");
        let close = format!("</{tag}>");
        row.split(&close)
            .filter_map(|c| c.find(&open).map(|i| &c[i..]))
            .map(|c| {
                // Drop the cell's own tag and a link around its text.
                let text = &c[c.find('>').unwrap() + 1..];
                let text = match text.strip_prefix("<a href=") {
                    Some(linked) => &linked[linked.find('>').unwrap() + 1..linked.len() - 4],
                    None => text,
                };
                unescape(text)
            })
            .collect()
    };
    let mut rows = table.split("<tr>").skip(1);
    let header = cells(rows.next().unwrap(), "th");
    (header, rows.map(|r| cells(r, "td")).collect())
}

/// No script, stylesheet, image or CSS fetch; every link an anchor of the page or a
/// relative path to a report that exists under `dir`. Returns the relative links.
fn assert_self_contained(html: &str, dir: &Path) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    for banned in ["<script", "<link", "<img", "<iframe", "<object", "url("] {
        assert!(!lower.contains(banned), "{banned} in the page");
    }
    assert!(attribute_values(html, "src").is_empty(), "a src= attribute");
    let mut relative = Vec::new();
    for href in attribute_values(html, "href") {
        if href.starts_with('#') {
            continue;
        }
        assert!(
            !href.contains(':') && !href.starts_with('/') && !href.contains(".."),
            "href=\"{href}\" leaves the output folder"
        );
        assert!(dir.join(href).is_file(), "href=\"{href}\": no such file");
        relative.push(href.to_string());
    }
    relative
}

/// Each of `names` (SVG files in `dir`) is embedded as written.
fn assert_svgs_embedded(html: &str, dir: &Path, names: &[&str]) {
    assert_eq!(html.matches("<svg ").count(), names.len(), "inline SVGs");
    for name in names {
        let svg = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(html.contains(svg.trim()), "{name} not embedded as written");
    }
}

#[test]
fn compare_report_has_the_csv_the_plots_the_runs_and_the_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let html = compare_report(tmp.path());
    assert!(html.contains("<title>memsim compare — squeeze-small</title>"));
    let links = assert_self_contained(&html, tmp.path());
    let runs = [
        "none-seed=7",
        "none-seed=8",
        "balloon-seed=7",
        "balloon-seed=8",
    ];
    let want: Vec<String> = runs.iter().map(|r| format!("{r}/report.html")).collect();
    assert_eq!(links, want, "a link to each run's own report, in run order");
    assert_svgs_embedded(
        &html,
        tmp.path(),
        &[
            "compare_host_memory.svg",
            "compare_swap.svg",
            "compare_oom.svg",
            "compare_bars.svg",
        ],
    );
    // comparison.csv, cell for cell.
    let page = table_cells(section(&html, "comparison-csv"));
    let csv = csv_cells(&tmp.path().join("comparison.csv"));
    assert_eq!(page, csv);
    assert_eq!(csv.1.len(), 2);
    // The terminal's table: a column per policy, the peak memused of each.
    let (header, rows) = table_cells(section(&html, "in-short"));
    assert_eq!(header, ["", "none", "balloon"]);
    let peak = csv
        .0
        .iter()
        .position(|h| h == "peak_memused_bytes")
        .unwrap();
    for (p, row) in csv.1.iter().enumerate() {
        let gib = row[peak].parse::<f64>().unwrap() / (1u64 << 30) as f64;
        let cell = &rows[0][p + 1];
        assert!(cell.starts_with(&format!("{gib:.1}")), "{cell} vs {gib}");
    }
    // The scenario file as run.
    assert!(html.contains("name: squeeze-small"));
    assert!(html.contains("anon: {shape: ramp, from: 1GiB"));
    // Each run's own report exists and is that run's.
    let run = std::fs::read_to_string(tmp.path().join("balloon-seed=8/report.html")).unwrap();
    assert!(run.contains("<title>memsim — squeeze-small/balloon-seed=8</title>"));
}

#[test]
fn sweep_report_has_the_parameters_the_heatmap_the_table_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let html = sweep_report(tmp.path(), &out);
    assert!(html.contains("<title>memsim sweep — squeeze-small</title>"));
    assert!(html.contains("4 runs: 4 grid points × 1 seed."));
    let links = assert_self_contained(&html, &out);
    assert_svgs_embedded(&html, &out, &["sweep_heatmap.svg"]);
    let (header, rows) = table_cells(section(&html, "parameters"));
    assert_eq!(header, ["parameter", "label", "values"]);
    assert_eq!(
        rows,
        [
            ["vms[name=web].count", "count", "1, 2"],
            ["pvestatd.ballooning-target", "ballooning-target", "70, 90"]
        ]
    );
    // sweep.csv, cell for cell, each run linked to its report.
    let page = table_cells(section(&html, "runs"));
    let csv = csv_cells(&out.join("sweep.csv"));
    assert_eq!(page, csv);
    let want: Vec<String> = csv
        .1
        .iter()
        .map(|r| format!("runs/{}/report.html", r[0]))
        .collect();
    assert_eq!(links, want);
    assert!(html.contains("sweep.csv as written: all 4 runs."));
    assert!(
        html.contains("vms[name=web].count: [1, 2]"),
        "the scenario file"
    );
    assert!(html.contains("duration: 10m"), "the scenario file as run");
}

#[test]
fn density_report_has_the_answers_limits_figure_and_evaluations() {
    let tmp = tempfile::tempdir().unwrap();
    let html = density_report(tmp.path());
    assert!(html.contains("<title>memsim density — squeeze-small: how many web VMs fit?</title>"));
    assert!(assert_self_contained(&html, tmp.path()).is_empty());
    assert_svgs_embedded(&html, tmp.path(), &["density.svg"]);
    assert!(html.contains(
        "Every seed must stay within: OOM kills ≤ 10, peak host memused ≤ 95 % of MemTotal."
    ));
    // density.csv, cell for cell.
    let evaluations = csv_cells(&tmp.path().join("density.csv"));
    assert_eq!(table_cells(section(&html, "density-csv")), evaluations);
    // The answer is the largest count every seed carried, as density.csv says.
    let (header, rows) = table_cells(section(&html, "answer"));
    assert_eq!(header[1], "web VMs (every seed)");
    let mut answered = 0;
    for (row, policy) in rows.iter().zip(["none", "balloon"]) {
        assert_eq!(row[0], policy);
        let carried = |seed: &str| {
            evaluations
                .1
                .iter()
                .filter(|e| e[0] == policy && e[2] == seed && e[3] == "true")
                .map(|e| e[1].parse::<u32>().unwrap())
                .max()
        };
        let answer = carried("7").min(carried("8"));
        let shown = answer.map_or("<1".to_string(), |c| c.to_string());
        assert_eq!(row[1], shown, "{policy}");
        answered += usize::from(answer.is_some());
        let per_seed = format!(
            "7: {}, 8: {}",
            carried("7").map_or("<1".to_string(), |c| c.to_string()),
            carried("8").map_or("<1".to_string(), |c| c.to_string())
        );
        assert_eq!(row[3], per_seed, "{policy}");
    }
    assert!(answered > 0, "some policy carries the minimum: {rows:?}");
    assert!(html.contains("name: squeeze-small"), "the scenario file");
}
