#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Count the results of scripts/test.sh: the format check, every cmocka test (TAP lines in
meson's test log; a unit binary that failed without a TAP 'not ok' counts as one failure) and
every pytest test (JUnit XML). Prints 'N passed, M failed[, K skipped]'; exits 1 on a failure."""
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(results: Path):
    passed = failed = skipped = 0
    failures = []

    fmt = (results / "format.result")
    if fmt.exists():
        if fmt.read_text().strip() == "pass":
            passed += 1
        else:
            failed += 1
            failures.append("format")

    testlog = Path("build/meson-logs/testlog.json")
    if testlog.exists():
        for line in testlog.read_text().splitlines():
            t = json.loads(line)
            out = t.get("stdout", "") or ""
            ok = len(re.findall(r"^ok \d+", out, re.M))
            bad = re.findall(r"^not ok \d+ - (.*)$", out, re.M)
            passed += ok
            failed += len(bad)
            failures += [f"{t['name']}: {b}" for b in bad]
            if t.get("result") not in ("OK", "EXPECTEDFAIL") and not bad:
                failed += 1
                failures.append(f"{t['name']}: {t.get('result')}")
    else:
        failed += 1
        failures.append("unit tests did not run")

    junit = results / "pytest.xml"
    if junit.exists():
        root = ET.parse(junit).getroot()
        for case in root.iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            if case.find("skipped") is not None:
                skipped += 1
            elif case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                failures.append(name)
            else:
                passed += 1
    else:
        failed += 1
        failures.append("pytest did not run")

    for f in failures:
        print(f"FAILED: {f}")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
