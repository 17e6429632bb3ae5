// Browser end-to-end test of the learner page of examples/nextjs-prisma, run
// by test/e2e/run.sh after e2e.mjs, against the same Next.js server:
//
//   click in Chromium -> route handler -> Prisma transaction (row + outbox event)
//   -> edu_outbox relay -> Kafka -> notifier/server.mjs (KafkaJS group, two
//   processes) -> Socket.IO room user:<id> -> the page's DOM
//
// Debian's chromium (CHROMIUM, default /usr/bin/chromium), headless, driven by
// playwright-core. The two notifier processes are started and stopped here.
//
// Environment: APP_URL, ROOT, STATE_DIR, KAFKA_PORT, KAFKA_HOME_DIR,
// DATABASE_URL, NOTIFIER_PORTS ("a,b": the ports the Next.js server was told
// about in NOTIFIER_URLS), TAP_START (number of the last test already printed).
// Optional: SCREENSHOT_OUT (copy the screenshot there), MEASURE_LATENCY (number
// of events for test/e2e/latency.mjs; 0 or unset: no measurement).
import assert from "node:assert/strict";
import { retryRetriable } from "./kafka_retry.mjs";
import { execFile, spawn } from "node:child_process";
import { copyFileSync, openSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { promisify } from "node:util";

const ROOT = process.env.ROOT;
const APP_URL = process.env.APP_URL;
const STATE_DIR = process.env.STATE_DIR;
const APP_DIR = path.join(ROOT, "examples", "nextjs-prisma");
const BROKER = `127.0.0.1:${process.env.KAFKA_PORT}`;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const PORTS = (process.env.NOTIFIER_PORTS ?? "").split(",").map(Number);
const RUN = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const GROUP = `notifier-e2e-${RUN}`;
const TOPICS = ["user-events", "enrollment-events", "course-events"];

const requireApp = createRequire(path.join(APP_DIR, "package.json"));
const { Kafka, logLevel } = requireApp("kafkajs");
const pg = requireApp("pg");
const { chromium } = requireApp("playwright-core");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const run = promisify(execFile);

// ---------------------------------------------------------------- TAP
let testNo = Number(process.env.TAP_START ?? 0);
let failures = 0;
let skipRest = null; // set when a step that later ones depend on failed
async function check(description, fn) {
  testNo++;
  if (skipRest) {
    failures++;
    console.log(`not ok ${testNo} - browser: ${description}`);
    console.log(`#   not run: ${skipRest}`);
    return;
  }
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok ${testNo} - browser: ${description} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  } catch (err) {
    failures++;
    console.log(`not ok ${testNo} - browser: ${description}`);
    for (const line of String(err?.stack ?? err).split("\n")) console.log(`#   ${line}`);
  }
}
async function setup(description, fn) {
  const before = failures;
  await check(description, fn);
  if (failures > before) skipRest = `setup step "${description}" failed`;
}

