from tests.admin.conftest import _fresh_caches, catalogue, published, staff_with  # noqa: F401
