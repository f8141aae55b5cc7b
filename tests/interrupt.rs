//! Ctrl-C (SIGINT) and SIGTERM in the middle of a run: exit code 130 and no
//! partial output left behind.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn interrupt_with(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 1200, 1200, None);
    let model = fixture_model("tiny_swin").display().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_idfcr"))
        .current_dir(dir.path())
        .args([
            "remove",
            "in.tif",
            "out.tif",
            "--model",
            &model,
            "--device",
            "cpu",
            "--tile",
            "96",
            "--overlap",
            "48",
            "--threads",
            "1",
            "-q",
        ])
        .spawn()
        .unwrap();
    // Wait until the run is under way: its temp file exists.
    let t0 = Instant::now();
    loop {
        if listing(dir.path()).iter().any(|n| n.contains(".idfcr-")) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the run never started writing"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    let st = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{signal}: exit status {status:?}");
    assert_eq!(
        listing(dir.path()),
        ["in.tif"],
        "{signal}: partial files left behind"
    );
}

#[test]
fn sigint_leaves_nothing_behind() {
    interrupt_with("-INT");
}

#[test]
fn sigterm_leaves_nothing_behind() {
    interrupt_with("-TERM");
}
