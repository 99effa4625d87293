// Debezium's embedded engine with a MySQL-family connector, handing each batch to this process
// only (no Kafka): the peer of changehub's MySQL source in bench/mysql_bench.py, and the probe
// used to find a Debezium MySQL connector that streams from MariaDB at all (bench/README.md,
// "MySQL source"). Each batch is marked processed as soon as it is handed over, which is the
// least work a Debezium consumer can do.
//
// Usage: java -cp 'classes:lib/*' DebeziumMySqlProbe ENGINE.properties [MIN_ID]
//
// Prints to stdout, one line each, times in epoch microseconds:
//   started <us>                    the connector task is running
//   batch <records so far> <us>     after each batch
//   id <us> <id>                    with MIN_ID: each created row whose first column ("id")
//                                   is at least MIN_ID, when its batch arrived
// and exits 1 if the engine stops with an error (printed on stderr).

import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.format.Json;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.time.Instant;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

public final class DebeziumMySqlProbe {
    private DebeziumMySqlProbe() {}

    static long nowMicros() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000;
    }

    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static final String AFTER_ID = "\"after\":{\"id\":";

    // The "id" of a create event's row (the benchmark table's first column), or -1: a string
    // search, so that the probe does not parse JSON the consumer of the benchmark would not.
    static long createdId(String value) {
        if (value == null || !value.contains("\"op\":\"c\"")) {
            return -1;
        }
        int at = value.indexOf(AFTER_ID);
        if (at < 0) {
            return -1;
        }
        int from = at + AFTER_ID.length();
        int to = from;
        while (to < value.length() && Character.isDigit(value.charAt(to))) {
            to++;
        }
        return to > from ? Long.parseLong(value.substring(from, to)) : -1;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: DebeziumMySqlProbe ENGINE.properties [MIN_ID]");
            System.exit(2);
        }
        Properties props = new Properties();
        try (InputStream in = new FileInputStream(args[0])) {
            props.load(in);
        }
        long minId = args.length == 2 ? Long.parseLong(args[1]) : Long.MAX_VALUE;
        long[] seen = {0};
        AtomicBoolean failed = new AtomicBoolean(false);
        CountDownLatch stopped = new CountDownLatch(1);

        DebeziumEngine<ChangeEvent<String, String>> engine = DebeziumEngine.create(Json.class)
                .using(props)
                .using(new DebeziumEngine.ConnectorCallback() {
                    @Override
                    public void taskStarted() {
                        say("started " + nowMicros());
                    }
                })
                .using((success, message, error) -> {
                    if (!success) {
                        failed.set(true);
                        System.err.println("engine stopped: " + message);
                        if (error != null) {
                            error.printStackTrace();
                        }
                    }
                    stopped.countDown();
                })
                .notifying((List<ChangeEvent<String, String>> records,
                            DebeziumEngine.RecordCommitter<ChangeEvent<String, String>> committer) -> {
                    long at = nowMicros();
                    StringBuilder out = new StringBuilder();
                    for (ChangeEvent<String, String> r : records) {
                        long id = createdId(r.value());
                        if (id >= minId) {
                            out.append("id ").append(at).append(' ').append(id).append('\n');
                        }
                        committer.markProcessed(r);
                    }
                    committer.markBatchFinished();
                    seen[0] += records.size();
                    out.append("batch ").append(seen[0]).append(' ').append(nowMicros()).append('\n');
                    synchronized (DebeziumMySqlProbe.class) {
                        System.out.print(out);
                        System.out.flush();
                    }
                })
                .build();

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                engine.close();
                stopped.await();
            } catch (Exception e) {
                e.printStackTrace();
            }
        }));
        Thread runner = new Thread(engine, "debezium-engine");
        runner.start();
        stopped.await();
        if (failed.get()) {
            Runtime.getRuntime().halt(1);
        }
    }
}
