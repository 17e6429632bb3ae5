// Prisma 7 CLI configuration. The app itself connects through the pg driver
// adapter (src/lib/prisma.ts) and needs no Prisma engine binary.
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema.prisma",
  datasource: {
    // Only CLI commands that talk to the database use it; `prisma generate` does not.
    url: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/app",
  },
});
