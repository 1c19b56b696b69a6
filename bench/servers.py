"""Starting and stopping the servers under test, and reading their CPU and memory from /proc.

Servers run pinned to core 0 (``taskset -c 0``), the load generator to core 1. Every process is
started here and stopped here, by pid; every wait is bounded."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ms(pid: int) -> float:
    """utime + stime of a process (all its threads), in ms."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def cpu_ms_by_cmdline(needle: str) -> dict[int, float]:
    """CPU of every process whose command line contains ``needle``, by pid. PostgreSQL runs one
    backend per connection and names the database in its title
    ("postgres: postgres parley_bench_123 127.0.0.1(5555) idle"). Compare two snapshots with
    ``cpu_delta``: a backend that exits in between drops out rather than going negative."""
    found = {}
    encoded = needle.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if encoded not in f.read():
                    continue
        except OSError:
            continue
        found[int(entry)] = cpu_ms(int(entry))
    return found


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two ``cpu_ms_by_cmdline`` snapshots by the processes alive at the end."""
    return sum(ms - before.get(pid, 0.0) for pid, ms in after.items())


def machine_busy_ms() -> float:
    """CPU time spent by all cores (everything but idle and iowait), in ms."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) * 1000 / CLK_TCK


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s")


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int
    proc: subprocess.Popen | None = None
    started: list[int] = field(default_factory=list)
    root: Path = ROOT  # the tree it runs from (bench/run.py --baseline: an older commit's)

    def start(self) -> None:
        env = {**os.environ, **self.env}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            log.write(f"\n=== {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
                ["taskset", "-c", "0", *self.argv],
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(self.proc.pid)
        wait_port(self.port, self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def server_for(
    target: str, port: int, env: dict[str, str], log: Path, root: str | None = None
) -> Server:
    """argv of each target: T0 raw websockets, T1 tutorial on daphne/uvicorn, T2 Parley on its
    production server (scripts/serve), and on daphne and uvicorn's older websockets for
    comparison."""
    daphne = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "-v", "0"]
    uvicorn = [
        str(BIN / "uvicorn"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "3",
    ]
    t1_app = "bench.targets.t1_tutorial.asgi:application"
    # Parley's production command, as the README gives it.
    # PARLEY_ALLOW_INSECURE: scripts/serve refuses DEBUG or a weak key without it; the
    # benchmark runs DEBUG off with a throwaway key, so this only matters if someone flips it.
    serve = ["env", f"VENV={BIN.parent}", "PARLEY_ALLOW_INSECURE=1"]
    serve += ["bash", "scripts/serve", "--port", str(port)]
    serve += ["--log-level", "warning"]
    argv = {
        "t0": [PY, "bench/targets/t0_raw.py", "--port", str(port)],
        "t1-daphne": [*daphne, t1_app],
        "t1-uvicorn": [*uvicorn, "--ws", "websockets-sansio", t1_app],
        "t2": serve,
        "t2-pubsub": serve,  # with PARLEY_CHANNEL_LAYER=pubsub (bench/run.py)
        "t2-base": serve,  # from the --baseline commit's tree (root)
        "t2-daphne": [*daphne, "project.asgi:application"],
        "t2-uvicorn-websockets": [*uvicorn, "--ws", "websockets", "project.asgi:application"],
    }[target]
    return Server(name=target, argv=argv, env=env, log=log, port=port, root=Path(root or ROOT))
