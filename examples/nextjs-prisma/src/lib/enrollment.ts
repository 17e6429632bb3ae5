import type { Prisma } from "@/generated/prisma/client";
import { HttpError } from "@/lib/http";
import { publishViaModel, publishViaSql } from "@/lib/outbox";

export const ENROLLMENT_TOPIC = "enrollment-events";

export type PublishVia = "sql" | "model";

/**
 * Enrolls a user into a course inside the caller's transaction and publishes a
 * course_enrolled event keyed by the user id, so that all events of one user
 * land in one Kafka partition, in commit order.
 */
export async function enrollInTx(tx: Prisma.TransactionClient, userId: number, courseId: number, via: PublishVia) {
  // Fails with P2003 (foreign key) for an unknown user or course, P2002 if already enrolled.
  const enrollment = await tx.enrollment.create({ data: { userId, courseId } });

  const message = {
    topic: ENROLLMENT_TOPIC,
    key: String(userId),
    payload: {
      type: "course_enrolled",
      enrollmentId: enrollment.id,
      userId,
      courseId,
      enrolledAt: enrollment.enrolledAt.toISOString(),
    },
    headers: { "event-type": "course_enrolled" },
  };
  const outboxEventId = via === "model" ? await publishViaModel(tx, message) : await publishViaSql(tx, message);

  // The seat is taken after the event is written on purpose: when the course is
  // full, the throw below rolls back the enrollment *and* the event, so
  // consumers never hear about an enrollment that did not happen.
  const seat = await tx.course.updateMany({
    where: { id: courseId, OR: [{ capacity: null }, { enrolledCount: { lt: tx.course.fields.capacity } }] },
    data: { enrolledCount: { increment: 1 } },
  });
  if (seat.count !== 1) throw new HttpError(409, "course is full");

  return { enrollmentId: enrollment.id, userId, courseId, outboxEventId, via };
}

export function parseVia(url: string): PublishVia {
  const via = new URL(url).searchParams.get("via") ?? "sql";
  if (via !== "sql" && via !== "model") throw new HttpError(400, "via must be sql or model");
  return via;
}
