"""README.md's Usage section, run as written: its web server, each of its
example commands through a running stpd, and its configuration check of
contrib/stpd.conf. The commands are read from README.md, so a change there
that breaks them fails here.

Only the addresses change: stpd's 127.0.0.1:1080 and the web server's port
8000 become free ports of this run, and build/src/... becomes the build
tree under test (STPD=, STP_BIN=, STPIFY= as for the other tests).
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import servers
import services

REPO = servers.REPO
PAGE = b"Directory listing for /"
# What stpd -t prints for contrib/stpd.conf on a machine without its users file.
USERS_HINT = ("contrib/stpd.conf:%d: /etc/stpd/users: No such file or directory "
              "(create it with: stpd passwd /etc/stpd/users USER)")


def usage_section():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    m = re.search(r"^## Usage\n(.*?)^## ", text, re.M | re.S)
    assert m, "README.md has no '## Usage' section"
    return m.group(1)


def usage_blocks():
    """The sh blocks of the Usage section: the web server, the examples,
    the configuration check (each a list of lines)."""
    blocks = re.findall(r"^```sh\n(.*?)^```", usage_section(), re.M | re.S)
    assert len(blocks) == 3, ("README's Usage section should have 3 sh blocks (web server, "
                              "examples, config check), has %d" % len(blocks))
    return [[ln for ln in b.splitlines() if ln.strip()] for b in blocks]


def build_dir():
    # <build>/src/server/stpd -> <build>
    return os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(servers.stpd_binary()))))


def programs():
    b = build_dir()
    return {
        "build/src/server/stpd": servers.stpd_binary(),
        "build/src/cli/stp": os.environ.get("STP_BIN") or os.path.join(b, "src/cli/stp"),
        # ASan stage: an ASan stpify cannot preload into a plain curl
        "build/src/shim/stpify": os.environ.get("STPIFY") or os.path.join(b, "src/shim/stpify"),
    }


def localize(line, proxy_port=None, http_port=None):
    """The README line with this run's ports and binaries; fails when the
    line no longer names what the README text around it promises."""
    if proxy_port is not None:
        assert "127.0.0.1:1080" in line, "README line without stpd's address: " + line
        line = line.replace("127.0.0.1:1080", "127.0.0.1:%d" % proxy_port)
    if http_port is not None:
        assert re.search(r"\b8000\b", line), "README line without the web port 8000: " + line
        line = re.sub(r"\b8000\b", str(http_port), line)
    for rel, path in programs().items():
        line = re.sub(r"(?<![\w/])%s\b" % re.escape(rel), path, line)
    return line


def clean_env():
    """No proxy settings of the caller's may leak into the examples."""
    return {k: v for k, v in os.environ.items()
            if not re.match(r"(STP_|ALL_PROXY|NO_PROXY|HTTPS?_PROXY|LD_PRELOAD)", k.upper())}


def bash(line, **kw):
    return subprocess.run(["bash", "-c", line], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=clean_env(), **kw)


@pytest.fixture
def web_server():
    """The README's web server, on a free port; yields that port."""
    (line,), _, _ = usage_blocks()
    port = services.free_port()
    proc = subprocess.Popen(["bash", "-c", "exec " + localize(line, http_port=port)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=clean_env())
    try:
        deadline = time.monotonic() + 30
        while not services.tcp_listening(port, proc.pid):
            assert proc.poll() is None, "the README's web server exited: " + line
            assert time.monotonic() < deadline, "the README's web server never listened"
            time.sleep(0.05)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def test_usage_examples(stpd_factory, web_server):
    """Every example prints the page and goes through stpd (one session
    line each, to the web server)."""
    p = stpd_factory()  # the embedded default, as ./scripts/run-stpd.sh starts it
    _, examples, _ = usage_blocks()
    assert len(examples) >= 3, examples
    for line in examples:
        mark = p.log_mark()
        r = bash(localize(line, proxy_port=p.port, http_port=web_server), timeout=60)
        assert r.returncode == 0, "%s\nexit %d: %s" % (line, r.returncode, r.stderr[-2000:])
        assert PAGE in r.stdout, "%s\nprinted: %r" % (line, r.stdout[-500:])
        p.wait_log(r"(session|flow) id=[\d.]+ .*cmd=connect target=127\.0\.0\.1:%d .*rep=\"succeeded\""
                   % web_server, timeout=15, since=mark)


def test_usage_config_check_as_written():
    """README's check of contrib/stpd.conf: OK where /etc/stpd/users exists,
    otherwise the error names the line and says how to create the file."""
    _, _, (line,) = usage_blocks()
    r = bash(localize(line), timeout=30)
    out = (r.stdout + r.stderr).decode(errors="replace")
    if r.returncode == 0:
        assert out.strip() == "configuration OK", out
    else:
        assert r.returncode == 1, out
        assert out.strip() == USERS_HINT % users_file_line(), out


def users_file_line():
    with open(os.path.join(REPO, "contrib", "stpd.conf")) as f:
        for n, ln in enumerate(f, 1):
            if re.match(r"\s*users-file /etc/stpd/users\b", ln):
                return n
    pytest.fail("contrib/stpd.conf names no users-file /etc/stpd/users")


def test_usage_config_check_after_creating_users(tmp_path):
    """The same check with /etc/stpd moved under tmp_path: the hint first,
    then the README's command to create the file, then configuration OK."""
    etc = tmp_path / "etc-stpd"
    conf = tmp_path / "contrib" / "stpd.conf"
    conf.parent.mkdir()
    shutil.copy(os.path.join(REPO, "contrib", "stpd.conf"), conf)
    conf.write_text(conf.read_text().replace("/etc/stpd", str(etc)))
    check = [servers.stpd_binary(), "-t", "-c", "contrib/stpd.conf"]

    r = subprocess.run(check, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 1, out
    assert out.strip() == (USERS_HINT % users_file_line()).replace("/etc/stpd", str(etc)), out

    m = re.search(r"`(mkdir -p /etc/stpd && \S+ passwd /etc/stpd/users \w+)`", usage_section())
    assert m, "README's Usage no longer says how to create /etc/stpd/users"
    create = localize(m.group(1)).replace("/etc/stpd", str(etc))
    r = bash(create, input=b"secret\nsecret\n", timeout=30)
    assert r.returncode == 0, r.stderr

    r = subprocess.run(check, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0 and out.strip() == "configuration OK", out


def test_run_stpd_builds_what_usage_runs():
    """./scripts/run-stpd.sh builds every program the Usage section runs
    (its ninja targets, read from the script)."""
    with open(os.path.join(REPO, "scripts", "run-stpd.sh")) as f:
        m = re.search(r"^ninja -C build ([^>\n]*)", f.read(), re.M)
    assert m, "scripts/run-stpd.sh has no 'ninja -C build TARGETS' line"
    targets = m.group(1).split()
    text = usage_section()
    for rel in programs():
        if rel in text:
            assert rel[len("build/"):] in targets, "%s is not built by run-stpd.sh" % rel
