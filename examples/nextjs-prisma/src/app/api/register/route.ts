// POST /api/register {email, name, password, ...optional profile fields, enrollInCourseId?}
//
// The INSERT into "User" fires edu_outbox's capture trigger, which writes a
// User.insert event (without passwordHash) to the topic user-events in the same
// transaction. With enrollInCourseId the user is enrolled in the same
// transaction; if that fails (unknown course, course full) everything rolls
// back and no event at all is relayed.
import { prisma } from "@/lib/prisma";
import { hashPassword } from "@/lib/password";
import { errorResponse, HttpError, json, positiveInt, readJson } from "@/lib/http";
import { userFields } from "@/lib/users";
import { enrollInTx, parseVia } from "@/lib/enrollment";

export async function POST(req: Request) {
  try {
    const body = await readJson(req);
    const { email, password } = body;
    if (typeof email !== "string" || !/^[^@\s]+@[^@\s]+$/.test(email)) throw new HttpError(400, "email is required");
    if (typeof password !== "string" || password.length < 8) throw new HttpError(400, "password needs at least 8 characters");
    const { password: _p, email: _e, enrollInCourseId, ...rest } = body;
    const courseId = enrollInCourseId === undefined ? null : positiveInt(enrollInCourseId, "enrollInCourseId");
    const via = parseVia(req.url);
    const passwordHash = await hashPassword(password);

    const result = await prisma.$transaction(async (tx) => {
      const user = await tx.user.create({
        data: { ...userFields(rest), email, passwordHash },
        omit: { passwordHash: true },
      });
      const enrollment = courseId === null ? null : await enrollInTx(tx, user.id, courseId, via);
      return { userId: user.id, user, enrollment };
    });
    return json(result, 201);
  } catch (err) {
    return errorResponse(err);
  }
}
