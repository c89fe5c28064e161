//! The systemd unit and the package metadata, checked where the tools exist.

mod common;

use std::path::Path;
use std::process::Command;

const UNIT: &str = "deploy/systemd/container-manager.service";

fn systemd_analyze() -> Option<&'static str> {
    let ok = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        common::skipped("deploy::the_unit_verifies_and_its_hardening_scores_ok: systemd-analyze is not installed; the unit file was not verified");
    }
    ok.then_some("systemd-analyze")
}

#[test]
fn the_unit_verifies_and_its_hardening_scores_ok() {
    let Some(tool) = systemd_analyze() else { return };
    // `verify` checks that ExecStart exists: point it at the binary just built.
    let dir = std::env::temp_dir().join(format!("cm-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("container-manager.service");
    let text = std::fs::read_to_string(UNIT).unwrap().replace("/usr/lib/container-manager/containerd", env!("CARGO_BIN_EXE_containerd"));
    std::fs::write(&unit, text).unwrap();
    let verify = Command::new(tool).arg("verify").arg(&unit).output().unwrap();
    let err = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && !err.contains(&unit.display().to_string()), "systemd-analyze verify: {err}");

    let security = Command::new(tool).args(["security", "--offline=yes"]).arg(&unit).output().unwrap();
    let out = String::from_utf8_lossy(&security.stdout);
    let line = out.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("no score in:\n{out}"));
    let score: f64 = line.split(':').nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    println!("{line}");
    assert!(score <= 4.0, "exposure {score} is worse than OK: {line}");
}

#[test]
fn the_unit_does_not_clash_with_the_container_runtime() {
    let text = std::fs::read_to_string(UNIT).unwrap();
    let settings: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    assert!(settings.iter().all(|l| !l.contains("/usr/bin/containerd")), "the container runtime owns /usr/bin/containerd");
    for needed in ["Type=notify", "WatchdogSec=", "Restart=on-failure", "DynamicUser=yes", "StateDirectory=container-manager", "ProtectSystem=strict", "ProtectHome=yes", "NoNewPrivileges=yes", "PrivateTmp=yes", "RestrictAddressFamilies=", "SystemCallFilter=@system-service", "ExecReload=/bin/kill -HUP $MAINPID"] {
        assert!(text.contains(needed), "the unit lacks {needed}");
    }
}

#[test]
fn every_packaged_file_exists() {
    let manifest = std::fs::read_to_string("Cargo.toml").unwrap();
    let value: toml::Value = toml::from_str(&manifest).unwrap();
    let deb = &value["package"]["metadata"]["deb"];
    for asset in deb["assets"].as_array().unwrap() {
        let source = asset[0].as_str().unwrap();
        if source.starts_with("target/") {
            continue; // built by `cargo deb`
        }
        assert!(Path::new(source).exists(), "packaged file {source} is missing");
    }
    assert_eq!(deb["systemd-units"]["unit-name"].as_str(), Some("container-manager"));
    assert!(Path::new("deploy/systemd/container-manager.service").exists());
}
