"""Join a Ray cluster, or start a private local instance, and check its resources.

With ``resources.address`` unset, a study starts its own Ray instance (``address="local"``), so it
never joins a cluster that happens to run on this machine. With an address (or ``auto``), the
driver checks within 10 seconds that a Ray cluster answers there, sends Ray's auth token when one
is set up (Ray 2.60 turns token authentication on for ``ray start`` clusters), and joins it. Every
problem is a one-line :class:`ClusterError`, never a hang. With :mod:`.ray_tune`, the only module
that imports Ray.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rcl_study.config import ConfigError, StudyFile

os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import ray  # noqa: E402
from ray._private import ray_constants  # noqa: E402


class ClusterError(RuntimeError):
    """The Ray cluster cannot be reached or lacks the resources a trial needs."""


def _check_address(address: str, timeout: float = 10.0) -> None:
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=timeout):
            pass
    except (OSError, ValueError) as err:
        raise ClusterError(
            f"resources.address: Ray cluster at '{address}' does not answer "
            f"({err}); start it with 'ray start --head' or remove the key"
        ) from None


def _resolve_address(address: str) -> str:
    """``host:port`` of ``resources.address``.

    ``auto``: ``RAY_ADDRESS``, else the cluster that ``ray start`` last started on this machine
    (never another driver's private instance).
    """
    if address != "auto":
        return address.split("://", 1)[-1]
    env = os.environ.get("RAY_ADDRESS")
    if env and env not in ("auto", "local"):
        return env.split("://", 1)[-1]
    from ray._private import services

    found = services.find_bootstrap_address(None)
    if not found or found not in services.find_gcs_addresses():
        raise ClusterError(
            "resources.address: 'auto' found no Ray cluster started with 'ray start' on this "
            "machine; start one with 'ray start --head' or remove the key"
        )
    return found


def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return os.path.isfile(path)


def _use_cluster_token() -> None:
    """Send Ray's auth token when joining a cluster, as ``ray start`` does when one exists.

    Ray 2.60 turns token authentication on for ``ray start`` clusters when a token is found
    (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), but a driver that
    names an explicit address does not send it unless ``RAY_AUTH_MODE=token``. With the mode
    unset and a token present, this sets it (an explicit ``RAY_AUTH_MODE`` is respected).
    """
    if "RAY_AUTH_MODE" in os.environ or not _token_available():
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    try:
        from ray._raylet import Config

        Config.initialize("")  # this process reads the mode again
    except Exception:  # noqa: BLE001 - older Ray: the variable alone is read at connect
        pass


_PROBE = """
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1]).internal_kv_get(b"rcl_study_probe", None, timeout=5)
except Exception as err:
    print(f"{type(err).__name__}: {err}".splitlines()[0][:300])
    sys.exit(1)
