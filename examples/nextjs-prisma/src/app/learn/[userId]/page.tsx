// /learn/:userId[?server=N] - a learner's page: courses with "Enroll" and
// "Complete lesson" buttons, and the notifications that arrive live over
// Socket.IO. The example has no sign-in: the id in the URL is the learner.
//
// NOTIFIER_URLS (comma-separated, read at request time) lists the Socket.IO
// servers of notifier/; ?server=N picks one (default: the first).
import { notFound } from "next/navigation";
import { prisma } from "@/lib/prisma";
import { Learner } from "./learner";

export const dynamic = "force-dynamic";

export default async function LearnPage({
  params,
  searchParams,
}: {
  params: Promise<{ userId: string }>;
  searchParams: Promise<{ server?: string }>;
}) {
  const { userId: raw } = await params;
  const userId = Number(raw);
  if (!Number.isSafeInteger(userId) || userId <= 0) notFound();
  const user = await prisma.user.findUnique({ where: { id: userId }, select: { id: true, name: true, email: true } });
  if (!user) notFound();

  const courses = await prisma.course.findMany({ orderBy: { id: "asc" }, select: { id: true, slug: true, title: true } });
  const enrollments = await prisma.enrollment.findMany({
    where: { userId },
    select: { courseId: true, lessons: { select: { lesson: true } } },
  });

  const urls = (process.env.NOTIFIER_URLS ?? "http://localhost:4001").split(",");
  const { server } = await searchParams;
  const socketUrl = urls[Number(server ?? 0)] ?? urls[0];

  return (
    <Learner
      user={{ id: user.id, name: user.name ?? user.email }}
      courses={courses}
      enrolled={Object.fromEntries(enrollments.map((e) => [e.courseId, e.lessons.map((l) => l.lesson)]))}
      socketUrl={socketUrl}
    />
  );
}
