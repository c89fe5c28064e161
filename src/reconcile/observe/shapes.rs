//! The reads that only some shapes of leaf need: scaling policies and scalable targets
//! (is a leaf's capacity managed by a policy?), the running tasks of a service without
//! an ASG (its units and their IPs), and target health (is a load-balanced leaf ready?).
//! Each is batched so that calls grow with regions, clusters or waking leafs, never
//! with the number of leafs.

use std::collections::{BTreeSet, HashSet};

use super::{Cache, Cached, LiveTask, READS_PER_TICK, REFRESH_AFTER_MS};
use crate::aws::elbv2::Health;
use crate::aws::scaling::service_resource_id;
use crate::aws::Aws;
use crate::clock::Timestamp;
use crate::config::{Config, DnsMode, LeafConfig};
use crate::leaf::Phase;
use crate::state::{Announced, State};

use super::super::decide::ServiceSeen;

/// Which ASGs have scaling policies: one paged DescribePolicies for the whole region,
/// at start and every [`REFRESH_AFTER_MS`]. Until it answers, no ASG leaf is stopped or
/// parked, so a refusal is a problem of every ASG leaf (alerted once, as a digest).
pub async fn read_policies(aws: &Aws, cache: &mut Cache, leafs: &[&LeafConfig], now: Timestamp) {
    if cache.policies.as_ref().is_some_and(|c| now.since(c.at) < REFRESH_AFTER_MS) {
        return;
    }
    let result = aws.asg.with_policies().await;
    for leaf in leafs {
        cache.reports.entry(leaf.name().to_string()).or_default().shared_read(leaf, result.as_ref().map(drop), "autoscaling", "DescribePolicies");
    }
    match result {
        Ok(names) => cache.policies = Some(Cached { value: names, at: now }),
        Err(e) => tracing::warn!(error = %e, "could not read the ASGs' scaling policies; retrying next tick"),
    }
}

