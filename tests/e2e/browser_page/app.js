"use strict";
// A web app on another origin than the API's, using it the way a browser has to:
// the token in Authorization (so every call is preflighted), ETag and If-Match,
// an EventSource on the changes feed (the token as ?token=: an EventSource sends
// no headers of its own), a WebSocket subscription (the token as a subprotocol).
// What it sees goes to window.results (and the list on the page); the test reads
// it. Mode "foreign": the same calls from an origin the API does not allow.

const params = new URLSearchParams(location.hash.slice(1));
const API = params.get("api");
const TOKEN = params.get("token");
const WS_URL = API.replace(/^http/, "ws") + "/realtime";
const results = (window.results = { done: false, error: null, steps: {}, sse: [], ws: [] });

function record(name, value) {
  results.steps[name] = value;
  const item = document.createElement("li");
  item.id = name;
  item.textContent = `${name}: ${JSON.stringify(value)}`;
  document.getElementById("log").append(item);
}

function call(method, path, { body, headers = {} } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${TOKEN}`, ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] ??= "application/json";
  }
  return fetch(API + path, init);
}

// what the page can read of an answer: only the exposed headers are visible
async function answer(response) {
  const text = await response.text();
  return {
    status: response.status,
    etag: response.headers.get("ETag"),
    location: response.headers.get("Location"),
    requestId: response.headers.get("X-Request-Id"),
    contentType: response.headers.get("Content-Type"),
    json: text ? JSON.parse(text) : null,
  };
}

// like a web app, stop at the first answer that is not the one expected
function expect(name, step, status) {
  if (step.status !== status) {
    throw new Error(`${name}: ${status} expected, got ${step.status} ${JSON.stringify(step.json)}`);
  }
  if (status < 300 && !step.etag) throw new Error(`${name}: no ETag readable`);
}

function until(what, found, ms = 30000) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const check = () => {
      const value = found();
      if (value) return resolve(value);
      if (Date.now() > deadline) return reject(new Error(`no ${what} within ${ms} ms`));
      setTimeout(check, 50);
    };
    check();
  });
}

function streamUrl() {
  return `${API}/changes?feed=eventsource&since=now&token=${encodeURIComponent(TOKEN)}`;
}

function openEventSource() {
  const source = new EventSource(streamUrl());
  source.addEventListener("change", (e) => {
    results.sse.push({ lastEventId: e.lastEventId, ...JSON.parse(e.data) });
  });
  return new Promise((resolve, reject) => {
    source.onopen = () => resolve(source);
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) reject(new Error("the event stream failed"));
    };
  });
}

function openSocket(documentId) {
  const socket = new WebSocket(WS_URL, ["docs.v1", `bearer.${TOKEN}`]);
  socket.onmessage = (e) => results.ws.push(JSON.parse(e.data));
  return new Promise((resolve, reject) => {
    socket.onopen = () => socket.send(JSON.stringify({ action: "subscribe", document: documentId }));
    socket.onclose = (e) => reject(new Error(`the WebSocket closed: ${e.code} ${e.reason}`));
    until("subscribed frame", () => results.ws.find((f) => f.type === "subscribed")).then(
      () => resolve(socket),
      reject,
    );
  });
}

async function app() {
  const created = await answer(
    await call("POST", "/documents", { body: { title: "from a browser", body: { n: 1 } } }),
  );
  record("create", created);
  expect("create", created, 201);
  const id = created.json.id;
  const read = await answer(await call("GET", `/documents/${id}`));
  record("read", read);
  expect("read", read, 200);

  const source = await openEventSource();
  record("eventsource", { open: true });
  const socket = await openSocket(id);
  record("websocket", { protocol: socket.protocol, subscribed: true });

  const merge = { "Content-Type": "application/merge-patch+json" };
  const patch = (etag, title) =>
    call("PATCH", `/documents/${id}`, { body: { title }, headers: { ...merge, "If-Match": etag } });
  const patched = await answer(await patch(read.etag, "patched in a browser"));
  record("patch", patched);
  expect("patch", patched, 200);
  const stale = await answer(await patch(read.etag, "lost update"));
  record("stalePatch", stale);
  expect("stale patch", stale, 412);

  const version = patched.json.version;
  const mine = (f) => f.type === "change" && f.id === id && f.version === version;
  record("wsChange", await until("WebSocket change frame", () => results.ws.find(mine)));
  record("sseChange", await until("event-stream change", () => results.sse.find(mine)));
  socket.onclose = null;
  socket.close();
  source.close();

  // a large answer: gzipped on the wire, decoded by the browser
  const text = "lorem ipsum dolor sit amet ".repeat(2000);
  const big = await answer(await call("POST", "/documents", { body: { title: "big", body: { text } } }));
  const url = `${API}/documents/${big.json.id}`;
  const bigRead = await answer(await call("GET", `/documents/${big.json.id}`));
  const timing = await until("resource timing", () => performance.getEntriesByName(url).pop(), 5000);
  record("gzip", {
    id: big.json.id,
    status: bigRead.status,
    same: bigRead.json.body.text === text,
    etag: bigRead.etag,
    encodedBodySize: timing.encodedBodySize,
    decodedBodySize: timing.decodedBodySize,
  });
}

async function refused(name, attempt) {
  try {
    const response = await attempt();
    record(name, { rejected: false, status: response.status });
  } catch (err) {
    record(name, { rejected: true, name: err.name, message: err.message });
  }
}

async function foreign() {
  await refused("post", () => call("POST", "/documents", { body: { title: "from a foreign page" } }));
  await refused("health", () => fetch(`${API}/health`)); // a simple request: no preflight
  record(
    "websocket",
    await new Promise((resolve) => {
      const socket = new WebSocket(WS_URL, ["docs.v1", `bearer.${TOKEN}`]);
      let opened = false;
      socket.onopen = () => {
        opened = true;
        socket.close();
      };
      socket.onclose = (e) => resolve({ opened, code: e.code });
    }),
  );
  record(
    "eventsource",
    await new Promise((resolve) => {
      const source = new EventSource(streamUrl());
      source.onopen = () => {
        source.close();
        resolve({ opened: true });
      };
      source.onerror = () => {
        const readyState = source.readyState;
        source.close();
        resolve({ opened: false, readyState });
      };
    }),
  );
}

(params.get("mode") === "foreign" ? foreign() : app()).then(
  () => {
    results.done = true;
    document.getElementById("status").textContent = "done";
  },
  (err) => {
    results.error = String((err && err.stack) || err);
    results.done = true;
    document.getElementById("status").textContent = `failed: ${results.error}`;
  },
);
