import type { Prisma } from "@/generated/prisma/client";
import { HttpError } from "@/lib/http";
import { publishViaSql } from "@/lib/outbox";

export const COURSE_TOPIC = "course-events";

/**
 * Records that a user completed a lesson of a course they are enrolled in, and
 * publishes lesson_completed on course-events keyed by the user id, in the
 * caller's transaction.
 */
export async function completeLessonInTx(tx: Prisma.TransactionClient, userId: number, courseId: number, lesson: number) {
  const enrolled = await tx.enrollment.findUnique({ where: { userId_courseId: { userId, courseId } }, select: { id: true } });
  if (!enrolled) throw new HttpError(409, "not enrolled in this course");
  // P2002 (409) if this lesson was already completed.
  const done = await tx.lessonCompletion.create({ data: { userId, courseId, lesson } });
  const outboxEventId = await publishViaSql(tx, {
    topic: COURSE_TOPIC,
    key: String(userId),
    payload: { type: "lesson_completed", userId, courseId, lesson, completedAt: done.completedAt.toISOString() },
    headers: { "event-type": "lesson_completed" },
  });
  return { lessonCompletionId: done.id, userId, courseId, lesson, outboxEventId };
}
