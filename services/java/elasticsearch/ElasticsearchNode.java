import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.mapper.MapperExtrasPlugin;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.reindex.ReindexPlugin;
import org.elasticsearch.transport.Netty4Plugin;

/**
 * Runs one Elasticsearch 7 node in this JVM from jars on the classpath, for changehub's tests.
 *
 * <p>The twin of services/java/opensearch/OpenSearchNode.java for Elasticsearch's packages.
 * Arguments are node settings as {@code key=value}. The modules a distribution would load
 * from its modules/ directory and that Elasticsearch publishes on Maven Central (HTTP and
 * transport over Netty, reindex, extra mappers) are passed as classpath plugins through
 * Node's protected constructor. Embedding skips the bootstrap: no security manager, no
 * jar-hell check, no refusal to run as root. SIGTERM closes the node cleanly.
 */
public final class ElasticsearchNode {
    private static final List<Class<? extends Plugin>> MODULES = List.of(
        Netty4Plugin.class,
        ReindexPlugin.class,
        MapperExtrasPlugin.class);

    private static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    private ElasticsearchNode() {}

    public static void main(String[] args) throws InterruptedException {
        Settings.Builder settings = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq < 1) {
                System.err.println("expected a setting as key=value, got: " + arg);
                System.exit(2);
            }
            settings.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        CountDownLatch closed = new CountDownLatch(1);
        try {
            Environment environment = InternalSettingsPreparer.prepareEnvironment(
                settings.build(), Map.of(), null, () -> "node-1");
            Node node = new EmbeddedNode(environment, MODULES);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                try {
                    node.close();
                    node.awaitClose(30, TimeUnit.SECONDS);
                } catch (Exception e) {
                    e.printStackTrace();
                } finally {
                    closed.countDown();
                }
            }, "elasticsearch-shutdown"));
            node.start();
        } catch (Throwable t) {
            // The node's own threads would keep a failed JVM alive: exit for the caller to see.
            t.printStackTrace();
            System.exit(1);
        }
        closed.await();
    }
}
