"""Deploys the CloudFormation shape of one leaf of the original AWS-ContainerManager onto
the local emulators, for `containerd config from-stack` tests.

    deploy.py --leaf minecraft --domain minecraft.example.com

Run it with the python of the moto venv that tests/emulators/emulators.sh creates
($CM_MOTO_PYTHON = ~/.cache/container-manager/venv/moto-<hash>/bin/python: boto3 1.44.5)
and the emulators' environment (AWS_ENDPOINT_URL_<SERVICE>, CM_LOCALSTACK_URL, ...). Progress goes
to stderr; the last thing on stdout is one JSON line with what the stacks really made:
    {"stack", "zone_id", "log_group", "topic_arn", "asg", "cluster", "service", ...}
Exit 1 (with the stack events) when a stack does not reach CREATE_COMPLETE, and when
the leaf's stack already exists (each leaf once per emulator run).

What the original makes for one leaf (github Cameronsplaze/AWS-ContainerManager,
ContainerManager/leaf_stack_group/), and what this script does for each part:

- Stack `ContainerManager-<Leaf>` (main region): created on moto's CloudFormation from
  main.json, with six real nested stacks (AWS::CloudFormation::Stack, logical ids
  SecurityGroupsNestedStack, ContainerNestedStack, VolumesNestedStack, EcsAsgNestedStack,
  WatchdogNestedStack, AsgStateChangeHook) whose templates are the *.nested.template.json
  files next to this one, uploaded to the CDK assets bucket
  `cdk-hnb659fds-assets-<account>-<region>` in moto's S3 (moto's CloudFormation reads
  TemplateURL https://s3.<region>.amazonaws.com/<bucket>/<key> from its own S3; the URL
  is never fetched over the network). The templates are written as CDK 2 synthesizes them
  (literal values, Ref/Fn::GetAtt, CDK-style logical ids and parameter names) for the
  leaf `minecraft`; for another --leaf the names are rewritten (Minecraft -> <Leaf>,
  minecraft -> <leaf>, minecraft.example.com -> --domain).
- Stack `ContainerManager-BaseStack` (base.json: VPC, public subnet, the admin SNS
  topic, their exports): created once, because the leaf imports from it as in the original.
- Stack `ContainerManager-<Leaf>-Domain` (us-east-1): NOT a stack here. The daemon reads
  Route53 and CloudWatch Logs from LocalStack, whose CloudFormation cannot create hosted
  zones, so its resources are made on LocalStack directly: the hosted zone named after
  the domain, its A record (0.0.0.0, TTL 1), the log group
  /aws/route53/ContainerManager-<Leaf>-Domain-query-logs (1 day) in us-east-1 and the
  zone's query logging config.
- Stack `ContainerManager-<Leaf>-StartSystem` (us-east-1: the query-log subscription and
  the start Lambda): not made; the daemon replaces it.

Where moto 5.2.5 differs from CloudFormation, and what is done about it:
- Fn::GetAtt <NestedStack>.Outputs.X is not implemented (moto's Stack has no
  get_cfn_attribute): the parent passes values between nested stacks with
  Fn::ImportValue of exports the nested stacks declare (plus DependsOn), where CDK would
  use Fn::GetAtt Outputs.X. Nested templates keep CDK's Parameters.
- The Watchdog alarms are metric-math alarms, as CDK synthesizes them: Threshold and
  EvaluationPeriods at the top, no top-level Period (it is in each Metrics[].MetricStat).
- Types moto's CloudFormation does not know (CloudWatch::Alarm, AutoScaling::ScalingPolicy,
  AutoScaling::LifecycleHook, ECS::CapacityProvider, ClusterCapacityProviderAssociations,
  SNS::Subscription, SNS::TopicPolicy, ...) are skipped by moto: they are in the templates
  (GetTemplate returns them), and ListStackResources lists each as a row with empty
  logical id, type and physical id.
- AWS::ECS::Service: moto ignores SchedulingStrategy and LaunchType (it makes a REPLICA
  service); the service is deleted and created again under the same name (so the same
  ARN, the stack's physical id) as DAEMON / EC2 with the template's other properties.
- AWS::ECS::TaskDefinition: moto keeps only Family, ContainerDefinitions, Volumes and
  Memory; a revision 1 with NetworkMode host, EC2 compatibility and the roles is
  registered in its place (same ARN).
- Accounts: moto answers for account 123456789012, LocalStack for 000000000000 (access
  key `test`). The leaf topic's ARN is moto's; a topic of the same name is created on
  LocalStack in moto's account (LocalStack takes a 12-digit access key as the account
  and resolves SNS calls by the ARN's account), so the daemon can publish to the ARN the
  stack reports. The log group and zone are in LocalStack's own account, where the
  daemon reads them.
"""

