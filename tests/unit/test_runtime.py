"""Process-wide state: Ray is released only by whoever started it (a fake Ray: no processes start)."""

from __future__ import annotations

import pytest
import ray

from gnn import runtime


class FakeRay:
    def __init__(self, up: bool) -> None:
        self.up, self.calls = up, []

    def is_initialized(self) -> bool:
        return self.up

    def init(self, **kwargs) -> None:
        self.up = True
        self.calls.append(("init", kwargs.get("address")))

    def shutdown(self) -> None:
        self.up = False
        self.calls.append(("shutdown", None))


@pytest.fixture()
def fake_ray(monkeypatch: pytest.MonkeyPatch):
    def use(up: bool) -> FakeRay:
        fake = FakeRay(up)
        for name in ("is_initialized", "init", "shutdown"):
            monkeypatch.setattr(ray, name, getattr(fake, name))
        monkeypatch.setattr(runtime, "_ray_ours", False)
        return fake

    return use


def test_the_job_releases_the_ray_it_started_and_leaves_the_callers(fake_ray):
    fake = fake_ray(up=False)
    runtime.init_ray(None)
    runtime.release_ray()
    assert fake.calls == [("init", "local"), ("shutdown", None)] and not fake.up
    runtime.release_ray()  # twice: nothing more
    assert len(fake.calls) == 2
    # A notebook that started its own Ray: init_ray joins nothing new, and release_ray leaves it up.
    fake = fake_ray(up=True)
    runtime.init_ray(None)
    runtime.release_ray()
    assert fake.calls == [] and fake.up
