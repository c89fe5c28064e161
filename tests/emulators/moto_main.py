"""Start moto's server with one test-only extension to ECS.

Real ECS records, for a stopped task, a stop code (`TaskFailedToStart`,
`EssentialContainerExited`, ...) and each container's exit code; moto 5.2.5 keeps
only a stopped reason. The daemon's crash-loop breaker reads the real fields, so the
tests need an emulator that has them. With this launcher, a test calls the real
StopTask API with a reason of the form

    cm-test:{"stopCode": "EssentialContainerExited", "exitCode": 1, "reason": "..."}

and the task is then described the way ECS would describe it. Nothing in the daemon
knows about this; it only changes what the emulator answers.
"""

import datetime
import json
import sys

from moto.ecs import models
from moto.server import main

_PREFIX = "cm-test:"
_stop_task = models.EC2ContainerServiceBackend.stop_task


def _stop_task_with_codes(self, cluster_str, task_str, reason):
    spec = None
    if reason and reason.startswith(_PREFIX):
        spec = json.loads(reason[len(_PREFIX):])
        reason = spec.get("reason", "")
    task = _stop_task(self, cluster_str, task_str, reason)
    if spec is not None:
        task.stop_code = spec.get("stopCode")
        task.stopped_at = datetime.datetime.now(datetime.timezone.utc)
        for container in task.containers:
            container.exitCode = spec.get("exitCode")
            container.reason = spec.get("containerReason")
            container.last_status = "STOPPED"
    return task


models.EC2ContainerServiceBackend.stop_task = _stop_task_with_codes

if __name__ == "__main__":
    sys.exit(main())
