// Notification service: a KafkaJS consumer group that reads the events
// edu_outbox relays, and a Socket.IO server that pushes each one to the room
// of the learner it concerns (`user:<id>`).
//
//   DATABASE_URL=... KAFKA_BROKERS=127.0.0.1:9092 NOTIFIER_PORT=4001 node notifier/server.mjs
//
// Several processes can run side by side (same NOTIFIER_GROUP): Kafka gives
// each one a share of the partitions, so every record is consumed by one
// process; @socket.io/postgres-adapter (LISTEN/NOTIFY in the same PostgreSQL)
// carries that process's emit to the browsers connected to the others.
//
// Once per outbox-id: a record is shown only if its outbox-id could be
// inserted into "Notification" (primary key). The insert, the emit and the
// COMMIT happen in that order, and KafkaJS commits the record's offset only
// after eachMessage returned, i.e. after the COMMIT. A crash before the COMMIT
// redelivers the record and shows it (again, at most in that window); after
// the COMMIT the row drops the redelivery, also after a restart.
//
// Environment:
//   DATABASE_URL      PostgreSQL (the database of the app; "Notification" lives there)
//   KAFKA_BROKERS     comma-separated host:port
//   NOTIFIER_PORT     Socket.IO/HTTP port (4001), on NOTIFIER_HOST (127.0.0.1)
//   NOTIFIER_GROUP    Kafka consumer group (notifier)
//   NOTIFIER_ID       name of this process in logs and in each notification's `via` (notifier-<port>)
//   NOTIFIER_ORIGIN   allowed browser origin(s), comma-separated (http://localhost:3000)
//   NOTIFIER_FROM_BEGINNING  1: a new group starts at the oldest record instead of the newest
//   NOTIFIER_ADAPTER  postgres (default) or none (a single process only)
//   NOTIFIER_HISTORY  how many recent notifications a page gets when it connects (20)
import http from "node:http";
import { createAdapter } from "@socket.io/postgres-adapter";
import { Kafka, logLevel } from "kafkajs";
import pg from "pg";
import { Server } from "socket.io";
import { decodeMessage } from "../consumer/outbox-consumer.mjs";
import { notificationFor } from "./messages.mjs";

const PORT = Number(process.env.NOTIFIER_PORT ?? 4001);
const ID = process.env.NOTIFIER_ID ?? `notifier-${PORT}`;
const GROUP = process.env.NOTIFIER_GROUP ?? "notifier";
const BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
const ORIGINS = (process.env.NOTIFIER_ORIGIN ?? "http://localhost:3000").split(",");
const HISTORY = Number(process.env.NOTIFIER_HISTORY ?? 20);
export const TOPICS = ["user-events", "enrollment-events", "course-events"];

const log = (...args) => console.log(new Date().toISOString(), ID, ...args);

const db = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
db.on("error", (err) => log("pg pool error:", err.message));

// ------------------------------------------------------------------ Socket.IO
const stats = { received: 0, emitted: 0, duplicates: 0, ignored: 0, connections: 0 };
const kafkaState = { joined: false, memberId: null, assignment: {} };

const httpServer = http.createServer((req, res) => {
  // Health and counters, for operators and the end-to-end test.
  if (req.url === "/health") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ id: ID, ...kafkaState, stats }));
    return;
  }
  res.writeHead(404).end();
});

const io = new Server(httpServer, { cors: { origin: ORIGINS } });
let adapterPool = null;
if ((process.env.NOTIFIER_ADAPTER ?? "postgres") === "postgres") {
  // Its own pool: the adapter keeps one connection LISTENing.
  adapterPool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 });
  adapterPool.on("error", (err) => log("adapter pool error:", err.message));
  io.adapter(createAdapter(adapterPool));
}

io.on("connection", (socket) => {
  // The example trusts the id the page sends. A real app derives it from the
  // session (cookie or token) in io.use() and rejects the handshake otherwise.
  const userId = Number(socket.handshake.auth?.userId);
  if (!Number.isSafeInteger(userId) || userId <= 0) {
    socket.disconnect(true);
    return;
  }
  stats.connections++;
  socket.join(`user:${userId}`);
  socket.on("disconnect", () => stats.connections--);
  // Tells the page it is in its room (anything emitted from now on reaches
  // it), with the latest notifications it may have missed while it was not
  // connected. The page merges them by outbox-id.
  db.query(
    `SELECT "outboxId", "kind", "text" FROM "Notification" WHERE "userId" = $1 ORDER BY "outboxId" DESC LIMIT $2`,
    [userId, HISTORY],
  ).then(
    ({ rows }) => socket.emit("ready", { server: ID, history: rows.map((r) => ({ ...r, userId, via: ID })) }),
    (err) => {
      log("history query failed:", err.message);
      socket.emit("ready", { server: ID, history: [] });
    },
  );
});

