// One PrismaClient per server process, connected through the pg driver
// adapter: no Prisma query engine binary is involved.
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "@/generated/prisma/client";

function createClient() {
  // Read at run time. `next build` also loads this module, without a database;
  // pg connects lazily, on the first query.
  const connectionString = process.env.DATABASE_URL;
  const adapter = new PrismaPg({ connectionString, max: Number(process.env.DATABASE_POOL_SIZE ?? 10) });
  return new PrismaClient({ adapter });
}

// `next dev` re-evaluates modules on every change; keep one client (and one
// connection pool) across those reloads.
const globalForPrisma = globalThis as unknown as { prisma?: ReturnType<typeof createClient> };

export const prisma = globalForPrisma.prisma ?? createClient();
if (process.env.NODE_ENV !== "production") globalForPrisma.prisma = prisma;