// ---------------------------------------------------------------- app, SQL, Kafka
async function api(method, urlPath, body) {
  const res = await fetch(APP_URL + urlPath, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const json = await res.json().catch(() => null);
  assert.ok(res.ok, `${method} ${urlPath}: HTTP ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
await db.connect();
const sql = async (text, params = []) => (await db.query(text, params)).rows;

const kafka = new Kafka({ clientId: `browser-e2e-${RUN}`, brokers: [BROKER], logLevel: logLevel.NOTHING });
const kafkaScript = (cmd) => run("bash", [path.join(ROOT, "scripts", "kafka.sh"), cmd], { env: process.env, timeout: 120_000 });

/** Runs fn with a connected admin client, again while the broker answers with a retriable error. */
const withAdmin = (fn) =>
  retryRetriable(async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      return await fn(admin);
    } finally {
      await admin.disconnect();
    }
  });

const endOffsets = () =>
  withAdmin(async (admin) => {
    const out = {};
    for (const topic of TOPICS) out[topic] = await admin.fetchTopicOffsets(topic);
    return out;
  });

/** Commits `offsets` ({topic: [{partition, offset}]}) for the notifier group; it must have no members. */
const setGroupOffsets = (offsets) =>
  withAdmin(async (admin) => {
    for (const topic of TOPICS) {
      await admin.setOffsets({
        groupId: GROUP,
        topic,
        partitions: offsets[topic].map(({ partition, offset }) => ({ partition, offset })),
      });
    }
  });

/** Records of the notifier group not yet committed, over all partitions. */
const groupLag = () =>
  withAdmin(async (admin) => {
    let lag = 0n;
    const committed = await admin.fetchOffsets({ groupId: GROUP, topics: TOPICS });
    for (const { topic, partitions } of committed) {
      const ends = await admin.fetchTopicOffsets(topic);
      for (const p of partitions) {
        const end = BigInt(ends.find((e) => e.partition === p.partition).offset);
        lag += end - (p.offset === "-1" ? 0n : BigInt(p.offset));
      }
    }
    return lag;
  });

async function waitFor(what, predicate, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await predicate();
    if (result) return result;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(200);
  }
}

// ---------------------------------------------------------------- notifier processes
const notifiers = {}; // name -> {port, child}
const NAMES = ["notifier-A", "notifier-B"];

function startNotifier(name, port) {
  const out = openSync(path.join(STATE_DIR, `${name}.log`), "a");
  const child = spawn(process.execPath, [path.join(APP_DIR, "notifier", "server.mjs")], {
    env: {
      ...process.env,
      NOTIFIER_PORT: String(port),
      NOTIFIER_ID: name,
      NOTIFIER_GROUP: GROUP,
      NOTIFIER_ORIGIN: APP_URL,
      KAFKA_BROKERS: BROKER,
    },
    stdio: ["ignore", out, out],
  });
  notifiers[name] = { port, child, exited: false };
  writeFileSync(path.join(STATE_DIR, `${name}.pid`), String(child.pid)); // run.sh kills it if we die
  child.on("exit", () => {
    notifiers[name].exited = true;
    rmSync(path.join(STATE_DIR, `${name}.pid`), { force: true });
  });
}

async function stopNotifier(name) {
  const n = notifiers[name];
  if (!n || n.exited) return;
  n.child.kill("SIGTERM");
  try {
    await waitFor(`${name} to exit`, () => n.exited, 20_000);
  } catch {
    n.child.kill("SIGKILL");
  }
}
process.on("exit", () => {
  for (const n of Object.values(notifiers)) if (!n.exited) n.child.kill("SIGKILL");
});

async function health(name) {
  try {
    const res = await fetch(`http://127.0.0.1:${notifiers[name].port}/health`, { signal: AbortSignal.timeout(2_000) });
    return await res.json();
  } catch {
    return null;
  }
}

/** Both processes are in the group and own disjoint shares of all partitions. */
async function waitGroupStable(timeoutMs = 60_000) {
  const partitions = await endOffsets();
  const total = TOPICS.reduce((n, t) => n + partitions[t].length, 0);
  return waitFor("both notifiers to share all partitions in the consumer group", async () => {
    const hs = await Promise.all(NAMES.map(health));
    if (hs.some((h) => !h?.joined)) return null;
    const owned = hs.map((h) => Object.entries(h.assignment).flatMap(([t, ps]) => ps.map((p) => `${t}/${p}`)));
    if (owned.some((o) => o.length === 0)) return null;
    if (new Set(owned.flat()).size !== total || owned.flat().length !== total) return null;
    return hs;
  }, timeoutMs);
}

// ---------------------------------------------------------------- pages
const NOTES = "[data-testid=notifications] li";
const received = (page) => page.evaluate(() => window.__eduNotifications ?? []);
const shown = (page) =>
  page.$$eval(NOTES, (els) => els.map((e) => ({ outboxId: e.dataset.outboxId, userId: Number(e.dataset.userId), text: e.textContent })));

async function openLearner(browser, userId, server) {
  const context = await browser.newContext({ viewport: { width: 900, height: 400 } });
  const page = await context.newPage();
  await page.goto(`${APP_URL}/learn/${userId}?server=${server}`);
  await waitLive(page);
  return page;
}
const waitLive = (page, timeout = 30_000) => page.waitForSelector("[data-testid=socket-status][data-status=live]", { timeout });

/** Clicks a button of a course row and returns the API's JSON answer (status, body). */
async function click(page, slug, action) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && /\/api\/(enroll|lessons)$/.test(r.url())),
    page.locator(`tr[data-course="${slug}"] button[data-action="${action}"]`).click(),
  ]);
  const body = await response.json().catch(() => null);
  // The page has shown the result of this request.
  await page.waitForSelector("[data-testid=action-result][data-pending=false]");
  return { status: response.status(), body };
}

