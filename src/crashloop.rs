//! The crash-loop breaker's pure judgement.
//!
//! A stopped ECS task is a failure when its stop code is `TaskFailedToStart`, or
//! `EssentialContainerExited` with an essential container whose exit code is not 0 (or
//! that never got one). `max_failures` failures within `window` stop the leaf and
//! quarantine it for `cooldown`: DNS queries do not wake it, unlike the original, which
//! restarts the crashing container on the next query, forever.

use crate::clock::Timestamp;
use crate::config::CrashLoopConfig;
use crate::state::Failure;

/// How a container of a stopped task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerExit {
    /// Container name.
    pub name: String,
    /// Exit code, if the container ran at all.
    pub exit_code: Option<i32>,
    /// ECS's reason for the container, if any.
    pub reason: Option<String>,
    /// Essential containers stop the task when they exit.
    pub essential: bool,
}

/// A stopped task as ECS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedTask {
    /// Task ARN.
    pub arn: String,
    /// `TaskFailedToStart`, `EssentialContainerExited`, `UserInitiated`, ...
    pub stop_code: Option<String>,
    /// ECS's stopped reason.
    pub stopped_reason: Option<String>,
    /// When it stopped.
    pub stopped_at: Option<Timestamp>,
    /// Its containers.
    pub containers: Vec<ContainerExit>,
}

/// The failure `task` represents, if it is one. `now` stands in for a missing stop time.
pub fn failure(task: &StoppedTask, now: Timestamp) -> Option<Failure> {
    let code = task.stop_code.as_deref()?;
    let failed = match code {
        "TaskFailedToStart" => task.containers.iter().find(|c| c.essential).or(task.containers.first()),
        // No exit code at all means the container was killed (e.g. with its instance),
        // not that it failed: only a reported non-zero code counts.
        "EssentialContainerExited" => task.containers.iter().find(|c| c.essential && c.exit_code.is_some_and(|code| code != 0)),
        _ => None,
    };
    if code != "TaskFailedToStart" && failed.is_none() {
        return None;
    }
    let reason = failed
        .and_then(|c| c.reason.clone())
        .or_else(|| task.stopped_reason.clone())
        .unwrap_or_else(|| "no reason given".to_owned());
    let reason = match failed {
        Some(c) => format!("container {}: {reason}", c.name),
        None => reason,
    };
    Some(Failure {
        task: task.arn.rsplit('/').next().unwrap_or(&task.arn).to_owned(),
        stop_code: code.to_owned(),
        exit_code: failed.and_then(|c| c.exit_code),
        reason,
        at: task.stopped_at.unwrap_or(now),
    })
}

/// The failure that trips the breaker (the newest), when `failures` inside the window
/// reach `max_failures`.
pub fn tripped<'a>(failures: &'a [Failure], cfg: &CrashLoopConfig, now: Timestamp) -> Option<&'a Failure> {
    let recent: Vec<&Failure> = failures.iter().filter(|f| now.since(f.at) <= cfg.window.as_millis()).collect();
    if recent.len() >= cfg.max_failures() { recent.into_iter().max_by_key(|f| f.at) } else { None }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn cfg(extra: &str) -> CrashLoopConfig {
        let text = format!(
            "[daemon]\nregion = \"us-west-2\"\nquery_log_group = \"g\"\n[[leaf]]\nname = \"mc\"\ndomain = \"mc.example.com\"\nhosted_zone_id = \"Z1\"\nasg = \"a\"\n[leaf.watchdog]\nthreshold = 1\n[leaf.crash_loop]\n{extra}\n"
        );
        Config::parse(Path::new("t.toml"), &text).unwrap().leafs.remove(0).crash_loop
    }

    fn task(code: &str, exits: &[(bool, Option<i32>)]) -> StoppedTask {
        StoppedTask {
            arn: "arn:aws:ecs:us-west-2:1:task/mc/abc123".into(),
            stop_code: Some(code.into()),
            stopped_reason: Some("Essential container in task exited".into()),
            stopped_at: Some(Timestamp(1000)),
            containers: exits
                .iter()
                .enumerate()
                .map(|(i, &(essential, exit_code))| ContainerExit { name: format!("c{i}"), exit_code, reason: None, essential })
                .collect(),
        }
    }

    #[test]
    fn failed_to_start_and_nonzero_essential_exits_are_failures() {
        let f = failure(&task("TaskFailedToStart", &[(true, None)]), Timestamp(0)).unwrap();
        assert_eq!((f.task.as_str(), f.stop_code.as_str(), f.exit_code), ("abc123", "TaskFailedToStart", None));
        let f = failure(&task("EssentialContainerExited", &[(false, Some(0)), (true, Some(137))]), Timestamp(0)).unwrap();
        assert_eq!(f.exit_code, Some(137));
        assert!(f.describe().contains("container c1"), "{}", f.describe());
    }

    #[test]
    fn clean_exits_sidecars_and_our_own_stops_are_not_failures() {
        assert!(failure(&task("EssentialContainerExited", &[(true, Some(0))]), Timestamp(0)).is_none());
        assert!(failure(&task("EssentialContainerExited", &[(true, Some(0)), (false, Some(1))]), Timestamp(0)).is_none());
        assert!(failure(&task("EssentialContainerExited", &[(true, None)]), Timestamp(0)).is_none());
        assert!(failure(&task("ServiceSchedulerInitiated", &[(true, Some(143))]), Timestamp(0)).is_none());
        assert!(failure(&task("UserInitiated", &[(true, Some(1))]), Timestamp(0)).is_none());
        let mut no_code = task("x", &[(true, Some(1))]);
        no_code.stop_code = None;
        assert!(failure(&no_code, Timestamp(0)).is_none());
    }

    #[test]
    fn failures_count_only_inside_the_window() {
        let c = cfg("max_failures = 2\nwindow = \"15m\"");
        let at = |ms| Failure { task: format!("t{ms}"), stop_code: "TaskFailedToStart".into(), exit_code: None, reason: String::new(), at: Timestamp(ms) };
        let now = Timestamp(20 * 60_000);
        assert!(tripped(&[at(0), at(19 * 60_000)], &c, now).is_none(), "the first is 20 minutes old");
        let both = [at(6 * 60_000), at(19 * 60_000)];
        assert_eq!(tripped(&both, &c, now).map(|f| f.task.as_str()), Some("t1140000"));
    }

    #[test]
    fn one_failure_trips_by_default_as_the_original() {
        let c = cfg("");
        let f = failure(&task("TaskFailedToStart", &[(true, None)]), Timestamp(0)).unwrap();
        assert!(tripped(std::slice::from_ref(&f), &c, Timestamp(1000)).is_some());
    }
}
