//! Adopting the daemon: `containerd check --live` (is AWS as the config says?) and
//! `containerd config from-stack` (the config for a deployed leaf stack). Both only
//! read; neither changes anything in AWS.

pub mod check;
pub mod live;
pub mod reads;
pub mod stack;

use anyhow::Context;

use crate::aws::sdk_config;
use crate::config::Config;
use reads::Reads;

/// `containerd check --live`: one line per check; true when every check passed
/// (warnings allowed).
pub async fn check_live(config: &Config) -> bool {
    let facts = live::gather(config).await;
    let findings = check::judge(config, &facts);
    for f in &findings {
        println!("{f}");
    }
    let failed = findings.iter().filter(|f| f.level == check::Level::Fail).count();
    let warned = findings.iter().filter(|f| f.level == check::Level::Warn).count();
    println!("{} checks: {failed} failed, {warned} warnings", findings.len());
    failed == 0
}

/// `containerd config from-stack STACK`: prints the config for it.
pub async fn from_stack(stack: &str, region: Option<&str>, leaf_only: bool) -> anyhow::Result<()> {
    let region = match region {
        Some(r) => r.to_owned(),
        None => aws_config::load_defaults(aws_config::BehaviorVersion::latest())
            .await
            .region()
            .map(ToString::to_string)
            .context("no region: pass --region or set AWS_REGION")?,
    };
    let reads = Reads::new(&sdk_config(&region).await);
    let head = reads.stack(stack).await?;
    let mut found = stack::Found { stack: stack.to_owned(), region: region.clone(), head, ..stack::Found::default() };
    let domain = stack::domain_of(&found.head).map(str::to_owned).ok_or_else(|| stack::StackError::Unknown { stack: stack.to_owned() })?;
    if !stack::is_ours(&found.head) {
        let mut pending = vec![(stack.to_owned(), false)];
        while let Some((name, nested)) = pending.pop() {
            for r in reads.stack_resources(&name).await? {
                if r.kind == "AWS::CloudFormation::Stack" {
                    stack::alarms_in(&reads.template(&r.physical).await?, &mut found.alarms);
                    pending.push((r.physical.clone(), true));
                } else {
                    found.resources.push((r, nested));
                }
            }
        }
        stack::alarms_in(&reads.template(stack).await?, &mut found.alarms);
    }
    let zone = match found.head.outputs.get("HostedZoneId") {
        Some(z) => Some(z.clone()),
        None => zone_of(&reads, &domain).await?,
    };
    found.zone.clone_from(&zone);
    if let Some(zone) = zone {
        found.log_group = reads.query_logging(&zone).await?.iter().find_map(|arn| check::log_group_of(arn).map(|(r, g)| (r.to_owned(), g.to_owned())));
    }
    print!("{}", stack::render(&found, leaf_only)?);
    Ok(())
}

/// The public zone named like `domain` or its nearest parent (not the bare TLD).
async fn zone_of(reads: &Reads, domain: &str) -> anyhow::Result<Option<String>> {
    let labels: Vec<&str> = domain.split('.').collect();
    for start in 0..labels.len().saturating_sub(1) {
        if let Some(zone) = reads.zone_named(&labels[start..].join(".")).await? {
            return Ok(Some(zone));
        }
    }
    Ok(None)
}
