"""Start LocalStack's runtime (as `python -m localstack.runtime.main` does), but bound
to the host given in GATEWAY_LISTEN, and with FilterLogEvents answering as AWS does.

Bound host: LocalStack 2026.3.0's default (twisted) gateway ignores the host part of
GATEWAY_LISTEN and listens on 0.0.0.0 (see "TODO: interface = host?" in
localstack/runtime/server/twisted.py). We keep that server, the one checked against
aws-sdk-rust, and only hand it the interface, so the emulator answers on loopback only.
tests/emulators/selftest.sh checks the listening address.

FilterLogEvents, where the community edition differs from AWS in ways that would hide
what a busy hosted zone does to the daemon:
- AWS returns events of all streams interleaved, sorted by event time, then ingestion
  time, then event id; the emulator groups them by stream unless asked to interleave.
- AWS cuts a page at 10,000 events *or* 1 MB, whichever comes first; the emulator only
  at 10,000 events.
- AWS applies the filter pattern; the community edition matches every event to any
  pattern. We apply the documented regex form (`%regex%`, unanchored search, case
  sensitive) with Python's `re`, whose syntax covers CloudWatch's subset; any other
  pattern keeps matching everything, as before (a superset, never fewer lines).
- AWS event ids are unique; the emulator numbers events from a class counter that two
  request threads can read at once, so under load two events can share an id and a page
  token then points at the wrong one (lines skipped or read twice). Ids here come from
  one `itertools.count`, whose `next` is atomic.
- The emulator scanned every event of every stream on each call; a per-stream index
  sorted by event time keeps a log of hundreds of thousands of lines answerable at the
  rates the benchmark reads it. The index is built lazily under a lock, so it does not
  matter how LocalStack appends events.
"""

import bisect
import itertools
import json
import re
import runpy
import threading

from twisted.internet import endpoints

from localstack import config

_hosts = {hp.port: hp.host for hp in config.GATEWAY_LISTEN}
_TCP4ServerEndpoint = endpoints.TCP4ServerEndpoint


class _BoundTCP4ServerEndpoint(_TCP4ServerEndpoint):
    def __init__(self, reactor, port, backlog=50, interface=""):
        super().__init__(reactor, port, backlog, interface or _hosts.get(port, ""))


endpoints.TCP4ServerEndpoint = _BoundTCP4ServerEndpoint

_PAGE_EVENTS = 10_000
_PAGE_BYTES = 1_048_576
_index_lock = threading.Lock()


def _matcher(pattern):
    text = (pattern or "").strip()
    if len(text) >= 2 and text.startswith("%") and text.endswith("%"):
        regex = re.compile(text[1:-1])
        return lambda message: regex.search(message) is not None
    return lambda message: True


def _index(stream):
    """(timestamp, event id, event) of the stream's events, sorted; kept up to date."""
    with _index_lock:
        index = stream.__dict__.setdefault("_cm_index", [])
        seen = stream.__dict__.get("_cm_indexed", 0)
        # Events may be appended by a request thread while this runs: index exactly the
        # ones this slice holds, the rest next time.
        new = stream.events[seen:]
        for event in new:
            bisect.insort(index, (event.timestamp, event.event_id, event))
        stream._cm_indexed = seen + len(new)
        return list(index)


def _filter_log_events(self, log_group_name, log_stream_names, start_time, end_time, limit, next_token, filter_pattern, interleaved):
    limit = min(limit or _PAGE_EVENTS, _PAGE_EVENTS)
    streams = [s for name, s in self.streams.items() if not log_stream_names or name in log_stream_names]
    matches = _matcher(filter_pattern)
    found = []
    for stream in streams:
        index = _index(stream)
        lo = bisect.bisect_left(index, (start_time,)) if start_time else 0
        hi = bisect.bisect_right(index, (end_time, float("inf"))) if end_time else len(index)
        for timestamp, event_id, event in index[lo:hi]:
            if matches(event.message):
                found.append((timestamp, event.ingestion_time, event_id, stream.log_stream_name, event))
    found.sort(key=lambda f: (f[0], f[1], f[2]))
    first = 0
    if next_token:
        try:
            group, stream_name, event_id = next_token.split("@")
            if group != log_group_name:
                raise ValueError(next_token)
            first = next(i for i, f in enumerate(found) if f[3] == stream_name and str(f[2]) == event_id) + 1
        except (ValueError, StopIteration):
            return [], None, []
    page, size = [], 0
    for timestamp, ingestion, event_id, stream_name, event in found[first:]:
        item = event.to_filter_dict()
        item["logStreamName"] = stream_name
        item_size = len(json.dumps(item))
        if page and (len(page) >= limit or size + item_size > _PAGE_BYTES):
            break
        page.append(item)
        size += item_size
    token = None
    if first + len(page) < len(found) and page:
        token = f"{log_group_name}@{page[-1]['logStreamName']}@{page[-1]['eventId']}"
    searched = [{"logStreamName": s.log_stream_name, "searchedCompletely": True} for s in streams]
    return page, token, searched


def _patch_logs():
    from moto.logs import models

    ids = itertools.count(1)
    init = models.LogEvent.__init__

    def unique_ids(self, ingestion_time, log_event):
        init(self, ingestion_time, log_event)
        self.event_id = next(ids)

    models.LogEvent.__init__ = unique_ids
    models.LogGroup.filter_log_events = _filter_log_events


_patch_logs()
runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
