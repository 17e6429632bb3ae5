// GET /api/users/:id      the user, without passwordHash
// PATCH /api/users/:id    {name?, role?, profile?, tags?, credits?, ..., password?} -> User.update event
// DELETE /api/users/:id   -> User.delete event (enrollments go with it, ON DELETE CASCADE)
import { prisma } from "@/lib/prisma";
import { hashPassword } from "@/lib/password";
import { errorResponse, HttpError, json, positiveInt, readJson } from "@/lib/http";
import { userFields } from "@/lib/users";
import type { Prisma } from "@/generated/prisma/client";

type Ctx = { params: Promise<{ id: string }> };

export async function GET(_req: Request, ctx: Ctx) {
  try {
    const id = positiveInt((await ctx.params).id, "id");
    const user = await prisma.user.findUnique({ where: { id }, omit: { passwordHash: true } });
    if (!user) throw new HttpError(404, "not found");
    return json(user);
  } catch (err) {
    return errorResponse(err);
  }
}

export async function PATCH(req: Request, ctx: Ctx) {
  try {
    const id = positiveInt((await ctx.params).id, "id");
    const { password, ...rest } = await readJson(req);
    const data: Prisma.UserUpdateInput = userFields(rest);
    if (password !== undefined) {
      if (typeof password !== "string" || password.length < 8) throw new HttpError(400, "password needs at least 8 characters");
      data.passwordHash = await hashPassword(password);
    }
    const user = await prisma.user.update({ where: { id }, data, omit: { passwordHash: true } });
    return json(user);
  } catch (err) {
    return errorResponse(err);
  }
}

export async function DELETE(_req: Request, ctx: Ctx) {
  try {
    const id = positiveInt((await ctx.params).id, "id");
    await prisma.user.delete({ where: { id } });
    return json({ deleted: id });
  } catch (err) {
    return errorResponse(err);
  }
}
