#!/usr/bin/env python3
"""Deploy a deploy/cloudformation template onto the local AWS emulators (tests only).

    deploy.py TEMPLATE STACK [Key=Value ...]   -> stdout: one JSON object (below)
    deploy.py --selfcheck                      -> deploys leaf, host and zone, checks them

Run it with the python of moto's venv (tests/emulators/emulators.sh creates it; it has
boto3 1.44 and cfn-lint 1.58, whose decoder reads the templates' short tags):
    ~/.cache/container-manager/venv/moto-<hash>/bin/python tests/cfn/deploy.py ...
with the emulators' AWS_* variables exported (`emulators_start`, or the export lines of
`bash tests/emulators/emulators.sh run`).

Why two stacks. The daemon reads Route53 and SNS from LocalStack (moto's Route53 returns
A values the Rust SDK reads as empty) and everything else from moto, so a template's
resources are split by the emulator that serves their type to the daemon:
  - AWS::Route53::RecordSet(Group), AWS::SNS::* -> the "edge" stack, on LocalStack's own
    CloudFormation (at AWS_ENDPOINT_URL_ROUTE_53; emulators.sh enables LocalStack's
    `cloudformation` service for this);
  - AWS::Route53::HostedZone, AWS::Logs::ResourcePolicy -> created here with boto3 on
    LocalStack ("direct"), after the edge stack: LocalStack 2026.3.0's CloudFormation
    has no provider for them and reports them CREATE_COMPLETE without creating anything.
    A zone's QueryLoggingConfig is applied with CreateQueryLoggingConfig; LocalStack
    finds the log group only by the ARN DescribeLogGroups returns (ending ":*"), so an
    ARN without it is retried with it;
  - AWS::Logs::* other -> the side of the resources that reference it (a leaf's container
    log group goes with its task definition to moto; a zone's query log group to
    LocalStack, where the daemon reads it); unreferenced: LocalStack;
  - everything else -> the "compute" stack on moto's CloudFormation
    (AWS_ENDPOINT_URL_CLOUDFORMATION).
Each half keeps only the parameters and outputs it references. Conditions are evaluated
here first (from the given parameters and defaults): resources and outputs whose
condition is false are dropped, Fn::If is replaced by its branch and AWS::NoValue
removed (moto keeps a list element that is AWS::NoValue as null). Rules, Metadata and
Conditions do not reach the emulators. References across halves are refused, except a
direct resource referring to an edge-stack resource (created later) and an edge resource's
DependsOn on a direct one (dropped: created right after).

Parameters are validated here like CloudFormation would (AllowedValues, AllowedPattern,
Min/MaxLength, Min/MaxValue, Number): moto does not. AWS::SSM::Parameter::Value<...>
parameters are resolved by moto from its own SSM: moto 5.2.5 ships the public
/aws/service/ecs/optimized-ami/... and /aws/service/ami-amazon-linux-latest/... values, so
the defaults work; its AMI ids are not among moto's DescribeImages, which nothing checks
unless MOTO_ENABLE_AMI_VALIDATION is set. --selfcheck instead puts one of moto's AMIs into
the moto SSM parameter /cm-test/ecs-ami and passes AmiId=/cm-test/ecs-ami (what a test
that wants a real moto AMI does). moto has no SSM endpoint variable in emulators.sh: it is
the one in AWS_ENDPOINT_URL_CLOUDFORMATION.

What moto's CloudFormation drops (moto 5.2.5), so tests must not expect it from moto:
the task definition's NetworkMode (moto says bridge), RequiresCompatibilities,
TaskRoleArn and EFSVolumeConfiguration (the volume keeps only its name); the service's
DeploymentConfiguration (LaunchType EC2 and REPLICA are moto's defaults anyway); the
launch template is stored whole (Monitoring, MetadataOptions, NetworkInterfaces as
written) but an instance the ASG launches does not get them (monitoring "disabled",
HttpTokens "optional", no security groups or profile); its public IP comes from the
subnet (moto's default subnets map public IPs on launch; in a subnet without
MapPublicIpOnLaunch the instance has none); IPv6 (CidrIpv6) ingress rules are dropped;
a role's ManagedPolicyArns are not attached. LocalStack's CloudFormation ignores a log
group's RetentionInDays. Resources get
<stack>-<LogicalId>-<suffix> names.

Output (stdout, one line):
  {"stacks": {"compute": NAME|null, "edge": NAME|null},
   "direct": {LogicalId: physical id},          # resources created without a stack
   "outputs": {OutputKey: value}}               # all halves merged
Exit status: 0 deployed, 1 a stack or resource failed (events on stderr), 2 bad usage,
template or parameters.
"""

