// Two ways to write an edu_outbox event from inside a Prisma transaction. Both
// write into the transaction of `tx`: the event is relayed to Kafka only if that
// transaction commits, and never if it rolls back.
import type { Prisma } from "@/generated/prisma/client";

export type OutboxMessage = {
  topic: string;
  key?: string | null;
  payload: Prisma.InputJsonValue;
  headers?: Record<string, string>;
};

/** Calls the SQL function outbox_publish() with a raw query. Returns the event id. */
export async function publishViaSql(tx: Prisma.TransactionClient, msg: OutboxMessage): Promise<bigint> {
  // Tagged template: every ${...} becomes a bind parameter, never SQL text.
  const rows = await tx.$queryRaw<{ id: bigint }[]>`
    SELECT outbox_publish(
      ${msg.topic},
      ${JSON.stringify(msg.payload)}::jsonb,
      ${msg.key ?? null}::text,
      ${msg.headers ? JSON.stringify(msg.headers) : null}::jsonb
    ) AS id`;
  return rows[0].id;
}

/** INSERTs into the extension's outbox_events view through the OutboxEvent model. Returns the event id. */
export async function publishViaModel(tx: Prisma.TransactionClient, msg: OutboxMessage): Promise<bigint> {
  const event = await tx.outboxEvent.create({
    data: {
      topic: msg.topic,
      key: msg.key ?? null,
      payload: msg.payload,
      ...(msg.headers ? { headers: msg.headers } : {}),
    },
    select: { id: true },
  });
  return event.id;
}
