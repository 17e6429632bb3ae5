import { NextResponse } from "next/server";
import { Prisma } from "@/generated/prisma/client";

export class HttpError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

/** JSON.stringify that writes BigInt as a decimal string and Uint8Array as base64. */
export function json(body: unknown, status = 200): NextResponse {
  const text = JSON.stringify(body, (_key, value) => {
    if (typeof value === "bigint") return value.toString();
    if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
    return value;
  });
  return new NextResponse(text, { status, headers: { "content-type": "application/json" } });
}

export async function readJson(req: Request): Promise<Record<string, unknown>> {
  try {
    const body = await req.json();
    if (body && typeof body === "object" && !Array.isArray(body)) return body as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new HttpError(400, "request body must be a JSON object");
}

/** Maps thrown errors to HTTP responses: Prisma's known errors become 4xx. */
export function errorResponse(err: unknown): NextResponse {
  if (err instanceof HttpError) return json({ error: err.message }, err.status);
  if (err instanceof Prisma.PrismaClientKnownRequestError) {
    switch (err.code) {
      case "P2002": return json({ error: "already exists", code: err.code, target: err.meta?.target }, 409);
      case "P2003": return json({ error: "referenced row does not exist", code: err.code }, 404);
      case "P2025": return json({ error: "not found", code: err.code }, 404);
    }
  }
  console.error(err);
  return json({ error: "internal error" }, 500);
}

export function positiveInt(value: unknown, name: string): number {
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n <= 0) {
    throw new HttpError(400, `${name} must be a positive integer`);
  }
  return n;
}