const waitNote = (page, outboxId, timeout = 30_000) =>
  page.waitForSelector(`${NOTES}[data-outbox-id="${outboxId}"]`, { timeout });

/** Each outbox-id arrived at most once over the socket, and the DOM lists each once. */
async function assertOnce(page, label) {
  const ids = (await received(page)).map((n) => n.outboxId);
  const repeated = ids.filter((id, i) => ids.indexOf(id) !== i);
  assert.deepEqual(repeated, [], `${label}: outbox-ids received more than once over Socket.IO`);
  const dom = (await shown(page)).map((n) => n.outboxId);
  assert.equal(new Set(dom).size, dom.length, `${label}: the page lists an outbox-id twice`);
}

/** Everything the page received live or lists (history included) belongs to `userId`. */
async function assertOnlyFor(page, userId, label) {
  const live = (await received(page)).filter((n) => n.userId !== userId);
  assert.deepEqual(live, [], `${label}'s page received notifications of other users`);
  const listed = (await shown(page)).filter((n) => n.userId !== userId);
  assert.deepEqual(listed, [], `${label}'s page lists notifications of other users`);
}

// ---------------------------------------------------------------- the tests
const ids = {};
let browser = null;
let ada = null; // Ada's page on notifier-A
let ada2 = null; // a second tab of Ada, on notifier-B
let bob = null; // Bob's page on notifier-B
let startOffsets = null;

