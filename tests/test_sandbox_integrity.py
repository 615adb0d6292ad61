"""A label is a fact about one program: attackers interleaved with ordinary programs in one
worker change nothing, programs that get past the Python layer are held by the OS layer, and
whatever a program or a worker sends is stored or rejected without losing the run.

These tests run as the user CI runs as (root), with bubblewrap: the setup the README gives.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pad_data.sandbox import isolation, seccomp
from pad_data.sandbox.pool import SandboxPool

bwrap_only = pytest.mark.skipif("bwrap" not in isolation.available_levels(),
                                reason="bubblewrap is not installed (.ci/run fails on this skip)")


def prog(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


# Ordinary programs that touch every piece of shared state the attackers go after.
ORDINARY = [
    "def solution():\n    return 17 * 3 + 4\n",
    prog("""
    import decimal
    def solution():
        return float(decimal.Decimal(1) / decimal.Decimal(7) * 7000)
    """),
    prog("""
    from fractions import Fraction
    def solution():
        return float(Fraction(3, 4) / Fraction(1, 8))
    """),
    prog("""
    import collections
    def solution():
        return collections.Counter('abracadabra').most_common(1)[0][1]
    """),
    prog("""
    import statistics, math
    def solution():
        return round(statistics.mean([1, 2, 3, 4]) * math.pi, 6)
    """),
    prog("""
    import random
    def solution():
        return random.randint(1, 10**6)
    """),
    prog("""
    import math
    def solution():
        total = 0
        for i in range(2000):
            total += math.sqrt(i)
        return round(total, 3)
    """),
    prog("""
    import numpy as np
    def solver():
        return float(np.arange(10).sum() * np.pi)
    ans = solver()
    """),
]

ATTACKERS = [
    # plain attribute stores on shared objects (no escape needed)
    "import decimal\ndef solution():\n    decimal.DefaultContext.prec = 2\n    decimal.setcontext(decimal.Context())\n"
    "    return 1\n",
    "import fractions\ndef solution():\n    fractions.Fraction.__truediv__ = lambda a, b: 0\n    return 1\n",
    "import collections\ndef solution():\n    collections.Counter.most_common = lambda self, n=None: [(0, -1)]\n"
    "    return 1\n",
    "import statistics\ndef solution():\n    statistics.math.pi = 3\n    statistics.mean = lambda x: 0\n    return 1\n",
    "import math\ndef solution():\n    math.pi = 3\n    math.sqrt = lambda x: 0\n    return 1\n",
    "import random\ndef solution():\n    random.seed(99)\n    return random.random()\n",
    # a finalizer meant to run (and loop) during a later program
    prog("""
    def solution():
        def spin(self):
            while True:
                pass
        C = type('C', (), {'__del__': spin})
        a, b = C(), C()
        a.other, b.other = b, a
        return 1
    """),
    # a timeout that is caught and answered anyway
    prog("""
    def solution():
        n = 0
        try:
            while True:
                n += 1
        except:
            pass
        return 42
    """),
    # Python-level escape: functools merges a module's real globals (sys, real builtins) into
    # the program's, then the program turns the worker's audit hook off and goes for the worker
    prog("""
    import functools, statistics
    def w():
        pass
    functools.update_wrapper(w, statistics.mean, assigned=(), updated=("__globals__",))
    main = sys.modules["__main__"]
    main._state["running"] = False
    os = sys.modules["os"]
    forged = b'{"key": 0, "status": "ok", "value": 999, "duration_ms": "x"}\\n'
    for fd in range(0, 40):
        try:
            os.write(fd, forged * 50)
        except OSError:
            pass
    main._describe_value = lambda v: ("int", 999, None)
    main.run_program = lambda *a: ({"status": "ok", "value": 999}, False)
    for pid in (os.getppid(), 1, 2, 3):
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    try:
        os.fork()
    except OSError:
        pass
    def solution():
        return 41
    """),
    # poison pills
    "def solution():\n    print('\\ud800' * 3)\n    return '\\udfff\\x00'\n",
    "def solution():\n    raise type('Boom', (Exception,), {})('\\ud800\\x00')\n",
    "def solution():\n    return 'x' * 10**7\n",
]


def _labels(results: dict) -> dict:
    return {k: (r.status, r.value) for k, r in results.items()}


@pytest.mark.e2e
@bwrap_only
def test_attackers_interleaved_in_one_worker_change_no_ordinary_label():
    alone = {}
    for i, src in enumerate(ORDINARY):
        with SandboxPool(workers=1, timeout=1.0) as pool:
            alone[i] = _labels(dict(pool.map([(i, src)])))[i]
    assert all(status == "ok" for status, _ in alone.values()), alone
    items, expect = [], {}
    for rnd in range(3):
        for j, attacker in enumerate(ATTACKERS):
            items.append((f"attack-{rnd}-{j}", attacker))
            for i, src in enumerate(ORDINARY):
                key = f"ordinary-{rnd}-{j}-{i}"
                items.append((key, src))
                expect[key] = alone[i]
    with SandboxPool(workers=1, timeout=1.0) as pool:
        got = _labels(dict(pool.map(items)))
        assert pool.stats["forked"] > 0 and pool.stats["fast"] > 0
        # nothing harmed the worker: a crash is rerun alone and blamed (crashes), a worker an attack
        # made exit would be recycled. (On a starved machine the wall-clock backstop may restart it
        # mid-batch; the batch is then rerun a program at a time, with the same labels.)
        assert pool.stats["crashes"] == pool.stats["recycled"] == 0, pool.stats
    assert len(got) == len(items)
    wrong = {k: (got[k], v) for k, v in expect.items() if got[k] != v}
    assert not wrong, f"{len(wrong)} of {len(expect)} ordinary programs changed: {list(wrong.items())[:3]}"
    assert got["attack-0-7"] == ("timeout", None)  # a swallowed timeout stays a timeout


@bwrap_only
def test_the_result_of_an_escaped_program_is_its_own_and_the_worker_survives():
    escape = ATTACKERS[8]
    with SandboxPool(workers=1, timeout=1.0) as pool:
        res = dict(pool.map([(0, escape), (1, ORDINARY[0]), (2, escape), (3, ORDINARY[1])]))
        assert pool.stats["spawned"] == 1 and pool.stats["crashes"] == 0
    assert res[1].value == 55 and res[3].status == "ok"


SEGFAULT = "def solution():\n    x = iter([1])\n    for _ in range(10**5):\n        x = map(abs, x)\n    return next(x)\n"
HANG_IN_C = "def solution():\n    return sum(range(10**13))\n"  # a loop in C: no Python-level signal handling


@pytest.mark.parametrize("culprit,status", [(SEGFAULT, "crashed"), (HANG_IN_C, "timeout")])
def test_a_worker_killed_mid_batch_blames_exactly_its_culprit(culprit, status):
    """Results leave a worker in bursts: when one dies or hangs in C code, each pending program is
    rerun alone, and only the culprit is labeled."""
    items = [(i, f"def solution():\n    return {i}\n") for i in range(200)]
    items[120] = (120, culprit)
    with SandboxPool(workers=1, timeout=0.5) as pool:
        res = dict(pool.map(items))
        assert pool.stats["crashes" if status == "crashed" else "timeouts"] == 1
    assert res[120].status == status
    assert all(res[i].status == "ok" and res[i].value == i for i in range(200) if i != 120)


@pytest.mark.parametrize("forced_fork", [False, True])
def test_timeouts_are_final_on_both_paths(forced_fork):
    swallow = ATTACKERS[7]
    slow_repr = prog("""
    import fractions
    class Slow(fractions.Fraction):
        def __repr__(self):
            while True:
                pass
    def solution():
        return [Slow(1, 2)]  # a list is shown by its repr, which calls the program's
    """)
    with SandboxPool(workers=1, timeout=0.5, fast_path=not forced_fork) as pool:
        res = dict(pool.map([(0, swallow), (1, slow_repr), (2, ORDINARY[0])]))
    assert res[0].status == "timeout" and res[1].status == "timeout"
    assert res[2].value == 55


def test_poison_pills_are_stored_escaped(tmp_path):
    from pad_data.stages.execute import execute
    from pad_data.store import Store, problem_id, program_id
    import pandas as pd

    pills = ATTACKERS[-3:] + [ORDINARY[0]]
    with Store(tmp_path / "pad.duckdb") as st:
        pid = problem_id("t", "q")
        st.insert_new("problems", pd.DataFrame([{"problem_id": pid, "dataset": "t", "split": "train",
                                                 "question": "q", "answer": 55.0, "answer_text": "55"}]),
                      "problem_id")
        rows = [{"program_id": program_id(pid, src, "t", i), "problem_id": pid, "origin": "import",
                 "teacher": "t", "sample_idx": i, "program": src} for i, src in enumerate(pills)]
        st.insert_new("programs", pd.DataFrame(rows), "program_id")
        r = execute(st, timeout=2.0)
        assert r["executed"] == 4
        got = st.con.execute("SELECT p.sample_idx, e.status, e.value, e.stdout, e.error_type, e.error_message "
                             "FROM executions e JOIN programs p USING (program_id) ORDER BY 1").fetchall()
    assert got[0][1] == "ok" and got[0][2] == "\\udfff\\x00" and got[0][3].startswith("\\ud800")
    assert got[1][1] == "runtime_error" and got[1][4] == "Boom" and got[1][5] == "\\ud800\\x00"
    assert got[2][1] == "ok" and len(got[2][2]) <= 1100
    assert got[3][1:3] == ("ok", "55")


# Found in review: `case str(format=fmt)` reads an attribute named in co_consts, not co_names;
# str.format then walks __globals__ to the worker's own module globals.
REACH_WORKER = '''
    f = lambda: 0
    match "{0.__globals__[__builtins__][__import__].__globals__.zz}":
        case str(format=fmt):
            try:
                fmt(f)
            except AttributeError as e:
                wg = e.obj
'''


@bwrap_only
def test_a_match_pattern_cannot_smuggle_a_program_onto_the_fast_path():
    poison = "def solution():\n" + REACH_WORKER + "    wg['_FAST_BUILTINS']['sum'] = lambda *a: 42\n" \
             "    wg['_describe_value'] = lambda v: ('int', 42, None)\n    return 1\n"
    victim = "def solution():\n    return sum([1, 2, 3])\n"
    with SandboxPool(workers=1, timeout=1.0) as pool:
        res = dict(pool.map([(0, victim), (1, poison), (2, victim), (3, ORDINARY[2])]))
        assert pool.stats["forked"] == 1  # the match program did not run in the worker itself
    assert (res[0].value, res[2].value, res[3].value) == (6, 6, 6.0)


def test_a_forked_program_that_resets_its_own_timer_is_still_a_timeout():
    survive = "import fractions\ndef solution():\n" + REACH_WORKER + \
              "    try:\n        while True:\n            pass\n    except BaseException:\n" \
              "        wg['_state']['running'] = False\n        wg['_state']['fired'] = False\n    return 7\n"
    with SandboxPool(workers=1, timeout=0.5) as pool:
        res = dict(pool.map([(0, survive), (1, ORDINARY[0])]))
    assert res[0].status == "timeout" and res[1].value == 55


def test_cycles_a_program_leaves_behind_do_not_cost_a_later_program_memory():
    garbage = ("def solution():\n    a = []\n    for i in range(2500000):\n        x = [i]\n"
               "        x.append(x)\n        a.append(x)\n    return 1\n")
    big = "def solution():\n    b = [0] * 40000000\n    return len(b)\n"
    with SandboxPool(workers=1, timeout=10.0) as pool:
        res = dict(pool.map([(0, big), (1, garbage), (2, big)]))
    assert res[1].status == "ok"
    assert res[0].value == res[2].value == 40000000


def test_recursion_budget_is_the_same_on_both_paths():
    prog_ = "def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\ndef solution():\n    return f({n})\n"
    items = [(n, prog_.format(n=n)) for n in range(985, 1005)]
    got = {}
    for fast in (True, False):
        with SandboxPool(workers=1, timeout=2.0, fast_path=fast) as pool:
            got[fast] = {k: (r.status, r.error_type) for k, r in pool.map(items)}
    assert got[True] == got[False]
    assert {s for s, _ in got[True].values()} == {"ok", "runtime_error"}  # the boundary is in range


# ---------------------------------------------------------------- a hostile worker
FAKE_WORKER = r'''
import json, sys, os
out = os.fdopen(1, "wb", buffering=0)
out.write(b'{"ready": true}\n')
for line in sys.stdin:
    for key, src in json.loads(line)["batch"]:
        bad = {"BAD-DURATION": {"status": "ok", "value": 1, "duration_ms": "x"},
               "BAD-VALUE": {"status": "ok", "value": [1, 2]},
               "BAD-STATUS": {"status": "correct", "value": 1},
               "BAD-KEY": {"key": "somebody else", "status": "ok", "value": 1},
               "BAD-BIGINT": {"status": "ok", "value": 10 ** 400, "value_type": "int"}}.get(src)
        if src == "BAD-JSON":
            out.write(b"{not json\n")
        elif src == "BAD-DEEP":  # parses to a RecursionError, not a ValueError
            out.write(b'{"key": %d, "status": "ok", "value": ' % key + b"[" * 100000 + b"]" * 100000 + b"}\n")
        elif bad is not None:
            out.write(json.dumps(dict({"key": key}, **bad)).encode() + b"\n")
        else:
            out.write(json.dumps({"key": key, "status": "ok", "value": int(src), "duration_ms": 0.1}).encode() + b"\n")
'''


@pytest.mark.parametrize("bad", ["BAD-DURATION", "BAD-VALUE", "BAD-STATUS", "BAD-KEY", "BAD-JSON", "BAD-BIGINT",
                                 "BAD-DEEP"])
def test_a_malformed_worker_message_fails_only_that_program(bad):
    with SandboxPool(workers=1, timeout=1.0, isolation_level="process") as pool:
        pool._launch.argv = [sys.executable, "-c", FAKE_WORKER]
        items = [(i, str(i)) for i in range(10)] + [(10, bad)] + [(i, str(i)) for i in range(11, 20)]
        res = dict(pool.map(items))
        assert pool.stats["crashes"] == 1 and pool.stats["spawned"] == 2  # retired and replaced
    assert res[10].status == "crashed" and res[10].error_type == "ProtocolError"
    assert all(res[i].status == "ok" and res[i].value == i for i in range(20) if i != 10)


# ---------------------------------------------------------------- the OS layer, reached
def _os_probe(tmp_path: Path, body: str, level: str = "bwrap", timeout: float = 5.0):
    """Run ``body`` with the worker's Python policy switched off, so it reaches the OS layer."""
    with SandboxPool(workers=1, timeout=timeout, isolation_level=level, python_policy=False) as pool:
        res = dict(pool.map([(0, prog(body))]))[0]
    assert res.status == "ok", res
    return json.loads(res.stdout)


