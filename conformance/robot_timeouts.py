"""Robot Framework listener that keeps one unanswered request from stalling a run.

The ETSI NGSI-LD suite sets neither test timeouts nor HTTP request timeouts, so a
broker that never answers one request blocks the whole run. This listener adds:

* a default test timeout for every test that has none of its own;
* a default `timeout` for every HTTP request made through `requests`
  (RequestsLibrary uses it), so a hung request fails the test with a clear
  ReadTimeout message instead of running into the test timeout.

Usage (run.sh does this):
    robot --listener path/to/robot_timeouts.py:120s:30 ...
The first argument is a Robot time string, the second a number of seconds
(0 disables the request timeout).
"""

from __future__ import annotations

import functools

import requests


class robot_timeouts:  # noqa: N801 - the listener class must carry the module's name
    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self, test_timeout: str = "120s", request_timeout: str = "30"):
        self.test_timeout = test_timeout
        seconds = float(request_timeout)
        if seconds > 0:
            _default_request_timeout(seconds)

    def start_suite(self, data, result):  # noqa: ARG002 - listener signature
        if not self.test_timeout:
            return
        for test in data.tests:
            if not test.timeout:
                test.timeout = self.test_timeout


def _default_request_timeout(seconds: float) -> None:
    original = requests.Session.request
    if getattr(original, "_calanque_default_timeout", None) is not None:
        return

    @functools.wraps(original)
    def request(self, method, url, *args, **kwargs):
        # `timeout` is the 9th positional parameter of Session.request; only
        # fill it in when the caller gave none.
        if len(args) < 7 and kwargs.get("timeout") is None:
            kwargs["timeout"] = seconds
        return original(self, method, url, *args, **kwargs)

    request._calanque_default_timeout = seconds
    requests.Session.request = request
