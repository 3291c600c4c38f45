"""The system sampler: while a run is open, a background thread publishes a `system` event every
`system_interval_s` seconds. Those events are also the run's heartbeat (`run_started.heartbeat_s`).

Each sample has host CPU % and this process's RSS (psutil), and one entry per GPU this process uses:
- which GPUs: the devices torch has memory on (or its current device), once torch has initialised CUDA;
  else those in CUDA_VISIBLE_DEVICES; else those where NVML lists this process; else none;
- memory allocated / reserved / peak (MB) from torch.cuda, total (MB) and utilisation (%) from NVML
  (`nvidia-ml-py`, optional), with torch's total as a fallback.
The GPU `index` is the physical one (as nvidia-smi numbers them) where CUDA_VISIBLE_DEVICES allows telling
it, else torch's. Every figure is read on its own: one that fails is None and the others are still sent.
torch is never imported here: only used if the training code already imported it. Nothing here raises.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from producer.notices import log
from schemas.system import GpuSample

MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuRef:
    index: int  # reported index: physical where known
    torch_index: int | None  # the device number torch knows it by, if torch uses it
    nvml_key: int | str | None  # NVML handle lookup: a physical index or a UUID


def _field(read: Callable[[], Any], scale: float = 1.0) -> float | None:
    try:
        value = read()
        return None if value is None else float(value) / scale
    except Exception:  # noqa: BLE001 - a figure the driver cannot give is None; the others still go
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class SystemSampler:
    """Samples the host and this process's GPUs; `start()` publishes through `emit` every `interval_s`."""

    def __init__(self, emit: Callable[..., Any], interval_s: float, *, nvml: Any = None, torch: Any = None,
                 environ: Mapping[str, str] | None = None):
        self.emit = emit
        self.interval_s = interval_s
        self._nvml_module = nvml  # injected in tests; else `pynvml` if installed
        self._torch = torch
        self._environ = environ if environ is not None else os.environ
        self._nvml: Any = None
        self._nvml_tried = False
        self._process: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> SystemSampler:
        self._prime()
        self._thread = threading.Thread(target=self._loop, name="epochstream-system-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.emit(**self.sample())
            except Exception as exc:  # noqa: BLE001
                log.debug("epochstream: system sample failed: %r", exc)
        self._shutdown_nvml()

    # -- one sample ------------------------------------------------------------------------------------
    def sample(self) -> dict[str, Any]:
        """{"gpus": [GpuSample, ...], "cpu_percent": float | None, "rss_mb": float | None}. Never raises."""
        gpus: list[GpuSample] = []
        try:
            gpus = [self._gpu(ref) for ref in self.gpus_in_use()]
        except Exception as exc:  # noqa: BLE001
            log.debug("epochstream: GPU sample failed: %r", exc)
        return {"gpus": gpus, "cpu_percent": self._cpu_percent(), "rss_mb": self._rss_mb()}

    def _prime(self) -> None:
        """psutil's CPU % is since the previous call: make one now so the first sample means something."""
        try:
            import psutil

            self._process = psutil.Process()
            psutil.cpu_percent(interval=None)
        except Exception:  # noqa: BLE001
            self._process = None

    def _cpu_percent(self) -> float | None:
        def read():
            import psutil

            return psutil.cpu_percent(interval=None)

        return _field(read)

    def _rss_mb(self) -> float | None:
        def read():
            if self._process is None:
                self._prime()
            return self._process.memory_info().rss

        return _field(read, MIB)

    # -- which GPUs ------------------------------------------------------------------------------------
    def _torch_cuda(self) -> Any:
        torch = self._torch if self._torch is not None else sys.modules.get("torch")
        cuda = getattr(torch, "cuda", None)
        try:
            return cuda if cuda is not None and cuda.is_initialized() else None
        except Exception:  # noqa: BLE001
            return None

    def _visible(self) -> list[str] | None:
        value = self._environ.get("CUDA_VISIBLE_DEVICES")
        if value is None:
            return None
        return [part.strip() for part in value.split(",") if part.strip()]

    def gpus_in_use(self) -> list[GpuRef]:
        visible = self._visible()

        def ref(position: int, torch_index: int | None) -> GpuRef:
            key: int | str = position
            if visible is not None:
                if position >= len(visible):
                    return GpuRef(position, torch_index, None)
                key = int(visible[position]) if visible[position].isdigit() else visible[position]
            return GpuRef(key if isinstance(key, int) else position, torch_index, key)

        cuda = self._torch_cuda()
        if cuda is not None:
            count = cuda.device_count()
            used = [i for i in range(count) if (_field(lambda i=i: cuda.memory_reserved(i)) or 0) > 0]
            if not used:
                used = [cuda.current_device()]
            return [ref(i, i) for i in used]
        if visible is not None:
            return [ref(i, None) for i in range(len(visible))]
        return self._nvml_gpus_of_this_process()

    def _nvml_gpus_of_this_process(self) -> list[GpuRef]:
        nvml = self._nvml_lib()
        if nvml is None:
            return []
        count = int(_field(nvml.nvmlDeviceGetCount) or 0)
        return [GpuRef(index, None, index) for index in range(count) if self._nvml_process(index) is not None]

    # -- one GPU ---------------------------------------------------------------------------------------
    def _gpu(self, ref: GpuRef) -> GpuSample:
        cuda = self._torch_cuda() if ref.torch_index is not None else None
        handle = self._nvml_handle(ref.nvml_key)
        nvml = self._nvml

        def from_torch(name: str) -> float | None:
            if cuda is None:
                return None
            return _field(lambda: getattr(cuda, name)(ref.torch_index), MIB)

        allocated = from_torch("memory_allocated")
        if allocated is None and handle is not None:
            process = self._nvml_process(ref.nvml_key)
            allocated = _field(lambda: process.usedGpuMemory, MIB) if process is not None else None
        total = _field(lambda: nvml.nvmlDeviceGetMemoryInfo(handle).total, MIB) if handle is not None else None
        if total is None and cuda is not None:
            total = _field(lambda: cuda.get_device_properties(ref.torch_index).total_memory, MIB)
        name = None
        if handle is not None:
            name = _text(_try(lambda: nvml.nvmlDeviceGetName(handle)))
        if name is None and cuda is not None:
            name = _text(_try(lambda: cuda.get_device_name(ref.torch_index)))
        return GpuSample(
            index=ref.index,
            name=name,
            mem_allocated_mb=allocated,
            mem_reserved_mb=from_torch("memory_reserved"),
            mem_peak_mb=from_torch("max_memory_allocated"),
            mem_total_mb=total,
            utilization_pct=_field(lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            if handle is not None else None,
        )

    # -- NVML ------------------------------------------------------------------------------------------
    def _nvml_lib(self) -> Any:
        if self._nvml_tried:
            return self._nvml
        self._nvml_tried = True
        try:
            nvml = self._nvml_module
            if nvml is None:
                import pynvml as nvml  # nvidia-ml-py; optional
            nvml.nvmlInit()
            self._nvml = nvml
        except Exception as exc:  # noqa: BLE001 - no driver, no library: host figures and torch's only
            log.debug("epochstream: NVML not available: %r", exc)
            self._nvml = None
        return self._nvml

    def _nvml_handle(self, key: int | str | None) -> Any:
        nvml = self._nvml_lib()
        if nvml is None or key is None:
            return None
        if isinstance(key, int):
            return _try(lambda: nvml.nvmlDeviceGetHandleByIndex(key))
        return _try(lambda: nvml.nvmlDeviceGetHandleByUUID(key))

    def _nvml_process(self, key: int | str | None) -> Any:
        """NVML's entry for this process on that GPU (pid, usedGpuMemory), or None if it is not listed."""
        handle = self._nvml_handle(key)
        if handle is None:
            return None
        pid = os.getpid()
        processes = _try(lambda: self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)) or []
        return next((p for p in processes if getattr(p, "pid", None) == pid), None)

    def _shutdown_nvml(self) -> None:
        if self._nvml is not None:
            _try(self._nvml.nvmlShutdown)
            self._nvml = None
            self._nvml_tried = False


def _try(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception:  # noqa: BLE001
        return None
