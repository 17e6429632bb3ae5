// POST /api/lessons {userId, courseId, lesson}
//
// The LessonCompletion row and a lesson_completed event (topic course-events,
// key = userId) are written in one Prisma transaction. For measuring
// commit-to-page latency the response carries two instants on this machine's
// clock: preCommitAt (PostgreSQL, the last statement before COMMIT) and
// committedAt (Next.js, once Prisma reported the COMMIT done). The real commit
// lies between them.
import { prisma } from "@/lib/prisma";
import { errorResponse, json, positiveInt, readJson } from "@/lib/http";
import { completeLessonInTx } from "@/lib/lessons";

export async function POST(req: Request) {
  try {
    const body = await readJson(req);
    const userId = positiveInt(body.userId, "userId");
    const courseId = positiveInt(body.courseId, "courseId");
    const lesson = positiveInt(body.lesson, "lesson");
    const result = await prisma.$transaction(async (tx) => {
      const done = await completeLessonInTx(tx, userId, courseId, lesson);
      // PostgreSQL's clock at the last statement before COMMIT (epoch ms).
      const [{ t }] = await tx.$queryRaw<{ t: number }[]>`SELECT extract(epoch FROM clock_timestamp())::float8 * 1000 AS t`;
      return { ...done, preCommitAt: t };
    });
    return json({ ...result, committedAt: Date.now() }, 201);
  } catch (err) {
    return errorResponse(err);
  }
}
