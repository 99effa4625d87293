import com.fasterxml.jackson.databind.ObjectMapper;
import io.debezium.serde.DebeziumSerdes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.connect.json.JsonConverter;

/**
 * Reads a topic changehub wrote the way its two kinds of consumer would, and prints one JSON
 * line per record: what Kafka Connect's JsonConverter (schemas.enable=false, the converter a
 * Kafka Connect sink reads JSON topics through) makes of the key and the value, and what
 * Debezium's serde (DebeziumSerdes.payloadJson, with from.field=after for the value) makes of
 * them. Reads read_committed from the start to the partitions' end offsets, then exits.
 *
 * Usage: EnvelopeReader BOOTSTRAP TOPIC
 */
public final class EnvelopeReader {
    @SuppressWarnings({"rawtypes", "unchecked"})
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("group.id", "envelope-reader-" + UUID.randomUUID());
        props.put("isolation.level", "read_committed");
        props.put("enable.auto.commit", "false");
        props.put("auto.offset.reset", "earliest");
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());

        JsonConverter connectKeys = new JsonConverter();
        connectKeys.configure(Map.of("schemas.enable", "false"), true);
        JsonConverter connectValues = new JsonConverter();
        connectValues.configure(Map.of("schemas.enable", "false"), false);
        // Debezium's serde unwraps a key of one field into that field's value
        Serde<Object> keySerde = DebeziumSerdes.payloadJson(Object.class);
        keySerde.configure(Map.of(), true);
        Serde<Map> afterSerde = DebeziumSerdes.payloadJson(Map.class);
        afterSerde.configure(Map.of("from.field", "after"), false);
        Deserializer<Object> debeziumKeys = keySerde.deserializer();
        Deserializer<Map> debeziumAfter = afterSerde.deserializer();
        ObjectMapper json = new ObjectMapper();

        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo info : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
                partitions.add(new TopicPartition(topic, info.partition()));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            // read_committed: the end offsets are the last stable offsets
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions, Duration.ofSeconds(30));
            long deadline = System.currentTimeMillis() + 60_000;
            while (!reachedEnds(consumer, ends)) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("did not reach the end offsets " + ends);
                }
                for (ConsumerRecord<byte[], byte[]> rec : consumer.poll(Duration.ofMillis(500))) {
                    Map<String, Object> out = new LinkedHashMap<>();
                    out.put("partition", rec.partition());
                    out.put("offset", rec.offset());
                    out.put("connect_key", connectKeys.toConnectData(topic, rec.key()).value());
                    out.put("connect_value", connectValues.toConnectData(topic, rec.value()).value());
                    out.put("debezium_key", debeziumKeys.deserialize(topic, rec.key()));
                    out.put(
                        "debezium_after",
                        rec.value() == null ? null : debeziumAfter.deserialize(topic, rec.value()));
                    System.out.println(json.writeValueAsString(out));
                }
            }
        }
    }

    private static boolean reachedEnds(
            KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> ends) {
        for (Map.Entry<TopicPartition, Long> end : ends.entrySet()) {
            if (consumer.position(end.getKey()) < end.getValue()) {
                return false;
            }
        }
        return true;
    }
}
