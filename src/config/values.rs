//! Validated values of the config file.
//!
//! Each type checks its text while the TOML is deserialized, so a bad value fails with
//! the exact line of the file; the rest of the daemon can then trust the shape.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Declares a string newtype that is validated by `$check` on deserialization.
macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Checks and normalises `text`; the error says what is wrong with it.
            pub fn parse(text: &str) -> Result<Self, String> {
                $check(text).map(Self)
            }

            /// The normalised text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_string!(
    /// A leaf's name: the word operators type in `containerd wake NAME` and see in alerts.
    LeafName,
    check_leaf_name
);
validated_string!(
    /// A fully qualified domain, lower case, without the trailing dot; compared exactly
    /// with query-log names so that `mc.example.com` never wakes `old-mc.example.com`.
    Domain,
    check_domain
);
validated_string!(
    /// An SNS topic ARN; a typo here would silently drop every alert, so it is checked.
    TopicArn,
    check_topic_arn
);
validated_string!(
    /// A Route53 hosted zone id without the `/hostedzone/` prefix.
    HostedZoneId,
    check_zone_id
);
validated_string!(
    /// A CloudWatch Logs group name.
    LogGroupName,
    check_log_group
);
validated_string!(
    /// An AWS resource name (ASG, ECS cluster or service, EFS id, region): non-empty, no spaces.
    ResourceName,
    check_resource_name
);

validated_string!(
    /// An ELBv2 target group ARN: the leaf counts as ready once enough of its targets
    /// are healthy.
    TargetGroupArn,
    check_target_group_arn
);
validated_string!(
    /// A load balancer as CloudWatch names it in the `LoadBalancer` dimension:
    /// `net/NAME/ID` (NLB) or `app/NAME/ID` (ALB), the tail of its ARN.
    LoadBalancerId,
    check_load_balancer_id
);

fn check_leaf_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !text.starts_with('-');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!("invalid leaf name {text:?}: use 1-64 lower-case letters, digits, '-' or '_'"))
    }
}

fn check_domain(text: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("invalid domain {text:?}: {why}"));
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return bad("must be 1-253 characters");
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return bad("must have at least two labels, like mc.example.com");
    }
    for label in labels {
        if label.is_empty() || label.len() > 63 {
            return bad("every label between dots must be 1-63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return bad("only letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label may not start or end with '-'");
        }
    }
    Ok(name)
}

fn check_topic_arn(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && is_region(parts[3])
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && !parts[5].is_empty()
        && parts[5].len() <= 256
        && parts[5].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!("invalid SNS topic ARN {text:?}: expected arn:aws:sns:REGION:ACCOUNT_ID:TOPIC_NAME"))
    }
}

/// True for region-shaped text such as `us-east-1` or `eu-central-2`.
pub fn is_region(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn check_zone_id(text: &str) -> Result<String, String> {
    let id = text.strip_prefix("/hostedzone/").unwrap_or(text);
    if !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id.to_owned())
    } else {
        Err(format!("invalid hosted zone id {text:?}: expected letters and digits like Z0123456789ABC"))
    }
}

fn check_log_group(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 512
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!("invalid log group name {text:?}: 1-512 of letters, digits and . _ - / #"))
    }
}

fn check_resource_name(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.len() <= 255 && !text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(text.to_owned())
    } else {
        Err(format!("invalid name {text:?}: must be 1-255 characters without spaces or control characters"))
    }
}

fn check_target_group_arn(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "elasticloadbalancing"
        && is_region(parts[3])
        && parts[5].strip_prefix("targetgroup/").is_some_and(|rest| rest.split('/').count() == 2 && !rest.contains(char::is_whitespace));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!("invalid target group ARN {text:?}: expected arn:aws:elasticloadbalancing:REGION:ACCOUNT_ID:targetgroup/NAME/ID"))
    }
}

fn check_load_balancer_id(text: &str) -> Result<String, String> {
    let id = text.rsplit_once(":loadbalancer/").map_or(text, |(_, tail)| tail);
    let parts: Vec<&str> = id.split('/').collect();
    let ok = parts.len() == 3 && matches!(parts[0], "net" | "app") && parts[1..].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(format!("invalid load balancer {text:?}: expected net/NAME/ID (network) or app/NAME/ID (application), the end of its ARN"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised_and_checked() {
        assert_eq!(Domain::parse("MC.Example.com.").unwrap().as_str(), "mc.example.com");
        for bad in ["", "localhost", "a..b", "-a.b", "a-.b", "a b.com", "_tcp.mc.example.com", "mc.example.com/x"] {
            assert!(Domain::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn topic_arns_are_checked() {
        assert!(TopicArn::parse("arn:aws:sns:us-west-2:123456789012:alerts").is_ok());
        assert!(TopicArn::parse("arn:aws:sns:us-west-2:000000000000:leaf-alerts.fifo").is_ok());
        for bad in ["alerts", "arn:aws:sqs:us-west-2:123456789012:q", "arn:aws:sns:uswest2:123456789012:a", "arn:aws:sns:us-west-2:1234:a", "arn:aws:sns:us-west-2:123456789012:"] {
            assert!(TopicArn::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn zone_ids_lose_their_prefix() {
        assert_eq!(HostedZoneId::parse("/hostedzone/Z0123").unwrap().as_str(), "Z0123");
        assert!(HostedZoneId::parse("Z 1").is_err());
    }

    #[test]
    fn load_balancers_are_named_as_cloudwatch_names_them() {
        assert_eq!(LoadBalancerId::parse("net/game/50dc6c495c0c9188").unwrap().as_str(), "net/game/50dc6c495c0c9188");
        let arn = "arn:aws:elasticloadbalancing:us-west-2:123456789012:loadbalancer/app/web/1a2b";
        assert_eq!(LoadBalancerId::parse(arn).unwrap().as_str(), "app/web/1a2b", "an ARN is cut to the dimension's value");
        for bad in ["game", "gwy/x/1", "net/x", "net//1"] {
            assert!(LoadBalancerId::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(TargetGroupArn::parse("arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/game/73e2d6bc24d8a067").is_ok());
        assert!(TargetGroupArn::parse("arn:aws:elasticloadbalancing:us-west-2:123456789012:loadbalancer/net/game/1").is_err());
    }

    #[test]
    fn leaf_names_are_words() {
        assert!(LeafName::parse("minecraft-1").is_ok());
        assert!(LeafName::parse("Minecraft").is_err());
        assert!(LeafName::parse("").is_err());
    }
}
