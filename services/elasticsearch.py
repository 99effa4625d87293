"""Elasticsearch 7.17 from Maven Central jars, on Java 17 (see :mod:`services.search`).

The real Elasticsearch, for the ``elasticsearch`` Python client 7.x (8.x/9.x clients cannot
talk to a 7.x server, and refuse OpenSearch). 8.x nodes cannot easily be embedded this way.
Elasticsearch 7 publishes only some modules on Maven Central: HTTP/transport (Netty),
reindex (with update/delete by query) and mapper-extras run; painless scripts and the
analysis-common analyzers do not. Jars: ``services/java/elasticsearch/pom.xml``; launcher:
``services/java/elasticsearch/ElasticsearchNode.java``.
"""

from __future__ import annotations

from typing import ClassVar

from services.java import JAVA_DIR, Bundle
from services.maven import pom_property
from services.search import SearchEngine

__all__ = ["Elasticsearch"]

POM = JAVA_DIR / "elasticsearch" / "pom.xml"


class Elasticsearch(SearchEngine):
    name = "elasticsearch"
    prefix = "ELASTICSEARCH"
    main_class = "ElasticsearchNode"
    bundle: ClassVar[Bundle] = Bundle(
        name=f"elasticsearch-{pom_property(POM, 'elasticsearch.version')}",
        pom=POM,
        launcher=JAVA_DIR / "elasticsearch" / "ElasticsearchNode.java",
    )
