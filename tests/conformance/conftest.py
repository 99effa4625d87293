"""The conformance kit's assertions get pytest's detailed failure messages."""

import pytest

pytest.register_assert_rewrite("connectors.testing")
