// POST /api/enroll {userId, courseId}           publishes with SQL: SELECT outbox_publish(...)
// POST /api/enroll?via=model {userId, courseId} publishes with tx.outboxEvent.create(...)
//
// The Enrollment row and the course_enrolled event (topic enrollment-events,
// key = userId) are written in one Prisma transaction: both commit or neither.
import { prisma } from "@/lib/prisma";
import { errorResponse, json, positiveInt, readJson } from "@/lib/http";
import { enrollInTx, parseVia } from "@/lib/enrollment";

export async function POST(req: Request) {
  try {
    const via = parseVia(req.url);
    const body = await readJson(req);
    const userId = positiveInt(body.userId, "userId");
    const courseId = positiveInt(body.courseId, "courseId");
    const result = await prisma.$transaction((tx) => enrollInTx(tx, userId, courseId, via));
    // committedAt: the server's clock right after COMMIT returned.
    return json({ ...result, committedAt: Date.now() }, 201);
  } catch (err) {
    return errorResponse(err);
  }
}