import argparse
import io
import json
import os
import re
import sys
import time
import zipfile

import boto3
import botocore.config

HERE = os.path.dirname(os.path.abspath(__file__))
APP = "ContainerManager"
BASE_STACK = f"{APP}-BaseStack"
PLACEHOLDER_ZONE = "Z00000000000000000000"  # the Domain stack's zone id, filled in below
TIMEOUT = 120


def log(*args):
    print("deploy.py:", *args, file=sys.stderr, flush=True)


def client(service, region=None, **kwargs):
    return boto3.client(service, region_name=region or os.environ.get("AWS_REGION", "us-east-1"),
                        config=botocore.config.Config(retries={"max_attempts": 3}), **kwargs)


def moto_url():
    url = os.environ.get("AWS_ENDPOINT_URL_CLOUDFORMATION") or os.environ.get("CM_MOTO_URL")
    if not url:
        sys.exit("deploy.py: AWS_ENDPOINT_URL_CLOUDFORMATION is not set (run with the emulators' environment)")
    return url


def rewrite(text, leaf, alpha, domain):
    """The templates are for leaf `minecraft`: rename for another leaf, as CDK would."""
    image = "itzg/minecraft-server"
    text = text.replace(image, "\0image\0").replace("minecraft.example.com", domain)
    text = text.replace("Minecraft", alpha).replace("minecraft", leaf)
    return text.replace("\0image\0", image)


def stack_status(cfn, name):
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except cfn.exceptions.ClientError as e:
        if "does not exist" in str(e):
            return None
        raise


def print_events(cfn, name):
    """The stack's events and its nested stacks', failures first, to stderr."""
    names = [name]
    try:
        for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]:
            if r["ResourceType"] == "AWS::CloudFormation::Stack" and r.get("PhysicalResourceId"):
                names.append(r["PhysicalResourceId"])
    except Exception as e:  # noqa: BLE001 - best effort
        log(f"list_stack_resources {name}: {e}")
    for n in names:
        try:
            events = cfn.describe_stack_events(StackName=n)["StackEvents"]
        except Exception as e:  # noqa: BLE001
            log(f"describe_stack_events {n}: {e}")
            continue
        events.sort(key=lambda e: "FAILED" not in e.get("ResourceStatus", ""))
        for e in events:
            log(f"  {n}: {e.get('LogicalResourceId')} {e.get('ResourceType')} {e.get('ResourceStatus')} {e.get('ResourceStatusReason') or ''}")


def create_stack(cfn, name, body, description):
    log(f"creating stack {name} ({description})")
    try:
        cfn.create_stack(StackName=name, TemplateBody=body, Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"])
    except cfn.exceptions.AlreadyExistsException:
        log(f"stack {name} already exists (deploy each leaf once per emulator run)")
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - moto answers a template it cannot handle with a 500
        log(f"CreateStack {name} failed: {e}")
        if stack_status(cfn, name):
            print_events(cfn, name)
        sys.exit(1)
    deadline = time.monotonic() + TIMEOUT
    while True:
        status = stack_status(cfn, name)
        if status == "CREATE_COMPLETE":
            return
        if status is None or status.endswith("FAILED") or "ROLLBACK" in status or time.monotonic() > deadline:
            log(f"stack {name} is {status}, not CREATE_COMPLETE; its events:")
            print_events(cfn, name)
            sys.exit(1)
        time.sleep(0.5)


def resources(cfn, stack):
    return cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]


def upload_assets(s3, bucket, region, main, templates):
    """Nested templates (key from each TemplateURL, file from aws:asset:path) and a stub
    zip for each Lambda asset (S3Key of a Code with S3Bucket)."""
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **kwargs)
    for logical, res in main["Resources"].items():
        if res["Type"] != "AWS::CloudFormation::Stack":
            continue
        key = res["Properties"]["TemplateURL"]["Fn::Join"][1][-1].lstrip("/")
        s3.put_object(Bucket=bucket, Key=key, Body=templates[res["Metadata"]["aws:asset:path"]].encode())
    stub = io.BytesIO()
    with zipfile.ZipFile(stub, "w") as z:
        z.writestr("main.py", "def lambda_handler(event, context):\n    return None\n")
    for text in templates.values():
        for key in re.findall(r'"S3Key": "([0-9a-f]{64}\.zip)"', text):
            s3.put_object(Bucket=bucket, Key=key, Body=stub.getvalue())


