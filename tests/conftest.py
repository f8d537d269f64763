import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (starting one costs seconds); the library reuses it."""
    from hi3dgen.parallel import ExecutorConfig, init_ray

    ray = init_ray(ExecutorConfig(workers=2))
    yield ray
    ray.shutdown()
