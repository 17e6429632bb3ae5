// Kafka admin calls in the end-to-end tests, retried while the broker answers
// with a retriable error: right after a broker start or a topic creation,
// partition leadership is still settling on a busy machine (NOT_LEADER).
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function retryRetriable(fn, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!e.retriable || Date.now() > deadline) throw e;
      await sleep(250);
    }
  }
}