// ------------------------------------------------------------------ Kafka
const courseCodes = new Map();
async function courseCode(id) {
  if (!courseCodes.has(id)) {
    const { rows } = await db.query(`SELECT slug FROM "Course" WHERE id = $1`, [id]);
    if (!rows.length) return `course #${id}`;
    courseCodes.set(id, rows[0].slug.toUpperCase());
  }
  return courseCodes.get(id);
}

async function handle({ topic, partition, message }) {
  stats.received++;
  const event = decodeMessage(topic, partition, message);
  const note = event.outboxId === null ? null : await notificationFor(event, courseCode);
  if (!note || !Number.isSafeInteger(note.userId)) {
    stats.ignored++;
    return;
  }
  const client = await db.connect();
  try {
    await client.query("BEGIN");
    const inserted = await client.query(
      `INSERT INTO "Notification" ("outboxId", "userId", "kind", "text") VALUES ($1, $2, $3, $4)
       ON CONFLICT ("outboxId") DO NOTHING RETURNING "createdAt"`,
      [event.outboxId, note.userId, note.kind, note.text],
    );
    if (inserted.rowCount === 1) {
      io.to(`user:${note.userId}`).emit("notification", {
        outboxId: event.outboxId,
        kind: note.kind,
        text: note.text,
        userId: note.userId,
        via: ID,
        topic,
        partition,
        offset: message.offset,
      });
      stats.emitted++;
    } else {
      stats.duplicates++;
    }
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err; // KafkaJS retries the record; its offset is not committed
  } finally {
    client.release();
  }
}

const kafka = new Kafka({
  clientId: ID,
  brokers: BROKERS,
  logLevel: logLevel.WARN,
  retry: { initialRetryTime: 300, maxRetryTime: 5000, retries: 10 },
});
let consumer = null;
let stopping = false;

async function ensureTopics() {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: TOPICS.map((topic) => ({ topic })), waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

async function startConsumer() {
  consumer = kafka.consumer({
    groupId: GROUP,
    // Committed records only: with a transactional producer, aborted ones are never shown.
    readUncommitted: false,
    sessionTimeout: 10_000,
    rebalanceTimeout: 20_000,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: 250,
  });
  const { GROUP_JOIN, CRASH, REBALANCING } = consumer.events;
  consumer.on(GROUP_JOIN, ({ payload }) => {
    Object.assign(kafkaState, { joined: true, memberId: payload.memberId, assignment: payload.memberAssignment });
    log("joined the group, partitions:", JSON.stringify(payload.memberAssignment));
  });
  consumer.on(REBALANCING, () => (kafkaState.joined = false));
  consumer.on(CRASH, ({ payload }) => {
    kafkaState.joined = false;
    log("consumer crashed:", payload.error?.message, payload.restart ? "(KafkaJS restarts it)" : "");
    // KafkaJS restarts the consumer itself after retriable errors; after any
    // other error, start a new one so that a long broker outage is survived.
    if (!payload.restart && !stopping) {
      setTimeout(() => consumer.disconnect().catch(() => {}).then(runConsumer), 2_000);
    }
  });
  await consumer.connect();
  await consumer.subscribe({ topics: TOPICS, fromBeginning: process.env.NOTIFIER_FROM_BEGINNING === "1" });
  await consumer.run({ eachMessage: handle });
}

async function runConsumer() {
  while (!stopping) {
    try {
      await ensureTopics();
      await startConsumer();
      return;
    } catch (err) {
      log("cannot start the consumer, retrying:", err.message);
      await consumer?.disconnect().catch(() => {});
      await new Promise((r) => setTimeout(r, 2_000));
    }
  }
}

async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: leaving the consumer group`);
  await consumer?.disconnect().catch(() => {});
  io.close();
  await adapterPool?.end().catch(() => {});
  await db.end().catch(() => {});
  process.exit(0);
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

httpServer.listen(PORT, process.env.NOTIFIER_HOST ?? "127.0.0.1", () => log(`Socket.IO on port ${PORT}, group ${GROUP}, brokers ${BROKERS.join(",")}`));
runConsumer();
