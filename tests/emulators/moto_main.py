"""Start moto's server with test-only extensions that make it answer like real AWS.

moto 5.2.5 keeps books where AWS runs things (ECS's scheduler, health checks), so
the daemon's tests could not watch a service scale. Each patch below wraps one moto
function; nothing in the daemon knows about them, they only change what the emulator
answers.

ECS
- Stop codes. Real ECS records, for a stopped task, a stop code
  (`TaskFailedToStart`, `EssentialContainerExited`, ...) and each container's exit
  code; moto keeps only a reason. A test calls the real StopTask API with a reason of
  the form
      cm-test:{"stopCode": "EssentialContainerExited", "exitCode": 1, "reason": "..."}
  and the task is then described the way ECS would describe it.
- Service scheduler. moto starts no tasks for a service. After CreateService,
  UpdateService and DeleteService, a REPLICA service's tasks are brought to its desired
  count at once: new tasks (group `service:<name>`, startedBy the deployment id,
  startedAt set, RUNNING and staying RUNNING however often they are described) and
  excess tasks stopped newest first with stop code `ServiceSchedulerInitiated`.
  EC2-launch-type tasks get no container instance (moto could not place them without
  one; placing them would also use up the resources tests' own RunTask calls need).
  runningCount follows. A task stopped otherwise (StopTask) is not replaced.
- ListTasks: the serviceName filter (moto ignores it) keeps tasks of group
  `service:<name>`; the cluster filter matches exactly (moto matches a substring).
- awsvpc tasks: moto already gives each an ENI attachment backed by an EC2 ENI; its
  private IP is now taken from the subnet (moto picks any 10.x address), with
  assignPublicIp ENABLED the ENI gets a public IP of its own (DescribeNetworkInterfaces
  Association.PublicIp, as AWS's auto-assigned addresses, no Elastic IP), and when the
  task stops the ENI is deleted and the attachment becomes DELETED. moto needs the VPC
  to have EnableDnsHostnames for awsvpc tasks: else starting one (RunTask, or a
  service's scale-out) fails with a 500 (moto reads the ENI's private DNS name).
- Load balancers: the scheduler registers each awsvpc task in its service's target
  groups as an IP target (private IP, containerPort) and deregisters it when it stops.

ELBv2
- Target health. DescribeTargetHealth answers, for a registered target, the state in
  the target group's tag `cm-test:health:<targetId>`, else its tag `cm-test:health`,
  else moto's answer (healthy). Tests set them with AddTags/RemoveTags.
- A network load balancer's ARN reads `loadbalancer/net/...` (moto: `app/` for all),
  and so do its listeners' ARNs and its target groups' LoadBalancerArns.

AutoScaling
- SetDesiredCapacity and UpdateAutoScalingGroup refuse a desired capacity outside
  [min, max] with AWS's ValidationError messages (moto accepts and launches).
- Instances an ASG terminates are deregistered from its target groups (moto only
  registers, so terminated instances stayed healthy targets).
"""

import datetime
import ipaddress
import itertools
import json
import sys

from moto.autoscaling import models as autoscaling
from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.responses import AutoScalingResponse
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_network_interfaces import NetworkInterfaceBackend
from moto.ec2.utils import random_public_ip
from moto.ecs import models as ecs
from moto.elbv2 import models as elbv2
from moto.elbv2.exceptions import InvalidTargetError, TargetGroupNotFoundError
from moto.server import main

_PREFIX = "cm-test:"
_HEALTH_TAG = "cm-test:health"
_HEALTH_REASONS = {
    "initial": ("Elb.InitialHealthChecking", "Initial health checks in progress"),
    "unhealthy": ("Target.FailedHealthChecks", "Health checks failed"),
    "draining": ("Target.DeregistrationInProgress", "Target deregistration is in progress"),
    "unused": ("Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"),
    "unavailable": ("Target.HealthCheckDisabled", "Health checks are disabled"),
}


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _task_eni(task):
    """(attachment, EC2 ENI) of an awsvpc task whose ENI is still attached, else (None, None)."""
    for attachment in task.attachments:
        if attachment["type"] == "ElasticNetworkInterface" and attachment["status"] == "ATTACHED":
            eni_id = next(d["value"] for d in attachment["details"] if d["name"] == "networkInterfaceId")
            eni = ec2_backends[task._account_id][task.region_name].enis.get(eni_id)
            return attachment, eni
    return None, None


