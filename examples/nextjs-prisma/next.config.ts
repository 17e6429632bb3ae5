import type { NextConfig } from "next";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(fileURLToPath(import.meta.url));

const nextConfig: NextConfig = {
  // This app lives inside another repository: pin the workspace root to it.
  turbopack: { root },
  outputFileTracingRoot: root,
  // Load the pg driver from node_modules at run time instead of bundling it.
  serverExternalPackages: ["pg", "@prisma/adapter-pg"],
};

export default nextConfig;
