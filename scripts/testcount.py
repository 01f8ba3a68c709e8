#!/usr/bin/env python3
"""Counts the results of one test stage for scripts/test.sh, and lists the
skipped tests at the end.

  testcount.py pytest LABEL JUNIT.xml SKIPS [RERUN.xml FLAKY]
                                              pytest's --junitxml file
  testcount.py meson LABEL testlog.json SKIPS meson's JSON test log
  testcount.py report SKIPS [FLAKY]           every skip and why, and the
                                              tests that passed on a rerun

pytest and meson print "PASSED FAILED SKIPPED", one verdict per test, and
append each skipped test to the file SKIPS (tab-separated: kind, stage
label, test, reason). A skip counts as skipped only when its reason is one
no package and no set-up of a fresh machine can remove (ALLOWED below);
any other skip means the script failed to provide what the test needs (a
package missing from scripts/deps.sh, not running as root, ...) and counts
as failed. With RERUN.xml (scripts/test.sh reran the few tests that
failed), a test that failed and then passed there counts as passed and is
appended to FLAKY (stage label, test); one that failed again, failed. A
cmocka test program that skipped a case counts as skipped or
failed the same way (meson itself reports it as OK).
"""

import json
import re
import sys
import xml.etree.ElementTree as ET

# Reasons a test may skip on a machine set up by scripts/deps.sh, as root.
ALLOWED = [
    # A test run against each server in turn (stpd and Dante's danted, for
    # comparison) where danted lacks the feature: SOCKS4a, users of its own.
    r"(danted|microsocks) lacks ",
    r"danted authenticates system users only$",
    r"microsocks takes one user only$",
    # stpd's embedded default needs port 1080, held here by another server
    # (the stpd of ./scripts/run-stpd.sh, say); nothing a script may stop.
    r"port 1080 is in use on this machine$",
]

ALLOWED_RX = [re.compile(r) for r in ALLOWED]


def allowed(reason):
    return any(rx.match(reason) for rx in ALLOWED_RX)


def one_line(text):
    text = " ".join((text or "").split())
    if text.startswith("Skipped: "):  # how some pytest versions word it
        text = text[len("Skipped: "):]
    return text or "no reason given"


def pytest_verdicts(path):
    """{test: ("pass"|"fail"|"skip", reason)}; a test that failed and also
    errored in teardown counts once, as failed."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}
    verdict = {}
    for tc in root.iter("testcase"):
        key = "%s::%s" % (tc.get("classname"), tc.get("name"))
        skipped = tc.find("skipped")
        if tc.find("failure") is not None or tc.find("error") is not None:
            verdict[key] = ("fail", "")
        elif skipped is not None:
            verdict.setdefault(key, ("skip", one_line(skipped.get("message"))))
        else:
            verdict.setdefault(key, ("pass", ""))
    return verdict


def cmocka_skips(stdout):
    """[(case, reason)] for each "[  SKIPPED ] case" of a cmocka program;
    the reason is the last "skipped: ..." line the case printed."""
    out, reason = [], None
    for ln in (stdout or "").splitlines():
        if ln.startswith("[ RUN      ]"):
            reason = None
        elif ln.startswith("skipped: "):
            reason = ln[len("skipped: "):]
        elif ln.startswith("[  SKIPPED ] ") and "test(s)" not in ln:
            out.append((ln[len("[  SKIPPED ] "):].strip(), one_line(reason)))
    return out


def rerun_verdicts(label, verdict, rerun_path, flaky_path):
    """verdict with the tests that failed first and passed in the rerun
    marked passed (and listed in flaky_path). Both runs have the same
    rootdir (the directory's pytest.ini), so junit names a test alike."""
    again = pytest_verdicts(rerun_path)
    passed = {k for k, (v, _) in again.items() if v == "pass"}
    out = dict(verdict)
    with open(flaky_path, "a") as flaky:
        for key, (v, _) in verdict.items():
            if v == "fail" and key in passed:
                out[key] = ("pass", "")
                flaky.write("%s\t%s\n" % (label, key))
    return out


def meson_verdicts(path):
    verdict = {}
    try:
        f = open(path)
    except OSError:
        return verdict
    with f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line)
            name, result = t.get("name", "?"), t.get("result")
            if result == "SKIP":
                verdict[name] = ("skip", "exit status 77 (meson SKIP)")
            elif result not in ("OK", "EXPECTEDFAIL"):
                verdict[name] = ("fail", "")
            else:
                cases = cmocka_skips(t.get("stdout"))
                if cases:
                    verdict[name] = ("skip", "; ".join("%s: %s" % c for c in cases))
                else:
                    verdict[name] = ("pass", "")
    return verdict


def count(label, verdict, skips_path):
    passed = failed = skipped = 0
    with open(skips_path, "a") as skips:
        for test, (v, reason) in sorted(verdict.items()):
            if v == "pass":
                passed += 1
            elif v == "fail":
                failed += 1
            else:
                kind = "allowed" if allowed(reason) else "avoidable"
                if kind == "allowed":
                    skipped += 1
                else:
                    failed += 1
                skips.write("%s\t%s\t%s\t%s\n" % (kind, label, test, reason))
    print(passed, failed, skipped)


def report(skips_path, flaky_path=None):
    rows = {"allowed": [], "avoidable": []}
    try:
        with open(skips_path) as f:
            for ln in f:
                kind, label, test, reason = ln.rstrip("\n").split("\t", 3)
                rows[kind].append("  %s: %s: %s" % (label, test, reason))
    except OSError:
        pass
    if rows["allowed"]:
        print("skipped (%d), for a reason no package or set-up can remove here:"
              % len(rows["allowed"]))
        print("\n".join(rows["allowed"]))
    flaky = []
    if flaky_path:
        try:
            with open(flaky_path) as f:
                flaky = ["  %s: %s" % tuple(ln.rstrip("\n").split("\t", 1)) for ln in f]
        except OSError:
            pass
    if flaky:
        print("FLAKY (%d): failed, then passed when rerun alone; counted as passed, "
              "the first failure is in the log above:" % len(flaky))
        print("\n".join(flaky))
    if rows["avoidable"]:
        print("skipped but counted as failed (%d): this machine could run them "
              "(scripts/deps.sh's packages, root):" % len(rows["avoidable"]))
        print("\n".join(rows["avoidable"]))


def main(argv):
    if len(argv) in (5, 7) and argv[1] == "pytest":
        verdict = pytest_verdicts(argv[3])
        if len(argv) == 7:
            verdict = rerun_verdicts(argv[2], verdict, argv[5], argv[6])
        count(argv[2], verdict, argv[4])
    elif len(argv) == 5 and argv[1] == "meson":
        count(argv[2], meson_verdicts(argv[3]), argv[4])
    elif len(argv) in (3, 4) and argv[1] == "report":
        report(*argv[2:])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
