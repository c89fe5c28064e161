//! Adopting the daemon: `containerd check --live` finds what would stop a leaf from
//! waking or sleeping, names it and says what to do, and changes nothing.

mod common;

use std::process::Command;

use common::world::{Leaf, LeafOptions};
use common::World;

/// `containerd check --live --config CONFIG`: (exit code, stdout, stderr).
fn check_live(config: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_containerd")).args(["check", "--live", "--config"]).arg(config).output().expect("run containerd");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn leaf(world: &World, prefix: &'static str) -> Leaf {
    let leaf = world.leaf(LeafOptions { prefix, ..LeafOptions::default() }).await;
    world.log_queries(&leaf).await;
    leaf
}

#[tokio::test(flavor = "multi_thread")]
async fn check_live_names_each_planted_fault_passes_a_correct_leaf_and_changes_nothing() {
    let world = World::new().await;
    let good = leaf(&world, "good").await;
    let mut gone = leaf(&world, "noasg").await;
    gone.asg = format!("{}-deleted", gone.asg);
    let zero = leaf(&world, "zeromax").await;
    world.asg.update_auto_scaling_group().auto_scaling_group_name(&zero.asg).min_size(0).max_size(0).send().await.unwrap();
    let unlogged = world.leaf(LeafOptions { prefix: "unlogged", ..LeafOptions::default() }).await;
    let lost = leaf(&world, "nogroup").await;
    world.logs.delete_log_group().log_group_name(&lost.log_group).send().await.unwrap();
    let mute = leaf(&world, "notopic").await;
    world.sns.delete_topic().topic_arn(&mute.topic_arn).send().await.unwrap();
    let blind = leaf(&world, "blind").await;
    world
        .ec2
        .create_launch_template_version()
        .launch_template_name(format!("{}-lt", blind.name))
        .launch_template_data(aws_sdk_ec2::types::RequestLaunchTemplateData::builder().image_id("ami-12c6146b").build())
        .send()
        .await
        .unwrap();

    let all = [&good, &gone, &zero, &unlogged, &lost, &mute, &blind];
    let (code, out, err) = check_live(&world.config(&all, ""));
    assert_eq!(code, 1, "a failed check exits 1\n{out}\n{err}");
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    for (about, check, fix) in [
        (&gone.name, "asg", "leaf.yaml"),
        (&zero.name, "asg_max", "--max-size 1"),
        (&unlogged.name, "query_logging", "create-query-logging-config"),
        (&lost.log_group, "log_group", "does not exist"),
        (&mute.topic_arn, "topic", "does not exist"),
        (&blind.name, "detailed_monitoring", "Monitoring Enabled=true"),
    ] {
        assert!(fails.iter().any(|l| l.contains(about.as_str()) && l.contains(&format!(" {check} ")) && l.contains(fix)), "no FAIL {check} line for {about} with its fix:\n{out}");
    }
    assert_eq!(fails.len(), 6, "exactly the planted faults:\n{out}");
    assert!(!fails.iter().any(|l| l.contains(&good.name)), "{out}");
    let credentials = out.lines().find(|l| l.contains(" credentials ")).expect("a credentials line");
    assert!(credentials.starts_with("ok") || credentials.starts_with("WARN"), "the emulator cannot simulate IAM: a warning, not a failure: {credentials}");

    let (code, out, err) = check_live(&world.config(&[&good], ""));
    assert_eq!(code, 0, "a correct leaf passes\n{out}\n{err}");
    for check in ["asg_max", "detailed_monitoring", "service", "record", "query_logging", "log_group", "topic"] {
        assert!(out.lines().any(|l| l.starts_with("ok") && l.contains(&format!(" {check} "))), "ok {check}:\n{out}");
    }

    for leaf in [&good, &zero, &blind] {
        assert_eq!(world.desired(leaf).await, 0, "nothing was woken");
        assert_eq!(world.record(leaf).await.map(|r| r.0), Some("0.0.0.0".to_owned()), "no record was written");
    }
    let max = world.asg.describe_auto_scaling_groups().auto_scaling_group_names(&zero.asg).send().await.unwrap().auto_scaling_groups()[0].max_size();
    assert_eq!(max, Some(0), "the check reports, it does not repair");
}