/// The scalable targets of the services just read, in one call per 50: a service whose
/// targets could not be read counts as not read (a decision must not guess whether a
/// policy owns its count).
pub async fn read_scalable(aws: &Aws, cache: &mut Cache, read: &[&LeafConfig]) {
    let ids: Vec<String> = read.iter().filter_map(|l| l.ecs()).map(|(c, s)| service_resource_id(c.as_str(), s.as_str())).collect();
    if ids.is_empty() {
        return;
    }
    let result = aws.scaling.service_bounds(&ids).await;
    for leaf in read {
        cache.reports.entry(leaf.name().to_string()).or_default().call(leaf, result.as_ref().map(drop), "application-autoscaling", "DescribeScalableTargets");
    }
    match result {
        Ok(bounds) => {
            for leaf in read {
                let (c, s) = leaf.ecs().expect("read with a service");
                if let Some(Cached { value: ServiceSeen::Known(service), .. }) = cache.services.get_mut(leaf.name().as_str()) {
                    service.scalable = bounds.get(&service_resource_id(c.as_str(), s.as_str())).copied();
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the services' scalable targets; retrying next tick");
            for leaf in read {
                cache.services.remove(leaf.name().as_str());
            }
        }
    }
}

/// Lists the running tasks of the clusters whose leafs (without an ASG) want tasks or
/// still have some, describes those not yet RUNNING, and reads their ENIs' public IPs:
/// one ListTasks per cluster, one DescribeTasks per 100 new tasks, one
/// DescribeNetworkInterfaces for all.
pub async fn read_running_tasks(aws: &Aws, config: &Config, cache: &mut Cache, selected: &[usize], now: Timestamp) {
    let leafs: Vec<&LeafConfig> = selected
        .iter()
        .map(|&i| &config.leafs[i])
        .filter(|l| l.asg().is_none() && l.ecs().is_some())
        .filter(|l| cache.footprint(l).is_some_and(|f| f.wanted > 0 || !f.live.is_empty()))
        .collect();
    // The clusters listed longest ago first: each is read in turn, however many there are.
    let mut clusters: Vec<&str> = leafs.iter().filter_map(|l| l.ecs()).map(|(c, _)| c.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    clusters.sort_by_key(|c| cache.running.get(*c).map(|r| r.at));
    for cluster in clusters.into_iter().take(READS_PER_TICK) {
        let listed = aws.ecs.running_tasks(cluster).await;
        for leaf in leafs.iter().filter(|l| l.ecs().is_some_and(|(c, _)| c.as_str() == cluster)) {
            cache.reports.entry(leaf.name().to_string()).or_default().call(leaf, listed.as_ref().map(drop), "ecs", "ListTasks");
        }
        let arns = match listed {
            Ok(arns) => arns,
            Err(e) => {
                tracing::warn!(cluster, error = %e, "could not list running tasks; retrying next tick");
                continue;
            }
        };
        let unsettled: Vec<String> = arns.iter().filter(|a| cache.live_tasks.get(*a).is_none_or(|t| !t.running)).cloned().collect();
        if !unsettled.is_empty() {
            match aws.ecs.describe_tasks(cluster, &unsettled).await {
                Ok(tasks) => {
                    for t in tasks {
                        let live = LiveTask {
                            service: t.group.as_deref().and_then(|g| g.strip_prefix("service:")).map(str::to_owned),
                            running: t.last_status == "RUNNING",
                            started_at: t.started_at,
                            eni: t.eni,
                        };
                        cache.live_tasks.insert(t.arn, live);
                    }
                }
                Err(e) => {
                    tracing::warn!(cluster, error = %e, "could not describe running tasks; retrying next tick");
                    continue;
                }
            }
        }
        cache.running.insert(cluster.to_owned(), Cached { value: arns, at: now });
    }
    let listed: HashSet<&String> = cache.running.values().flat_map(|c| &c.value).collect();
    cache.live_tasks.retain(|arn, _| listed.contains(arn));
    let enis: HashSet<&String> = cache.live_tasks.values().filter_map(|t| t.eni.as_ref()).collect();
    cache.eni_ips.retain(|eni, _| enis.contains(eni));
    cache.eni_private.retain(|eni| enis.contains(eni));
    let public: HashSet<&str> = config.leafs.iter().filter(|l| l.asg().is_none() && l.dns != DnsMode::None).filter_map(|l| l.ecs()).map(|(_, s)| s.as_str()).collect();
    let wanted: Vec<String> = cache
        .live_tasks
        .values()
        .filter(|t| t.running && t.service.as_deref().is_some_and(|s| public.contains(s)))
        .filter_map(|t| t.eni.clone())
        .filter(|e| !cache.eni_ips.contains_key(e))
        .collect();
    // A private ENI is not asked about again: a task gets its public IP with its ENI.
    let wanted: Vec<String> = wanted.into_iter().filter(|e| !cache.eni_private.contains(e)).collect();
    if wanted.is_empty() {
        return;
    }
    match aws.ec2.interface_ips(&wanted).await {
        Ok(ips) => {
            // Read and without a public IP: a private subnet (a problem once the task runs).
            cache.eni_private.extend(wanted.into_iter().filter(|e| !ips.contains_key(e)));
            cache.eni_ips.extend(ips);
        }
        Err(e) => tracing::warn!(error = %e, "could not read the tasks' public IPs; retrying next tick"),
    }
}

/// Reads the target health of serving leafs whose "starting" alert waits for it, a
/// few leafs per pass, longest unread first (DescribeTargetHealth takes one target group
/// per call). A count is kept only while the start waits: the next wake starts unknown.
pub async fn read_targets(aws: &Aws, cache: &mut Cache, running: &[&LeafConfig], memory: &State, now: Timestamp) {
    let mut waiting: Vec<&LeafConfig> = running
        .iter()
        .copied()
        .filter(|l| !l.target_group_arns.is_empty())
        .filter(|l| {
            let Some(Phase::Up { serving }) = cache.phase(l) else { return false };
            let announced = memory.leafs.get(l.name().as_str()).and_then(|m| m.announced.as_ref());
            !matches!(announced, Some(Announced::Up { instance }) if serving.iter().any(|u| &u.id == instance))
        })
        .collect();
    let names: HashSet<String> = waiting.iter().map(|l| l.name().to_string()).collect();
    cache.targets.retain(|name, _| names.contains(name));
    waiting.sort_by_key(|l| cache.targets.get(l.name().as_str()).map(|c| c.at));
    for leaf in waiting.into_iter().take(READS_PER_TICK) {
        let mut sum = Health::default();
        let mut failed = false;
        for tg in &leaf.target_group_arns {
            let result = aws.elbv2.health(tg.as_str()).await;
            cache.reports.entry(leaf.name().to_string()).or_default().call(leaf, result.as_ref().map(drop), "elasticloadbalancing", "DescribeTargetHealth");
            match result {
                Ok(h) => (sum.healthy, sum.registered) = (sum.healthy + h.healthy, sum.registered + h.registered),
                Err(e) => {
                    tracing::warn!(leaf = %leaf.name(), target_group = %tg, error = %e, "could not read target health; retrying next tick");
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            cache.targets.remove(leaf.name().as_str());
        } else {
            cache.targets.insert(leaf.name().to_string(), Cached { value: sum, at: now });
        }
    }
}
