// Drives the chat example in headless Chromium. Each person has a browser
// context of their own (their own localStorage), as people have their own
// browsers:
//
//   - alice and bob chat in one room; a listener that arrives later over
//     Server-Sent Events sees the member list at once, then the messages;
//   - dave asks for the nickname alice: the join form comes back with the
//     server's reason, and another name gets him in;
//   - bob switches room and dave leaves and comes back, without a reload;
//     messages reach the new room only;
//   - bob reloads: his nickname and room are remembered and he is back in;
//   - every message a member writes shows as pending until the server
//     acknowledges it;
//   - the server restarts: one status element counts the attempts in
//     place (no line per attempt) and every page reconnects by itself;
//     the restarted server has no history, so the chat pages (the SSE
//     listener too, resuming with Last-Event-ID) clear their log and say
//     earlier messages could not be recovered; a message
//     written while disconnected stays pending and is sent on reconnect.
//
// Usage: node chat_test.mjs <base-url> <control-file> [chromium flags...]
// BASE_URL, CONTROL_FILE and CHROMIUM_FLAGS (space-separated) work too, so
// the same test runs against https://127.0.0.1:PORT with
// --ignore-certificate-errors. The control file is how the test asks the
// script that runs it to restart the server: it writes "restart <seconds>"
// and the script stops the server, waits that long and starts it again.
import { chromium } from "playwright-core";
import { writeFileSync, mkdirSync } from "node:fs";

const positional = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const extraFlags = process.argv.slice(2).filter((a) => a.startsWith("--"))
  .concat((process.env.CHROMIUM_FLAGS || "").split(/\s+/).filter(Boolean));
const base = (positional[0] || process.env.BASE_URL || "").replace(/\/+$/, "");
const control = positional[1] || process.env.CONTROL_FILE;
const shots = process.env.SCREENSHOT_DIR || "out";
const runtime = process.env.RUNTIME || "tokio";
const requireDeflate = process.env.REQUIRE_DEFLATE === "1";
// "h2": the page must have come over HTTP/2 (the WebSockets then share its
// connection as RFC 8441 streams; the script running this test checks the
// server's log for that side).
const expectHttp = process.env.EXPECT_HTTP || "";
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!base || !control) {
  console.error("usage: node chat_test.mjs <base-url> <control-file> [chromium flags...]");
  process.exit(2);
}
const WAIT = 10000;

function fail(message) {
  console.error(`FAIL (${runtime}): ${message}`);
  process.exit(1);
}

function step(text) {
  console.log(`browser (${runtime}): ${text}`);
}

const browser = await chromium.launch({
  executablePath: chromiumPath,
  // playwright starts Chromium with a fresh temporary profile of its own.
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ...extraFlags,
  ],
});
const errors = [];
let restarting = false;

// A person: a browser context of their own, and one tab in it.
async function person(name) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await tab(context, name);
  return page;
}

async function tab(context, name) {
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" && !restarting) errors.push(`${name}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`${name}: ${e.message}`));
  await page.goto(base + "/");
  return page;
}

async function waitFor(page, what, fn, arg, timeout = WAIT) {
  try {
    await page.waitForFunction(fn, arg, { timeout });
  } catch {
    const state = await page.evaluate(() => ({
      status: document.getElementById("status-text").textContent,
      room: document.getElementById("room-label").textContent,
      members: [...document.querySelectorAll("#members li")].map((li) => li.textContent),
      joinError: document.getElementById("join-error").textContent,
    })).catch((e) => String(e));
    fail(`${what} (page state: ${JSON.stringify(state)})`);
  }
}

const statusIs = (page, text, who, timeout) => waitFor(page, `${who}: status never became ${JSON.stringify(text)}`,
  (t) => document.getElementById("status-text").textContent === t, text, timeout);

const formShown = (page) => page.evaluate(() => getComputedStyle(document.getElementById("join")).display !== "none");

async function join(page, nick, room, { listen = false, expect = "connected", who = nick } = {}) {
  await page.fill("#nick", nick);
  await page.fill("#room", room);
  if (listen) await page.check("#listen"); else await page.uncheck("#listen");
  await page.click("#join button");
  if (expect) await statusIs(page, expect, who);
}

