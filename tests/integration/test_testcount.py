"""scripts/test.sh's counting (scripts/testcount.py) and its last lines: every
skip listed with its reason, a skip that a set-up machine could avoid
counted as failed, the last line exactly "N passed, M failed, K skipped".
Runs no server."""

import json
import os
import subprocess
import textwrap

import servers

REPO = servers.REPO
PY = "/usr/bin/python3"
TESTCOUNT = os.path.join(REPO, "scripts", "testcount.py")

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="test_a" name="test_ok" />
<testcase classname="test_a" name="test_vs[danted]">
<skipped type="pytest.skip" message="danted lacks socks4a">a.py:1: danted lacks socks4a</skipped>
</testcase>
<testcase classname="test_a" name="test_node">
<skipped type="pytest.skip" message="node not installed">a.py:2: node not installed</skipped>
</testcase>
<testcase classname="test_a" name="test_bad"><failure message="x">x</failure></testcase>
<testcase classname="test_a" name="test_bad"><error message="teardown">y</error></testcase>
</testsuite></testsuites>
"""

CMOCKA_SKIP = ("[==========] Running 1 test(s).\n[ RUN      ] test_pam_check\n"
               "skipped: not running as root\n[  SKIPPED ] test_pam_check\n"
               "[==========] 1 test(s) run.\n")


def run_testcount(*args):
    r = subprocess.run([PY, TESTCOUNT] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def test_pytest_counts_and_skip_reasons(tmp_path):
    xml, skips = tmp_path / "j.xml", tmp_path / "skips"
    xml.write_text(JUNIT)
    # test_node's avoidable skip counts as failed, with test_bad (once)
    assert run_testcount("pytest", "integration (b)", xml, skips) == "1 2 1\n"
    assert sorted(skips.read_text().splitlines()) == [
        "allowed\tintegration (b)\ttest_a::test_vs[danted]\tdanted lacks socks4a",
        "avoidable\tintegration (b)\ttest_a::test_node\tnode not installed",
    ]
    assert run_testcount("report", skips).splitlines() == [
        "skipped (1), for a reason no package or set-up can remove here:",
        "  integration (b): test_a::test_vs[danted]: danted lacks socks4a",
        "skipped but counted as failed (1): this machine could run them "
        "(scripts/deps.sh's packages, root):",
        "  integration (b): test_a::test_node: node not installed",
    ]


def test_pytest_without_xml_counts_nothing(tmp_path):
    """test.sh adds the failure when pytest's exit status says so."""
    assert run_testcount("pytest", "x", tmp_path / "none.xml", tmp_path / "s") == "0 0 0\n"


def test_meson_results_and_cmocka_skips(tmp_path):
    log, skips = tmp_path / "testlog.json", tmp_path / "skips"
    rows = [
        {"name": "stp:unit / a", "result": "OK", "stdout": "[       OK ] t\n"},
        {"name": "stp:unit / b", "result": "EXPECTEDFAIL", "stdout": ""},
        {"name": "stp:unit / c", "result": "FAIL", "stdout": ""},
        {"name": "stp:unit / d", "result": "SKIP", "stdout": ""},
        {"name": "stp:unit / auth_pam", "result": "OK", "stdout": CMOCKA_SKIP},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_testcount("meson", "unit (b)", log, skips) == "2 3 0\n"
    assert sorted(skips.read_text().splitlines()) == [
        "avoidable\tunit (b)\tstp:unit / auth_pam\ttest_pam_check: not running as root",
        "avoidable\tunit (b)\tstp:unit / d\texit status 77 (meson SKIP)",
    ]


def test_test_sh_last_lines(tmp_path):
    """test.sh's own functions and summary on a tiny pytest stage: the
    skipped test and its reason above the last line."""
    tests = tmp_path / "tests"
    tests.mkdir()
    # Its own rootdir, so the names in the junit file do not depend on where
    # the repository is (a clone under /tmp gives other names).
    (tests / "pytest.ini").write_text("[pytest]\n")
    (tests / "test_tiny.py").write_text(textwrap.dedent("""
        import pytest
        def test_pass():
            pass
        def test_danted():
            pytest.skip("danted lacks socks4a")
        def test_node():
            pytest.skip("node not installed")
    """))
    with open(os.path.join(REPO, "scripts", "test.sh")) as f:
        script = f.read()
    head = script[:script.index("\nSTART=")]  # settings and functions
    tail = script[script.index('\nnote "summary'):]
    body = "%s\nSTART=$(date +%%s)\npytest_stage tiny /bin/true %s\n%s" % (head, tests, tail)
    env = dict(os.environ, BUILD_PREFIX=os.path.relpath(str(tmp_path), REPO))
    r = subprocess.run(["bash", "-c", body, os.path.join(REPO, "scripts", "test.sh")],
                       cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                       timeout=120)
    lines = r.stdout.decode().splitlines()
    assert r.returncode == 1, lines  # the avoidable skip is a failure
    assert lines[-6:] == [
        "tiny                                  1 passed, 1 failed, 1 skipped",
        "skipped (1), for a reason no package or set-up can remove here:",
        "  tiny: test_tiny::test_danted: danted lacks socks4a",
        "skipped but counted as failed (1): this machine could run them "
        "(scripts/deps.sh's packages, root):",
        "  tiny: test_tiny::test_node: node not installed",
        "1 passed, 1 failed, 1 skipped",
    ], lines