HOST_ATTACK = """
import os, json, ctypes, socket, subprocess
out = {}
def attempt(name, f):
    try:
        out[name] = repr(f())
    except BaseException as e:
        out[name] = "blocked: " + type(e).__name__
attempt("read_store", lambda: open(STORE, "rb").read())
attempt("write_host", lambda: open(HOST, "w").write("gone"))
attempt("truncate_host", lambda: os.truncate(HOST, 0))
attempt("delete_host", lambda: os.remove(HOST))
attempt("mkdir_host", lambda: os.mkdir(HOST + ".dir"))
attempt("create_file", lambda: open(HOST + ".new", "w").write("x"))
attempt("net", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=1))
attempt("fork", lambda: os.fork())
attempt("spawn", lambda: subprocess.Popen(["/bin/sleep", "30"]))
attempt("kill_parent", lambda: os.kill(os.getppid(), 9))
libc = ctypes.CDLL(None, use_errno=True)
out["remount"] = libc.mount(b"none", b"/usr", None, 32 | 4096, None)  # MS_REMOUNT|MS_BIND
out["unshare_user"] = libc.unshare(0x10000000)
status = open("/proc/self/status").read()
out["caps"] = [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")][0]
out["seccomp"] = [l.split()[1] for l in status.splitlines() if l.startswith("Seccomp:")][0]
out["env"] = dict(os.environ)
print(json.dumps(out))
ans = 1
"""


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    store = tmp_path / "pad.duckdb"
    store.write_bytes(b"precious store")
    hostfile = tmp_path / "host.txt"
    hostfile.write_text("precious")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0.2)
    arrived = []

    def accept():
        end = time.monotonic() + 20
        while time.monotonic() < end:
            try:
                arrived.append(srv.accept())
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield {"store": store, "host": hostfile, "port": srv.getsockname()[1], "arrived": arrived, "tmp": tmp_path}
    srv.close()


