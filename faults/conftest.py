"""Fault-suite fixtures: a private Redis, a fresh database and several uvicorn processes.

Run with `pytest -m faults` (a pytest process of its own, see scripts/run-tests.sh). Every case
prints one summary line of figures; all of them are also written to faults/results/latest.json.
Without a redis-server binary the suite is skipped locally and fails in CI.
"""

import atexit
import os
import platform
import shutil
import time

import pytest

from .checks import RESULTS, RESULTS_DIR, SUMMARY_LINES, write_results
from .harness import Cluster, FaultDatabase, PrivateRedis, find_redis_server, strict

SERVER_COUNT = 3
CLUSTER_KEY = pytest.StashKey[Cluster]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed case gets the tail of every server's log in its report."""
    report = yield
    cluster = item.config.stash.get(CLUSTER_KEY, None)
    if report.failed and cluster is not None:
        report.sections.append(("ASGI server logs (tails)", cluster.log_tails(40)))
    return report


def pytest_terminal_summary(terminalreporter):
    if SUMMARY_LINES:
        terminalreporter.section("fault figures")
        for line in SUMMARY_LINES:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"(also in {RESULTS_DIR / 'latest.json'})")


@pytest.fixture(autouse=True)
def _isolated_counters_and_media():
    """Overrides the root conftest's fixture of the same name: this process never touches a
    database, a cache or the machine's Redis; only the servers do, on their own."""
    yield


@pytest.fixture(scope="session")
def cluster(request, tmp_path_factory) -> Cluster:
    """Private Redis + fresh database (PostgreSQL from DATABASE_URL, else SQLite) + three uvicorn
    processes on free loopback ports. Torn down by pid, whatever happens."""
    binary = find_redis_server()
    if binary is None:
        message = (
            "The fault suite needs redis-server (it starts and kills a private one): "
            "apt-get install redis-server, or set REDIS_SERVER=/path/to/redis-server."
        )
        if strict():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)

    started = time.monotonic()
    workdir = tmp_path_factory.mktemp("faults")
    redis = PrivateRedis(binary, workdir)
    database = FaultDatabase(workdir)
    cluster = Cluster(redis=redis, database=database, workdir=workdir)
    request.config.stash[CLUSTER_KEY] = cluster

    def teardown() -> None:
        cluster.stop_all()
        redis.kill()
        try:
            database.drop()
        except Exception as exc:  # never mask the real failure
            print(f"could not drop {database.name}: {exc}")

    atexit.register(teardown)  # also on an interrupted run
    try:
        try:
            database.create()
        except Exception as exc:
            pytest.fail(f"Cannot create the fault database from DATABASE_URL: {exc}", pytrace=False)
        cluster.migrate()
        redis.start()
        cluster.add_servers(SERVER_COUNT)
        cluster.ensure_running()
        RESULTS["_meta"] = {
            "database": database.label,
            "channel_layer": cluster.channel_layer,
            "redis": binary,
            "servers": SERVER_COUNT,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "setup_seconds": round(time.monotonic() - started, 1),
        }
        yield cluster
    finally:
        teardown()
        atexit.unregister(teardown)
        meta = RESULTS.setdefault("_meta", {})
        meta["total_seconds"] = round(time.monotonic() - started, 1)
        meta["failed_tests"] = request.session.testsfailed
        write_results()
        if request.session.testsfailed:
            # Kept for reading after the run (faults/results/ is git-ignored).
            logs = RESULTS_DIR / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            for path in workdir.glob("*.log"):
                shutil.copyfile(path, logs / path.name)
            print(f"\nFault suite logs: {logs}")


@pytest.fixture
def servers(cluster) -> Cluster:
    """The cluster with every server running (a previous case may have killed some)."""
    if not cluster.redis.ping():
        cluster.redis.start()
    cluster.ensure_running()
    return cluster
