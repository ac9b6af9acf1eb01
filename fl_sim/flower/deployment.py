"""``deploy``: a local Flower deployment, one SuperLink and N SuperNodes as OS processes.

:class:`LocalDeployment` starts ``flower-superlink`` and ``flower-supernode`` processes
listening on 127.0.0.1 only, in **insecure mode** (no TLS, no node authentication:
fine on one machine, never across a network; docs/flower.md says how to turn both on),
submits the run with ``flwr run`` (a generated Flower app whose components are
:mod:`fl_sim.flower.server_app` and :mod:`fl_sim.flower.client_app`, whose run config is
:func:`fl_sim.flower.run_config.to_run_config` of the config), waits for it and stops
everything it started. Every wait has a timeout; on any error, Ctrl-C or SIGTERM,
:meth:`LocalDeployment.stop` ends every process it started and their descendants
(SIGTERM, then SIGKILL after a grace period), so no port stays bound.

SuperNode ``i`` serves fl_sim clients ``k`` with ``k mod N == i`` (node config
``fl-sim-clients``). Logs go to ``<output_dir>/deploy-logs/``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import SimConfig
from ..federated_data import data_from_config
from ..history import History
from .ledger import FlowerLedger
from .protocols import check_runnable
from .run_config import FlowerOptions, to_run_config
from .server_app import output_paths, read_outputs

__all__ = ["LocalDeployment", "deploy", "free_port", "port_is_free"]

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``127.0.0.1:port`` now (as servers do, with
    ``SO_REUSEADDR``: connections of a stopped server in TIME_WAIT do not hold it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def _stat(pid: int) -> tuple[int, int, str] | None:
    """``(ppid, start time, state)`` of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[19]), fields[0]


def alive(pid: int, start: int | None = None) -> bool:
    """Whether process ``pid`` (started at ``start``, if given) still runs (zombies do not)."""
    if not os.path.isdir("/proc"):  # no /proc: ask the kernel (a zombie counts as alive)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    st = _stat(pid)
    return st is not None and st[2] != "Z" and (start is None or st[1] == start)


