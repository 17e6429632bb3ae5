#!/usr/bin/env node
// Standalone consumer: prints every edu_outbox event of the example's topics
// as one JSON line, once per outbox-id.
//
//   KAFKA_BROKERS=127.0.0.1:9092 node consumer/run.mjs [--from-beginning] [topic ...]
//
// Environment: KAFKA_BROKERS (127.0.0.1:9092), KAFKA_GROUP_ID (edu-outbox-example).
import { startOutboxConsumer } from "./outbox-consumer.mjs";

const args = process.argv.slice(2);
const fromBeginning = args.includes("--from-beginning");
const topics = args.filter((a) => !a.startsWith("--"));

const consumer = await startOutboxConsumer({
  brokers: (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(","),
  topics: topics.length ? topics : ["user-events", "enrollment-events"],
  groupId: process.env.KAFKA_GROUP_ID ?? "edu-outbox-example",
  fromBeginning,
  onEvent: async (event) => {
    const { topic, partition, offset, key, outboxId, eventType, value } = event;
    process.stdout.write(JSON.stringify({ topic, partition, offset, key, outboxId, eventType, value }) + "\n");
  },
  onDuplicate: (event) => console.error(`skipped duplicate outbox-id ${event.outboxId}`),
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, async () => {
    await consumer.stop();
    process.exit(0);
  });
}