def _attack_body(host) -> str:
    return (f"STORE, HOST, PORT = {str(host['store'])!r}, {str(host['host'])!r}, {host['port']}\n"
            + HOST_ATTACK)


def _host_unchanged(host) -> None:
    assert host["store"].read_bytes() == b"precious store"
    assert host["host"].read_text() == "precious"
    assert sorted(p.name for p in host["tmp"].iterdir()) == ["host.txt", "pad.duckdb"]
    assert host["arrived"] == []


@pytest.mark.e2e
@bwrap_only
def test_os_layer_holds_a_program_past_the_python_layer_as_root(host):
    out = _os_probe(host["tmp"], _attack_body(host))
    for name in ("read_store", "write_host", "truncate_host", "delete_host", "mkdir_host", "create_file",
                 "net", "fork", "spawn", "kill_parent"):
        assert out[name].startswith("blocked"), (name, out[name])
    assert out["remount"] == -1 and out["unshare_user"] == -1
    assert out["caps"] == "0000000000000000" and out["seccomp"] == "2"
    assert "OPENAI_API_KEY" not in out["env"]
    _host_unchanged(host)


def _descendants(root: int) -> dict[int, bytes]:
    """pid -> cmdline of every live process below `root` (other pytest workers' pools are not ours)."""
    parent, cmdline = {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            parent[int(pid)] = int(stat.rsplit(")", 1)[1].split()[1])
            cmdline[int(pid)] = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = {}, [root]
    while frontier:
        here = frontier.pop()
        for pid, ppid in parent.items():
            if ppid == here and pid not in found:
                found[pid] = cmdline[pid]
                frontier.append(pid)
    return found


def _alive_as(pid: int, cmdline: bytes) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline
    except OSError:
        return False


@pytest.mark.e2e
@bwrap_only
def test_workers_run_as_an_unprivileged_user_and_leave_no_process_behind():
    marker = b"The sandbox worker"
    with SandboxPool(workers=2, timeout=1.0) as pool:
        list(pool.map([(0, "def solution():\n    return 1\n")]))
        ours = {pid: cmd for pid, cmd in _descendants(os.getpid()).items() if marker in cmd}
        uids = []
        for pid in ours:
            status = Path(f"/proc/{pid}/status").read_text()
            uids.append(int(status.split("Uid:")[1].split()[1]))  # effective uid
    assert len(uids) >= 2 and set(uids) == {65534}
    time.sleep(0.2)
    assert [pid for pid, cmd in ours.items() if _alive_as(pid, cmd)] == []


@pytest.mark.e2e
@pytest.mark.parametrize("level", ["unshare", "process"])
def test_below_bwrap_seccomp_still_blocks_writes_processes_and_sockets(host, level):
    out = _os_probe(host["tmp"], _attack_body(host), level=level)
    for name in ("write_host", "truncate_host", "delete_host", "mkdir_host", "create_file", "net", "fork",
                 "spawn", "kill_parent"):
        assert out[name].startswith("blocked"), (name, out[name])
    assert out["remount"] == -1 and out["unshare_user"] == -1 and out["seccomp"] == "2"
    assert "OPENAI_API_KEY" not in out["env"]
    _host_unchanged(host)


def test_auto_refuses_to_run_without_bwrap(monkeypatch):
    monkeypatch.setattr(isolation, "available_levels", lambda: ("unshare", "process"))
    with pytest.raises(RuntimeError, match="bubblewrap is not available"):
        isolation.resolve("auto")
    assert isolation.resolve("process") == "process"
    with SandboxPool(workers=1, isolation_level="process") as pool:
        assert pool.warning and "below the OS sandbox" in pool.warning


WORKER_FILTER_PROBE = """
import json, os, socket
from pad_data.sandbox import seccomp, worker
worker._prepare_seccomp("sandbox", seccomp.build(seccomp.SANDBOX_DENY, child=False).hex())
worker._install_seccomp("sandbox")  # as the worker installs it, before any program runs
out = {}
for name, make in (("unix", lambda: socket.socket(socket.AF_UNIX)), ("inet", socket.socket),
                   ("pair", socket.socketpair)):
    try:
        make()
        out[name] = "open"
    except PermissionError:
        out[name] = "refused"
r, w = os.pipe()
os.write(w, b"x")
out["pipe"] = os.read(r, 1).decode()
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(json.dumps(out))
"""


@pytest.mark.e2e
@pytest.mark.skipif(not seccomp.supported(), reason="seccomp filters are built for x86_64 Linux")
def test_the_workers_own_filter_refuses_sockets_and_keeps_pipes_and_fork():
    """Fast-path programs run in the worker itself, under its filter alone: a program that got past
    Python there reaches no socket (the network, or a running stage's read socket), while the
    worker's pipes and its forks for the other programs still work."""
    import subprocess

    res = subprocess.run([sys.executable, "-c", WORKER_FILTER_PROBE], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"unix": "refused", "inet": "refused", "pair": "refused", "pipe": "x", "fork": 7}


# ---------------------------------------------------------------- what the fast path admits
# An unused numpy import, ``from fractions import Fraction``, and classes and attribute stores with
# nothing imported but math run in the zygote itself: each program must get the label the
# forked path gives, and nothing a program reaches may change a later one.
FAST_ADMITTED = [
    ORDINARY[2],
    prog("""
    from fractions import Fraction
    def solution():
        return float(Fraction('3/7').limit_denominator(5) + Fraction.from_float(0.5))
    """),
    prog("""
    from fractions import Fraction
    def solution():
        return Fraction(1, 0)
    """),
    "from fractions import Fraction\nans = sorted([Fraction(1, 2), 0.25, 1])\n",
    "import math\nimport numpy as np\n\ndef solver():\n    return math.sqrt(16) + 1\nans = solver()\n",
    "import numpy\nans = 7\n",
    prog('''
    """A teacher's program: a docstring, classes, a main guard."""
    import math
    class Account(object):
        """Money in and out."""
        rate = 0.5
        def __init__(self, balance):
            self.balance = balance
        @property
        def doubled(self):
            return self.balance * 2
        @staticmethod
        def fee():
            return 3
        @classmethod
        def empty(cls):
            return cls(0)
        def __repr__(self):
            return f"Account({self.balance})"
        def __add__(self, other):
            return Account(self.balance + other.balance)
    def solution():
        accounts = sorted([Account(5), Account(2), Account.empty()], key=lambda a: a.balance)
        accounts[0].note = "first"
        del accounts[0].note
        total = sum(a.doubled for a in accounts) + Account.fee() + math.floor(Account.rate)
        total += (accounts[0] + accounts[1]).balance - 2
        print(accounts, __name__)
        return total
    if __name__ == "__main__":
        print(solution())
    '''),
    prog("""
    class Broke(Exception):
        pass
    def solution():
        raise Broke('no money left')
    """),
    prog("""
    class Shelf:
        def __init__(self, **items):
            self.items = dict(items)
        def __str__(self):
            return 'Shelf' + repr(sorted(self.items.items()))
    def solution():
        c = Shelf(a=1)
        c.items['b'] = 2
        return str(c)
    """),
    "import math\nmath.pi = 3\nans = math.pi\n",  # a store into the read-only module copy
    "class P:\n    pass\np = P()\nans = p\n",
    "ans = __name__\n",
    # a class built at the deepest frame the budget allows: the zygote's __build_class__ must cost
    # no frame the forked path's does not (a Python-level wrapper answered 994 against 996)
    prog("""
    def f(n):
        try:
            return f(n + 1)
        except RecursionError:
            class A(ValueError):
                pass
            return n
    ans = f(0)
    """),
]
FRACTION_VICTIM = prog("""
    from fractions import Fraction
    def solution():
        return [isinstance(1.5, Fraction), Fraction(1, 2) + 1.5, str(Fraction(3, 6)), repr(Fraction(1, 3))]
    """)
# Senders that reach shared state through fractions (some found by an attacker's review of a fast
# path that admitted Fraction: the decimal context from_decimal creates, a sticky decimal flag
# from a caught MemoryError, the numbers ABCs' caches a forked program could read, now a
# forbidden name), and through attribute stores and classes.
SENDERS = [
    "from fractions import Fraction\nFraction.register(float)\nans = 1\n",  # ABC registry
    "import fractions\nfractions.numbers.Rational.register(float)\nans = 1\n",
    "import fractions\nfractions.Decimal(1)\nans = 1\n",
    "from fractions import Fraction\nFraction.limit_denominator = lambda self, m=0: 99\nans = 1\n",
    "from fractions import Fraction\nFraction.extra = 1\nans = 1\n",
    "import fractions\nfractions.Fraction = int\nans = 1\n",
    "from fractions import Fraction\nclass F(Fraction):\n    def __init_subclass__(cls):\n        pass\nans = 1\n",
    "from fractions import Fraction\nclass F(Fraction):\n    pass\nF.register(float)\nans = 1\n",
    "from fractions import Fraction\nFraction.__class_getitem__ = classmethod(lambda c, k: 0)\nans = 1\n",
    "import numpy as np\nnp.seterr(all='raise')\nans = 1\n",
    "import numpy as np\nx = [np]\nans = 1\n",  # a read of the binding: not "unused"
    "from fractions import Fraction\ndef solution():\n    return Fraction.from_decimal(1)\n",
    prog("""
    from fractions import Fraction
    def solution():
        try:
            Fraction.from_decimal(1 << (8 * 300 * 10**6))
        except MemoryError:
            return 'caught'
        return 'no error'
    """),
    "from fractions import Fraction\nans = [isinstance(1.5, Fraction), Fraction('1/2')]\n",
    "import math\ntry:\n    math.pi = 3\nexcept Exception:\n    pass\nans = 1\n",
    "import math\ntry:\n    del math.sqrt\nexcept Exception:\n    pass\nans = 1\n",
    "import math\nclass A:\n    pass\ntry:\n    math.extra = A\nexcept Exception:\n    pass\nans = 1\n",
    prog("""
    def solution():
        for target in (print, int, ValueError, len, object, property):
            try:
                target.extra = 1
            except (AttributeError, TypeError):
                pass
        return 1
    """),
    prog("""
    class Keep(Exception):
        pass
    def solution():
        try:
            raise Keep('x')
        except Keep as e:
            e.extra = 1
        return 1
    """),
    "class A(int):\n    def __index__(self):\n        return 7\nans = [1, 2, 3][A(0)]\n",
    "class A:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\nans = [A() == 1, 1 == A()]\n",
    "def solution():\n    solution.cache = [1]\n    return 1\n",
    # CPython 3.11 memory errors reached through C code calling the program back (an attacker's
    # review of d67cdbe): an extended slice store whose generator shrinks the list writes past
    # its end; comparing nested lists with an __eq__ that empties them reads freed memory. In
    # the zygote either crashed the worker (SIGSEGV), and could have corrupted it instead.
    prog("""
    lst = list(range(100))
    def shrink():
        for _ in range(95):
            lst.pop()
        return 0
    lst[::2] = (shrink() if i == 0 else i for i in range(50))
    ans = len(lst)
    """),
    prog("""
    class E:
        calls = 0
        def __eq__(self, other):
            E.calls += 1
            if E.calls == 2:
                outer1.clear()
                outer2.clear()
            return False
    outer1 = [[E()]]
    outer2 = [[E()]]
    ans = outer1 < outer2
    """),
    # a builtin base whose own __init__ the subclass skips: calling it dereferences NULL
    "class S(staticmethod):\n    def __init__(self, f):\n        pass\nans = S(len)()\n",
    # an OSError's str() holds its filename borrowed while it formats errno, whose __str__ frees it
    prog("""
    class X:
        def __str__(self):
            e.filename = None
            keep.append([str(i * 1000003) for i in range(300)])
            return 'x'
    keep = []
    e = OSError()
    e.errno = X()
    e.strerror = 's'
    e.filename = [1, 2]
    ans = len(str(e))
    """),
]
# What those senders would change: a decimal context and its flags, ABC answers, module copies,
# builtins
SHARED_STATE_VICTIM = prog("""
    import decimal, numbers, math
    def solution():
        decimal.DefaultContext.prec = 5  # a thread's context is made from it, unless one exists
        third = str(decimal.Decimal(1) / 3)
        flags = sorted(f.__name__ for f, on in decimal.getcontext().flags.items() if on)
        abcs = [isinstance(1.5, numbers.Rational), isinstance(1, numbers.Rational)]
        seen = [hasattr(t, 'extra') for t in (print, int, ValueError, len, object, property, math)]
        return [third, flags, abcs, seen, math.pi, len(dir(math)), math.sqrt(16)]
    """)
FAST_MATH_VICTIM = "import math\ndef solution():\n    return [math.pi, math.sqrt(16), [1, 2, 3][1]]\n"
ABC_READERS = [
    "import numbers\nnumbers.Rational._dump_registry()\nans = 1\n",
    "import numbers\nans = getattr(numbers.Rational, '_dump' + '_registry')\n",
    "import numbers\nans = numbers.Rational._abc_impl\n",
]


def _label(r):
    return (r.status, r.value, r.value_type, r.value_repr, r.error_type, r.error_message, r.stdout)


def _paths(pool: SandboxPool, items: list) -> dict:
    """Each program's label and whether it ran forked, one program at a time."""
    out = {}
    for key, src in items:
        forked = pool.stats["forked"]
        (_, r), = pool.map([(key, src)])
        out[key] = (_label(r), pool.stats["forked"] > forked)
    return out


def test_what_the_fast_path_admits_gets_the_label_the_forked_path_gives():
    items = list(enumerate(FAST_ADMITTED))
    got = {}
    for fast in (True, False):
        with SandboxPool(workers=1, timeout=10.0, fast_path=fast) as pool:
            list(pool.map([("warm", "import numpy as np\nans = int(np.int64(1))\n")]))  # preloaded
            got[fast] = _paths(pool, items)
    assert {k: v[0] for k, v in got[True].items()} == {k: v[0] for k, v in got[False].items()}
    assert [k for k, (_, forked) in got[True].items() if forked] == []  # every one ran in the zygote
    assert all(forked for _, forked in got[False].values())
    labels = {k: v[0] for k, v in got[True].items()}
    assert labels[0][:2] == ("ok", 6.0) and labels[2][0] == "runtime_error"
    line = "[Account(0), Account(2), Account(5)] __main__\n"  # the main guard ran solution(), once
    assert labels[6][:2] == ("ok", 17) and labels[6][6] == line + "17\n"
    assert labels[7][0] == "runtime_error" and labels[7][4:6] == ("Broke", "no money left")
    assert labels[8][:2] == ("ok", "Shelf[('a', 1), ('b', 2)]")
    assert labels[9][0] == "forbidden" and labels[9][5] == "modules are read-only"
    assert labels[10][:4] == ("ok", None, "P", "<P object>") and labels[11][:3] == ("ok", "__main__", "str")
    assert labels[12][0] == "ok" and labels[12][1] > 900


def test_the_abc_caches_a_fast_path_program_fills_cannot_be_read():
    with SandboxPool(workers=1, timeout=10.0) as pool:
        res = dict(pool.map(list(enumerate(ABC_READERS))))
    assert [(r.status, r.error_type) for r in res.values()] == [("forbidden", "Forbidden")] * 3, res


def test_a_sender_changes_no_later_label():
    victim_np = "import numpy as np\nans = float(np.float64(1.0) / np.float64(3.0))\n"
    victims = [FRACTION_VICTIM, victim_np, FAST_ADMITTED[4], SHARED_STATE_VICTIM, FAST_MATH_VICTIM]
    with SandboxPool(workers=1, timeout=10.0) as pool:
        alone = dict(pool.map(list(enumerate(victims))))
    assert all(r.status == "ok" for r in alone.values()), alone
    items = []
    for i, sender in enumerate(SENDERS):
        items += [(("s", i), sender)] + [((j, i), v) for j, v in enumerate(victims)]
    with SandboxPool(workers=1, timeout=10.0) as pool:
        res = dict(pool.map(items))
        spawned, fast = pool.stats["spawned"], pool.stats["fast"]
    for i in range(len(SENDERS)):
        for j in range(len(victims)):
            assert _label(res[(j, i)]) == _label(alone[j]), (SENDERS[i], j)
    assert alone[0].value_repr.startswith("[False, 2.0, '1/2', 'Fraction(1, 3)']")
    assert spawned == 1  # no sender harmed the worker
    # the fast victims and the senders that may run in the worker did
    assert fast >= 3 * len(SENDERS) + 5, fast


# a fast-path program whose codec lookup makes the worker import encodings.cp1252, and a program reading
# sys.modules through numpy's module globals (forked from the numpy zygote, or from the worker with sympy)
CODEC_SENDER = "def solution():\n    return len('\\u00e9'.encode('cp1252'))\n"
SYS_MODULES_READER = ("import numpy as np\n\n\ndef solution():\n"
                      "    return 'encodings.cp1252' in np._pytesttester.sys.modules\n")


def test_a_module_a_fast_path_program_makes_the_worker_import_shows_in_no_later_program():
    readers = [("np", SYS_MODULES_READER), ("both", "import sympy\n" + SYS_MODULES_READER)]
    items = [("sender", CODEC_SENDER)] + readers + [("sender2", CODEC_SENDER)] + [(k + "2", v) for k, v in readers]
    with SandboxPool(workers=1, timeout=10.0) as pool:
        res = dict(pool.map(items))
        fast = pool.stats["fast"]
    # before: True in every reader (the numpy zygote forked from a worker that held it, the worker itself)
    assert {k: (r.status, r.value) for k, r in res.items()} == {
        "sender": ("ok", 1), "np": ("ok", False), "both": ("ok", False),
        "sender2": ("ok", 1), "np2": ("ok", False), "both2": ("ok", False)}, res
    assert fast == 2


# Text a program hands the worker as its own str subclass (an exception's message, what print
# writes, a repr): the worker slices and measures it and JSON-encodes the slice, so the
# subclass's __getitem__/__len__ would pass the caps (500 characters of message, STDOUT_LIMIT)
# and what __getitem__ returns (a list whose __iter__ never ends) would run in the encoder,
# after the program's timer stopped. Found by an attacker's review of the fast path's classes;
# such a class now runs forked (is_pure), where the worker's bookkeeping is the same code.
_TEXT_SUBCLASS = prog("""
    class Loop(list):
        def __iter__(self):
            while True:
                pass
    class S(str):
        def __str__(self):
            return self
        def __len__(self):
            return 0
        def __getitem__(self, k):
            return S('x' * 3000000) if self == 'big' else Loop([1])
    """)
PLAIN_TEXT = [
    _TEXT_SUBCLASS + "def solution():\n    raise ValueError(S('big'))\n",
    _TEXT_SUBCLASS + "def solution():\n    raise ValueError(S('loop'))\n",
    _TEXT_SUBCLASS + "def solution():\n    print(S('big'), S('loop'), sep=S('big'))\n    return 1\n",
]


def test_text_from_a_programs_str_subclass_is_plain_text_on_both_paths():
    got = {}
    for fast in (True, False):
        with SandboxPool(workers=1, timeout=2.0, fast_path=fast) as pool:
            items = [(i, p) for i, p in enumerate(PLAIN_TEXT)] + [("victim", FAST_MATH_VICTIM)]
            got[fast] = {k: _label(r) for k, r in pool.map(items)}
            assert pool.stats["spawned"] == 1, pool.stats  # no worker was killed or retired
    assert got[True] == got[False]
    labels = got[True]
    assert labels[0][0] == labels[1][0] == "runtime_error"
    assert labels[0][4:6] == ("ValueError", "big") and labels[1][4:6] == ("ValueError", "loop")
    assert labels[2][:2] == ("ok", 1) and labels[2][6] == "bigbigloop\n"
    assert labels["victim"][0] == "ok"


# Programs whose methods C code calls back in the middle of its own work (comparisons, hashing,
# iteration, item access, index conversion) or that store items with a slice built with a step
# run forked (is_pure), and so do classes on a base other than object, the builtin exceptions and
# the program's own classes, with the label the forked path gives.
CALLED_BACK = [
    prog("""
    class Account:
        def __init__(self, balance):
            self.balance = balance
        def __lt__(self, other):
            return self.balance < other.balance
        def __eq__(self, other):
            return self.balance == other.balance
        __hash__ = None
    ans = [a.balance for a in sorted([Account(5), Account(2)])] + [Account(1) == Account(1)]
    """),
    "class Counter(dict):\n    def __getitem__(self, key):\n        return self.get(key, 0)\nans = Counter()['x'] + 1\n",
    "class Seq:\n    def __len__(self):\n        return 3\n    def __iter__(self):\n        return iter([1, 2, 3])\n"
    "ans = [len(Seq()), sum(Seq())]\n",
    "class I:\n    def __index__(self):\n        return 1\nans = [10, 20, 30][I()]\n",
    "digits = list(str(1234))\ndigits[0] = '9'\nans = int(''.join(digits[::-1]))\n",
    "ans = [1, 2, 3, 4][slice(None, None, 2)]\n",
    # classes with a builtin base other than object and the exceptions, or a class keyword
    "class S(str):\n    pass\nans = S('x') + 'y'\n",
    "try:\n    class L(list):\n        pass\nexcept BaseException:\n    print('caught')\nprint('after')\nans = 3\n",
    "class A(metaclass=print):\n    pass\nans = A\n",
    # attribute stores where they could reach a builtin exception's own C fields: in the zygote a
    # UnicodeDecodeError whose object is a list read heap bytes past it into its message, and an
    # OSError's str() formatted a filename its errno's __str__ had freed
    "def f():\n    try:\n        b'\\xff'.decode('ascii')\n    except ValueError as e:\n        e.note = 1\n"
    "        return str(e)[:22]\nans = f()\n",
    "e = OSError(2, 'gone')\ne.filename = 'a.txt'\nans = str(e)\n",
]


def test_what_c_code_calls_back_runs_forked_with_the_same_label():
    got = {}
    for fast in (True, False):
        with SandboxPool(workers=1, timeout=10.0, fast_path=fast) as pool:
            got[fast] = _paths(pool, list(enumerate(CALLED_BACK)))
    assert all(forked for _, forked in got[True].values()), got[True]
    assert {k: v[0] for k, v in got[True].items()} == {k: v[0] for k, v in got[False].items()}
    assert [v[0][:4] for v in got[True].values()] == [
        ("ok", None, "list", "[2, 5, True]"), ("ok", 1, "int", None), ("ok", None, "list", "[3, 6]"),
        ("ok", 20, "int", None), ("ok", 4329, "int", None), ("ok", None, "list", "[1, 3]"),
        ("ok", "xy", "str", None), ("ok", 3, "int", None), ("no_answer", None, None, None),
        ("ok", "'ascii' codec can't de", "str", None), ("ok", "[Errno 2] gone: 'a.txt'", "str", None)]
    assert got[True][7][0][6] == "after\n"
    assert got[True][8][0][6] == "A () {'__module__': '__main__', '__qualname__': 'A'}\n"


def test_the_recursion_budget_does_not_depend_on_how_many_programs_ran_before():
    # a plain call to a builtin (the worker's exec) cost one level until the worker's own code
    # was specialized, after about eight programs: the ninth program on the fast path had one
    # frame more than the first, and than the forked path (998 -> 999)
    deepest = "def f(n):\n    try:\n        return f(n + 1)\n    except RecursionError:\n        return n\nans = f(0)\n"
    got = {}
    for fast in (True, False):
        with SandboxPool(workers=1, timeout=10.0, fast_path=fast) as pool:
            first = [r.value for _, r in pool.map([(0, deepest)])]
            warm = dict(pool.map([(i, f"ans = {i}\n") for i in range(1, 13)]))
            got[fast] = first + [r.value for _, r in pool.map([(13, deepest)])]
            assert [r.value for r in warm.values()] == list(range(1, 13))
    assert got[True] == got[False] and got[True][0] == got[True][1] > 900, got


# str.format looks attributes and items up by names inside its format string, where no name check
# sees them: the fast path admits it only on a string constant whose fields name neither
FORMAT_FAST = "def solution():\n    x = 3.14159\n    print('{:.2f} and {} and {name!r}'.format(x, 2, name='n'))\n" \
              "    return float(format(x, '.3f'))\n"
FORMAT_FORKED = [
    "def solution():\n    return '{0.real}'.format(5)\n",  # an attribute
    "def solution():\n    return '{0[0]}'.format([7])\n",  # an item
    "def solution():\n    s = '{}'\n    return s.format(4)\n",  # not a constant where it is called
    "def solution(c=True):\n    return ('{0.real}' if c else '{}').format(5)\n",  # a constant from another branch
    "def solution():\n    return '{:{}}'.format(5, 3)\n",  # a field nested in a spec
    "def solution():\n    return str.format('{0.imag}', 5)\n",
    # malformed after the field: str.format looks the field up before it raises, and on the fast path
    # __main__ is the worker's own module
    "def solution():\n    try:\n        '{0.__self__.__loader__.find_spec.__func__.__globals__[sys].modules"
    "[__main__].FAST_PATH}{'.format(print)\n    except ValueError:\n        return 'the worker'\n"
    "    except AttributeError:\n        return 'no such name'\n",
]


def test_str_format_runs_in_the_zygote_only_on_a_constant_with_plain_fields():
    items = [("fast", FORMAT_FAST)] + list(enumerate(FORMAT_FORKED))
    got = {}
    for fast in (True, False):
        with SandboxPool(workers=1, timeout=10.0, fast_path=fast) as pool:
            got[fast] = _paths(pool, items)
    assert {k: v[0] for k, v in got[True].items()} == {k: v[0] for k, v in got[False].items()}
    assert [k for k, (_, forked) in got[True].items() if not forked] == ["fast"]
    assert got[True]["fast"][0][:2] == ("ok", 3.142) and got[True]["fast"][0][6] == "3.14 and 2 and 'n'\n"
    assert [v[0][1] for k, v in got[True].items() if k != "fast"] == ["5", "7", "4", "5", "  5", "0", "no such name"]


def test_the_cpu_a_worker_spends_handing_programs_to_a_zygote_never_times_a_program_out():
    # the worker's CPU limit was armed by a fast-path program only; compiling the numpy programs
    # it handed to the numpy zygote (0.1 s each here) used that limit up, SIGXCPU killed the
    # worker, and a program then running alone on it was labeled `timeout`
    body = "".join(f"    x{i} = x{i - 1} * 3 + {i} if x{i - 1} < {i} else x{i - 1} - 1\n" for i in range(1, 6000))
    numpy_program = f"import numpy as np\ndef unused():\n    x0 = 1\n{body}    return 0\nans = int(np.int64(7))\n"
    with SandboxPool(workers=1, timeout=0.25) as pool:
        res = dict(pool.map(enumerate([numpy_program, ORDINARY[0]] + [numpy_program] * 30)))
        stats = pool.stats
    assert [r.status for r in res.values()] == ["ok"] * 32 and res[2].value == 7
    assert stats["spawned"] == 1 and stats["suspects"] == 0, stats  # no worker died


# Ways past the name check found by an attacker review: a name the program builds at run time
# and hands to code that looks it up with the real getattr, or a string typing evaluates
PAST_THE_NAME_CHECK = {
    "a str subclass equal to a forbidden name only after the check": prog("""
        class S(str):
            n = [0]
            def __hash__(self):
                return str.__hash__(self)
            def __eq__(self, other):
                self.n[0] += 1
                return self.n[0] > 1 and str.__eq__(self, other)
        def f():
            pass
        def solution():
            return len(getattr(f, S("__glo" + "bals__")))
        """),
    "functools.update_wrapper with a built name": prog("""
        import functools, statistics
        def w():
            pass
        g = "__glo"
        functools.update_wrapper(w, statistics.mean, assigned=(), updated=(g + "bals__",))
        def solution():
            return 1
        """),
    "an annotation typing.get_type_hints evaluates": prog("""
        import typing
        def f(x: "[c for c in ().__class__.__base__.__subclasses__()][0]"):
            pass
        def solution():
            return str(typing.get_type_hints(f)["x"])
        """),
    "operator.attrgetter with a built name": prog("""
        import operator
        def f():
            pass
        def solution():
            return len(operator.attrgetter("__glo" + "bals__")(f))
        """),
    "operator.methodcaller with a built name": prog("""
        from operator import methodcaller
        def f():
            pass
        def solution():
            return methodcaller("__redu" + "ce__")(f)
        """),
    "string.Formatter, which looks fields up by name": prog("""
        from string import Formatter
        def solution():
            return Formatter().format("{0.real}", 5)
        """),
    "an annotation functools.singledispatch evaluates": prog("""
        import functools
        @functools.singledispatch
        def f(x):
            return 0
        @f.register
        def _(x: "().__class__"):
            return 1
        def solution():
            return f(3)
        """),
}
# ... and the same libraries used as teachers use them
THE_SAME_LIBRARIES_ORDINARILY = [
    (prog("""
        import functools
        def twice(fn):
            @functools.wraps(fn)
            def inner(*a):
                return fn(*a) * 2
            return inner
        @twice
        def half(x):
            return x / 2
        def solution():
            return half(42) + len(half.__name__)
        """), 46),
    (prog("""
        import typing
        from dataclasses import dataclass
        @dataclass
        class P:
            n: "int"
            m: typing.List["float"]
        def solution():
            return len(typing.get_type_hints(P)) + P(3, [1.0]).n + len(repr(P(1, [])))
        """), 17),
    (prog("""
        import functools
        @functools.singledispatch
        def f(x):
            return 0
        @f.register
        def _(x: int):
            return 7
        def solution():
            return f(3) + f(2.0)
        """), 7),
    (prog("""
        from operator import attrgetter, methodcaller
        class Item:
            def __init__(self, price):
                self.price = price
        def solution():
            items = sorted([Item(3), Item(1), Item(2)], key=attrgetter("price"))
            return items[-1].price + len(methodcaller("split", ",")("a,b,c"))
        """), 6),
    (prog("""
        from string import Template
        def solution():
            return len(Template("$n apples").substitute(n=5))
        """), 8),
]


def test_names_a_program_builds_or_has_evaluated_are_checked_as_its_own():
    programs = list(PAST_THE_NAME_CHECK.values()) + [p for p, _ in THE_SAME_LIBRARIES_ORDINARILY]
    with SandboxPool(workers=1, timeout=5.0) as pool:
        res = dict(pool.map(enumerate(programs)))
    for i, what in enumerate(PAST_THE_NAME_CHECK):
        assert res[i].status == "forbidden", (what, res[i])
    n = len(PAST_THE_NAME_CHECK)
    assert [(res[n + i].status, res[n + i].value) for i in range(len(THE_SAME_LIBRARIES_ORDINARILY))] == \
        [("ok", value) for _, value in THE_SAME_LIBRARIES_ORDINARILY]


def test_a_package_imported_and_never_used_takes_one_path_whatever_ran_before():
    # the fast path admits `import numpy as np` left unused once numpy is loaded: a program first
    # in its worker ran forked (its import made the worker load numpy), and after any numpy
    # program on the fast path, where its time is counted differently near its timeout
    unused = "import numpy as np\ndef solution():\n    return sum(range(1000))\n"
    with SandboxPool(workers=1, timeout=5.0) as first:
        alone = _paths(first, [("p", unused)])["p"]
    with SandboxPool(workers=1, timeout=5.0) as later:
        after = _paths(later, [("n", "import numpy as np\nans = int(np.int64(3))\n"), ("p", unused)])["p"]
    assert alone == after and alone[0][:2] == ("ok", 499500) and not alone[1]  # the fast path, both times


def test_memory_an_earlier_program_freed_is_no_room_for_a_later_one():
    # glibc raised its thresholds after the first program's 30 MiB block and kept the 50 MB it
    # then freed mapped: the next program (forked, its limit counted from the mapped size) had
    # that much more room, and a program over its limit alone was `ok` after it
    frees = ("def solution():\n    s = 'x' * (30 * 2**20)\n    s = None\n"
             "    t = ['y' * 100000 for i in range(500)]\n    return len(t)\n")
    over = "def solution():\n    x = [bytes(100000) for _ in range(2700)]\n    return len(x)\n"
    # ... and the numpy zygote compiling programs with large literals kept their text's heap
    literals = [f'import numpy as np\ns = "{c * (n << 20)}"\nans = int(np.int64(len(s)))\n' for c, n in (("x", 30), ("y", 20))]
    over_numpy = ("import numpy as np\ndef solution():\n    x = [bytes(100000) for _ in range(2700)]\n"
                  "    return int(np.int64(len(x)))\n")
    got = {}
    for name, programs in (("alone", [over, over_numpy]), ("after", [frees, over, *literals, over_numpy])):
        with SandboxPool(workers=1, timeout=10.0, memory_mb=256) as pool:
            got[name] = [r.status for _, r in sorted(pool.map(enumerate(programs)))]
    assert got["alone"] == ["memory_limit", "memory_limit"]
    assert got["after"] == ["ok", "memory_limit", "ok", "ok", "memory_limit"]


def test_a_script_that_exits_after_its_answer_has_that_answer():
    # exit(), quit(0): the script ends as `python program.py` ends it (status 0), and was labeled
    # runtime_error SystemExit; a non-zero status, or an exit inside solution(), is still an error
    programs = ["ans = 42\nprint(ans)\nexit(False)\n", "def solution():\n    return 7\nprint(solution())\nquit(0)\n",
                "ans = 1\nexit(3)\n", "def solution():\n    exit()\n"]
    with SandboxPool(workers=1, timeout=5.0) as pool:
        got = [(r.status, r.value, r.error_type) for _, r in sorted(pool.map(enumerate(programs)))]
    assert got == [("ok", 42, None), ("ok", 7, None), ("runtime_error", None, "SystemExit"),
                   ("runtime_error", None, "SystemExit")]


def test_a_script_that_calls_its_solution_itself_has_the_value_of_that_call():
    # print(solution()), a __main__ block, ans = solution(12): pad called solution() again after the
    # module ran, so module state changed twice, a seeded draw came second, a function needing an
    # argument failed, and the time doubled (a label audit of teacher-style programs)
    programs = {
        "items = []\ndef solution():\n    items.append(3)\n    items.append(4)\n    return sum(items)\n"
        "if __name__ == '__main__':\n    print(solution())\n": ("ok", 7, "7\n"),
        "import random\nrandom.seed(42)\ndef solution():\n    return random.randint(1, 100)\nprint(solution())\n":
            ("ok", 82, "82\n"),
        "def solution(n):\n    return n * 2\nans = solution(12)\n": ("ok", 24, ""),
        "def solution(n=10):\n    return 1 if n == 0 else 1 + solution(n - 1)\nprint(solution())\n": ("ok", 11, "11\n"),
        "def solution():\n    return 5\nfs = [solution]\nprint(fs[0]())\n": ("ok", 5, "5\n"),  # not a call by name
        "def solution():\n    print('working')\n    return 12\nsolution()\n": ("ok", 12, "working\n"),  # once
        "print(solution())\ndef solution():\n    return 3\n": ("runtime_error", None, ""),
    }
    for fast in (True, False):
        with SandboxPool(workers=1, timeout=5.0, fast_path=fast) as pool:
            got = dict(pool.map(enumerate(programs)))
        assert [(got[i].status, got[i].value, got[i].stdout) for i in range(len(programs))] == list(programs.values())