# --- ECS: stop codes -------------------------------------------------------------

_stop_task = ecs.EC2ContainerServiceBackend.stop_task


def _stop_task_with_codes(self, cluster_str, task_str, reason):
    spec = None
    if reason and reason.startswith(_PREFIX):
        spec = json.loads(reason[len(_PREFIX):])
        reason = spec.get("reason", "")
    task = _stop_task(self, cluster_str, task_str, reason)
    if spec is not None:
        task.stop_code = spec.get("stopCode")
        task.stopped_at = _now()
        for container in task.containers:
            container.exitCode = spec.get("exitCode")
            container.reason = spec.get("containerReason")
            container.last_status = "STOPPED"
    return task


ecs.EC2ContainerServiceBackend.stop_task = _stop_task_with_codes


# --- ECS: a stopped task leaves its target groups and deletes its ENI ------------

_stop_task_keeping_network = ecs.EC2ContainerServiceBackend.stop_task


def _stop_task_releasing_network(self, cluster_str, task_str, reason):
    task = _stop_task_keeping_network(self, cluster_str, task_str, reason)
    balancers = elbv2.elbv2_backends[task._account_id][task.region_name]
    for target_group, target in getattr(task, "cm_targets", []):
        try:
            balancers.deregister_targets(target_group, [target])
        except (TargetGroupNotFoundError, InvalidTargetError):
            pass  # the target group was deleted, or the test deregistered it
    task.cm_targets = []
    attachment, eni = _task_eni(task)
    if attachment is not None:
        if eni is not None:
            eni.ec2_backend.delete_network_interface(eni.id)
        attachment["status"] = "DELETED"
    return task


ecs.EC2ContainerServiceBackend.stop_task = _stop_task_releasing_network


# --- EC2: an ECS task's ENI takes a free private IP of its subnet ----------------

_create_network_interface = NetworkInterfaceBackend.create_network_interface


def _create_network_interface_in_subnet(self, subnet, private_ip_address, *args, **kwargs):
    if kwargs.get("description") == "moto ECS":  # only ecs.Task creates these
        subnet = self.get_subnet(subnet) if isinstance(subnet, str) else subnet
        used = {eni.private_ip_address for eni in self.enis.values() if eni.subnet.id == subnet.id}
        hosts = itertools.islice(ipaddress.ip_network(subnet.cidr_block).hosts(), 3, None)  # AWS keeps .1-.3
        private_ip_address = next(str(ip) for ip in hosts if str(ip) not in used)
    return _create_network_interface(self, subnet, private_ip_address, *args, **kwargs)


NetworkInterfaceBackend.create_network_interface = _create_network_interface_in_subnet


# --- ECS: assignPublicIp ENABLED gives the task's ENI a public IP ----------------

_task_init = ecs.Task.__init__


def _task_init_with_public_ip(self, *args, **kwargs):
    _task_init(self, *args, **kwargs)
    _, eni = _task_eni(self)
    awsvpc = getattr(self, "network_configuration", {}).get("awsvpcConfiguration", {})
    if eni is not None and awsvpc.get("assignPublicIp") == "ENABLED":
        taken = {e.public_ip for e in eni.ec2_backend.enis.values()}
        taken |= {a.public_ip for a in eni.ec2_backend.addresses}
        eni.public_ip = next(ip for ip in iter(random_public_ip, None) if ip not in taken)


ecs.Task.__init__ = _task_init_with_public_ip


# --- ECS: the scheduler's tasks stay RUNNING when described ----------------------

_advance = ecs.Task.advance


def _advance_unless_scheduled(self):
    # moto moves a task one step towards STOPPED each time it is described.
    if not getattr(self, "cm_scheduled", False):
        _advance(self)


ecs.Task.advance = _advance_unless_scheduled


# --- ECS: the service scheduler --------------------------------------------------


