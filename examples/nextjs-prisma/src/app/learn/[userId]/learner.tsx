"use client";
// The learner's page in the browser: buttons that call the API (each call is
// one Prisma transaction that also writes an outbox event), and a Socket.IO
// connection to the notification service that shows what Kafka delivered.
import { useEffect, useState } from "react";
import { io } from "socket.io-client";

type Course = { id: number; slug: string; title: string };
type Notification = { outboxId: string; userId: number; kind: string; text: string; via: string };

// Newest first (outbox ids grow with commit order), each outbox-id once: the
// history sent on (re)connect overlaps what the page has, and a crash of the
// service between its emit and its COMMIT can send one notification again.
function merge(prev: Notification[], more: Notification[]) {
  const byId = new Map(prev.map((n) => [n.outboxId, n]));
  for (const n of more) if (!byId.has(n.outboxId)) byId.set(n.outboxId, n);
  return [...byId.values()].sort((a, b) => (BigInt(b.outboxId) > BigInt(a.outboxId) ? 1 : -1));
}

declare global {
  interface Window {
    // Every "notification" message as received, repeats included (for tests and debugging).
    __eduNotifications?: (Notification & { receivedAt: number })[];
  }
}

const LESSONS = [1, 2, 3];

export function Learner({
  user,
  courses,
  enrolled: initialEnrolled,
  socketUrl,
}: {
  user: { id: number; name: string };
  courses: Course[];
  enrolled: Record<number, number[]>;
  socketUrl: string;
}) {
  const [status, setStatus] = useState("connecting");
  const [server, setServer] = useState("");
  const [notes, setNotes] = useState<Notification[]>([]);
  const [enrolled, setEnrolled] = useState(initialEnrolled);
  const [message, setMessage] = useState("");
  const [pending, setPending] = useState(false);

  useEffect(() => {
    window.__eduNotifications ??= [];
    const socket = io(socketUrl, { auth: { userId: user.id }, transports: ["websocket"] });
    socket.on("ready", ({ server, history }: { server: string; history: Notification[] }) => {
      setServer(server);
      setStatus("live");
      setNotes((prev) => merge(prev, history));
    });
    socket.on("disconnect", () => setStatus("disconnected"));
    socket.on("notification", (n: Notification) => {
      window.__eduNotifications!.push({ ...n, receivedAt: Date.now() });
      setNotes((prev) => merge(prev, [n]));
    });
    return () => {
      socket.close();
    };
  }, [socketUrl, user.id]);

  async function post(path: string, body: object, done: string) {
    setPending(true);
    setMessage("…");
    const res = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: user.id, ...body }),
    });
    const result = await res.json().catch(() => ({}));
    setMessage(res.ok ? `${done} (saved)` : `${done} failed: ${result.error ?? res.status}`);
    setPending(false);
    return res.ok;
  }

  async function enroll(course: Course) {
    if (await post("/api/enroll", { courseId: course.id }, `Enroll in ${course.slug.toUpperCase()}`)) {
      setEnrolled((e) => ({ ...e, [course.id]: [] }));
    }
  }

  async function complete(course: Course, lesson: number) {
    if (await post("/api/lessons", { courseId: course.id, lesson }, `Lesson ${lesson} of ${course.slug.toUpperCase()}`)) {
      setEnrolled((e) => ({ ...e, [course.id]: [...(e[course.id] ?? []), lesson] }));
    }
  }

  return (
    <main style={{ fontFamily: "sans-serif", maxWidth: 860, margin: "1rem auto", display: "flex", gap: "2rem" }}>
      <section style={{ flex: 3 }}>
        <h1 style={{ fontSize: "1.4rem" }}>Hello, {user.name}</h1>
        <p data-testid="socket-status" data-status={status} style={{ color: status === "live" ? "green" : "gray" }}>
          notifications: {status}
          {server ? ` (${server})` : ""}
        </p>
        <table>
          <tbody>
            {courses.map((c) => (
              <tr key={c.id} data-course={c.slug}>
                <td>
                  <b>{c.slug.toUpperCase()}</b> {c.title}
                </td>
                <td style={{ whiteSpace: "nowrap" }}>
                  {c.id in enrolled ? (
                    LESSONS.map((l) => (
                      <button
                        key={l}
                        data-action={`complete-${l}`}
                        disabled={enrolled[c.id].includes(l)}
                        onClick={() => complete(c, l)}
                      >
                        Complete lesson {l}
                      </button>
                    ))
                  ) : (
                    <button data-action="enroll" onClick={() => enroll(c)}>
                      Enroll
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <p data-testid="action-result" data-pending={String(pending)}>{message}</p>
      </section>
      <aside style={{ flex: 2 }}>
        <h2 style={{ fontSize: "1.1rem" }}>Notifications</h2>
        <ul data-testid="notifications" style={{ listStyle: "none", padding: 0 }}>
          {notes.map((n) => (
            <li
              key={n.outboxId}
              data-outbox-id={n.outboxId}
              data-user-id={n.userId}
              data-kind={n.kind}
              style={{ border: "1px solid #9c9", background: "#efe", borderRadius: 6, padding: "0.4rem 0.6rem", margin: "0.3rem 0" }}
            >
              {n.text}
            </li>
          ))}
        </ul>
      </aside>
    </main>
  );
}
