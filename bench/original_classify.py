"""Python 2.7: times heartbeats with the original autoscalebot 2.1 code itself
(HerokuAutoscaler.ping_and_store from the published package) and prints how it classified each.

Reads lines "N" on stdin; for each, pings N times and prints one JSON line:
{"results": ["TOO_HIGH", ...], "ms": [...]}. Needs the package unpacked by run_original.sh
(WORK below) and heroku.py beside run_original.sh on PYTHONPATH.
usage: original_classify.py HEARTBEAT_URL MAX_MS MIN_MS
"""
import json
import sys

from autoscalebot import TOO_HIGH, TOO_LOW, JUST_RIGHT
from autoscalebot.conf import AutoscaleSettings
from autoscalebot.models import HerokuAutoscaler


class BenchSettings(object):
    HEROKU_APP_NAME = "bench-app"
    HEROKU_API_KEY = "bench-key"
    HEARTBEAT_URL = sys.argv[1]
    HEARTBEAT_INTERVAL_IN_SECONDS = 1
    MAX_RESPONSE_TIME_IN_MS = int(sys.argv[2])
    MIN_RESPONSE_TIME_IN_MS = int(sys.argv[3])
    MAX_DYNOS = 3
    MIN_DYNOS = 1
    NOTIFICATION_BACKENDS = []


NAMES = {TOO_HIGH: "fail", TOO_LOW: "pass", JUST_RIGHT: "in_band"}
bot = HerokuAutoscaler(AutoscaleSettings(settings=BenchSettings))
while True:
    line = sys.stdin.readline()
    if not line:
        break
    results, times = [], []
    for _ in range(int(line)):
        times.append(bot.ping_and_store())
        results.append(NAMES.get(bot.results[-1], str(bot.results[-1])))
    sys.stdout.write(json.dumps({"results": results, "ms": times}) + "\n")
    sys.stdout.flush()
