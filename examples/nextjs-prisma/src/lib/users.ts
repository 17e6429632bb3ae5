import type { Prisma } from "@/generated/prisma/client";
import { HttpError } from "@/lib/http";

const ROLES = ["STUDENT", "INSTRUCTOR", "ADMIN"] as const;

/** Fields of User that a request may set (everything but id, email, password and createdAt). */
export type UserFields = Omit<Prisma.UserCreateInput, "email" | "passwordHash" | "createdAt" | "enrollments">;

export function userFields(body: Record<string, unknown>): UserFields {
  const data: UserFields = {};
  if ("name" in body) {
    if (body.name !== null && typeof body.name !== "string") throw new HttpError(400, "name must be a string or null");
    data.name = body.name;
  }
  if ("role" in body) {
    if (!ROLES.includes(body.role as (typeof ROLES)[number])) throw new HttpError(400, `role must be one of ${ROLES.join(", ")}`);
    data.role = body.role as (typeof ROLES)[number];
  }
  if ("lastLoginAt" in body) {
    const d = body.lastLoginAt === null ? null : new Date(String(body.lastLoginAt));
    if (d && Number.isNaN(d.getTime())) throw new HttpError(400, "lastLoginAt must be an ISO date");
    data.lastLoginAt = d;
  }
  if ("profile" in body) {
    if (!body.profile || typeof body.profile !== "object" || Array.isArray(body.profile)) {
      throw new HttpError(400, "profile must be an object");
    }
    data.profile = body.profile as Prisma.InputJsonObject;
  }
  if ("tags" in body) {
    if (!Array.isArray(body.tags) || !body.tags.every((t) => typeof t === "string")) {
      throw new HttpError(400, "tags must be an array of strings");
    }
    data.tags = body.tags as string[];
  }
  if ("credits" in body) {
    // Decimal: pass a string to keep every digit.
    if (!/^-?\d{1,8}(\.\d{1,2})?$/.test(String(body.credits))) throw new HttpError(400, "credits must be a decimal with 2 places");
    data.credits = String(body.credits);
  }
  if ("storageQuotaBytes" in body) {
    if (!/^\d+$/.test(String(body.storageQuotaBytes))) throw new HttpError(400, "storageQuotaBytes must be an integer");
    data.storageQuotaBytes = BigInt(String(body.storageQuotaBytes));
  }
  if ("avatarBase64" in body) {
    if (body.avatarBase64 !== null && typeof body.avatarBase64 !== "string") throw new HttpError(400, "avatarBase64 must be base64 or null");
    data.avatar = body.avatarBase64 === null ? null : Uint8Array.from(Buffer.from(body.avatarBase64, "base64"));
  }
  if ("rating" in body) {
    if (body.rating !== null && typeof body.rating !== "number") throw new HttpError(400, "rating must be a number or null");
    data.rating = body.rating;
  }
  if ("isVerified" in body) {
    if (typeof body.isVerified !== "boolean") throw new HttpError(400, "isVerified must be a boolean");
    data.isVerified = body.isVerified;
  }
  return data;
}