def _descendants(roots: set[int]) -> dict[int, int]:
    """pid -> start time of every live descendant of ``roots`` (Linux ``/proc``; elsewhere
    none are found, and :meth:`LocalDeployment.stop` relies on process groups)."""
    children: dict[int, list[tuple[int, int]]] = {}
    if not os.path.isdir("/proc"):
        return {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append((int(entry), st[1]))
    out: dict[int, int] = {}
    todo = list(roots)
    while todo:
        for pid, start in children.get(todo.pop(), []):
            if pid not in out:
                out[pid] = start
                todo.append(pid)
    return out


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log: Path


class LocalDeployment:
    """One SuperLink and ``supernodes`` SuperNodes on 127.0.0.1; a context manager.

    Parameters
    ----------
    supernodes : int
        Number of SuperNode processes.
    num_clients : int
        fl_sim clients; node ``i`` serves clients ``k`` with ``k mod supernodes == i``.
    log_dir : Path
        Where each process's output goes.
    startup_timeout : float
        Seconds to wait for each process to listen.
    """

    def __init__(self, supernodes: int, num_clients: int, log_dir: Path,
                 startup_timeout: float = 120.0) -> None:
        if supernodes < 1:
            raise ValueError(f"supernodes: must be >= 1, got {supernodes}")
        if supernodes > num_clients:
            raise ValueError(f"supernodes: {supernodes} SuperNodes for {num_clients} clients; "
                             f"each SuperNode serves at least one client")
        self.supernodes, self.num_clients = supernodes, num_clients
        self.log_dir, self.startup_timeout = Path(log_dir), startup_timeout
        self.procs: list[_Proc] = []
        self.seen: dict[int, int | None] = {}  # pid -> start time, started or spawned
        self.ports: list[int] = []
        self.home = Path(tempfile.mkdtemp(prefix="fl_sim_flower_"))
        self.env = dict(os.environ, FLWR_HOME=str(self.home),
                        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        self.superlink_port = 0

    # ---- processes ------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return str(Path(sys.executable).parent / name)

    def _spawn(self, name: str, args: list[str]) -> _Proc:
        log = self.log_dir / f"{name}.log"
        with log.open("w") as fh:
            popen = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     start_new_session=True)
        proc = _Proc(name, popen, log)
        self.procs.append(proc)
        st = _stat(popen.pid)
        self.seen[popen.pid] = st[1] if st is not None else None
        return proc

    def _wait_listening(self, proc: _Proc, port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not _listening(port):
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name}: exited with code {proc.popen.returncode} "
                                   f"before listening on {HOST}:{port} (see {proc.log})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{proc.name}: not listening on {HOST}:{port} after "
                                   f"{self.startup_timeout:g} s (see {proc.log})")
            time.sleep(0.2)

    def clients_of(self, node: int) -> list[int]:
        """The fl_sim clients SuperNode ``node`` serves."""
        return [k for k in range(self.num_clients) if k % self.supernodes == node]

    def start(self) -> LocalDeployment:
        """Start the SuperLink, then the SuperNodes; return when all listen."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text("")
        self.superlink_port = free_port()
        self.ports.append(self.superlink_port)
        link = self._spawn("superlink", [
            self._bin("flower-superlink"), "--insecure", "--host", HOST,
            "--port", str(self.superlink_port), "--disable-runtime-dependency-installation"])
        self._wait_listening(link, self.superlink_port)
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "local"\n\n[superlink.local]\n'
            f'address = "{HOST}:{self.superlink_port}"\ninsecure = true\n')
        nodes = []
        for i in range(self.supernodes):
            port = free_port()
            self.ports.append(port)
            clients = ",".join(str(k) for k in self.clients_of(i))
            nodes.append((self._spawn(f"supernode-{i}", [
                self._bin("flower-supernode"), "--insecure",
                "--superlink", f"{HOST}:{self.superlink_port}", "--host", HOST,
                "--port", str(port), "--max-wait-time", str(self.startup_timeout),
                "--node-config", f'fl-sim-clients="{clients}"']), port))
        for proc, port in nodes:
            self._wait_listening(proc, port)
        return self

    def supernode(self, i: int) -> _Proc:
        """SuperNode ``i``'s process record."""
        return next(p for p in self.procs if p.name == f"supernode-{i}")

    def kill_supernode(self, i: int) -> None:
        """SIGKILL SuperNode ``i`` and its descendants (a node failure, for drills and tests)."""
        proc = self.supernode(i)
        tree = {proc.popen.pid: self.seen.get(proc.popen.pid, 0)}
        tree.update(_descendants({proc.popen.pid}))
        self.seen.update(tree)
        for pid, start in tree.items():
            if alive(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _track(self) -> None:
        roots = {p.popen.pid for p in self.procs}
        self.seen.update(_descendants(roots | set(self.seen)))

    def _signal_groups(self, sig: int) -> None:
        """``sig`` to the process group of each process started (each leads its own)."""
        for proc in self.procs:
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.popen.pid, sig)

    def stop(self, grace: float = 10.0) -> None:
        """End every process started (and each one it spawned): SIGTERM, then SIGKILL."""
        self._track()
        for pid, start in self.seen.items():
            if alive(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        self._signal_groups(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(alive(p, s) for p, s in self.seen.items()):
            for proc in self.procs:
                proc.popen.poll()
            time.sleep(0.1)
        for pid, start in self.seen.items():
            if alive(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._signal_groups(signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=grace)
        with contextlib.suppress(OSError):
            for f in sorted(self.home.rglob("*"), reverse=True):
                f.unlink() if not f.is_dir() or f.is_symlink() else f.rmdir()
            self.home.rmdir()

    def all_exited(self) -> bool:
        """Whether no process this deployment started or saw spawned still runs."""
        return not any(alive(p, s) for p, s in self.seen.items())

    def __enter__(self) -> LocalDeployment:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- the run ----------------------------------------------------------------------
    def run(self, config: SimConfig, options: FlowerOptions, timeout: float,
            on_progress: Callable[[LocalDeployment], None] | None = None) -> None:
        """Submit ``config`` with ``flwr run --stream`` and wait for it to finish.

        Parameters
        ----------
        config, options
            The run; they travel as the app's run config.
        timeout : float
            Seconds for the whole run; past it the run is abandoned with an error.
        on_progress : callable, optional
            Called with this deployment about every 0.2 s while the run goes on.
        """
        import tomli_w

        app_dir = self.home / "app"
        app_dir.mkdir(exist_ok=True)
        (app_dir / "pyproject.toml").write_text(tomli_w.dumps({
            "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
            "project": {"name": "fl-sim-flower", "version": "1.0.0", "dependencies": []},
            "tool": {"flwr": {"app": {
                "publisher": "fl-sim",
                "components": {"serverapp": "fl_sim.flower.server_app:app",
                               "clientapp": "fl_sim.flower.client_app:app"},
                "config": to_run_config(config, options)}}}}))
        runner = self._spawn("flwr-run", [self._bin("flwr"), "run", str(app_dir), "local",
                                          "--stream"])
        deadline = time.monotonic() + timeout
        while runner.popen.poll() is None:
            self._track()
            if on_progress is not None:
                on_progress(self)
            if time.monotonic() > deadline:
                raise TimeoutError(f"flwr run: not finished after {timeout:g} s "
                                   f"(see {runner.log})")
            time.sleep(0.2)
        if runner.popen.returncode != 0:
            raise RuntimeError(f"flwr run: exited with code {runner.popen.returncode} "
                               f"(see {runner.log})")


def _raise_interrupt(signum, frame):  # SIGTERM -> the same clean-up as Ctrl-C
    raise KeyboardInterrupt(f"signal {signum}")


def deploy(config: SimConfig, options: FlowerOptions | None = None, *, supernodes: int,
           startup_timeout: float = 120.0,
           on_progress: Callable[[LocalDeployment], None] | None = None,
           deployment: list | None = None) -> tuple[History, FlowerLedger]:
    """Run ``config`` on a local deployment of one SuperLink and ``supernodes`` SuperNodes.

    Parameters
    ----------
    config : SimConfig
        The run; ``output_dir`` receives ``<algorithm>.history.json``,
        ``<algorithm>.flower.json`` and ``deploy-logs/``.
    options : FlowerOptions, optional
        Round timeout and minimum replies.
    supernodes : int
        SuperNode processes (at most ``num_clients``).
    startup_timeout : float
        Seconds to wait for each process to listen.
    on_progress : callable, optional
        Called with the :class:`LocalDeployment` while the run goes on.
    deployment : list, optional
        If given, the :class:`LocalDeployment` is appended (to check its processes after).

    Returns
    -------
    (History, FlowerLedger)
        A run that stopped early raises ``RuntimeError`` with the one-line error.
    """
    options = options or FlowerOptions()
    check_runnable(config)  # before any process starts
    history_path, ledger_path = output_paths(config)
    for path in (history_path, ledger_path):
        path.unlink(missing_ok=True)
    num_clients = data_from_config(config).num_clients
    timeout = (2 * startup_timeout + options.connect_timeout
               + config.rounds * (options.round_timeout + 60.0))
    local = LocalDeployment(supernodes, num_clients, history_path.parent / "deploy-logs",
                            startup_timeout)
    if deployment is not None:
        deployment.append(local)
    previous = None
    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with local:
            local.run(config, options, timeout, on_progress)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return read_outputs(config, f"{local.log_dir}/flwr-run.log")
