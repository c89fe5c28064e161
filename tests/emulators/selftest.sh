#!/usr/bin/env bash
# Checks the emulator harness itself: install, start, one real call per service
# through the exported AWS_ENDPOINT_URL_* variables (boto3 from moto's venv, which
# ships it), moto_main.py's extensions (selftest_moto.py), then stop and make sure
# nothing is left running and nothing was written to $HOME.
# Usage: bash tests/emulators/selftest.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=emulators.sh
source "$here/emulators.sh"

fail() { echo "selftest: FAIL: $*" >&2; exit 1; }

t=$SECONDS
emulators_install
echo "selftest: install step took $((SECONDS - t)) s"

# Run the emulators with an empty HOME: anything they write there is a leak.
# (The venvs stay where they are.)
export CM_CACHE="${CM_CACHE:-$HOME/.cache/container-manager}"
real_home=$HOME
fake_home=$(mktemp -d)
export HOME=$fake_home

trap 'emulators_stop; HOME=$real_home; rm -rf "$fake_home"' EXIT
t=$SECONDS
emulators_start
echo "selftest: start to ready took $((SECONDS - t)) s"
run=$CM_EMULATOR_RUN_DIR
ls_pid=$(cat "$run/localstack.pid")
moto_pid=$(cat "$run/moto.pid")
watchdog_pid=$(cat "$run/watchdog.pid")

# Only loopback listeners, and only on our two ports (no DNS server on :53).
if command -v ss >/dev/null 2>&1; then
    listen=$(ss -Hltnup 2>/dev/null | grep -E "pid=($ls_pid|$moto_pid)," || true)
    echo "$listen"
    if grep -vE "127\.0\.0\.1:(${CM_LOCALSTACK_URL##*:}|${CM_MOTO_URL##*:}) " <<<"$listen" | grep -q .; then
        fail "an emulator listens somewhere else"
    fi
fi

moto_py=$(_emu_venv_dir moto "$here/requirements-moto.txt")/bin/python
"$moto_py" - <<'PY'
import json, os, time, urllib.request
import boto3

base = os.environ["CM_LOCALSTACK_URL"]
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
health = json.load(op.open(base + "/_localstack/health"))
print("localstack", health["version"], {s: health["services"][s] for s in ("route53", "logs", "cloudwatch", "sns", "sqs")})
assert all(health["services"][s] in ("available", "running") for s in ("route53", "logs", "cloudwatch", "sns", "sqs"))

# boto3 honours AWS_ENDPOINT_URL_<SERVICE>, like aws-sdk-rust: this also checks the exports.
c = lambda name: boto3.client(name)

r53 = c("route53")
zone = r53.create_hosted_zone(Name="example.com", CallerReference=str(time.time()))["HostedZone"]["Id"]
r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT",
    "ResourceRecordSet": {"Name": "mc.example.com", "Type": "A", "TTL": 1, "ResourceRecords": [{"Value": "192.0.2.1"}]}}]})
recs = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
assert any(r["Type"] == "A" and r["ResourceRecords"][0]["Value"] == "192.0.2.1" for r in recs), recs
print("route53 ok")

logs = c("logs")
logs.create_log_group(logGroupName="g")
logs.create_log_stream(logGroupName="g", logStreamName="s")
logs.put_log_events(logGroupName="g", logStreamName="s", logEvents=[{"timestamp": int(time.time() * 1000), "message": "hello"}])
ev = logs.filter_log_events(logGroupName="g")["events"]
assert [e["message"] for e in ev] == ["hello"], ev
print("logs ok")

cw = c("cloudwatch")
cw.put_metric_data(Namespace="CM", MetricData=[{"MetricName": "NetworkIn", "Value": 42.0}])
now = time.time()
res = cw.get_metric_data(MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": {"Namespace": "CM", "MetricName": "NetworkIn"},
    "Period": 60, "Stat": "Sum"}}], StartTime=now - 600, EndTime=now + 60)["MetricDataResults"]
assert res[0]["Values"] == [42.0], res
print("cloudwatch ok")

sqs = c("sqs")
q = sqs.create_queue(QueueName="q")["QueueUrl"]
assert q.startswith(base + "/"), q  # LOCALSTACK_HOST + SQS_ENDPOINT_STRATEGY=path
sns = c("sns")
topic = sns.create_topic(Name="t")["TopicArn"]
qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"})
sns.publish(TopicArn=topic, Message="ping")
msgs = sqs.receive_message(QueueUrl=q, WaitTimeSeconds=5).get("Messages", [])
assert [m["Body"] for m in msgs] == ["ping"], msgs
print("sns -> sqs ok", q)

asg = c("autoscaling").describe_auto_scaling_groups()
assert asg["AutoScalingGroups"] == [], asg
ec2 = c("ec2").describe_instances()
ecs = c("ecs").list_clusters()
efs = c("efs").describe_file_systems()
print("moto ok: autoscaling, ec2, ecs, efs")
PY
# What moto_main.py adds to moto (scheduler, ENIs, target groups and health, NLB ARNs,
# AutoScaling bounds).
"$moto_py" "$here/selftest_moto.py"

emulators_stop
emulators_stop   # twice on purpose: must be a no-op
for pid in "$ls_pid" "$moto_pid" "$watchdog_pid"; do
    if _emu_group_alive "$pid"; then ps -o pid,pgid,stat,cmd -g "$pid" >&2 || true; fail "process group $pid still alive"; fi
done
if pgrep -f "$run" >/dev/null; then pgrep -af "$run" >&2; fail "processes still mention $run"; fi
[[ ! -e $run ]] || fail "run dir $run not removed"
left=$(find "$fake_home" -mindepth 1)
[[ -z $left ]] || fail "the emulators wrote to HOME: $left"
echo "selftest: stopped cleanly, nothing left running, nothing written to HOME"
echo "selftest: OK"
