// What a learner is told about an outbox event, or null for events that are
// not shown to anyone. `courseCode(id)` looks a course up (the events carry
// only its id).
export async function notificationFor(event, courseCode) {
  const v = event.value;
  if (!v || typeof v !== "object") return null;
  if (event.topic === "enrollment-events" && v.type === "course_enrolled") {
    return { userId: v.userId, kind: "course_enrolled", text: `Enrolled in ${await courseCode(v.courseId)}` };
  }
  if (event.topic === "course-events" && v.type === "lesson_completed") {
    return { userId: v.userId, kind: "lesson_completed", text: `Lesson ${v.lesson} completed (${await courseCode(v.courseId)})` };
  }
  if (event.topic === "user-events") {
    // Captured rows of "User": key = the user's id.
    const userId = Number(event.key);
    if (v.op === "insert") return { userId, kind: "welcome", text: `Welcome, ${v.data?.name ?? v.data?.email}!` };
    if (v.op === "update" && v.changed?.length) {
      return { userId, kind: "profile_updated", text: `Profile updated: ${v.changed.join(", ")}` };
    }
  }
  return null;
}
