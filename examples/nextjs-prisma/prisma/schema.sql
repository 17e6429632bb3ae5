-- Tables of prisma/schema.prisma, written by hand the way `prisma migrate` would
-- create them, plus what Prisma cannot express: the edu_outbox extension and
-- the capture trigger on "User".
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f prisma/schema.sql
--
-- Run it in a database that edu_outbox.database names (or any, with '*'):
-- only those are relayed, and CREATE EXTENSION warns elsewhere.

CREATE EXTENSION IF NOT EXISTS edu_outbox;

CREATE TYPE "Role" AS ENUM ('STUDENT', 'INSTRUCTOR', 'ADMIN');

CREATE TABLE "User" (
    "id"                SERIAL NOT NULL,
    "email"             TEXT NOT NULL,
    "name"              TEXT,
    "passwordHash"      TEXT NOT NULL,
    "role"              "Role" NOT NULL DEFAULT 'STUDENT',
    "createdAt"         TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastLoginAt"       TIMESTAMPTZ(3),
    "profile"           JSONB NOT NULL DEFAULT '{}',
    "tags"              TEXT[] DEFAULT ARRAY[]::TEXT[],
    "credits"           DECIMAL(10,2) NOT NULL DEFAULT 0,
    "storageQuotaBytes" BIGINT NOT NULL DEFAULT 5368709120,
    "avatar"            BYTEA,
    "rating"            DOUBLE PRECISION,
    "isVerified"        BOOLEAN NOT NULL DEFAULT false,

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");

CREATE TABLE "Course" (
    "id"            SERIAL NOT NULL,
    "slug"          TEXT NOT NULL,
    "title"         TEXT NOT NULL,
    "capacity"      INTEGER,
    "enrolledCount" INTEGER NOT NULL DEFAULT 0,
    "createdAt"     TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Course_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "Course_slug_key" ON "Course"("slug");

CREATE TABLE "Enrollment" (
    "id"         SERIAL NOT NULL,
    "userId"     INTEGER NOT NULL,
    "courseId"   INTEGER NOT NULL,
    "enrolledAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Enrollment_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "Enrollment_userId_courseId_key" ON "Enrollment"("userId", "courseId");
ALTER TABLE "Enrollment" ADD CONSTRAINT "Enrollment_userId_fkey"
    FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "Enrollment" ADD CONSTRAINT "Enrollment_courseId_fkey"
    FOREIGN KEY ("courseId") REFERENCES "Course"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "LessonCompletion" (
    "id"          SERIAL NOT NULL,
    "userId"      INTEGER NOT NULL,
    "courseId"    INTEGER NOT NULL,
    "lesson"      INTEGER NOT NULL,
    "completedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "LessonCompletion_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "LessonCompletion_userId_courseId_lesson_key" ON "LessonCompletion"("userId", "courseId", "lesson");
ALTER TABLE "LessonCompletion" ADD CONSTRAINT "LessonCompletion_userId_courseId_fkey"
    FOREIGN KEY ("userId", "courseId") REFERENCES "Enrollment"("userId", "courseId") ON DELETE CASCADE ON UPDATE CASCADE;

-- The notification service's inbox (notifier/): one row per outbox-id it has
-- shown. The primary key is what drops a record Kafka delivers again, also
-- after the service restarts. No foreign key: a notification outlives the user.
CREATE TABLE "Notification" (
    "outboxId"  BIGINT NOT NULL,
    "userId"    INTEGER NOT NULL,
    "kind"      TEXT NOT NULL,
    "text"      TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Notification_pkey" PRIMARY KEY ("outboxId")
);
CREATE INDEX "Notification_userId_idx" ON "Notification"("userId");

-- @socket.io/postgres-adapter sends broadcasts between Socket.IO servers with
-- NOTIFY; a payload above its threshold (8000 bytes) goes through this table.
CREATE TABLE IF NOT EXISTS socket_io_attachments (
    id          BIGSERIAL UNIQUE,
    created_at  TIMESTAMPTZ DEFAULT NOW(),
    payload     BYTEA
);

-- Every committed INSERT, UPDATE and DELETE on "User" becomes an event on the
-- topic user-events, keyed by the user's id. The password hash never leaves
-- the database.
SELECT outbox_capture_table('"User"', 'user-events', exclude => ARRAY['passwordHash']);
