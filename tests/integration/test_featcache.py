"""Feature discovery answers on disk (docs/client.md, "Feature discovery"):
a process that never asked discovery pipelines its first connection when
an earlier process's fresh answer says the proxy takes it. Real programs
(stpify'd python, `stp features`, `stp connect`) against a real stpd; a
relay records what each connection sent before the proxy's first byte.
"""

import glob
import os
import stat
import subprocess

import pytest

import socksraw as S
from test_client_lib import stp_bin
from test_pipelining import M_FEATURES, Recorder, run_client
from test_tlspipe import PASSWORD, USER, X86Watcher, tls_conf, x86_url
from tls_fixtures import pki  # noqa: F401  (a fixture)

DATA = b"first flight\n"


def cache_env(tmp_path, **extra):
    e = {k: v for k, v in os.environ.items()
         if not k.upper().startswith("STP") and k.upper() not in ("ALL_PROXY", "NO_PROXY")}
    e.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"), STP_DEBUG="1",
             STP_MUX="0")
    e.update(extra)
    return e


def stp_features(rec, env):
    r = subprocess.run([stp_bin(), "--no-autoconfig", "features",
                        "socks5://127.0.0.1:%d" % rec.port], env=env, capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr.decode()[-2000:]


def stp_connect(rec, echo, env, ok=True):
    """One `stp connect` process; the index of its connection in rec.first."""
    before = len(rec.first)
    r = subprocess.run([stp_bin(), "--proxy", "socks5://127.0.0.1:%d" % rec.port,
                        "--no-autoconfig", "connect", "127.0.0.1", str(echo.port)],
                       input=DATA, env=env, capture_output=True, timeout=30)
    if ok:
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        assert r.stdout == DATA
    else:
        assert r.returncode != 0
    assert b"Sanitizer" not in r.stderr  # STP_BIN may be an ASan build
    assert len(rec.first) == before + 1, rec.first  # no discovery of its own
    return rec.first[before], r.stderr.decode()


def cache_file(tmp_path, rec):
    files = glob.glob(str(tmp_path / "cache" / "stp" / ("features-127.0.0.1_%d_*" % rec.port)))
    assert len(files) == 1, files
    return files[0]


def whole(echo):
    return S.greeting((S.M_NONE,)) + S.request_msg(S.CMD_CONNECT, "127.0.0.1", echo.port)


def step_by_step(first):
    return first == S.greeting((S.M_NONE,))


@pytest.fixture
def rec(stpd_factory):
    r = Recorder(stpd_factory().port)
    yield r
    r.close()


@pytest.mark.stpd_module("discovery")
def test_a_new_process_pipelines_its_first_connection(rec, echo, tmp_path):
    env = cache_env(tmp_path)
    run_client(rec, echo, tmp_path, **{k: env[k] for k in ("HOME", "XDG_CACHE_HOME")})
    assert S.greeting((M_FEATURES,)) in rec.first  # discovery ran once, in that process
    path = cache_file(tmp_path, rec)
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    first, log = stp_connect(rec, echo, env)
    assert first == whole(echo), rec.first
    assert "(pipelined)" in log and "from the disk cache" in log, log
    first, _ = stp_connect(rec, echo, env)
    assert first == whole(echo)


@pytest.mark.stpd_module("discovery")
def test_without_a_cache_the_first_connection_goes_step_by_step(rec, echo, tmp_path):
    first, log = stp_connect(rec, echo, cache_env(tmp_path))
    assert step_by_step(first), rec.first
    assert "(pipelined)" not in log


@pytest.mark.stpd_module("discovery")
@pytest.mark.parametrize("damage", ["garbage", "short", "header", "empty"])
def test_a_corrupt_file_is_ignored(rec, echo, tmp_path, damage):
    env = cache_env(tmp_path)
    stp_features(rec, env)
    path = cache_file(tmp_path, rec)
    good = open(path, "rb").read()
    bad = {"garbage": os.urandom(300), "short": good[:-3],
           "header": good.replace(b"stp-features 2 ", b"stp-features 2 x", 1),
           "empty": b""}[damage]
    with open(path, "wb") as f:
        f.write(bad)
    first, log = stp_connect(rec, echo, env)
    assert step_by_step(first), rec.first
    assert "(pipelined)" not in log
    assert "ignoring" in log or damage == "empty", log


@pytest.mark.stpd_module("discovery")
@pytest.mark.parametrize("how", ["mode0644", "mode0660", "owner"])
def test_a_file_others_could_write_is_ignored(rec, echo, tmp_path, how):
    env = cache_env(tmp_path)
    stp_features(rec, env)
    path = cache_file(tmp_path, rec)
    if how == "owner":
        if os.geteuid() != 0:
            pytest.skip("chown needs root")
        os.chown(path, 65534, 65534)
    else:
        os.chmod(path, int(how[4:], 8))
    first, log = stp_connect(rec, echo, env)
    assert step_by_step(first), rec.first
    assert "not a mode 0600 file of this user" in log, log


@pytest.mark.stpd_module("discovery")
def test_the_off_switch(rec, echo, tmp_path):
    off = cache_env(tmp_path, STP_FEATURES_CACHE="0")
    stp_features(rec, off)
    assert not glob.glob(str(tmp_path / "cache" / "stp" / "features-*"))
    stp_features(rec, cache_env(tmp_path))  # now a file exists...
    cache_file(tmp_path, rec)
    first, log = stp_connect(rec, echo, off)  # ...and is not read
    assert step_by_step(first), rec.first
    assert "(pipelined)" not in log


@pytest.mark.stpd_module("discovery")
def test_a_failed_pipelined_attempt_is_recorded(stpd_factory, echo, tmp_path):
    rec = Recorder(stpd_factory().port, sabotage=whole(echo))
    try:
        env = cache_env(tmp_path)
        stp_features(rec, env)
        first, log = stp_connect(rec, echo, env, ok=False)  # cut by the relay
        assert first == whole(echo) and rec.sabotaged == 1
        assert "pipelining to 127.0.0.1:%d off" % rec.port in log, log
        header = open(cache_file(tmp_path, rec), "rb").read().split(b"\n", 1)[0].split()
        assert int(header[3]) > 0, header  # the failure's time
        first, log = stp_connect(rec, echo, env)  # the next process: step by step
        assert step_by_step(first), rec.first
        assert "(pipelined)" not in log
        stp_features(rec, env)  # a fresh discovery keeps the mark
        first, _ = stp_connect(rec, echo, env)
        assert step_by_step(first), rec.first
    finally:
        rec.close()


@pytest.mark.stpd_module("mux")
@pytest.mark.stpd_module("discovery")
def test_the_automatic_mux_connection_of_a_new_process_pipelines(rec, echo, tmp_path):
    env = cache_env(tmp_path)
    stp_features(rec, env)
    del env["STP_MUX"]  # automatic multiplexing on (test_muxauto.py)
    first, log = stp_connect(rec, echo, env)
    mux_req = S.request_msg(0x30, "0.0.0.0", 0)[:2]  # VER CMD=X'30'
    assert first.startswith(S.greeting((S.M_NONE,)) + mux_req), rec.first
    assert "a stream of the multiplexed connection" in log, log


def x86_header(tmp_path, w):
    """WHO SUB of the X'86' proxy's file."""
    f = glob.glob(str(tmp_path / "cache" / "stp" / ("features-127.0.0.1_%d_*" % w.port)))
    assert len(f) == 1, f
    return open(f[0], "rb").read().split(b"\n", 1)[0].split()[5:7]


@pytest.mark.stpd_module("discovery")
def test_a_new_process_pipelines_its_first_x86_connection(stpd_factory, pki, echo, tmp_path):
    """X'86' pipelines only what a step-by-step negotiation saw run
    (sub-authentication or not, for these credentials), which discovery
    does not say: the file keeps that too (WHO SUB), so after `stp
    features` and one `stp connect` that negotiated step by step, the next
    process's first X'86' connection sends options, sub-authentication and
    request in one flight."""
    p = stpd_factory(conf=tls_conf(pki), users={USER: PASSWORD})
    w = X86Watcher(p.port)
    env = cache_env(tmp_path)
    base = [stp_bin(), "--proxy", x86_url(w.port, pki), "--no-autoconfig"]

    def connect():
        r = subprocess.run(base + ["connect", "127.0.0.1", str(echo.port)], input=DATA,
                           env=env, capture_output=True, timeout=30)
        assert r.returncode == 0 and r.stdout == DATA, r.stderr.decode()[-2000:]
        return r.stderr.decode()

    try:
        r = subprocess.run(base + ["features", x86_url(w.port, pki)], env=env,
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        assert x86_header(tmp_path, w) == [b"0", b"0"]  # not known yet
        log = connect()
        assert "(pipelined)" not in log, log
        # who 1 (a password, no certificate), sub 4 (RFC 1929 ran)
        assert x86_header(tmp_path, w) == [b"1", b"4"]
        log = connect()
        assert "X'86' options, sub-authentication, request in one write (pipelined)" in log, log
    finally:
        w.close()
    assert w.conns == [None, False, True], w.conns
    assert len(p.wait_lines(r"X'86' subauthentication userpass", 2)) == 2, p.log()
