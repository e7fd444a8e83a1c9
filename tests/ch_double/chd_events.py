"""chd_events.py: the event monitor (--event-monitor), records as cloud-hypervisor writes them.

CH serialises each event with serde_json::to_string_pretty ({"timestamp": {"secs", "nanos"} since
the monitor was set up, "source", "event", "properties": null or a map of strings}) and writes it
followed by an empty line, from one thread, in the order the events happened.
"""

import json
import os
import threading
import time


class EventMonitor:
    def __init__(self, fd):
        self.fd = fd  # None: no monitor, events only go to the log
        self.start = time.monotonic_ns()
        self.lock = threading.Lock()

    def emit(self, source, event, properties=None, log=None):
        ns = time.monotonic_ns() - self.start
        record = {
            "timestamp": {"secs": ns // 1_000_000_000, "nanos": ns % 1_000_000_000},
            "source": source,
            "event": event,
            "properties": {str(k): str(v) for k, v in properties.items()} if properties else None,
        }
        if log:
            props = ", ".join(f"{k} = {v}" for k, v in (properties or {}).items())
            log.info(f"Event: source = {source} event = {event} {props}")
        if self.fd is None:
            return
        data = (json.dumps(record, indent=2) + "\n\n").encode()
        with self.lock:
            # CH sets the fd non-blocking and drops what does not fit; a regular file always takes it.
            try:
                while data:
                    n = os.write(self.fd, data)
                    data = data[n:]
            except OSError:
                pass