def make_domain(leaf_stack, domain):
    """The Domain stack's resources, on LocalStack (us-east-1)."""
    logs = client("logs", "us-east-1")
    r53 = client("route53", "us-east-1")
    group = f"/aws/route53/{leaf_stack}-Domain-query-logs"
    if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        logs.create_log_group(logGroupName=group)
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    group_arn = next(g["arn"] for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] if g["logGroupName"] == group)
    if not group_arn.endswith(":*"):  # the form Route53 wants (AWS's own ARN ends so)
        group_arn += ":*"
    # CDK: route53_query_log_group.grant_write(ServicePrincipal("route53.amazonaws.com"))
    logs.put_resource_policy(policyName=f"{leaf_stack}-Domain-route53-query-logs", policyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "route53.amazonaws.com"},
                       "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": group_arn}]}))
    name = domain.rstrip(".") + "."
    zones = [z for z in r53.list_hosted_zones_by_name(DNSName=name)["HostedZones"] if z["Name"] == name]
    if zones:
        zone_id = zones[0]["Id"]
    else:
        zone_id = r53.create_hosted_zone(Name=name, CallerReference=f"{leaf_stack}-Domain-{time.time()}",
                                         HostedZoneConfig={"Comment": f"Hosted zone for {leaf_stack}-Domain: {domain}", "PrivateZone": False})["HostedZone"]["Id"]
    zone_id = zone_id.split("/")[-1]
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": name, "Type": "A", "TTL": 1, "ResourceRecords": [{"Value": "0.0.0.0"}]}}]})
    # (LocalStack's ListQueryLoggingConfigs answers every zone's configs: filter here.)
    configs = r53.list_query_logging_configs(HostedZoneId=zone_id)["QueryLoggingConfigs"]
    if not [c for c in configs if c["HostedZoneId"] == zone_id]:
        r53.create_query_logging_config(HostedZoneId=zone_id, CloudWatchLogsLogGroupArn=group_arn)
    return zone_id, group


