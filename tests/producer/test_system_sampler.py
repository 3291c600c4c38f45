"""The system sampler: real host figures here (no GPU on this machine), a stand-in NVML only to prove that
one missing figure leaves the others, and the sampler's life bound to the run's."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

from producer.system_sampler import SystemSampler
from producer.testing import recording_run


def test_host_figures_from_the_real_psutil():
    sampler = SystemSampler(lambda **_: None, 10.0, environ={})
    sampler._prime()
    sample = sampler.sample()
    assert sample["gpus"] == []  # no GPU here, and torch (CPU build) has not initialised CUDA
    assert 0.0 <= sample["cpu_percent"] <= 100.0
    assert sample["rss_mb"] > 10.0  # this Python process, in MB


class NVMLError(Exception):
    pass


def fake_nvml(fail: set[str]):
    """Stands in for pynvml with two GPUs; the calls named in `fail` raise as a real driver may."""

    def call(name, result):
        def fn(*args):
            if name in fail:
                raise NVMLError(name)
            return result(*args) if callable(result) else result
        return fn

    return SimpleNamespace(
        NVMLError=NVMLError,
        nvmlInit=call("init", None),
        nvmlShutdown=call("shutdown", None),
        nvmlDeviceGetCount=call("count", 2),
        nvmlDeviceGetHandleByIndex=call("handle", lambda i: f"gpu{i}"),
        nvmlDeviceGetHandleByUUID=call("uuid", lambda u: f"gpu-{u}"),
        nvmlDeviceGetName=call("name", b"NVIDIA H100 80GB HBM3"),
        nvmlDeviceGetMemoryInfo=call("memory", SimpleNamespace(total=80 * 1024**3, used=1, free=1)),
        nvmlDeviceGetUtilizationRates=call("utilization", SimpleNamespace(gpu=87, memory=40)),
        nvmlDeviceGetComputeRunningProcesses=call(
            "processes", lambda handle: [SimpleNamespace(pid=os.getpid(), usedGpuMemory=512 * 1024**2)]
            if handle == "gpu1" else []),
    )


def test_every_nvml_figure_is_read_on_its_own():
    sampler = SystemSampler(lambda **_: None, 10.0, nvml=fake_nvml(fail={"utilization"}),
                            environ={"CUDA_VISIBLE_DEVICES": "1"})
    (gpu,) = sampler.sample()["gpus"]
    assert gpu.index == 1  # the physical index, as nvidia-smi shows it
    assert gpu.utilization_pct is None  # the driver refused this one...
    assert gpu.mem_total_mb == 80 * 1024 and gpu.name == "NVIDIA H100 80GB HBM3"  # ...the others still came
    assert gpu.mem_allocated_mb == 512.0  # this process's memory on it, per NVML (torch does not use CUDA)

    sampler = SystemSampler(lambda **_: None, 10.0, nvml=fake_nvml(fail={"memory", "name", "processes"}),
                            environ={"CUDA_VISIBLE_DEVICES": "1"})
    (gpu,) = sampler.sample()["gpus"]
    assert gpu.utilization_pct == 87.0
    assert gpu.mem_total_mb is None and gpu.name is None and gpu.mem_allocated_mb is None


def test_without_visible_devices_nvml_finds_the_gpus_this_process_uses():
    sampler = SystemSampler(lambda **_: None, 10.0, nvml=fake_nvml(fail=set()), environ={})
    assert [g.index for g in sampler.sample()["gpus"]] == [1]  # only GPU 1 lists our pid


def test_no_nvml_at_all_still_samples_the_host():
    sampler = SystemSampler(lambda **_: None, 10.0, nvml=fake_nvml(fail={"init"}),
                            environ={"CUDA_VISIBLE_DEVICES": "0"})
    sample = sampler.sample()
    assert sample["gpus"][0].index == 0 and sample["gpus"][0].mem_total_mb is None
    assert sample["rss_mb"] > 0


def test_torch_devices_map_to_physical_indices():
    class Cuda:
        def is_initialized(self):
            return True

        def device_count(self):
            return 2

        def current_device(self):
            return 0

        def memory_reserved(self, i):
            return [0, 3 * 1024**2][i]

        def memory_allocated(self, i):
            return 2 * 1024**2

        def max_memory_allocated(self, i):
            raise RuntimeError("not in this build")

        def get_device_properties(self, i):
            return SimpleNamespace(total_memory=1024**3)

        def get_device_name(self, i):
            return "Fake GPU"

    sampler = SystemSampler(lambda **_: None, 10.0, torch=SimpleNamespace(cuda=Cuda()),
                            nvml=fake_nvml(fail={"init"}), environ={"CUDA_VISIBLE_DEVICES": "4,6"})
    (gpu,) = sampler.sample()["gpus"]
    assert gpu.index == 6  # torch's cuda:1 is physical GPU 6; cuda:0 holds no memory: not ours
    assert (gpu.mem_allocated_mb, gpu.mem_reserved_mb, gpu.mem_peak_mb) == (2.0, 3.0, None)
    assert gpu.mem_total_mb == 1024.0 and gpu.name == "Fake GPU"


def test_the_sampler_publishes_while_the_run_is_open_and_stops_with_it(settings):
    settings = settings.model_copy(update={"system_interval_s": 0.05})
    with recording_run(settings=settings) as run:
        sampler = run._sampler
        deadline = time.monotonic() + 10
        while len(run.publisher.system) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sampler.running
    assert not sampler.running  # stopped with the run
    recorded = run.publisher.events
    assert recorded[-1].type == "run_finished"  # no system event after it
    time.sleep(0.2)
    assert run.publisher.events == recorded
    system = run.publisher.system
    assert len(system) >= 3 and all(s.rss_mb > 0 and s.gpus == [] for s in system)
