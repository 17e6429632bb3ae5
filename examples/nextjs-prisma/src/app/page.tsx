export default function Home() {
  return (
    <main style={{ fontFamily: "sans-serif", maxWidth: 640, margin: "2rem auto" }}>
      <h1>edu_outbox example</h1>
      <p>Route handlers that write to PostgreSQL with Prisma and publish events to Kafka through the edu_outbox extension:</p>
      <ul>
        <li><code>POST /api/register</code> {"{email, name, password}"}</li>
        <li><code>POST /api/courses</code> {"{slug, title, capacity?}"}</li>
        <li><code>POST /api/enroll[?via=model]</code> {"{userId, courseId}"}</li>
        <li><code>GET | PATCH | DELETE /api/users/:id</code></li>
      </ul>
    </main>
  );
}