import json
import os
import re
import sys
import time

import boto3
import botocore.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

EDGE_CFN_TYPES = {
    "AWS::Route53::RecordSet",
    "AWS::Route53::RecordSetGroup",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
}
DIRECT_TYPES = {"AWS::Route53::HostedZone", "AWS::Logs::ResourcePolicy"}
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
LOCALSTACK_ACCOUNT = "000000000000"  # LocalStack's account for the access key "test"
TIMEOUT = float(os.environ.get("CM_CFN_TIMEOUT", "300"))


class Usage(Exception):
    """Bad usage, template or parameters: exit 2."""


class Failed(Exception):
    """A stack or resource failed on an emulator: exit 1."""


def log(msg):
    print(f"deploy.py: {msg}", file=sys.stderr, flush=True)


# --- template loading ---------------------------------------------------------------


def load_template(path):
    """The template as plain JSON data, short tags (!Ref, !Sub, ...) in long form."""
    try:
        from cfnlint.decode import decode
    except ImportError:
        decode = None
    if decode is not None:
        template, matches = decode(path)
        if matches or template is None:
            raise Usage(f"{path}: " + "; ".join(str(m) for m in matches or ["cannot parse"]))
        return json.loads(json.dumps(template))
    # Fallback without cfn-lint: PyYAML with CloudFormation's tags.
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def tag(loader, suffix, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "Condition":
            return {"Condition": value}
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {f"Fn::{suffix}": value}

    Loader.add_multi_constructor("!", tag)
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=Loader)  # noqa: S506 (SafeLoader subclass)


# --- intrinsic functions ------------------------------------------------------------

NOVALUE = object()


def is_fn(node, name):
    return isinstance(node, dict) and len(node) == 1 and name in node


def sub_parts(node):
    """(template string, explicit variables) of an Fn::Sub."""
    arg = node["Fn::Sub"]
    if isinstance(arg, list):
        return arg[0], (arg[1] if len(arg) > 1 else {})
    return arg, {}


SUB_VAR = re.compile(r"\$\{([^!}][^}]*)\}")


def refs(node, out=None):
    """Names a node refers to (Ref, Fn::GetAtt, ${...} of Fn::Sub), pseudo params included."""
    if out is None:
        out = set()
    if isinstance(node, dict):
        if is_fn(node, "Ref") and isinstance(node["Ref"], str):
            out.add(node["Ref"])
        elif is_fn(node, "Fn::GetAtt"):
            arg = node["Fn::GetAtt"]
            out.add(arg.split(".", 1)[0] if isinstance(arg, str) else arg[0])
        elif is_fn(node, "Fn::Sub"):
            text, variables = sub_parts(node)
            for v in SUB_VAR.findall(text) if isinstance(text, str) else []:
                if v not in variables:
                    out.add(v.split(".", 1)[0])
            refs(variables, out)
            if not isinstance(text, str):
                refs(text, out)
        else:
            for v in node.values():
                refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)
    return out