// In any order: after a restart, members come back in the order they reconnect.
async function membersAre(page, names, who) {
  await waitFor(page, `${who}'s member list is not ${JSON.stringify(names)}`,
    (want) => JSON.stringify([...document.querySelectorAll("#members li")].map((li) => li.textContent).sort())
      === JSON.stringify(want), [...names].sort());
}

async function send(page, text) {
  await page.fill("#text", text);
  await page.click("#send-button");
}

const messages = (page) => page.evaluate(() =>
  [...document.querySelectorAll("#log .msg .text")].map((n) => n.textContent));

async function sees(page, text, who) {
  await waitFor(page, `${who} did not see ${JSON.stringify(text)}`,
    (t) => [...document.querySelectorAll("#log .msg .text")].some((n) => n.textContent === t), text);
}

// The bubble of `text` the page wrote has been acknowledged (or came back
// from the room): no longer pending, and it knows its position.
async function acked(page, text, who) {
  await waitFor(page, `${who}'s ${JSON.stringify(text)} was never acknowledged`,
    (t) => [...document.querySelectorAll("#log .msg")].some((m) =>
      m.querySelector(".text").textContent === t && !m.classList.contains("pending") && m.dataset.pos),
    text);
}

async function neverSees(page, text, who) {
  await page.waitForTimeout(400);
  if ((await messages(page)).includes(text)) fail(`${who} saw ${JSON.stringify(text)}, sent to another room`);
}

// Set on a page, it survives anything but a reload.
const mark = (page) => page.evaluate(() => { window.notReloaded = true; });
async function notReloaded(page, who) {
  if (!(await page.evaluate(() => window.notReloaded === true))) fail(`${who}'s page was reloaded`);
}

mkdirSync(shots, { recursive: true });

// 1. Two members, then a listener who gets the member list on connect.
const alice = await person("alice");
await join(alice, "alice", "lobby");
await membersAre(alice, ["alice"], "alice");
const bob = await person("bob");
await join(bob, "bob", "lobby");
await membersAre(bob, ["alice", "bob"], "bob");
await membersAre(alice, ["alice", "bob"], "alice");
const listener = await person("listener");
await join(listener, "", "lobby", { listen: true, expect: "listening", who: "the SSE listener" });
await membersAre(listener, ["alice", "bob"], "the SSE listener (right after connecting)");
step("SSE listener got the member list on connect");

if (requireDeflate) {
  // Chromium offers permessage-deflate on every connection; the server must accept it.
  const ext = await alice.evaluate(() => new Promise((resolve) => {
    const url = new URL("websocket", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url.href);
    ws.onopen = () => { resolve(ws.extensions); ws.close(); };
    ws.onerror = () => resolve("error");
  }));
  if (!String(ext).startsWith("permessage-deflate")) fail("deflate not negotiated: " + ext);
  step("negotiated extensions: " + ext);
}

await send(alice, "hello from alice");
await sees(bob, "hello from alice", "bob");
await sees(listener, "hello from alice", "the SSE listener");
await sees(alice, "hello from alice", "alice (own message)");
await acked(alice, "hello from alice", "alice");
await send(bob, "hi alice 👋");
await sees(alice, "hi alice 👋", "alice");
if (expectHttp) {
  for (const [who, page] of [["alice", alice], ["bob", bob], ["the SSE listener", listener]]) {
    const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
    if (protocol !== expectHttp) fail(`${who}'s page came over ${protocol}, not ${expectHttp}`);
    const sse = await page.evaluate(() => performance.getEntriesByType("resource")
      .filter((e) => e.name.includes("/sse/")).map((e) => e.nextHopProtocol));
    if (sse.some((p) => p && p !== expectHttp)) fail(`${who}'s event stream came over ${sse}`);
  }
  step(`pages over ${expectHttp}`);
}
await bob.screenshot({ path: `${shots}/chat-${runtime}.png` });
if (errors.length) fail("console errors: " + errors.join("; "));
step("two members and a listener chat");

