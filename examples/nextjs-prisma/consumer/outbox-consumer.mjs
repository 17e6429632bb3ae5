// KafkaJS consumer for events relayed by edu_outbox.
//
// Delivery from the outbox to Kafka is at least once: after a crash or a broker
// failover a record can arrive twice. Every record carries the header
// `outbox-id` (the event's id in the outbox, unique per database), so a
// consumer drops repeats by remembering the ids it has handled.
//
//   import { startOutboxConsumer } from "./consumer/outbox-consumer.mjs";
//   const c = await startOutboxConsumer({
//     brokers: ["127.0.0.1:9092"], groupId: "emails",
//     topics: ["user-events", "enrollment-events"],
//     onEvent: async (event) => { ... },   // called once per outbox-id
//   });
//   ...
//   await c.stop();
import { Kafka, logLevel as kafkaLogLevel } from "kafkajs";

/**
 * Remembers the last `capacity` outbox ids (in memory, per process). A real
 * service should store handled ids durably, e.g. INSERT ... ON CONFLICT DO
 * NOTHING into a processed_events table in the same transaction as its own
 * writes, so that a restart does not forget them.
 */
export class SeenIds {
  constructor(capacity = 100_000) {
    this.capacity = capacity;
    this.ids = new Set();
  }
  has(id) {
    return this.ids.has(id);
  }
  add(id) {
    this.ids.add(id);
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value);
  }
}

/** Turns a KafkaJS message into a plain event object. */
export function decodeMessage(topic, partition, message) {
  const headers = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    // KafkaJS gives header values as Buffers (or arrays of them for repeated names).
    headers[name] = Array.isArray(value) ? value.map(String) : value == null ? null : value.toString("utf8");
  }
  const raw = message.value == null ? null : message.value.toString("utf8");
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key == null ? null : message.key.toString("utf8"),
    outboxId: headers["outbox-id"] ?? null,
    eventType: headers["event-type"] ?? null,
    headers,
    timestamp: new Date(Number(message.timestamp)),
    raw,
    value: raw == null ? null : JSON.parse(raw),
  };
}

/**
 * Starts a consumer in a consumer group and calls `onEvent(event)` once per
 * outbox-id. Options:
 *   brokers        ["host:port", ...]
 *   topics         topics to subscribe to
 *   groupId        consumer group (committed offsets are per group)
 *   fromBeginning  where a group without committed offsets starts (default false)
 *   startOffsets   { topic: { partition: offset } }: ignore records below these offsets
 *   seen           a SeenIds (or any {has, add}) shared across consumers, to drop repeats
 *   onEvent        async (event) => void; if it throws, the record is not committed and comes again
 *   onDuplicate    (event) => void, for records dropped as repeats
 * Returns { consumer, stats: {received, duplicates, handled}, stop() }.
 */
export async function startOutboxConsumer({
  brokers,
  topics,
  groupId,
  clientId = "edu-outbox-example-consumer",
  fromBeginning = false,
  startOffsets = {},
  seen = new SeenIds(),
  onEvent,
  onDuplicate = () => {},
  logLevel = kafkaLogLevel.WARN,
}) {
  const kafka = new Kafka({ clientId, brokers, logLevel, retry: { retries: 10 } });
  const consumer = kafka.consumer({ groupId });
  const stats = { received: 0, duplicates: 0, handled: 0 };

  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const floor = startOffsets[topic]?.[partition];
      if (floor !== undefined && BigInt(message.offset) < BigInt(floor)) return;
      stats.received++;
      const event = decodeMessage(topic, partition, message);
      // Records without outbox-id did not come from edu_outbox: handle them as they are.
      if (event.outboxId !== null && seen.has(event.outboxId)) {
        stats.duplicates++;
        onDuplicate(event);
        return;
      }
      await onEvent(event);
      if (event.outboxId !== null) seen.add(event.outboxId);
      stats.handled++;
    },
  });

  return {
    consumer,
    stats,
    seen,
    stop: () => consumer.disconnect(),
  };
}