"""


def _probe_cluster(hostport: str, timeout: float = 10.0) -> None:
    """Check in a child process, within ``timeout`` seconds, that a Ray GCS answers there."""
    env = {**os.environ, "RAY_gcs_rpc_server_connect_timeout_s": "5"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, hostport],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise ClusterError(
            f"resources.address: '{hostport}' accepts connections but no Ray cluster answered "
            f"within {timeout:g}s; check the address (ray start prints it)"
        ) from None
    if proc.returncode != 0:
        why = proc.stdout.strip() or proc.stderr.strip().splitlines()[-1:] or ["no answer"]
        why = why if isinstance(why, str) else why[0]
        raise ClusterError(
            f"resources.address: the Ray cluster at '{hostport}' refused this driver ({why}); "
            "for a token-authenticated cluster set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to its "
            "token (ray get-auth-token on the head prints it)"
        )


@contextmanager
def _sigterm_handling_kept() -> Iterator[None]:
    """Keep SIGTERM's handling set from Python (a handler, or ignored) across Ray's start and stop.

    ``ray.init`` replaces it with its own (exit), so a ``kill`` or a batch system's SIGTERM would
    not stop the study as Ctrl-C does (the command line's handler), or would stop a process that
    asked to ignore it: it is set back once ``ray.init`` returns. And the driver's core worker
    would install Ray's C++ crash handler, which covers SIGTERM and, when Ray stops, sets the
    signals it covered back to the system's default behind Python's back, so that a batch
    system's second SIGTERM would kill the driver while Ray stops or the report is written: the
    core worker of this process starts without it. (Ray's switch for that,
    ``RAY_DISABLE_FAILURE_SIGNAL_HANDLER``, is read from the environment at import and consulted
    when the driver connects, so it is set on the module while ``ray.init`` runs; the workers
    keep their crash handler.) The cost: a crash in the driver's own Ray C++ code writes no stack
    trace from Ray. With the system's default, Ray's handling is left as it is.
    """
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    kept = callable(handler) or handler == signal.SIG_IGN
    switch = ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER
    if kept:
        ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
    try:
        yield
    finally:
        ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = switch
        if kept:
            signal.signal(signal.SIGTERM, handler)


def connect(cfg: StudyFile) -> None:
    """Join ``resources.address`` or start a private local Ray instance; check resources.

    A local run always starts its own instance (``address="local"``), so it never joins a
    cluster that happens to run on this machine. Joining passes Ray's auth token through
    (:func:`_use_cluster_token`) and is checked within 10 seconds first, so a wrong address is
    a one-line :class:`ClusterError`, never a hang. SIGTERM's handling set from Python is kept
    (:func:`_sigterm_handling_kept`); where the caller started Ray itself, it is the caller's.
    """
    res = cfg.resources
    _finish_stopping()  # an instance still stopping is gone before another starts
    if ray.is_initialized():
        return
    if res.address and res.address != "local":
        _check_address(res.address)
        hostport = _resolve_address(res.address)
        _use_cluster_token()
        _probe_cluster(hostport)
        try:
            with _sigterm_handling_kept():
                ray.init(address=hostport, log_to_driver=False)
        except (ConnectionError, RuntimeError, ray.exceptions.RayError) as err:
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ClusterError(f"resources.address: cannot join '{hostport}': {msg}") from None
    else:
        try:
            with _sigterm_handling_kept():
                ray.init(
                    address="local",
                    num_cpus=os.cpu_count(),
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
        except Exception as err:  # noqa: BLE001 - Ray's start failing (an overloaded machine)
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ClusterError(f"a private Ray instance did not start: {msg}") from None
    cluster = ray.cluster_resources()
    why = res.shortfall(cluster.get("CPU", 0), cluster.get("GPU", 0), "the Ray cluster")
    if why:
        ray.shutdown()
        raise ConfigError(f"{cfg.name}: {why}")


_stopping: list[threading.Thread] = []  # a stop still under way (disconnect(wait=False))


def _stop() -> None:
    try:
        ray.shutdown()
    except Exception as err:  # noqa: BLE001 - Ray's processes are reaped when this process exits
        print(f"note: ray: stopping the instance: {err}", file=sys.stderr)


def _finish_stopping() -> None:
    while _stopping:
        _stopping.pop().join()


def disconnect(wait: bool = True) -> None:
    """Stop the Ray instance this process started or joined.

    ``wait=False``: stop it in a thread and return at once. The stop is mostly waiting (about
    1.4 s on a 2-core machine) for Ray's processes to exit, so a report can be built meanwhile.
    The next :func:`connect` or :func:`disconnect` waits for it to end, and so does the
    interpreter's exit (the thread is not a daemon); ``ray.shutdown`` holds Ray's own
    connect-or-shutdown lock, so Ray's shutdown at exit, should it run early, waits for this one.
    While it stops, a reference to a Ray object freed in this process ends it (Ray's shut core
    worker exits): garbage is collected before the thread starts, and the references Tune keeps
    (its registry's) live until the interpreter's exit, which waits for the stop.
    """
    _finish_stopping()
    if not ray.is_initialized():
        return
    if wait:
        _stop()
        return
    # Ray's references left in garbage cycles (Tune's trials and actors) are freed now, while
    # Ray runs: freed by a collection in this thread while the other stops Ray, one would call
    # into Ray's shut core worker, which ends the process
    gc.collect()
    thread = threading.Thread(target=_stop, name="rcl_study-ray-stop")
    _stopping.append(thread)
    thread.start()