// 2. A taken nickname: back to the form with the reason, then another name.
const dave = await person("dave");
await mark(dave);
await join(dave, "alice", "lobby", { expect: null, who: "dave" });
await waitFor(dave, "a taken nickname did not bring back the join form with the reason",
  () => getComputedStyle(document.getElementById("join")).display !== "none"
    && /taken/.test(document.getElementById("join-error").textContent));
if (await dave.evaluate(() => document.getElementById("chat").classList.contains("active"))) {
  fail("the chat view stayed open after the nickname was refused");
}
await dave.screenshot({ path: `${shots}/chat-${runtime}-taken.png` });
await join(dave, "dave", "lobby", { who: "dave" });
if (await dave.evaluate(() => document.getElementById("join-error").textContent !== "")) {
  fail("the refusal reason stayed on screen after joining");
}
await membersAre(dave, ["alice", "bob", "dave"], "dave");
await membersAre(alice, ["alice", "bob", "dave"], "alice");
await membersAre(listener, ["alice", "bob", "dave"], "the SSE listener");
await notReloaded(dave, "dave");
step("a taken nickname returns to the form with the reason; another name joins");

// 3. Switch room without a reload: messages go to the new room only.
await mark(bob);
await bob.fill("#switch-room", "side");
await bob.click("#switch button");
await waitFor(bob, "bob's page does not show room side",
  () => document.getElementById("room-label").textContent.includes("side"));
await statusIs(bob, "connected", "bob in side");
await membersAre(bob, ["bob"], "bob in side");
await membersAre(alice, ["alice", "dave"], "alice after bob switched");
await membersAre(listener, ["alice", "dave"], "the SSE listener after bob switched");
await send(alice, "only in lobby");
await sees(dave, "only in lobby", "dave");
await sees(listener, "only in lobby", "the SSE listener");
await neverSees(bob, "only in lobby", "bob (in side)");
await send(bob, "only in side");
await sees(bob, "only in side", "bob (own message in side)");
await neverSees(alice, "only in side", "alice (in lobby)");
await neverSees(listener, "only in side", "the SSE listener (of lobby)");
await notReloaded(bob, "bob");
step("switching room without a reload; messages reach the new room only");

// 4. Leave without a reload, then join another room from the form.
await dave.click("#leave");
await waitFor(dave, "leaving did not bring back the join form",
  () => getComputedStyle(document.getElementById("join")).display !== "none"
    && document.getElementById("status-text").textContent === "not connected");
if ((await dave.inputValue("#nick")) !== "dave") fail("the form forgot dave's nickname after leaving");
await membersAre(alice, ["alice"], "alice after dave left");
await join(dave, "dave", "side", { who: "dave" });
await membersAre(dave, ["bob", "dave"], "dave in side");
await membersAre(bob, ["bob", "dave"], "bob");
await send(dave, "dave in side");
await sees(bob, "dave in side", "bob");
await neverSees(alice, "dave in side", "alice (in lobby)");
await notReloaded(dave, "dave");
step("leaving and joining another room without a reload");

// 5. A reload remembers the nickname and the room and goes back in.
await bob.reload();
await statusIs(bob, "connected", "bob after reloading");
if (await formShown(bob)) fail("bob's reload showed the join form instead of the room");
await waitFor(bob, "bob's reload did not return to room side",
  () => document.getElementById("room-label").textContent === "# side");
await membersAre(bob, ["bob", "dave"], "bob after reloading");
await send(bob, "bob after reload");
await waitFor(dave, "dave did not see bob's message after his reload",
  () => [...document.querySelectorAll("#log .msg")].some((m) =>
    m.querySelector(".meta b").textContent === "bob" && m.querySelector(".text").textContent === "bob after reload"));
// A new tab of the same browser has the form filled in, and waits.
const bobTab = await tab(bob.context(), "bob's second tab");
if (!(await formShown(bobTab))) fail("a new tab joined by itself instead of showing the form");
const filled = [await bobTab.inputValue("#nick"), await bobTab.inputValue("#room")];
if (JSON.stringify(filled) !== JSON.stringify(["bob", "side"])) fail("a new tab's form holds " + JSON.stringify(filled));
await bobTab.close();
if (errors.length) fail("console errors: " + errors.join("; "));
step("a reload remembers nickname and room");