def fix_task_definition(cfn, ecs, iam, nested_stack, template, arn):
    """moto kept only Family, ContainerDefinitions and Volumes: register revision 1 again
    (moto reuses the number once it is deleted, so the ARN stays the stack's physical id)
    with the template's NetworkMode and roles. requiresCompatibilities is left out: moto
    then wants `memory` where AWS accepts `memoryReservation` alone (compatibilities
    still reads EC2)."""
    td = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    props = next(r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition")
    if td.get("networkMode") == props["NetworkMode"]:
        return arn
    roles = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources(cfn, nested_stack) if r["ResourceType"] == "AWS::IAM::Role"}

    def role_arn(value):  # {"Fn::GetAtt": [<role>, "Arn"]}
        return iam.get_role(RoleName=roles[value["Fn::GetAtt"][0]])["Role"]["Arn"]

    ecs.deregister_task_definition(taskDefinition=arn)
    ecs.delete_task_definitions(taskDefinitions=[arn])
    out = ecs.register_task_definition(
        family=td["family"], networkMode=props["NetworkMode"],
        taskRoleArn=role_arn(props["TaskRoleArn"]), executionRoleArn=role_arn(props["ExecutionRoleArn"]),
        containerDefinitions=td["containerDefinitions"], volumes=td.get("volumes", []))["taskDefinition"]
    if out["taskDefinitionArn"] != arn:
        log(f"re-registered task definition is {out['taskDefinitionArn']}, the stack says {arn}")
        sys.exit(1)
    return arn


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leaf", required=True, help="container id, e.g. minecraft")
    ap.add_argument("--domain", required=True, help="the leaf's domain, e.g. minecraft.example.com")
    args = ap.parse_args()
    leaf = args.leaf.lower()
    alpha = "".join(c for c in leaf.title() if c.isalnum())
    stack = f"{APP}-{alpha}"
    region = os.environ.get("AWS_REGION", "us-east-1")

    with open(os.path.join(HERE, "main.json")) as f:
        main_text = rewrite(f.read(), leaf, alpha, args.domain)
    main_tpl = json.loads(main_text)
    templates = {}
    for res in main_tpl["Resources"].values():
        if res["Type"] == "AWS::CloudFormation::Stack":
            path = res["Metadata"]["aws:asset:path"]
            with open(os.path.join(HERE, path)) as f:
                templates[path] = rewrite(f.read(), leaf, alpha, args.domain)

    cfn = client("cloudformation")
    account = client("sts").get_caller_identity()["Account"]
    # moto's CloudFormation reads TemplateURL from its own S3: same server, whatever the env says.
    s3 = boto3.client("s3", region_name=region, endpoint_url=moto_url(),
                      config=botocore.config.Config(s3={"addressing_style": "path"}))

    # 1. The Domain stack's part, on LocalStack; its zone id is a value of the leaf stack.
    zone_id, log_group = make_domain(stack, args.domain)
    log(f"hosted zone {zone_id} for {args.domain}, query log group {log_group}")
    templates = {k: v.replace(PLACEHOLDER_ZONE, zone_id) for k, v in templates.items()}
    main_text = main_text.replace(PLACEHOLDER_ZONE, zone_id)

    # 2. The base stack (once) and the leaf stack with its nested stacks, on moto.
    upload_assets(s3, f"cdk-hnb659fds-assets-{account}-{region}", region, main_tpl, templates)
    if stack_status(cfn, BASE_STACK) != "CREATE_COMPLETE":
        with open(os.path.join(HERE, "base.json")) as f:
            create_stack(cfn, BASE_STACK, f.read(), "VPC, subnet, admin topic")
    create_stack(cfn, stack, main_text, "the leaf, six nested stacks")

    # 3. Read back what was made.
    top = resources(cfn, stack)
    nested = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in top if r["ResourceType"] == "AWS::CloudFormation::Stack"}
    topic_arn = next(r["PhysicalResourceId"] for r in top if r["ResourceType"] == "AWS::SNS::Topic")
    ecs_asg = resources(cfn, nested["EcsAsgNestedStack"])
    by_type = {r["ResourceType"]: r["PhysicalResourceId"] for r in ecs_asg}
    asg, cluster, service = by_type["AWS::AutoScaling::AutoScalingGroup"], by_type["AWS::ECS::Cluster"], by_type["AWS::ECS::Service"]
    task_def = next(r["PhysicalResourceId"] for r in resources(cfn, nested["ContainerNestedStack"]) if r["ResourceType"] == "AWS::ECS::TaskDefinition")

    # 4. Where moto's CloudFormation fell short of what CloudFormation makes (see the docstring).
    ecs = client("ecs")
    ecsasg_tpl = json.loads(templates["EcsAsgNestedStack.nested.template.json"])
    task_def = fix_task_definition(cfn, ecs, client("iam"), nested["ContainerNestedStack"],
                                   json.loads(templates["ContainerNestedStack.nested.template.json"]), task_def)
    svc = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    if svc.get("schedulingStrategy") != "DAEMON":
        props = next(r["Properties"] for r in ecsasg_tpl["Resources"].values() if r["Type"] == "AWS::ECS::Service")
        ecs.delete_service(cluster=cluster, service=service, force=True)
        made = ecs.create_service(
            cluster=cluster, serviceName=svc["serviceName"], taskDefinition=task_def,
            launchType=props["LaunchType"], schedulingStrategy=props["SchedulingStrategy"],
            enableECSManagedTags=props["EnableECSManagedTags"],
            deploymentConfiguration={"maximumPercent": props["DeploymentConfiguration"]["MaximumPercent"],
                                     "minimumHealthyPercent": props["DeploymentConfiguration"]["MinimumHealthyPercent"]})["service"]
        if made["serviceArn"] != service:
            log(f"re-created service has ARN {made['serviceArn']}, the stack says {service}")
            sys.exit(1)
    topic_name = topic_arn.split(":")[-1]
    topic_account = topic_arn.split(":")[4]
    ls_sns = boto3.client("sns", region_name=topic_arn.split(":")[3], aws_access_key_id=topic_account, aws_secret_access_key="test")
    ls_topic = ls_sns.create_topic(Name=topic_name, Attributes={"DisplayName": f"{stack}-sns-notify-topic"})["TopicArn"]
    if ls_topic != topic_arn:
        log(f"LocalStack made topic {ls_topic}, the stack says {topic_arn}")
        sys.exit(1)

    print(json.dumps({"stack": stack, "zone_id": zone_id, "log_group": log_group, "topic_arn": topic_arn,
                      "asg": asg, "cluster": cluster, "service": service, "task_definition": task_def,
                      "nested": nested, "account": account, "region": region}), flush=True)


if __name__ == "__main__":
    main()
