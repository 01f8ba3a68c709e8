"""The remote engine (tp_remote.c) against a scripted relay: a Python N2
server on a Unix socket that answers as the test says, so the control
side's handling of crossings and failures is checked message by message.
No namespaces needed."""

import os
import socket
import struct
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import n2client  # noqa: E402
from n2client import CLOSE, CLOSED, COUNTERS, COUNTS, ENDED, HELLO, OPEN, OPENED  # noqa: E402
from test_tp_engines import Drive  # noqa: E402


class Host:
    """Stands in for a namespace: runs tp_drive here."""
    name = None

    def popen(self, argv, **kw):
        import subprocess
        return subprocess.Popen(argv, **kw)


class FakeRelay:
    def __init__(self, path):
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.srv.settimeout(10)
        self.conn = None
        self.buf = b""

    def accept(self):
        self.conn, _ = self.srv.accept()
        self.conn.settimeout(10)
        m = self.recv()
        assert m.type == HELLO and m.body == b"\x01"
        self.send(HELLO, 0, b"\x01")

    def send(self, t, i, body=b""):
        self.conn.sendall(struct.pack(">BIH", t, i, len(body)) + body)

    def recv(self):
        while True:
            if len(self.buf) >= 7:
                t, i, n = struct.unpack(">BIH", self.buf[:7])
                if len(self.buf) >= 7 + n:
                    body, self.buf = self.buf[7:7 + n], self.buf[7 + n:]
                    return n2client.Msg(t, i, body)
            d = self.conn.recv(4096)
            assert d, "control side closed"
            self.buf += d

    def close(self):
        if self.conn:
            self.conn.close()
        self.srv.close()


def counters(*v):
    return struct.pack(">QQQQ", *v)


@pytest.fixture
def fake(tmp_path):
    path = str(tmp_path / "fake.sock")
    f = FakeRelay(path)
    f.path = path
    yield f
    f.close()


def start(fake):
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("ok", fake.accept()))
    t.start()
    d = Drive(Host(), "remote", "unix:" + fake.path)
    t.join(10)
    return d


def open_one(fake, d, id_):
    d.send("open %d 17 10.0.0.2:5000 10.0.0.9:53 10.0.0.1:0 1 0" % id_)
    m = fake.recv()
    assert m.type == OPEN and m.body[:6] == b"\x11\x01\x00\x00\x00\x00", m
    return m.id


def test_opened_counters_close(fake):
    d = start(fake)
    rid = open_one(fake, d, 1)
    fake.send(OPENED, rid, b"\x00" + n2client.addr("10.0.0.1", 40000))
    assert d.expect("opened") == ["1", "0", "10.0.0.1:40000"]
    d.send("counters 1")
    assert d.expect("counters") == ["1", "0", "0", "0", "0"]  # nothing known yet
    m = fake.recv()
    assert m.type == COUNTERS and m.id == rid
    fake.send(COUNTS, rid, counters(1, 2, 3, 4))
    fake.send(OPENED, 999, b"\x00" + n2client.addr("10.0.0.1", 1))  # unknown ID: ignored
    d.send("close 1")
    m = fake.recv()
    assert m.type == CLOSE and m.id == rid
    fake.send(CLOSED, rid, counters(5, 6, 7, 8))
    assert d.expect("closed") == ["1", "5", "6", "7", "8"]
    assert d.quit() == 0


def test_ended_crossing_close_keeps_its_counters(fake):
    """The relay ended the relay (ENDED) while CLOSE was on its way, then
    answered the CLOSE with zeros: the final counters are ENDED's, and no
    ended() follows the close."""
    d = start(fake)
    rid = open_one(fake, d, 1)
    fake.send(OPENED, rid, b"\x00" + n2client.addr("10.0.0.1", 40000))
    d.expect("opened")
    d.send("close 1")
    assert fake.recv().type == CLOSE
    fake.send(ENDED, rid, b"\x04idle" + counters(9, 10, 11, 12))
    fake.send(CLOSED, rid, counters(0, 0, 0, 0))
    assert d.expect("closed") == ["1", "9", "10", "11", "12"]
    d.send("counters 7")
    assert d.expect("error") == ["no", "relay", "7"]  # and nothing else came in between
    assert d.quit() == 0


def test_opened_refused_and_ended(fake):
    d = start(fake)
    r1, r2 = open_one(fake, d, 1), open_one(fake, d, 2)
    fake.send(OPENED, r1, b"\x09" + n2client.addr("0.0.0.0", 0))
    assert d.expect("opened") == ["1", "9", "-"]
    fake.send(OPENED, r2, b"\x00" + n2client.addr("10.0.0.1", 40001))
    d.expect("opened")
    fake.send(ENDED, r2, b"\x0etarget refused" + counters(1, 60, 0, 0))
    assert d.expect("ended") == ["2", "target", "refused", "1", "60", "0", "0"]
    assert d.quit() == 0


def test_protocol_error_is_relay_lost(fake):
    """A malformed message from the relay: the connection is dropped, an
    answered relay ends with relay-lost, an unanswered open gets X'01'."""
    d = start(fake)
    r1, r2 = open_one(fake, d, 1), open_one(fake, d, 2)
    fake.send(OPENED, r1, b"\x00" + n2client.addr("10.0.0.1", 40000))
    d.expect("opened")
    fake.send(COUNTS, r1, counters(1, 2, 3, 4))
    fake.conn.sendall(b"\x09\x00\x00\x00\x01\x00\x00")  # no TYPE X'09'
    got = sorted([d.expect(None), d.expect(None)])
    assert got == [["ended", "1", "relay-lost", "1", "2", "3", "4"], ["opened", "2", "1", "-"]]
    assert d.quit() == 0
