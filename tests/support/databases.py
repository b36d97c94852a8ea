"""Real database servers for the client instrumentation tests: redis-server and PostgreSQL
from Debian's packages (scripts/test installs them; a missing one is installed here too),
each started on a free 127.0.0.1 port in a temporary directory and always stopped.

Import the fixtures into a test module: `from support.databases import postgres, redis`."""

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from support.processes import free_port


def _ensure_debian_package(program, package):
    if shutil.which(program) is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", package],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def _wait_port(port, process, deadline=30.0):
    end = time.monotonic() + deadline
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"server on port {port} did not start: {process.communicate()}") from None
            time.sleep(0.1)


def _stop(process):
    """SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def redis(tmp_path_factory):
    """`(host, port)` of a redis-server of this session."""
    _ensure_debian_package("redis-server", "redis-server")
    directory = tmp_path_factory.mktemp("redis")
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(directory)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_port(port, process)
        yield ("127.0.0.1", port)
    finally:
        _stop(process)


def _postgres_bin(program):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    return found[-1] if found else program


@pytest.fixture(scope="session")
def postgres():
    """A libpq connection string (user postgres, trust auth) to a PostgreSQL server of this
    session. PostgreSQL refuses to run as root: the server runs as the `postgres` user the
    package creates."""
    _ensure_debian_package("pg_ctlcluster", "postgresql")
    # Not under pytest's temporary root: that is private to root, and the server's user
    # must reach its directory.
    directory = Path(tempfile.mkdtemp(prefix="ferrotel-postgres-"))
    data, sockets = directory / "data", directory / "sockets"
    sockets.mkdir()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(directory, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run(
        [*as_postgres, _postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = [_postgres_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets)]
    server += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
    process = subprocess.Popen(
        [*as_postgres, *server], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        _wait_port(port, process)
        yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    finally:
        _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """`(host, port)` of one node of a redis cluster of three masters of this session
    (`redis-cli --cluster create` assigns the slots)."""
    _ensure_debian_package("redis-server", "redis-server")
    directory = tmp_path_factory.mktemp("redis-cluster")
    processes, ports = [], []
    try:
        for index in range(3):
            node = directory / str(index)
            node.mkdir()
            # The cluster bus gets its own free port: the default, port + 10000, may not exist.
            port, bus = free_port(), free_port()
            command = ["redis-server", "--port", str(port), "--cluster-port", str(bus), "--bind", "127.0.0.1"]
            command += ["--cluster-enabled", "yes", "--cluster-config-file", str(node / "nodes.conf")]
            command += ["--save", "", "--appendonly", "no", "--dir", str(node)]
            processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            )
            ports.append(port)
        for port, process in zip(ports, processes, strict=True):
            _wait_port(port, process)
        nodes = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-yes"], check=True, capture_output=True, timeout=60
        )
        end = time.monotonic() + 30
        while any(_cluster_state(port) != "ok" for port in ports):
            if time.monotonic() > end:
                raise RuntimeError("the redis cluster did not reach state ok")
            time.sleep(0.2)
        yield ("127.0.0.1", ports[0])
    finally:
        for process in processes:
            _stop(process)


def _cluster_state(port):
    info = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True).stdout
    return next((line.split(":")[1].strip() for line in info.splitlines() if line.startswith("cluster_state:")), "")


def fresh_database(dsn, name):
    """Makes `name` an empty database on the server of `dsn` (dropped first if it exists);
    returns the libpq connection string for it."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return " ".join(f"dbname={name}" if part.startswith("dbname=") else part for part in dsn.split())
