//! What an operator sees from the command line before anything touches AWS.

use std::process::Command;

fn containerd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_containerd")).args(args).output().expect("run containerd");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cm-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const EXAMPLE: &str = include_str!("../config/leafs.toml");

#[test]
fn check_accepts_the_shipped_example() {
    let (code, out, _) = containerd(&["check", "--config", "config/leafs.toml"]);
    assert_eq!(code, 0);
    assert!(out.contains("OK, 1 leafs"), "{out}");
}

#[test]
fn a_bad_file_exits_2_naming_line_and_key_and_does_not_start() {
    let state = std::env::temp_dir().join(format!("cm-cli-state-{}.json", std::process::id()));
    let text = EXAMPLE
        .replace("/var/lib/container-manager/state.json", &state.display().to_string())
        .replace("idle_after = \"7m\"", "idle_after = \"7 minutes\"");
    let path = write("bad-duration.toml", &text);
    let line = text.lines().position(|l| l.starts_with("idle_after")).unwrap() + 1;
    for args in [vec!["check", "--config"], vec!["--config"]] {
        let mut args: Vec<&str> = args;
        let p = path.display().to_string();
        args.push(&p);
        let (code, _, err) = containerd(&args);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&format!("bad-duration.toml:{line}: leaf[0].watchdog.idle_after: invalid duration")), "{err}");
    }
    assert!(!state.exists(), "the daemon did not start");
}

#[test]
fn an_unknown_key_is_named() {
    let path = write("typo.toml", &EXAMPLE.replace("poll_interval = ", "pol_interval = "));
    let (code, _, err) = containerd(&["check", "--config", &path.display().to_string()]);
    assert_eq!(code, 2);
    assert!(err.contains("daemon.pol_interval: unknown field `pol_interval`"), "{err}");
}

#[test]
fn a_missing_file_exits_2() {
    let (code, _, err) = containerd(&["check", "--config", "/nonexistent/leafs.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/leafs.toml"), "{err}");
}

#[test]
fn check_warns_about_a_listener_other_hosts_can_reach() {
    let path = write("open.toml", &EXAMPLE.replace("listen = \"127.0.0.1:9477\"", "listen = \"0.0.0.0:9477\""));
    let (code, out, _) = containerd(&["check", "--config", &path.display().to_string()]);
    assert_eq!(code, 0, "valid, only unwise");
    assert!(out.contains("warning: daemon.listen: 0.0.0.0:9477 is reachable from other hosts"), "{out}");
}

#[test]
fn regression_two_leafs_on_one_asg_exit_2_naming_the_second() {
    let second = EXAMPLE.split("[[leaf]]").nth(1).unwrap().replace("name = \"minecraft\"", "name = \"minecraft-2\"").replace("domain = \"minecraft.example.com\"", "domain = \"mc2.example.com\"").replace("ecs_service = \"minecraft\"", "ecs_service = \"minecraft-2\"");
    let text = format!("{EXAMPLE}\n[[leaf]]{second}");
    let path = write("shared-asg.toml", &text);
    let (code, _, err) = containerd(&["check", "--config", &path.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    let line = text.match_indices("asg = \"minecraft-asg\"").nth(1).map(|(i, _)| text[..i].lines().count() + 1).unwrap();
    assert!(err.contains(&format!("shared-asg.toml:{line}: leaf[1].asg: ASG \"minecraft-asg\" is also leaf[0]'s")), "{err}");
}
