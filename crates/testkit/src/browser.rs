//! Pages in a real browser: headless Chromium (Debian's `chromium`, which
//! `.ci/run` installs), for the status page's tests.

use std::process::Command;

/// The page's DOM once its scripts have run, from headless Chromium.
pub fn rendered(url: &str, screenshot: &std::path::Path) -> String {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|name| Command::new(name).arg("--version").output().is_ok())
        .expect("Chromium is installed (.ci/run installs Debian's chromium)");
    // A profile of its own, and none of Chromium's own calls out (this
    // machine's network is closed; they fail, many at a time, at every start).
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let output = Command::new(chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--virtual-time-budget=8000", "--window-size=390,2400"])
            .args(extra)
            .arg(url)
            .output()
            .expect("run chromium");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    // A phone-sized screenshot (not committed: target/).
    run(&[&format!("--screenshot={}", screenshot.display())]);
    run(&["--dump-dom"])
}
