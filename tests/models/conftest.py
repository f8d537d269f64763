from tests.training.conftest import one_thread  # noqa: F401  (autouse: tiny models on one thread)
