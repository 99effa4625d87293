import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.SecureHttpTransportSettingsProvider;
import org.opensearch.plugins.SecureSettingsFactory;
import org.opensearch.plugins.SecureTransportSettingsProvider;
import org.opensearch.plugins.TransportExceptionHandler;
import org.opensearch.transport.Netty4Plugin;

/**
 * Runs one OpenSearch node in this JVM from jars on the classpath, for changehub's tests.
 *
 * <p>Arguments are node settings as {@code key=value}. The modules a distribution would load
 * from its modules/ directory (HTTP and transport over Netty, analysis, painless, reindex,
 * extra mappers) are passed as classpath plugins through Node's protected constructor, which
 * is why this class exists. Embedding skips OpenSearch's bootstrap: no security manager, no
 * jar-hell check, no refusal to run as root. SIGTERM closes the node cleanly.
 *
 * <p>HTTPS: with the system property {@code changehub.http.tls.keystore} (a PKCS#12 file
 * holding the server's key and certificate; {@code changehub.http.tls.password} its password)
 * and the setting {@code http.type=netty4-secure}, the node's own Netty HTTP server speaks
 * TLS. OpenSearch's security plugin is not on Maven Central; core OpenSearch (2.11 and later)
 * has the hook it uses, {@link SecureSettingsFactory}, and the Netty module builds its
 * {@code netty4-secure} HTTP transport from the {@link SSLEngine} such a factory gives:
 * {@link HttpTlsPlugin} is that factory, made from the JDK's own TLS.
 */
public final class OpenSearchNode {
    private static final List<Class<? extends Plugin>> MODULES = List.of(
        Netty4Plugin.class,
        CommonAnalysisPlugin.class,
        PainlessPlugin.class,
        ReindexPlugin.class,
        MapperExtrasPlugin.class,
        HttpTlsPlugin.class);

    private static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    /** TLS for the HTTP layer from a PKCS#12 keystore (see the class doc); off without one. */
    public static final class HttpTlsPlugin extends Plugin {
        @Override
        public Optional<SecureSettingsFactory> getSecureSettingFactory(Settings settings) {
            String keystore = System.getProperty("changehub.http.tls.keystore");
            if (keystore == null || keystore.isEmpty()) {
                return Optional.empty();
            }
            SSLContext context = serverContext(
                Path.of(keystore), System.getProperty("changehub.http.tls.password", ""));
            SecureHttpTransportSettingsProvider http = new SecureHttpTransportSettingsProvider() {
                @Override
                public Optional<TransportExceptionHandler> buildHttpServerExceptionHandler(
                        Settings s, HttpServerTransport transport) {
                    return Optional.empty();
                }

                @Override
                public Optional<SSLEngine> buildSecureHttpServerEngine(
                        Settings s, HttpServerTransport transport) {
                    SSLEngine engine = context.createSSLEngine();
                    engine.setUseClientMode(false);
                    return Optional.of(engine);
                }
            };
            return Optional.of(new SecureSettingsFactory() {
                @Override
                public Optional<SecureTransportSettingsProvider> getSecureTransportSettingsProvider(
                        Settings s) {
                    return Optional.empty();  // node-to-node transport: one node, loopback
                }

                @Override
                public Optional<SecureHttpTransportSettingsProvider>
                        getSecureHttpTransportSettingsProvider(Settings s) {
                    return Optional.of(http);
                }
            });
        }

        private static SSLContext serverContext(Path keystore, String password) {
            try (InputStream in = Files.newInputStream(keystore)) {
                KeyStore store = KeyStore.getInstance("PKCS12");
                store.load(in, password.toCharArray());
                KeyManagerFactory keys =
                    KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
                keys.init(store, password.toCharArray());
                SSLContext context = SSLContext.getInstance("TLS");
                context.init(keys.getKeyManagers(), null, null);
                return context;
            } catch (Exception e) {
                throw new IllegalStateException("cannot load the HTTP TLS keystore " + keystore, e);
            }
        }
    }

    private OpenSearchNode() {}

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
            }, "opensearch-shutdown"));
            node.start();
        } catch (Throwable t) {
            // The node's own threads would keep a failed JVM alive: exit for the caller to see.
            t.printStackTrace();
            System.exit(1);
        }
        closed.await();
    }
}