// 6. The server restarts: one status element, updated in place.
const everyone = [[alice, "alice", "connected"], [bob, "bob", "connected"], [dave, "dave", "connected"],
  [listener, "the SSE listener", "listening"]];
for (const [page] of everyone) {
  await page.evaluate(() => {
    window.statusTexts = [];
    new MutationObserver(() => window.statusTexts.push(document.getElementById("status-text").textContent))
      .observe(document.getElementById("status"), { subtree: true, childList: true, characterData: true });
  });
}
restarting = true;
writeFileSync(control, "restart 3\n");
// Written while the server is down: shown at once, pending, and sent when
// the page is back.
await waitFor(alice, "alice's status never said reconnecting",
  () => window.statusTexts.some((t) => t.startsWith("reconnecting")), undefined, 15000);
await send(alice, "written while offline");
const pendingNow = await alice.evaluate(() => [...document.querySelectorAll("#log .msg.pending .text")]
  .map((n) => n.textContent));
if (!pendingNow.includes("written while offline")) fail("a message written while offline is not shown as pending");
for (const [page, who, want] of everyone) {
  await waitFor(page, `${who} did not go through reconnecting back to ${JSON.stringify(want)}`,
    (w) => window.statusTexts.some((t) => t.startsWith("reconnecting"))
      && document.getElementById("status-text").textContent === w, want, 30000);
}
// The restarted server has a new, empty history: the chat pages are told
// what they had cannot be resumed, and their log starts over with a line
// that says so.
for (const [page, who] of [[alice, "alice"], [bob, "bob"], [dave, "dave"], [listener, "the SSE listener"]]) {
  await waitFor(page, `${who}'s log does not say earlier messages could not be recovered`,
    () => [...document.querySelectorAll("#log .note")].some((n) => /could not be recovered/.test(n.textContent)));
}
const seen = await alice.evaluate(() => ({
  texts: window.statusTexts,
  statuses: document.querySelectorAll("#status, #status-text").length,
  // Notes in the log, apart from people (alice too) coming back: the
  // not-recovered line alone, once.
  lines: [...document.querySelectorAll("#log .note")]
    .map((n) => n.textContent).filter((t) => !/ (joined|left)$/.test(t)),
  // What was said before the restart is gone from the log.
  old: [...document.querySelectorAll("#log .msg .text")].map((n) => n.textContent)
    .filter((t) => t === "hello from alice" || t === "only in lobby"),
  elsewhere: [...document.querySelectorAll("body *")].filter((n) => n.children.length === 0
    && n.id !== "status-text" && n.tagName !== "SCRIPT"
    && /reconnect|connection lost/i.test(n.textContent)).map((n) => n.textContent),
}));
step("status while reconnecting: " + JSON.stringify(seen.texts));
if (seen.statuses !== 2) fail("expected one #status with one #status-text");
if (seen.lines.length !== 1 || !/could not be recovered/.test(seen.lines[0])) {
  fail(`the log should hold just the not-recovered line: ${JSON.stringify(seen.lines)}`);
}
if (seen.old.length !== 0) fail(`messages from before the restart are still shown: ${JSON.stringify(seen.old)}`);
if (seen.elsewhere.length !== 0) fail(`reconnect messages outside the status element: ${JSON.stringify(seen.elsewhere)}`);
for (const n of [1, 2]) {
  if (!seen.texts.some((t) => t.includes(`attempt ${n})`))) fail(`the status never showed attempt ${n}`);
}
await membersAre(listener, ["alice"], "the SSE listener after the restart");
await membersAre(dave, ["bob", "dave"], "dave after the restart");
await acked(alice, "written while offline", "alice (written while offline)");
await send(bob, "after the restart");
await sees(dave, "after the restart", "dave after reconnecting");
await send(alice, "lobby after the restart");
await sees(listener, "lobby after the restart", "the SSE listener after reconnecting");
await alice.screenshot({ path: `${shots}/chat-${runtime}-reconnected.png` });
step("one status element counted the attempts in place; everyone reconnected");

await browser.close();
console.log(`browser (${runtime}): ok`);
