"""Checks each extension moto_main.py makes to moto (run by selftest.sh, through the
AWS_ENDPOINT_URL_* variables emulators.sh exports)."""

import ipaddress
import uuid

import boto3
from botocore.exceptions import ClientError

u = uuid.uuid4().hex[:8]  # names of our own, whatever else the emulator holds
region = boto3.session.Session().region_name
ec2, ecs, elb, asg, aas = (boto3.client(n) for n in ("ec2", "ecs", "elbv2", "autoscaling", "application-autoscaling"))


def refused(call, message, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ValidationError", e.response
        assert e.response["Error"]["Message"] == message, e.response
        return
    raise AssertionError(f"{call.__name__} {kwargs} was accepted")


def health(tg):
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]}


# A VPC with DNS hostnames (moto needs them for awsvpc tasks), two subnets, a group.
vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
subnets = [
    ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{region}{z}")["Subnet"]["SubnetId"]
    for i, z in enumerate("ab")
]
sg = ec2.create_security_group(GroupName=f"sg-{u}", Description="game", VpcId=vpc)["GroupId"]

# An NLB's ARN (and its listener's, and its target group's reference) say net/.
nlb = elb.create_load_balancer(Name=f"nlb-{u}", Type="network", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
assert ":loadbalancer/net/" in nlb, nlb
tg = elb.create_target_group(Name=f"tg-{u}", Protocol="TCP", Port=25565, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
listener = elb.create_listener(LoadBalancerArn=nlb, Protocol="TCP", Port=25565, DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
assert ":listener/net/" in listener["Listeners"][0]["ListenerArn"], listener
assert elb.describe_target_groups(TargetGroupArns=[tg])["TargetGroups"][0]["LoadBalancerArns"] == [nlb]
assert [b["LoadBalancerArn"] for b in elb.describe_load_balancers(Names=[f"nlb-{u}"])["LoadBalancers"]] == [nlb]
alb = elb.create_load_balancer(Name=f"alb-{u}", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
assert ":loadbalancer/app/" in alb, alb
print("elbv2 arns ok", nlb)

# ECS's scheduler: a FARGATE service with public IPs behind the IP target group.
cluster = f"c-{u}"
ecs.create_cluster(clusterName=cluster)
ecs.register_task_definition(
    family=f"game-{u}", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="512", memory="1024",
    containerDefinitions=[{"name": "game", "image": "x", "memory": 1024, "essential": True, "portMappings": [{"containerPort": 25565}]}],
)
ecs.create_service(
    cluster=cluster, serviceName="game", taskDefinition=f"game-{u}", launchType="FARGATE", desiredCount=0,
    networkConfiguration={"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [sg], "assignPublicIp": "ENABLED"}},
    loadBalancers=[{"targetGroupArn": tg, "containerName": "game", "containerPort": 25565}],
)
ecs.update_service(cluster=cluster, service="game", desiredCount=2)
running = ecs.list_tasks(cluster=cluster, serviceName="game", desiredStatus="RUNNING")["taskArns"]
assert len(running) == 2, running
for _ in range(3):  # moto would move them towards STOPPED on each describe
    tasks = ecs.describe_tasks(cluster=cluster, tasks=running)["tasks"]
    assert [t["lastStatus"] for t in tasks] == ["RUNNING", "RUNNING"], tasks
for t in tasks:
    assert t["group"] == "service:game" and t["startedBy"].startswith("ecs-svc/") and t["startedAt"], t
assert ecs.describe_services(cluster=cluster, services=["game"])["services"][0]["runningCount"] == 2
details = [{d["name"]: d["value"] for d in t["attachments"][0]["details"]} for t in tasks]
assert all(t["attachments"][0]["type"] == "ElasticNetworkInterface" and t["attachments"][0]["status"] == "ATTACHED" for t in tasks)
enis = ec2.describe_network_interfaces(NetworkInterfaceIds=[d["networkInterfaceId"] for d in details])["NetworkInterfaces"]
public = {n["Association"]["PublicIp"] for n in enis}
private = {n["PrivateIpAddress"] for n in enis}
assert len(public) == 2, enis
assert private == {d["privateIPv4Address"] for d in details}, (enis, details)
assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.20.0.0/24") for ip in private), private
assert health(tg) == dict.fromkeys(private, "healthy"), health(tg)
print("scheduler ok: 2 tasks RUNNING, public IPs", sorted(public), "targets", sorted(private))

# Target health follows the target group's tags.
one = sorted(private)[0]
elb.add_tags(ResourceArns=[tg], Tags=[{"Key": "cm-test:health", "Value": "initial"}])
assert set(health(tg).values()) == {"initial"}, health(tg)
elb.add_tags(ResourceArns=[tg], Tags=[{"Key": f"cm-test:health:{one}", "Value": "unhealthy"}])
assert health(tg) == {ip: "unhealthy" if ip == one else "initial" for ip in private}, health(tg)
elb.remove_tags(ResourceArns=[tg], TagKeys=["cm-test:health", f"cm-test:health:{one}"])
assert set(health(tg).values()) == {"healthy"}, health(tg)
print("target health tags ok")

# Scale-in: the scheduler stops them, they leave the target group, their ENIs go.
ecs.update_service(cluster=cluster, service="game", desiredCount=0)
assert ecs.list_tasks(cluster=cluster, serviceName="game", desiredStatus="RUNNING")["taskArns"] == []
stopped = ecs.describe_tasks(cluster=cluster, tasks=running)["tasks"]
for t in stopped:
    assert t["lastStatus"] == "STOPPED" and t["stopCode"] == "ServiceSchedulerInitiated" and t["stoppedAt"], t
    assert t["stoppedReason"].startswith("Scaling activity initiated by (deployment ecs-svc/"), t
assert sorted(ecs.list_tasks(cluster=cluster, serviceName="game", desiredStatus="STOPPED")["taskArns"]) == sorted(running)
assert health(tg) == {}, health(tg)
assert ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["NetworkInterfaces"] == []
print("scale-in ok: ServiceSchedulerInitiated, no targets, no ENIs")

# An EC2 service runs its tasks without container instances.
ecs.register_task_definition(family=f"ec2-{u}", containerDefinitions=[{"name": "game", "image": "x", "memory": 512, "essential": True}])
ecs.create_service(cluster=cluster, serviceName="ec2", taskDefinition=f"ec2-{u}", desiredCount=2)
assert len(ecs.list_tasks(cluster=cluster, serviceName="ec2", desiredStatus="RUNNING")["taskArns"]) == 2
ecs.delete_service(cluster=cluster, service="ec2", force=True)
assert ecs.list_tasks(cluster=cluster, serviceName="ec2", desiredStatus="RUNNING")["taskArns"] == []
print("ec2 service ok")

# AutoScaling: desired within [min, max]; instances follow into and out of target groups.
itg = elb.create_target_group(Name=f"itg-{u}", Protocol="TCP", Port=80, VpcId=vpc, TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
ec2.create_launch_template(LaunchTemplateName=f"lt-{u}", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})
group = f"asg-{u}"
asg.create_auto_scaling_group(
    AutoScalingGroupName=group, LaunchTemplate={"LaunchTemplateName": f"lt-{u}"}, MinSize=0, MaxSize=2, DesiredCapacity=0,
    VPCZoneIdentifier=",".join(subnets), TargetGroupARNs=[itg],
)
refused(asg.set_desired_capacity, "New SetDesiredCapacity value 3 is above max value 2 for the AutoScalingGroup.", AutoScalingGroupName=group, DesiredCapacity=3)
refused(asg.update_auto_scaling_group, "Desired capacity:3 must be between the specified min size:0 and max size:2", AutoScalingGroupName=group, DesiredCapacity=3)
asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=2)
instances = {i["InstanceId"] for i in asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]["Instances"]}
assert len(instances) == 2 and set(health(itg)) == instances, (instances, health(itg))
asg.update_auto_scaling_group(AutoScalingGroupName=group, MinSize=0, MaxSize=0, DesiredCapacity=0)
assert asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]["Instances"] == []
assert health(itg) == {}, health(itg)
print("autoscaling ok: bounds refused, targets follow instances")

# Application Auto Scaling on the service (moto as is).
rid = f"service/{cluster}/game"
aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=rid, ScalableDimension="ecs:service:DesiredCount", MinCapacity=1, MaxCapacity=10)
aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=rid, ScalableDimension="ecs:service:DesiredCount", MinCapacity=0, MaxCapacity=0)
targets = aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[rid])["ScalableTargets"]
assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(0, 0)], targets
print("application autoscaling ok")

# The other services emulators.sh points at moto answer through their variables.
boto3.client("dynamodb").list_tables()
boto3.client("iam").list_roles()
assert boto3.client("sts").get_caller_identity()["Account"]
boto3.client("cloudformation").list_stacks()
print("moto ok: dynamodb, iam, sts, cloudformation")
