// POST /api/courses {slug, title, capacity?}   GET /api/courses
import { prisma } from "@/lib/prisma";
import { errorResponse, HttpError, json, readJson } from "@/lib/http";

// Read the database on every request; never prerender at build time.
export const dynamic = "force-dynamic";

export async function POST(req: Request) {
  try {
    const { slug, title, capacity } = await readJson(req);
    if (typeof slug !== "string" || !/^[a-z0-9-]+$/.test(slug)) throw new HttpError(400, "slug must match [a-z0-9-]+");
    if (typeof title !== "string" || !title) throw new HttpError(400, "title is required");
    if (capacity !== undefined && capacity !== null && !(Number.isSafeInteger(capacity) && (capacity as number) >= 0)) {
      throw new HttpError(400, "capacity must be a non-negative integer or null");
    }
    const course = await prisma.course.create({ data: { slug, title, capacity: (capacity as number | null) ?? null } });
    return json(course, 201);
  } catch (err) {
    return errorResponse(err);
  }
}

export async function GET() {
  try {
    return json(await prisma.course.findMany({ orderBy: { id: "asc" } }));
  } catch (err) {
    return errorResponse(err);
  }
}
