// Debezium's embedded engine producing to Kafka, the peer of changehub's source -> Kafka log in
// bench/debezium_bench.py. It does what Debezium Server's Kafka sink (KafkaChangeConsumer)
// does with each batch the engine hands over: send every record with the Kafka producer, wait
// until all are acknowledged, then mark them processed and the batch finished, so that the
// engine's offsets never run ahead of what is in Kafka.
//
// Usage: java -cp 'classes:lib/*' DebeziumToKafka ENGINE.properties PRODUCER.properties
//
// Prints to stdout, one line each, times in epoch microseconds:
//   started <us>                   the connector task is running (streaming can begin)
//   acked <records so far> <us>    after each batch is acknowledged by Kafka
// and exits 1 if the engine stops with an error (printed on stderr).

import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.format.Json;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

public final class DebeziumToKafka {
    private DebeziumToKafka() {}

    static long nowMicros() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000;
    }

    static Properties load(String path) throws IOException {
        Properties props = new Properties();
        try (InputStream in = new FileInputStream(path)) {
            props.load(in);
        }
        return props;
    }

    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: DebeziumToKafka ENGINE.properties PRODUCER.properties");
            System.exit(2);
        }
        Properties engineProps = load(args[0]);
        Properties producerProps = load(args[1]);
        KafkaProducer<String, String> producer =
                new KafkaProducer<>(producerProps, new StringSerializer(), new StringSerializer());
        long[] acked = {0};
        AtomicBoolean failed = new AtomicBoolean(false);
        CountDownLatch stopped = new CountDownLatch(1);

        DebeziumEngine<ChangeEvent<String, String>> engine = DebeziumEngine.create(Json.class)
                .using(engineProps)
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
                    List<Future<RecordMetadata>> sent = new ArrayList<>(records.size());
                    for (ChangeEvent<String, String> r : records) {
                        sent.add(producer.send(new ProducerRecord<>(r.destination(), r.key(), r.value())));
                    }
                    try {
                        for (Future<RecordMetadata> f : sent) {
                            f.get();
                        }
                    } catch (ExecutionException e) {
                        throw new RuntimeException("Kafka did not acknowledge a record", e.getCause());
                    }
                    for (ChangeEvent<String, String> r : records) {
                        committer.markProcessed(r);
                    }
                    committer.markBatchFinished();
                    acked[0] += records.size();
                    say("acked " + acked[0] + " " + nowMicros());
                })
                .build();

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                engine.close();
                stopped.await();
            } catch (Exception e) {
                e.printStackTrace();
            }
            producer.close();
        }));
        Thread runner = new Thread(engine, "debezium-engine");
        runner.start();
        stopped.await();
        if (failed.get()) {
            Runtime.getRuntime().halt(1);
        }
    }
}
