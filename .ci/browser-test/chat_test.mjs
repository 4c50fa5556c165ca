// Drives the chat example in headless Chromium: two tabs chat in one room,
// a third listens over Server-Sent Events, and the page reconnects after
// the server restarts. Usage: node chat_test.mjs <base-url> <restart-command-fifo>
import { chromium } from "playwright-core";
import { writeFileSync, mkdirSync } from "node:fs";

const base = process.argv[2];
const control = process.argv[3]; // a file the shell script watches for "restart"
const shots = process.env.SCREENSHOT_DIR || "out";
const runtime = process.env.RUNTIME || "tokio";
const requireDeflate = process.env.REQUIRE_DEFLATE === "1";

function fail(message) {
  console.error("FAIL: " + message);
  process.exit(1);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  ],
});
const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
const errors = [];
let restarting = false;

async function open(nick, room, listen) {
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" && !restarting) errors.push(`${nick}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`${nick}: ${e.message}`));
  await page.goto(base + "/");
  if (nick) await page.fill("#nick", nick);
  await page.fill("#room", room);
  if (listen) await page.check("#listen");
  await page.click("#join button");
  const expected = listen ? "listening" : "connected";
  await page.waitForFunction((t) => document.getElementById("status-text").textContent === t,
    expected, { timeout: 10000 });
  return page;
}

async function send(page, text) {
  await page.fill("#text", text);
  await page.click("#send-button");
}

async function sees(page, text, who) {
  try {
    await page.waitForFunction((t) => [...document.querySelectorAll("#log .msg .text")]
      .some((n) => n.textContent === t), text, { timeout: 10000 });
  } catch {
    fail(`${who} did not see ${JSON.stringify(text)}`);
  }
}

const alice = await open("alice", "lobby", false);
const bob = await open("bob", "lobby", false);
const listener = await open("", "lobby", true);

// Both members are listed on bob's page.
await bob.waitForFunction(() => {
  const names = [...document.querySelectorAll("#members li")].map((li) => li.textContent);
  return names.includes("alice") && names.includes("bob");
}, null, { timeout: 10000 }).catch(() => fail("member list lacks alice and bob"));

if (requireDeflate) {
  // Chromium offers permessage-deflate on every connection; the server must accept it.
  const ext = await alice.evaluate(() => new Promise((resolve) => {
    const ws = new WebSocket("ws://" + location.host + "/websocket");
    ws.onopen = () => { resolve(ws.extensions); ws.close(); };
    ws.onerror = () => resolve("error");
  }));
  if (!String(ext).startsWith("permessage-deflate")) fail("deflate not negotiated: " + ext);
  console.log("negotiated extensions: " + ext);
}

await send(alice, "hello from alice");
await sees(bob, "hello from alice", "bob");
await sees(listener, "hello from alice", "the SSE listener");
await sees(alice, "hello from alice", "alice (own message)");
await send(bob, "hi alice 👋");
await sees(alice, "hi alice 👋", "alice");

mkdirSync(shots, { recursive: true });
await bob.screenshot({ path: `${shots}/chat-${runtime}.png` });
if (errors.length) fail("console errors: " + errors.join("; "));

// Restart the server: the page must notice and reconnect by itself.
restarting = true;
writeFileSync(control, "restart\n");
await alice.waitForFunction(() => document.getElementById("status").className === "connecting",
  null, { timeout: 10000 }).catch(() => fail("alice did not notice the server going away"));
await alice.waitForFunction(() => document.getElementById("status-text").textContent === "connected",
  null, { timeout: 20000 }).catch(() => fail("alice did not reconnect"));
await bob.waitForFunction(() => document.getElementById("status-text").textContent === "connected",
  null, { timeout: 20000 }).catch(() => fail("bob did not reconnect"));
await send(bob, "after the restart");
await sees(alice, "after the restart", "alice after reconnecting");
await alice.screenshot({ path: `${shots}/chat-${runtime}-reconnected.png` });

await browser.close();
console.log(`browser (${runtime}): ok`);
