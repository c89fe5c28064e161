//! Route53: read a page of a zone's A records, UPSERT many records of one zone in one change batch.
//!
//! Route53 allows 5 requests/s per account, so the reconciler reads a record only when
//! it does not know it and writes only when it differs (see `reconcile::observe`).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use aws_config::SdkConfig;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use aws_sdk_route53::Client;

use super::{call, AwsError, ErrorKind};

/// An A record as Route53 holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ARecord {
    /// Its values: one, or every serving IP with `dns = "all"`.
    pub values: Vec<String>,
    /// Its TTL in seconds (None for alias records).
    pub ttl: Option<i64>,
}

impl ARecord {
    /// True when the record points at exactly `ips` (in any order) with `ttl`.
    pub fn is(&self, ips: &[Ipv4Addr], ttl: i64) -> bool {
        let mut have: Vec<&str> = self.values.iter().map(String::as_str).collect();
        let mut want: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
        have.sort_unstable();
        want.sort_unstable();
        have == want && self.ttl == Some(ttl)
    }
}

/// One UPSERT of a leaf's A record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    /// Record name (the leaf's domain).
    pub domain: String,
    /// Target addresses, sorted (at least one).
    pub ips: Vec<Ipv4Addr>,
    /// TTL in seconds.
    pub ttl: i64,
}

/// Route53 client.
#[derive(Clone, Debug)]
pub struct Route53Api {
    client: Client,
}

/// Route53 names end with a dot and ignore case; compare them normalised.
fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The A records on one page of a zone's listing, looked up by domain.
#[derive(Debug, Default)]
pub struct ARecords(HashMap<String, ARecord>);

impl ARecords {
    /// The A record of `domain`, if the page holds it.
    pub fn get(&self, domain: &str) -> Option<&ARecord> {
        self.0.get(&normal(domain))
    }
}

impl Route53Api {
    /// Wraps a client built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }

    /// Reads the A records of `zone` listed from `from` on (at most `max` record sets of
    /// any type). The page starts at `from`'s own A record, so a domain absent from it has
    /// none; the other leafs of the zone that the page reaches are learned for free.
    pub async fn read_a_records(&self, zone: &str, from: &str, max: i32) -> Result<ARecords, AwsError> {
        let out = call(
            "route53",
            "ListResourceRecordSets",
            self.client
                .list_resource_record_sets()
                .hosted_zone_id(zone)
                .start_record_name(from)
                .start_record_type(RrType::A)
                .max_items(max)
                .send(),
        )
        .await?;
        Ok(ARecords(
            out.resource_record_sets()
                .iter()
                .filter(|r| *r.r#type() == RrType::A)
                .map(|r| (normal(r.name()), ARecord { values: r.resource_records().iter().map(|v| v.value().to_owned()).collect(), ttl: r.ttl() }))
                .collect(),
        ))
    }

    /// The zone's name (`example.com`, normalised), from GetHostedZone. A zone's name
    /// never changes, so one read per zone and run is enough.
    pub async fn zone_name(&self, zone: &str) -> Result<String, AwsError> {
        let out = call("route53", "GetHostedZone", self.client.get_hosted_zone().id(zone).send()).await?;
        out.hosted_zone()
            .map(|z| normal(z.name()))
            .ok_or_else(|| AwsError::answer("route53", "GetHostedZone", ErrorKind::Invalid, "GetHostedZone returned no zone"))
    }

    /// UPSERTs all `changes` (records of one zone) in one atomic change batch.
    pub async fn upsert_a(&self, zone: &str, changes: &[Upsert], comment: &str) -> Result<(), AwsError> {
        let invalid = |e: aws_sdk_route53::error::BuildError| {
            AwsError::answer("route53", "ChangeResourceRecordSets", ErrorKind::Invalid, e.to_string())
        };
        let mut batch = ChangeBatch::builder().comment(comment);
        for c in changes {
            let mut record = ResourceRecordSet::builder().name(&c.domain).r#type(RrType::A).ttl(c.ttl);
            for ip in &c.ips {
                record = record.resource_records(ResourceRecord::builder().value(ip.to_string()).build().map_err(invalid)?);
            }
            let record = record.build().map_err(invalid)?;
            batch = batch.changes(Change::builder().action(ChangeAction::Upsert).resource_record_set(record).build().map_err(invalid)?);
        }
        call(
            "route53",
            "ChangeResourceRecordSets",
            self.client.change_resource_record_sets().hosted_zone_id(zone).change_batch(batch.build().map_err(invalid)?).send(),
        )
        .await
        .map(drop)
    }
}
