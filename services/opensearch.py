"""OpenSearch 2.19 from Maven Central jars, on Java 17 (see :mod:`services.search`).

2.19.x is the newest OpenSearch line that runs on Java 17 (3.x needs Java 21). The jars are
listed in ``services/java/opensearch/pom.xml`` and the launcher is
``services/java/opensearch/OpenSearchNode.java``, which also gives the node HTTPS for
``--tls``.
"""

from __future__ import annotations

from typing import ClassVar

from services.java import JAVA_DIR, Bundle
from services.maven import pom_property
from services.search import SearchEngine

__all__ = ["OpenSearch"]

POM = JAVA_DIR / "opensearch" / "pom.xml"


class OpenSearch(SearchEngine):
    name = "opensearch"
    serves_tls = True  # HTTPS from the node itself (see services.search)
    prefix = "OPENSEARCH"
    main_class = "OpenSearchNode"
    bundle: ClassVar[Bundle] = Bundle(
        name=f"opensearch-{pom_property(POM, 'opensearch.version')}",
        pom=POM,
        launcher=JAVA_DIR / "opensearch" / "OpenSearchNode.java",
    )
