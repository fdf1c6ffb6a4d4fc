//! `report.html`, written by every `memsim run`: one self-contained file (inline SVG
//! figures, inline style, no script, nothing fetched) with the summary, the VMs, the
//! timeline of `memsim explain` and the scenario; and, where Chromium is installed,
//! that a real browser renders it without errors into a page that is not blank.
//!
//! The browser test is skipped with a notice when no Chromium is found, unless
//! `MEMSIM_REQUIRE_CHROMIUM=1` (set by `.ci/run`, which installs it): then a missing
//! browser fails the test.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SCENARIO: &str = "tests/fixtures/scenarios/squeeze_small.yaml";

fn memsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memsim"))
        .args(args)
        .output()
        .expect("memsim runs")
}

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

#[test]
fn report_renders_in_headless_chromium() {
    let required = std::env::var("MEMSIM_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1");
    let Some(browser) = find_chromium() else {
        assert!(
            !required,
            "MEMSIM_REQUIRE_CHROMIUM=1 but no chromium found (apt-get install chromium)"
        );
        eprintln!("skipped: no chromium on PATH (set MEMSIM_REQUIRE_CHROMIUM=1 to require it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    run_report(&out);
    let page = out.join("report.html").canonicalize().unwrap();
    let shot = tmp.path().join("shot.png");

    let (_, stderr) = chromium(
        &browser,
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
        &browser,
        &tmp.path().join("profile-dom"),
        &["--dump-dom".to_string()],
        &page,
    );
    assert_eq!(console_errors(&stderr), Vec::<&str>::new(), "{stderr}");
    assert!(
        dom.contains("<h1>memsim — squeeze-small</h1>"),
        "DOM: {dom:.300}"
    );
    assert_eq!(dom.matches("<svg ").count(), 4, "figures in the DOM");
    assert!(
        dom.contains("guest OOM — killed postgres"),
        "timeline in the DOM"
    );
}