def _start_service_task(backend, service, deployment):
    cluster = backend._get_cluster(service.cluster_name)
    task_definition = backend.describe_task_definition(service.task_definition)
    task = ecs.Task(
        cluster,
        task_definition,
        None,  # no container instance, whatever the launch type
        backend._calculate_task_resource_requirements(task_definition),
        backend=backend,
        group=f"service:{service.name}",
        launch_type=service.launch_type or "",
        started_by=deployment,
        networking_configuration=service.network_configuration or None,
        platform_version=service.platform_version,
    )
    task.cm_scheduled = True
    task.created_at = task.started_at = _now()
    for container in task.containers:
        container.last_status = "RUNNING"
        container.exitCode = None
    backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
    _, eni = _task_eni(task)
    task.cm_targets = []
    for balancer in service.load_balancers if eni is not None else []:
        if balancer.get("targetGroupArn"):
            target = {"Id": eni.private_ip_address, "Port": balancer.get("containerPort")}
            elbv2.elbv2_backends[backend.account_id][backend.region_name].register_targets(balancer["targetGroupArn"], [target])
            task.cm_targets.append((balancer["targetGroupArn"], target))


def _reconcile_service(backend, service):
    """Start or stop the service's tasks until as many run as it desires, as ECS does."""
    if service.scheduling_strategy != "REPLICA" or not service.task_definition:
        return
    deployment = service.deployments[0]["id"] if service.deployments else "ecs-svc/0"
    want = max(service.desired_count or 0, 0) if service.status == "ACTIVE" else 0
    group = f"service:{service.name}"
    running = [
        t
        for t in backend.tasks.get(service.cluster_name, {}).values()
        if t.group == group and t.desired_status == "RUNNING"
    ]
    for _ in range(want - len(running)):
        _start_service_task(backend, service, deployment)
    for task in reversed(running[want:]):  # newest first
        backend.stop_task(service.cluster_name, task.task_arn, f"Scaling activity initiated by (deployment {deployment})")
        task.stop_code = "ServiceSchedulerInitiated"
        task.stopped_at = _now()
        for container in task.containers:
            container.last_status = "STOPPED"
            container.exitCode = 0
    service.running_count, service.pending_count = want, 0
    for d in service.deployments:
        d.update(desiredCount=service.desired_count, runningCount=service.running_count, pendingCount=0, rolloutState="COMPLETED")


_create_service = ecs.EC2ContainerServiceBackend.create_service


def _create_service_scheduled(self, *args, **kwargs):
    service = _create_service(self, *args, **kwargs)
    _reconcile_service(self, service)
    return service


ecs.EC2ContainerServiceBackend.create_service = _create_service_scheduled

_update_service = ecs.EC2ContainerServiceBackend.update_service


def _update_service_scheduled(self, service_properties):
    service = _update_service(self, service_properties)
    _reconcile_service(self, service)
    return service


ecs.EC2ContainerServiceBackend.update_service = _update_service_scheduled

_delete_service = ecs.EC2ContainerServiceBackend.delete_service


def _delete_service_scheduled(self, cluster_name, service_name, force):
    service = _delete_service(self, cluster_name, service_name, force)
    _reconcile_service(self, service)  # INACTIVE: stops every task
    return service


ecs.EC2ContainerServiceBackend.delete_service = _delete_service_scheduled


# --- ECS: ListTasks filters by service, and by cluster exactly --------------------

_list_tasks = ecs.EC2ContainerServiceBackend.list_tasks


def _list_tasks_filtered(self, cluster_str=None, container_instance=None, family=None, started_by=None, service_name=None, desiredStatus=None):
    tasks = _list_tasks(self, cluster_str, container_instance, family, started_by, service_name, desiredStatus)
    if cluster_str:
        cluster_arn = self._get_cluster(cluster_str).arn
        tasks = [t for t in tasks if t.cluster_arn == cluster_arn]
    if service_name:
        group = "service:" + service_name.split("/")[-1]
        tasks = [t for t in tasks if t.group == group]
    return tasks


ecs.EC2ContainerServiceBackend.list_tasks = _list_tasks_filtered


# --- ELBv2: target health from the target group's tags ---------------------------

_describe_target_health = elbv2.ELBv2Backend.describe_target_health


