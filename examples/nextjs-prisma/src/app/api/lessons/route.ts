// POST /api/lessons {userId, courseId, lesson}
//
// The LessonCompletion row and a lesson_completed event (topic course-events,
// key = userId) are written in one Prisma transaction. The response carries
// committedAt, the server's clock right after COMMIT returned (used to measure
// commit-to-page latency).
import { prisma } from "@/lib/prisma";
import { errorResponse, json, positiveInt, readJson } from "@/lib/http";
import { completeLessonInTx } from "@/lib/lessons";

export async function POST(req: Request) {
  try {
    const body = await readJson(req);
    const userId = positiveInt(body.userId, "userId");
    const courseId = positiveInt(body.courseId, "courseId");
    const lesson = positiveInt(body.lesson, "lesson");
    const result = await prisma.$transaction((tx) => completeLessonInTx(tx, userId, courseId, lesson));
    return json({ ...result, committedAt: Date.now() }, 201);
  } catch (err) {
    return errorResponse(err);
  }
}
