"""Reload the config file (SIGUSR1): validate it whole, then swap the runtime or keep the old."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nullmx_milter.config import load_config
from nullmx_milter.errors import ConfigError
from nullmx_milter.metrics import Metrics
from nullmx_milter.runtime import (
    RuntimeHolder,
    build_runtime,
    in_force,
    settings_needing_restart,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    """What the status report says about reloads."""

    # The reason and Unix time of the newest failed reload, if any.
    last_failure: str | None = None
    last_failure_at: float | None = None
    # Dotted keys changed in the file that only a restart applies.
    needs_restart: tuple[str, ...] = ()


class ConfigReloader:
    """Re-reads the file the daemon was started with. Reloads run one at a time (from the
    signal thread); the status report reads `status` from other threads."""

    def __init__(
        self,
        path: Path | None,
        runtimes: RuntimeHolder,
        metrics: Metrics,
        apply_log_level: Callable[[str], None],
    ) -> None:
        self._path = path
        self._runtimes = runtimes
        self._metrics = metrics
        self._apply_log_level = apply_log_level
        self.status = ReloadStatus()

    def reload(self) -> bool:
        """Load, check and swap in the config file; False (config in force kept) on error."""
        started = time.time()
        if self._path is None:
            return self._failed(started, "no config file: the daemon runs on embedded defaults")
        try:
            loaded = load_config(self._path)
        except ConfigError as error:
            return self._failed(started, str(error))
        running = self._runtimes.current
        restart = settings_needing_restart(running.config, loaded)
        try:
            runtime = build_runtime(
                in_force(running.config, loaded),
                self._metrics,
                previous=running,
                config_path=self._path,
            )
        except Exception as error:  # noqa: BLE001 - a failed build must leave the milter running
            return self._failed(started, f"cannot build the new config: {error}")
        self._runtimes.current = runtime
        self._apply_log_level(runtime.config.log.level)
        self.status = dataclasses.replace(self.status, needs_restart=restart)
        self._metrics.count_reload(succeeded=True, unix_time=runtime.loaded_at)
        log.info(
            "reloaded config=%s mode=%s on_dns_error=%s nameservers=%s needs_restart=%s",
            self._path,
            runtime.config.policy.mode.value,
            runtime.config.policy.on_dns_error.value,
            ",".join(runtime.nameservers) or "-",
            ",".join(restart) or "-",
        )
        for key in restart:
            log.warning("reload: %s changed but needs a restart; the running value stays", key)
        return True

    def _failed(self, when: float, reason: str) -> bool:
        log.error("reload failed, the running config stays in force: %s", reason)
        self.status = dataclasses.replace(self.status, last_failure=reason, last_failure_at=when)
        self._metrics.count_reload(succeeded=False, unix_time=when)
        return False
