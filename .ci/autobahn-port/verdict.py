#!/usr/bin/env python3
"""Reads a wstest index.json and decides a run.

Prints the count of each behaviour and lists every case whose behaviour or
close behaviour is not OK or INFORMATIONAL (NON-STRICT included: none
shows today, so one that appears is a regression). Exits 1 when there is
such a case or when fewer cases ran than the suite has.

Usage: verdict.py <index.json> <agent> [full|no-deflate]
"""

import collections
import json
import sys

# Every case of autobahntestsuite 25.10.1 ('*'), and those outside the
# permessage-deflate sections 12 and 13.
EXPECTED_CASES = {"full": 517, "no-deflate": 301}
ACCEPTED = ("OK", "INFORMATIONAL")


def case_key(case_id):
    return [int(part) for part in case_id.split(".")]


def main():
    path, agent = sys.argv[1], sys.argv[2]
    expected = EXPECTED_CASES[sys.argv[3] if len(sys.argv) > 3 else "full"]
    with open(path, encoding="utf-8") as f:
        index = json.load(f)
    if agent not in index:
        sys.exit("verdict: no results for agent %s in %s (agents: %s)" % (agent, path, ", ".join(index)))
    cases = index[agent]
    behaviors = collections.Counter(c["behavior"] for c in cases.values())
    closes = collections.Counter(c["behaviorClose"] for c in cases.values())
    print("verdict: %s: %d cases; behavior %s; close %s" % (
        agent, len(cases),
        ", ".join("%s %d" % kv for kv in sorted(behaviors.items())),
        ", ".join("%s %d" % kv for kv in sorted(closes.items()))))
    bad = []
    for case_id in sorted(cases, key=case_key):
        c = cases[case_id]
        if c["behavior"] not in ACCEPTED or c["behaviorClose"] not in ACCEPTED:
            bad.append(case_id)
            print("verdict:   %s: %s (close %s, %s ms)" % (case_id, c["behavior"], c["behaviorClose"], c.get("duration")))
    if len(cases) != expected:
        print("verdict: %d cases ran, expected %d" % (len(cases), expected))
        sys.exit(1)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