def _describe_target_health_from_tags(self, target_group_arn, targets):
    statuses = _describe_target_health(self, target_group_arn, targets)
    registered = self.target_groups[target_group_arn].targets
    tags = self.tagging_service.get_tag_dict_for_resource(target_group_arn)
    for status in statuses:
        state = tags.get(f"{_HEALTH_TAG}:{status.instance_id}", tags.get(_HEALTH_TAG))
        if state and status.instance_id in registered:
            status.status = state
            status.reason, status.description = _HEALTH_REASONS.get(state, (None, None))
    return statuses


elbv2.ELBv2Backend.describe_target_health = _describe_target_health_from_tags


# --- ELBv2: network load balancers' ARNs say net/ --------------------------------

_create_load_balancer = elbv2.ELBv2Backend.create_load_balancer


def _create_load_balancer_net_arn(self, *args, **kwargs):
    balancer = _create_load_balancer(self, *args, **kwargs)
    if balancer.type == "network":
        old = balancer.arn
        balancer.arn = old.replace(":loadbalancer/app/", ":loadbalancer/net/", 1)
        self.load_balancers[balancer.arn] = self.load_balancers.pop(old)
        self.tagging_service.copy_tags(old, balancer.arn)
        self.tagging_service.delete_all_tags_for_resource(old)
    return balancer


elbv2.ELBv2Backend.create_load_balancer = _create_load_balancer_net_arn


# --- AutoScaling: desired capacity within [min, max] -----------------------------

# Only the API call checks: moto's own callers (DeleteAutoScalingGroup) set 0 below min.
_set_desired_capacity = AutoScalingResponse.set_desired_capacity


def _set_desired_capacity_within_bounds(self):
    group = self.autoscaling_backend.autoscaling_groups.get(self._get_param("AutoScalingGroupName"))
    desired = self._get_int_param("DesiredCapacity")
    if group is not None and desired is not None and desired > group.max_size:
        raise ValidationError(f"New SetDesiredCapacity value {desired} is above max value {group.max_size} for the AutoScalingGroup.")
    if group is not None and desired is not None and desired < group.min_size:
        raise ValidationError(f"New SetDesiredCapacity value {desired} is below min value {group.min_size} for the AutoScalingGroup.")
    return _set_desired_capacity(self)


AutoScalingResponse.set_desired_capacity = _set_desired_capacity_within_bounds

_update_auto_scaling_group = autoscaling.AutoScalingBackend.update_auto_scaling_group


def _update_auto_scaling_group_within_bounds(self, **kwargs):
    group = self.autoscaling_groups.get(kwargs["name"])
    if group is not None:
        lo = group.min_size if kwargs.get("min_size") is None else kwargs["min_size"]
        hi = group.max_size if kwargs.get("max_size") is None else kwargs["max_size"]
        desired = kwargs.get("desired_capacity")
        if lo > hi:
            raise ValidationError(f"Max bound, {hi}, must be greater than or equal to min bound, {lo}")
        if desired is not None and not lo <= desired <= hi:
            raise ValidationError(f"Desired capacity:{desired} must be between the specified min size:{lo} and max size:{hi}")
    return _update_auto_scaling_group(self, **kwargs)


autoscaling.AutoScalingBackend.update_auto_scaling_group = _update_auto_scaling_group_within_bounds


# --- AutoScaling: terminated instances leave the group's target groups -----------

_update_attached_target_groups = autoscaling.AutoScalingBackend.update_attached_target_groups


def _update_attached_target_groups_deregistering(self, group_name):
    _update_attached_target_groups(self, group_name)
    for arn in self.autoscaling_groups[group_name].target_group_arns:
        target_group = self.elbv2_backend.target_groups.get(arn)
        for target_id in list(target_group.targets) if target_group else []:
            instance = self.ec2_backend.get_instance_by_id(target_id)
            if instance is not None and instance.state in ("shutting-down", "terminated"):
                # Unlisted from now on; asked for by id, it answers draining.
                target_group.deregister_terminated_instances([target_id])


autoscaling.AutoScalingBackend.update_attached_target_groups = _update_attached_target_groups_deregistering

if __name__ == "__main__":
    sys.exit(main())
