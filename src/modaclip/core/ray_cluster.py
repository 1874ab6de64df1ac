"""The Ray cluster that the `ray` engines of caption and embed run on (params.yaml `ray`).

Ray is an optional extra (`pip install -e '.[ray]'`), imported only when a ray engine runs. A
cluster that cannot be reached is reported in one line naming the address, within seconds: Ray
itself retries an unreachable head node for minutes. A ModaclipError raised inside a Ray task (a
bad row, say) reaches the driver as text inside Ray's error and is raised there again as ours.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from modaclip.core.config import RayParams
from modaclip.core.errors import ModaclipError

log = logging.getLogger(__name__)
REACH_TIMEOUT_S = 5.0
MB = 1024**2
_OUR_ERROR_IN_TASK = re.compile(r"modaclip\.core\.errors\.ModaclipError: (.+)")


def import_ray() -> ModuleType:
    """The `ray` module, or one line saying how to install it."""
    try:
        import ray
    except ModuleNotFoundError as err:
        raise ModaclipError("an engine of ray needs Ray installed: pip install -e '.[ray]'") from err
    return ray


@contextmanager
def ray_session(params: RayParams) -> Iterator[ModuleType]:
    """Yield `ray` connected to the cluster `params` names, and disconnect at the end.

    A process already connected (a test module's instance, a notebook) keeps its own session.
    """
    ray = import_ray()
    if ray.is_initialized():
        with _our_errors_from_tasks():
            yield ray
        return
    _connect(ray, params)
    try:
        with _our_errors_from_tasks():
            yield ray
    finally:
        ray.shutdown()


@contextmanager
def _our_errors_from_tasks() -> Iterator[None]:
    try:
        yield
    except ModaclipError:
        raise
    except Exception as err:
        ours = _OUR_ERROR_IN_TASK.search(str(err))
        if ours is None:
            raise
        raise ModaclipError(ours.group(1).strip()) from err


def _connect(ray: ModuleType, params: RayParams) -> None:
    if params.address == "local":
        log.info("starting a local Ray instance")
        ray.init(
            address="local",
            num_cpus=params.num_cpus or None,
            object_store_memory=params.object_store_mb * MB or None,
            include_dashboard=False,
        )
        return
    if params.address != "auto":
        _check_reachable(params.address)
    log.info("joining the Ray cluster at %s", params.address)
    try:
        ray.init(address=params.address)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as err:
        raise ModaclipError(f"ray.address {params.address!r}: cannot join a Ray cluster: {_first_line(err)}") from err


def _check_reachable(address: str) -> None:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except OSError as err:
        raise ModaclipError(f"ray.address {address!r}: no Ray cluster reachable there ({_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
