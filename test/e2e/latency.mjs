// Commit-to-DOM latency of the learner page: a measurement, not a test.
// browser.mjs calls it when MEASURE_LATENCY=N (number of events) is set:
//
//   MEASURE_LATENCY=300 bash test/run.sh e2e
//
// Each event is a POST /api/lessons sent at a fixed rate (LATENCY_RATE per
// second, default 5). The route answers with two instants around the COMMIT:
// preCommitAt (PostgreSQL's clock_timestamp() in the transaction's last
// statement) and committedAt (the Next.js server's Date.now() once Prisma
// returned); the page records Date.now() when a MutationObserver sees the
// notification's <li> appear. All three are this machine's wall clock. The
// latency from preCommitAt is an upper bound (it includes the COMMIT), the one
// from committedAt a lower bound (a busy server answers late). Prints "# latency ..." lines and writes
// every sample to $STATE_DIR/latency.json.
import { writeFileSync } from "node:fs";
import path from "node:path";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

export async function measureLatency({ page, userId, courseIds, api, count }) {
  const rate = Number(process.env.LATENCY_RATE ?? 5);
  const courseId = courseIds["data-301"];
  await page.evaluate(() => {
    window.__domTimes = {};
    new MutationObserver((mutations) => {
      const now = Date.now();
      for (const m of mutations) {
        for (const node of m.addedNodes) {
          if (node.dataset?.outboxId && !(node.dataset.outboxId in window.__domTimes)) window.__domTimes[node.dataset.outboxId] = now;
        }
      }
    }).observe(document.querySelector("[data-testid=notifications]"), { childList: true });
  });

  const commits = [];
  const sends = [];
  const t0 = Date.now();
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / rate;
    if (due > Date.now()) await sleep(due - Date.now());
    sends.push(
      api("POST", "/api/lessons", { userId, courseId, lesson: 1000 + i }).then(
        (body) => commits.push({ outboxId: String(body.outboxEventId), preCommitAt: body.preCommitAt, committedAt: body.committedAt }),
        (err) => console.log(`# latency: request ${i} failed: ${err.message}`),
      ),
    );
  }
  await Promise.all(sends);
  const deadline = Date.now() + 60_000;
  let dom = {};
  while (Date.now() < deadline) {
    dom = await page.evaluate(() => window.__domTimes);
    if (commits.every((c) => c.outboxId in dom)) break;
    await sleep(250);
  }
  const samples = commits.map((c) => ({ ...c, domAt: dom[c.outboxId] ?? null }));
  const arrived = samples.filter((s) => s.domAt !== null);
  const fromPre = arrived.map((s) => s.domAt - s.preCommitAt).sort((a, b) => a - b);
  const fromAck = arrived.map((s) => s.domAt - s.committedAt).sort((a, b) => a - b);
  const seconds = (Date.now() - t0) / 1000;
  const line = (ms) =>
    `min ${ms[0].toFixed(0)} p50 ${quantile(ms, 0.5).toFixed(0)} p90 ${quantile(ms, 0.9).toFixed(0)} ` +
    `p99 ${quantile(ms, 0.99).toFixed(0)} max ${ms.at(-1).toFixed(0)}`;
  console.log(`# latency: ${count} events at ${rate}/s, ${arrived.length} reached the page (${samples.length - arrived.length} missing after 60s)`);
  if (arrived.length) {
    console.log(`# latency ms, last statement before COMMIT -> DOM: ${line(fromPre)}`);
    console.log(`# latency ms, COMMIT acknowledged to Next.js -> DOM: ${line(fromAck)}`);
  }
  writeFileSync(path.join(process.env.STATE_DIR, "latency.json"), JSON.stringify({ rate, count, seconds, samples }, null, 1));
  const ms = fromPre;
  return { rate, ms };
}