class Evaluator:
    """Evaluates intrinsic functions against parameters, pseudo parameters, conditions
    and (for direct resources and local outputs) resources, given as callables."""

    def __init__(self, params, pseudo, mappings, conditions_src, resolve_ref=None, resolve_att=None):
        self.params, self.pseudo, self.mappings = params, pseudo, mappings
        self.conditions_src, self.conditions = conditions_src, {}
        self.resolve_ref, self.resolve_att = resolve_ref, resolve_att

    def condition(self, name):
        if name not in self.conditions:
            if name not in self.conditions_src:
                raise Usage(f"unknown condition {name}")
            self.conditions[name] = bool(self.ev(self.conditions_src[name]))
        return self.conditions[name]

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if self.resolve_ref is not None:
            return self.resolve_ref(name)
        raise Usage(f"cannot resolve Ref {name} here")

    def ev(self, node):
        if isinstance(node, list):
            return [v for v in (self.ev(x) for x in node) if v is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return NOVALUE if arg == "AWS::NoValue" else self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::If":
                return self.ev(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                a, b = (self.ev(x) for x in arg)
                return cfn_str(a) == cfn_str(b)
            if key == "Fn::Not":
                return not self.ev(arg[0])
            if key == "Fn::And":
                return all(self.ev(x) for x in arg)
            if key == "Fn::Or":
                return any(self.ev(x) for x in arg)
            if key == "Fn::Join":
                return self.ev(arg[0]).join(cfn_str(x) for x in self.ev(arg[1]))
            if key == "Fn::Select":
                return self.ev(arg[1])[int(self.ev(arg[0]))]
            if key == "Fn::Split":
                return self.ev(arg[1]).split(self.ev(arg[0]))
            if key == "Fn::FindInMap":
                m, k1, k2 = (self.ev(x) for x in arg[:3])
                return self.mappings[m][k1][k2]
            if key == "Fn::GetAtt":
                name, att = arg.split(".", 1) if isinstance(arg, str) else (arg[0], self.ev(arg[1]))
                if self.resolve_att is None:
                    raise Usage(f"cannot resolve Fn::GetAtt {name}.{att} here")
                return self.resolve_att(name, att)
            if key == "Fn::Sub":
                text, variables = sub_parts(node)
                values = {k: self.ev(v) for k, v in variables.items()}

                def one(m):
                    v = m.group(1)
                    if v in values:
                        return cfn_str(values[v])
                    if "." in v and v.split(".", 1)[0] not in self.params:
                        return cfn_str(self.ev({"Fn::GetAtt": v.split(".", 1)}))
                    return cfn_str(self.ref(v))

                return SUB_VAR.sub(one, self.ev(text)).replace("${!", "${")
            if key == "Fn::Base64":
                import base64

                return base64.b64encode(self.ev(arg).encode()).decode()
            if key.startswith("Fn::"):
                raise Usage(f"{key} is not supported by tests/cfn/deploy.py")
        out = {}
        for k, v in node.items():
            v = self.ev(v)
            if v is not NOVALUE:
                out[k] = v
        return out


def cfn_str(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def prune(node, ev):
    """Replaces Fn::If by its branch and drops AWS::NoValue; keeps other functions."""
    if isinstance(node, list):
        return [v for v in (prune(x, ev) for x in node) if v is not NOVALUE]
    if not isinstance(node, dict):
        return node
    if is_fn(node, "Fn::If"):
        c, a, b = node["Fn::If"]
        return prune(a if ev.condition(c) else b, ev)
    if is_fn(node, "Ref") and node["Ref"] == "AWS::NoValue":
        return NOVALUE
    out = {}
    for k, v in node.items():
        v = prune(v, ev)
        if v is not NOVALUE:
            out[k] = v
    return out


# --- parameters -----------------------------------------------------------------------


def check_parameters(decl, given):
    for key in given:
        if key not in decl:
            raise Usage(f"parameter {key} is not in the template (it has: {', '.join(decl)})")
    values = {}
    for name, p in decl.items():
        if name in given:
            v = given[name]
        elif "Default" in p:
            values[name] = cfn_str(p["Default"])
            continue
        else:
            raise Usage(f"parameter {name} has no default: pass {name}=...")
        where = f"parameter {name}={v!r}"
        if "AllowedValues" in p and v not in [cfn_str(x) for x in p["AllowedValues"]]:
            raise Usage(f"{where}: not one of {p['AllowedValues']}")
        if "AllowedPattern" in p and not re.fullmatch(p["AllowedPattern"], v):
            raise Usage(f"{where}: does not match {p['AllowedPattern']}")
        if "MinLength" in p and len(v) < int(p["MinLength"]):
            raise Usage(f"{where}: shorter than {p['MinLength']}")
        if "MaxLength" in p and len(v) > int(p["MaxLength"]):
            raise Usage(f"{where}: longer than {p['MaxLength']}")
        if p.get("Type") == "Number":
            try:
                n = float(v)
            except ValueError:
                raise Usage(f"{where}: not a number") from None
            if "MinValue" in p and n < float(p["MinValue"]):
                raise Usage(f"{where}: below {p['MinValue']}")
            if "MaxValue" in p and n > float(p["MaxValue"]):
                raise Usage(f"{where}: above {p['MaxValue']}")
        values[name] = v
    return values


# --- splitting ------------------------------------------------------------------------


def deps_of(res):
    d = refs(res.get("Properties", {})) | refs(res.get("Metadata", {}))
    return d


def depends_on(res):
    d = res.get("DependsOn", [])
    return [d] if isinstance(d, str) else list(d)


def split(template, given, region, stack):
    """Evaluates conditions, then assigns resources and outputs to compute/edge/direct/local."""
    decl = template.get("Parameters", {}) or {}
    values = check_parameters(decl, given)
    if "Transform" in template:
        raise Usage("templates with a Transform are not supported")
    pseudo = {"AWS::Region": region, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
              "AWS::StackName": stack}
    ev = Evaluator(values, pseudo, template.get("Mappings", {}), template.get("Conditions", {}) or {})

    resources = {}
    for name, r in (template.get("Resources") or {}).items():
        if "Condition" in r and not ev.condition(r["Condition"]):
            continue
        r = {k: prune(v, ev) for k, v in r.items() if k != "Condition"}
        resources[name] = r
    outputs = {}
    for name, o in (template.get("Outputs") or {}).items():
        if "Condition" in o and not ev.condition(o["Condition"]):
            continue
        o = {k: prune(v, ev) for k, v in o.items() if k not in ("Condition", "Export")}
        outputs[name] = o
    for r in resources.values():
        if "DependsOn" in r:
            r["DependsOn"] = [d for d in depends_on(r) if d in resources]
            if not r["DependsOn"]:
                del r["DependsOn"]

    side = {}
    for name, r in resources.items():
        t = r["Type"]
        side[name] = ("edge" if t in EDGE_CFN_TYPES else "direct" if t in DIRECT_TYPES
                      else None if t.startswith("AWS::Logs::") else "compute")
    # Logs resources follow whoever references them.
    for _ in range(len(resources) + 1):
        for name in [n for n, s in side.items() if s is None]:
            users = {side[u] for u, r in resources.items() if name in deps_of(r)}
            if None in users:
                continue
            if "compute" in users and users - {"compute"}:
                raise Usage(f"{name} is referenced by resources of both emulators")
            side[name] = "compute" if "compute" in users else "edge"
    for name in [n for n, s in side.items() if s is None]:
        side[name] = "edge"

    for name, r in resources.items():
        s = side[name]
        for d in deps_of(r):
            if d not in resources or side[d] == s or (s == "direct" and side[d] == "edge"):
                continue
            raise Usage(f"{name} ({s}, {r['Type']}) refers to {d} ({side[d]}): "
                        "references across emulators are not supported")
        kept = []
        for d in depends_on(r):
            if side[d] == s or (s == "direct" and side[d] == "edge"):
                kept.append(d)
            elif s == "edge" and side[d] == "direct":
                log(f"note: {name} DependsOn {d}, which is created right after the edge stack")
            else:
                raise Usage(f"{name} ({s}) DependsOn {d} ({side[d]}): across emulators")
        if "DependsOn" in r:
            if kept:
                r["DependsOn"] = kept
            else:
                del r["DependsOn"]

    present = {s for s in side.values()}
    out_side = {}
    for name, o in outputs.items():
        sides = {side[d] for d in refs(o.get("Value")) if d in resources}
        if "direct" in sides:
            out_side[name] = "local"
        elif len(sides) == 1:
            out_side[name] = sides.pop()
        elif not sides:
            out_side[name] = "compute" if "compute" in present else "edge" if "edge" in present else "local"
        else:
            raise Usage(f"output {name} refers to resources of both emulators")

    halves = {}
    for s in ("compute", "edge"):
        res = {n: r for n, r in resources.items() if side[n] == s}
        if not res:
            continue
        outs = {n: o for n, o in outputs.items() if out_side[n] == s}
        used = set()
        for r in res.values():
            used |= deps_of(r)
        for o in outs.values():
            used |= refs(o)
        half = {"AWSTemplateFormatVersion": "2010-09-09",
                "Description": f"{template.get('Description', '')[:900]} ({s} half, tests/cfn/deploy.py)",
                "Parameters": {n: p for n, p in decl.items() if n in used},
                "Resources": res, "Outputs": outs}
        if template.get("Mappings"):
            half["Mappings"] = template["Mappings"]
        halves[s] = half
    direct = {n: r for n, r in resources.items() if side[n] == "direct"}
    local_outputs = {n: o for n, o in outputs.items() if out_side[n] == "local"}
    return values, halves, direct, local_outputs


# --- deploying ------------------------------------------------------------------------


def endpoints():
    env = os.environ
    compute = env.get("AWS_ENDPOINT_URL_CLOUDFORMATION")
    edge = env.get("AWS_ENDPOINT_URL_ROUTE_53")
    if not compute or not edge:
        raise Usage("AWS_ENDPOINT_URL_CLOUDFORMATION and AWS_ENDPOINT_URL_ROUTE_53 must be set "
                    "(run inside the emulators' environment, see tests/emulators/emulators.sh)")
    for var in ("AWS_ENDPOINT_URL_SNS", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"):
        if env.get(var, edge) != edge:
            raise Usage(f"{var} differs from AWS_ENDPOINT_URL_ROUTE_53: one edge emulator expected")
    return compute, edge


def client(service, endpoint=None):
    return boto3.client(service, endpoint_url=endpoint) if endpoint else boto3.client(service)


def stack_failure(cf, name):
    lines = []
    try:
        st = cf.describe_stacks(StackName=name)["Stacks"][0]
        lines.append(f"{name}: {st['StackStatus']} {st.get('StackStatusReason') or ''}".rstrip())
        for e in reversed(cf.describe_stack_events(StackName=name)["StackEvents"]):
            if "FAILED" not in e.get("ResourceStatus", ""):
                continue
            if e.get("ResourceType") == "AWS::CloudFormation::Stack" and not e.get("ResourceStatusReason"):
                continue  # the stack's own status, already on the first line
            line = (f"  {e.get('LogicalResourceId')} ({e.get('ResourceType')}): "
                    f"{e['ResourceStatus']} {e.get('ResourceStatusReason') or ''}".rstrip())
            if line not in lines:
                lines.append(line)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        lines.append(f"{name}: cannot describe: {exc}")
    return "\n".join(lines)


def create_stack(cf, where, name, template, values):
    params = [{"ParameterKey": k, "ParameterValue": values[k]} for k in template["Parameters"]]
    try:
        cf.create_stack(StackName=name, TemplateBody=json.dumps(template), Parameters=params,
                        Capabilities=CAPABILITIES)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        # moto creates synchronously and answers a 500 when a resource cannot be made:
        # its own log (the run dir's moto.log) has the traceback.
        raise Failed(f"{where}: CreateStack {name} failed: {exc}") from None


def wait_stack(cf, where, name):
    deadline = time.monotonic() + TIMEOUT
    while True:
        st = cf.describe_stacks(StackName=name)["Stacks"][0]
        status = st["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise Failed(f"{where}: {name} still {status} after {TIMEOUT:.0f} s\n" + stack_failure(cf, name))
        time.sleep(0.5)
    if status != "CREATE_COMPLETE":
        raise Failed(f"{where}: stack failed\n" + stack_failure(cf, name))
    log(f"{where}: {name} {status}")
    return {o["OutputKey"]: o.get("OutputValue") for o in st.get("Outputs", [])}, st["StackId"]


def create_direct(resources, ev, edge_url, stack):
    """Creates LocalStack-side resources its CloudFormation lacks, in dependency order."""
    made = {}  # name -> (ref value, attributes)
    order, seen = [], set()

    def visit(n):
        if n in seen:
            return
        seen.add(n)
        for d in deps_of(resources[n]) | set(depends_on(resources[n])):
            if d in resources:
                visit(d)
        order.append(n)

    for n in resources:
        visit(n)
    for name in order:
        r = resources[name]
        props = ev.ev(r.get("Properties", {}))
        try:
            if r["Type"] == "AWS::Route53::HostedZone":
                made[name] = create_zone(client("route53", edge_url), client("logs", edge_url), props, stack, name)
            elif r["Type"] == "AWS::Logs::ResourcePolicy":
                client("logs", edge_url).put_resource_policy(policyName=props["PolicyName"],
                                                             policyDocument=props["PolicyDocument"])
                made[name] = (props["PolicyName"], {})
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise Failed(f"LocalStack (direct): {name} ({r['Type']}) failed: {exc}") from None
        log(f"LocalStack (direct): {name} {made[name][0]}")
    return made


def create_zone(r53, logs, props, stack, logical):
    config = props.get("HostedZoneConfig", {})
    zone = r53.create_hosted_zone(
        Name=props["Name"], CallerReference=f"{stack}-{logical}-{time.time_ns()}",
        HostedZoneConfig={"Comment": config.get("Comment", ""), "PrivateZone": bool(props.get("VPCs"))},
    )
    zid = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    if props.get("HostedZoneTags"):
        r53.change_tags_for_resource(ResourceType="hostedzone", ResourceId=zid, AddTags=props["HostedZoneTags"])
    arn = (props.get("QueryLoggingConfig") or {}).get("CloudWatchLogsLogGroupArn")
    if arn:
        try:
            r53.create_query_logging_config(HostedZoneId=zid, CloudWatchLogsLogGroupArn=arn)
        except botocore.exceptions.ClientError as exc:
            # LocalStack matches the ARN DescribeLogGroups returns (".../NAME:*") only.
            if exc.response["Error"]["Code"] != "NoSuchCloudWatchLogsLogGroup" or arn.endswith(":*"):
                raise
            r53.create_query_logging_config(HostedZoneId=zid, CloudWatchLogsLogGroupArn=arn + ":*")
    ns = zone.get("DelegationSet", {}).get("NameServers", [])
    return zid, {"Id": zid, "NameServers": ns}


def deploy(path, stack, given):
    compute_url, edge_url = endpoints()
    region = boto3.session.Session().region_name or "us-east-1"
    template = load_template(path)
    values, halves, direct, local_outputs = split(template, given, region, stack)
    names = {"compute": None, "edge": None}
    cfs = {"compute": client("cloudformation"), "edge": client("cloudformation", edge_url)}
    where = {"compute": f"moto ({compute_url})", "edge": f"LocalStack ({edge_url})"}
    for s, half in halves.items():
        names[s] = stack if (s == "compute" or compute_url != edge_url) else f"{stack}-edge"
        create_stack(cfs[s], where[s], names[s], half, values)
    outputs, stack_ids = {}, {}
    for s in halves:
        out, stack_ids[s] = wait_stack(cfs[s], where[s], names[s])
        outputs.update(out)

    made = {}
    if direct or local_outputs:
        account = stack_ids["edge"].split(":")[4] if "edge" in stack_ids else LOCALSTACK_ACCOUNT
        edge_phys = {}
        if names["edge"]:
            for r in cfs["edge"].describe_stack_resources(StackName=names["edge"])["StackResources"]:
                edge_phys[r["LogicalResourceId"]] = (r.get("PhysicalResourceId"), r.get("ResourceType"))

        def resolve_ref(name):
            if name in made:
                return made[name][0]
            if name in edge_phys:
                return edge_phys[name][0]
            raise Usage(f"cannot resolve Ref {name} on LocalStack")

        def resolve_att(name, att):
            if name in made and att in made[name][1]:
                return made[name][1][att]
            phys, rtype = edge_phys.get(name, (None, None))
            if rtype == "AWS::Logs::LogGroup" and att == "Arn":
                return f"arn:aws:logs:{region}:{account}:log-group:{phys}:*"
            if rtype == "AWS::SNS::Topic" and att in ("TopicArn", "TopicName"):
                return phys if att == "TopicArn" else phys.rsplit(":", 1)[-1]
            raise Usage(f"cannot resolve Fn::GetAtt {name}.{att} on LocalStack")

        pseudo = {"AWS::Region": region, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
                  "AWS::StackName": stack, "AWS::AccountId": account,
                  "AWS::StackId": stack_ids.get("edge", f"arn:aws:cloudformation:{region}:{account}:stack/{stack}/direct")}
        ev = Evaluator(values, pseudo, template.get("Mappings", {}), {}, resolve_ref, resolve_att)
        made = create_direct(direct, ev, edge_url, stack)
        for name, o in local_outputs.items():
            outputs[name] = cfn_str(ev.ev(o["Value"]))
    return {"stacks": names, "direct": {n: v[0] for n, v in made.items()}, "outputs": outputs}


# --- self-check -------------------------------------------------------------------------


def selfcheck():
    compute_url, edge_url = endpoints()
    suffix = str(int(time.time()))[-6:]
    results = []

    def check(what, ok, found):
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {found}", flush=True)

    def info(what, found):  # a known emulator gap: shown, not checked
        print(f"info {what}: {found}", flush=True)

    def show(title, res):
        print(f"== {title}\n{json.dumps(res, indent=2, sort_keys=True)}", flush=True)

    ec2, asg, ecs = client("ec2"), client("autoscaling"), client("ecs")
    r53, sns = client("route53"), client("sns")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnet = sorted(ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"],
                    key=lambda s: s["AvailabilityZone"])[0]["SubnetId"]
    # One of moto's own AMIs behind an SSM parameter on moto (moto's SSM = its CFN endpoint).
    ami = sorted(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])[0]
    client("ssm", compute_url).put_parameter(Name="/cm-test/ecs-ami", Value=ami, Type="String",
                                             DataType="aws:ec2:image", Overwrite=True)

    # zone.yaml: zone + query log group on LocalStack.
    zone_name = f"selfcheck-{suffix}.test"
    zone = deploy(os.path.join(ROOT, "deploy/cloudformation/zone.yaml"), f"cm-zone-{suffix}",
                  {"ZoneName": zone_name, "LogGroupName": f"/aws/route53/selfcheck-{suffix}"})
    show("zone.yaml", zone)
    zid = zone["outputs"]["HostedZoneId"]
    # LocalStack ignores ListQueryLoggingConfigs' HostedZoneId filter: filter here.
    qlc = [c for c in r53.list_query_logging_configs(HostedZoneId=zid)["QueryLoggingConfigs"]
           if c["HostedZoneId"] == zid]
    check("zone: hosted zone on LocalStack with a query logging config", bool(qlc),
          f"{zid} -> {[c['CloudWatchLogsLogGroupArn'] for c in qlc]}")
    groups = client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/route53/selfcheck-{suffix}")["logGroups"]
    check("zone: query log group on LocalStack", len(groups) == 1, [g["logGroupName"] for g in groups])
    info("zone: its retention (LocalStack's CloudFormation ignores RetentionInDays)",
         [g.get("retentionInDays") for g in groups])

    # leaf.yaml into that zone.
    domain = f"mc.{zone_name}"
    leaf = deploy(os.path.join(ROOT, "deploy/cloudformation/leaf.yaml"), f"cm-leaf-{suffix}", {
        "LeafName": "selfcheck", "Domain": domain, "HostedZoneId": zid, "Image": "itzg/minecraft-server",
        "VpcId": vpc, "SubnetId": subnet, "AmiId": "/cm-test/ecs-ami", "AlertEmail": "ops@example.com"})
    show("leaf.yaml", leaf)
    out = leaf["outputs"]
    expected = {"LeafName", "Domain", "HostedZoneId", "IdleIp", "AutoScalingGroupName", "ClusterName",
                "ServiceName", "TopicArn", "FileSystemId", "Threshold"}
    check("leaf: outputs", set(out) == expected, sorted(out))
    g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[out["AutoScalingGroupName"]])["AutoScalingGroups"][0]
    check("leaf: ASG min 0 / max 1 / desired 0", (g["MinSize"], g["MaxSize"], g["DesiredCapacity"]) == (0, 1, 0),
          f"{g['AutoScalingGroupName']} {g['MinSize']}/{g['MaxSize']}/{g['DesiredCapacity']} in {g.get('VPCZoneIdentifier')}")
    lt = g["LaunchTemplate"]
    data = ec2.describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"],
                                                 Versions=[lt["Version"]])["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    check("leaf: launch template Monitoring.Enabled", data.get("Monitoring", {}).get("Enabled") is True,
          {k: data.get(k) for k in ("Monitoring", "MetadataOptions", "ImageId")})
    svc = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"]
    check("leaf: ECS service REPLICA, desired 0",
          [(s["schedulingStrategy"], s["desiredCount"]) for s in svc] == [("REPLICA", 0)],
          [(s["serviceName"], s["schedulingStrategy"], s["desiredCount"], s.get("launchType")) for s in svc])
    fs = client("efs").describe_file_systems(FileSystemId=out["FileSystemId"])["FileSystems"]
    check("leaf: EFS file system encrypted", [f["Encrypted"] for f in fs] == [True], out["FileSystemId"])
    asg.set_desired_capacity(AutoScalingGroupName=out["AutoScalingGroupName"], DesiredCapacity=1)
    ids = [i["InstanceId"] for i in asg.describe_auto_scaling_groups(
        AutoScalingGroupNames=[out["AutoScalingGroupName"]])["AutoScalingGroups"][0]["Instances"]]
    ips = [i.get("PublicIpAddress") for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
           for i in r["Instances"]] if ids else []
    check("leaf: desired 1 launches an instance with a public IP", len(ips) == 1 and bool(ips[0]), list(zip(ids, ips)))
    asg.set_desired_capacity(AutoScalingGroupName=out["AutoScalingGroupName"], DesiredCapacity=0)
    recs = [r for r in r53.list_resource_record_sets(HostedZoneId=out["HostedZoneId"])["ResourceRecordSets"]
            if r["Name"].rstrip(".") == domain and r["Type"] == "A"]
    check("leaf: A record on LocalStack at IdleIp, TTL 1",
          [(r.get("TTL"), [v["Value"] for v in r.get("ResourceRecords", [])]) for r in recs] == [(1, [out["IdleIp"]])],
          [(r["Name"], r.get("TTL"), r.get("ResourceRecords")) for r in recs])
    attrs = sns.get_topic_attributes(TopicArn=out["TopicArn"])["Attributes"]
    subs = sns.list_subscriptions_by_topic(TopicArn=out["TopicArn"])["Subscriptions"]
    check("leaf: topic on LocalStack (+ e-mail subscription)", attrs.get("TopicArn") == out["TopicArn"] and len(subs) == 1,
          f"{out['TopicArn']} {[(s['Protocol'], s['Endpoint']) for s in subs]}")

    # host.yaml with the HA table.
    policy = client("iam").create_policy(PolicyName=f"cm-selfcheck-{suffix}", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}]}))
    host = deploy(os.path.join(ROOT, "deploy/cloudformation/host.yaml"), f"cm-host-{suffix}", {
        "VpcId": vpc, "SubnetId": subnet, "DaemonPolicyArn": policy["Policy"]["Arn"], "HaTable": "true",
        "ResponderTcpPort": "25565"})
    show("host.yaml", host)
    hout = host["outputs"]
    table = client("dynamodb").describe_table(TableName=hout["HaTableName"])["Table"]
    check("host: HA table key pk (S), on demand",
          table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
          and table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST",
          {k: table.get(k) for k in ("TableName", "KeySchema", "AttributeDefinitions", "BillingModeSummary")})
    inst = ec2.describe_instances(InstanceIds=[hout["InstanceId"]])["Reservations"][0]["Instances"][0]
    check("host: instance running", inst["State"]["Name"] == "running", f"{inst['InstanceId']} {inst.get('PublicIpAddress')}")
    role = hout["RoleArn"].rsplit("/", 1)[-1]
    attached = [p["PolicyArn"] for p in client("iam").list_attached_role_policies(RoleName=role)["AttachedPolicies"]]
    inline = client("iam").list_role_policies(RoleName=role)["PolicyNames"]
    check("host: role has the HA table's inline policy", inline == ["ha-table"], inline)
    info("host: role's managed policies (moto's CloudFormation ignores ManagedPolicyArns)", attached)

    print(f"selfcheck: {results.count(True)} ok, {results.count(False)} failed")
    return 0 if all(results) else 1


def main(argv):
    if argv[1:] == ["--selfcheck"]:
        return selfcheck()
    if len(argv) < 3 or argv[1].startswith("-"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    given = {}
    for arg in argv[3:]:
        if "=" not in arg:
            raise Usage(f"parameter {arg!r}: expected Key=Value")
        k, v = arg.split("=", 1)
        given[k] = v
    print(json.dumps(deploy(argv[1], argv[2], given), sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Usage as exc:
        log(f"error: {exc}")
        sys.exit(2)
    except Failed as exc:
        log(f"FAILED: {exc}")
        sys.exit(1)