await setup("Chromium (Debian package), playwright-core, two notifier processes in one consumer group", async () => {
  assert.equal(PORTS.length, 2, "NOTIFIER_PORTS must name two ports");
  await withAdmin((admin) => admin.createTopics({ topics: TOPICS.map((topic) => ({ topic, numPartitions: 3 })), waitForLeaders: true }));
  // The group starts where the topics end now (and the restart test rewinds it here).
  startOffsets = await endOffsets();
  await setGroupOffsets(startOffsets);
  startNotifier(NAMES[0], PORTS[0]);
  startNotifier(NAMES[1], PORTS[1]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  await waitGroupStable();
});

await setup("learners and courses created; pages of Ada (two tabs, one per Socket.IO server) and Bob are live", async () => {
  // Only this test's courses on the page (e2e.mjs left its own; enrollments cascade).
  await sql(`DELETE FROM "Course"`);
  for (const [slug, title, capacity] of [["sql-101", "SQL basics", null], ["py-201", "Python", null],
    ["data-301", "Data modelling", null], ["full-001", "Fully booked", 0]]) {
    ids[slug] = (await api("POST", "/api/courses", { slug, title, capacity })).id;
  }
  ids.ada = (await api("POST", "/api/register", { email: `ada-${RUN}@example.edu`, name: "Ada", password: "correct horse" })).userId;
  ids.bob = (await api("POST", "/api/register", { email: `bob-${RUN}@example.edu`, name: "Bob", password: "correct horse" })).userId;
  ada = await openLearner(browser, ids.ada, 0);
  ada2 = await openLearner(browser, ids.ada, 1);
  bob = await openLearner(browser, ids.bob, 1);
  assert.match(await ada.textContent("[data-testid=socket-status]"), /notifier-A/);
  assert.match(await ada2.textContent("[data-testid=socket-status]"), /notifier-B/);
});

await check('clicking "Enroll" shows "Enrolled in SQL-101" in Ada\'s page, and nothing in Bob\'s', async () => {
  const res = await click(ada, "sql-101", "enroll");
  assert.equal(res.status, 201, JSON.stringify(res.body));
  ids.adaEnroll = res.body.outboxEventId;
  const li = await waitNote(ada, ids.adaEnroll);
  assert.equal(await li.textContent(), "Enrolled in SQL-101");
  await waitNote(ada2, ids.adaEnroll);
  // Registered before the page was open: listed from the history sent on connect (or live, if it came later).
  await ada.locator(NOTES, { hasText: "Welcome, Ada!" }).waitFor({ timeout: 30_000 });
  // Bob's own later notification (same topic) is the marker: once it is in his
  // page, Ada's earlier one would have been too.
  const mark = await click(bob, "py-201", "enroll");
  assert.equal(mark.status, 201);
  await waitNote(bob, mark.body.outboxEventId);
  await assertOnlyFor(bob, ids.bob, "Bob");
  await assertOnlyFor(ada, ids.ada, "Ada");
  assert.ok((await received(bob)).some((n) => n.outboxId === mark.body.outboxEventId), "Bob's marker came live");
  assert.ok(!(await received(bob)).some((n) => n.outboxId === ids.adaEnroll), "Bob's page got Ada's enrollment");
});

await check("a Prisma transaction that wrote its event and rolled back (course full) never shows a notification", async () => {
  const res = await click(ada, "full-001", "enroll");
  assert.equal(res.status, 409, JSON.stringify(res.body));
  assert.match(await ada.textContent("[data-testid=action-result]"), /course is full/);
  // Marker: Ada's next enrollment. Same topic and key, hence the same
  // partition, committed later: the relay sends in commit order, so once the
  // marker is on the page a leaked event would be there too.
  const mark = await click(ada, "py-201", "enroll");
  assert.equal(mark.status, 201);
  await waitNote(ada, mark.body.outboxEventId);
  await waitNote(ada2, mark.body.outboxEventId);
  for (const page of [ada, ada2]) {
    const texts = (await received(page)).map((n) => n.text);
    assert.ok(!texts.some((t) => /FULL-001/.test(t)), `rolled-back enrollment shown: ${texts}`);
  }
  const rows = await sql(`SELECT "outboxId" FROM "Notification" WHERE "text" LIKE '%FULL-001%'`);
  assert.deepEqual(rows, [], "the notifier handled a rolled-back event");
  const [{ n }] = await sql(`SELECT count(*)::int AS n FROM "Enrollment" WHERE "userId" = $1 AND "courseId" = $2`, [ids.ada, ids["full-001"]]);
  assert.equal(n, 0, "the enrollment was rolled back");
});

await check("with the Kafka broker stopped the click succeeds; the notification appears once the broker is back, without a reload", async () => {
  await ada.evaluate(() => (window.__sameDocument = true));
  writeFileSync(path.join(STATE_DIR, "kafka-stopped"), "");
  await kafkaScript("stop");
  let res;
  try {
    res = await click(ada, "sql-101", "complete-1");
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.match(await ada.textContent("[data-testid=action-result]"), /Lesson 1 of SQL-101 \(saved\)/);
    assert.equal(await ada.$(`${NOTES}[data-outbox-id="${res.body.outboxEventId}"]`), null, "shown while Kafka was down");
  } finally {
    await kafkaScript("start");
    rmSync(path.join(STATE_DIR, "kafka-stopped"), { force: true });
  }
  const li = await waitNote(ada, res.body.outboxEventId, 120_000);
  assert.equal(await li.textContent(), "Lesson 1 completed (SQL-101)");
  assert.equal(await ada.evaluate(() => window.__sameDocument), true, "the page was reloaded");
  await waitNote(ada2, res.body.outboxEventId, 30_000);
});

await check("two Socket.IO processes (postgres adapter, partitions split by the group): each tab gets each notification once", async () => {
  await waitGroupStable(90_000); // the broker restart made the group rebalance
  const results = [];
  results.push(await click(ada, "sql-101", "complete-2"));
  results.push(await click(ada, "sql-101", "complete-3"));
  results.push(await click(ada, "py-201", "complete-1"));
  await api("PATCH", `/api/users/${ids.ada}`, { name: "Ada L." });
  for (const r of results) assert.equal(r.status, 201, JSON.stringify(r.body));
  for (const r of results) {
    await waitNote(ada, r.body.outboxEventId);
    await waitNote(ada2, r.body.outboxEventId);
  }
  await ada.locator(NOTES, { hasText: "Profile updated: name" }).waitFor({ timeout: 30_000 });
  await ada2.locator(NOTES, { hasText: "Profile updated: name" }).waitFor({ timeout: 30_000 });
  await sleep(500); // a second copy through the other process would come right behind the first
  await assertOnce(ada, "Ada on notifier-A");
  await assertOnce(ada2, "Ada on notifier-B");
  // Both tabs got the same notifications, and at least one tab got one that
  // the *other* process consumed: the adapter carried it across.
  const a = (await received(ada)).map((n) => n.outboxId).sort();
  const b = (await received(ada2)).map((n) => n.outboxId).sort();
  assert.deepEqual(a, b, "both tabs received the same notifications");
  const crossed = [
    ...(await received(ada)).filter((n) => n.via !== NAMES[0]),
    ...(await received(ada2)).filter((n) => n.via !== NAMES[1]),
  ];
  assert.ok(crossed.length > 0, "no notification crossed between the processes");
  const shot = path.join(STATE_DIR, "learner-notifications.png");
  await ada.screenshot({ path: shot });
  if (process.env.SCREENSHOT_OUT) copyFileSync(shot, process.env.SCREENSHOT_OUT);
});

await check("restarting both notifiers, rewound to re-read every record, shows no notification twice", async () => {
  const before = Number((await sql(`SELECT count(*)::int AS n FROM "Notification"`))[0].n);
  await Promise.all(NAMES.map(stopNotifier));
  await ada.waitForSelector("[data-testid=socket-status][data-status=disconnected]", { timeout: 10_000 });
  // As if the processes had died before committing any offset: every record
  // since the start of this test is delivered again.
  await setGroupOffsets(startOffsets);
  // The re-read must reach pages that are connected, or a repeat would go to
  // an empty room and prove nothing: hold Kafka back until the pages are live.
  writeFileSync(path.join(STATE_DIR, "kafka-stopped"), "");
  await kafkaScript("stop");
  try {
    NAMES.forEach((name, i) => startNotifier(name, PORTS[i]));
    for (const page of [ada, ada2, bob]) await waitLive(page); // socket.io-client reconnected by itself
  } finally {
    await kafkaScript("start");
    rmSync(path.join(STATE_DIR, "kafka-stopped"), { force: true });
  }
  await waitGroupStable(90_000);
  const mark = await click(ada, "data-301", "enroll");
  assert.equal(mark.status, 201);
  await waitNote(ada, mark.body.outboxEventId);
  await waitNote(ada2, mark.body.outboxEventId);
  await waitFor("the restarted group to re-read everything", async () => (await groupLag()) === 0n, 60_000);
  await sleep(500);
  await assertOnce(ada, "Ada on notifier-A");
  await assertOnce(ada2, "Ada on notifier-B");
  await assertOnce(bob, "Bob");
  await assertOnlyFor(bob, ids.bob, "Bob");
  // Not vacuous: the records really came again, and the Notification rows dropped them.
  const hs = await Promise.all(NAMES.map(health));
  const duplicates = hs.reduce((n, h) => n + h.stats.duplicates, 0);
  assert.ok(duplicates >= before, `re-read records dropped as repeats: ${duplicates}, notifications before: ${before}`);
});

if (Number(process.env.MEASURE_LATENCY ?? 0) > 0 && !skipRest) {
  const { measureLatency } = await import("./latency.mjs");
  await measureLatency({ page: ada, userId: ids.ada, courseIds: ids, api, count: Number(process.env.MEASURE_LATENCY) });
}

await browser?.close().catch(() => {});
await Promise.all(NAMES.map(stopNotifier));
await db.end().catch(() => {});
console.log(`1..${testNo}`);
process.exit(failures ? 1 : 0);
