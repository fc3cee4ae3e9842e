// The stackray playground: one module over the stack's own JSON and SSE endpoints.
// Each tab shows only when the routes it calls are served (GET /v1/inspect/routes).

const $ = (id) => document.getElementById(id);

// ---- HTTP -----------------------------------------------------------------------------

class StackError extends Error {}

async function errorOf(response) {
  // The gateway's error body: {"error": {...}, "detail": "<the message>"}.
  let text = await response.text();
  try {
    const body = JSON.parse(text);
    text = typeof body.detail === "string" ? body.detail : body.error?.message || text;
  } catch {
    /* not JSON: keep the text */
  }
  return new StackError(`${response.status}: ${text || response.statusText}`);
}

// The page's own reads (routes, traces, cluster) send an unsampled W3C traceparent, so
// they are not recorded as traces and the Traces tab shows what the stack did for you.
function unsampled() {
  const hex = (n) => Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b.toString(16).padStart(2, "0")).join("");
  return { traceparent: `00-${hex(16)}-${hex(8)}-00` };
}

// With `server.auth` on, every call carries the caller's token (an API key or a JWT),
// kept for this browser tab only.
const TOKEN_KEY = "stackray-token";

function credentials() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function api(method, path, body, { quiet = false, form = null, signal } = {}) {
  const headers = { ...(quiet ? unsampled() : {}), ...credentials() };
  const init = { method, headers, signal };
  if (form) init.body = form;
  else if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await errorOf(response);
  return response.status === 204 ? null : response.json();
}

// Server-sent events of a POST: yields each `data:` payload parsed as JSON; an `event:
// error` frame (an error after the stream started) is thrown as the stack's message.
async function* sse(path, body, signal) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream", ...credentials() },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      const text = data.join("\n");
      if (!text || text === "[DONE]") continue;
      const payload = JSON.parse(text);
      if (event === "error") throw new StackError(payload.detail || payload.error?.message || text);
      yield payload;
    }
  }
}

// ---- small DOM helpers ----------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

function showError(id, error) {
  const box = $(id);
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = error instanceof StackError ? error.message : `${error.name}: ${error.message}`;
  box.hidden = false;
}

// Runs `work`, showing its error in the tab's alert box and disabling `button` meanwhile.
async function guarded(errorId, work, button) {
  showError(errorId, null);
  if (button) button.disabled = true;
  try {
    return await work();
  } catch (error) {
    if (error.name !== "AbortError") showError(errorId, error);
  } finally {
    if (button) button.disabled = false;
  }
}

const ms = (value) => {
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  return value < 1 ? `${Math.round(value * 1000)} µs` : `${value.toFixed(value < 10 ? 1 : 0)} ms`;
};
// Milliseconds since the epoch, keeping the microseconds the stack's timestamps carry
// (Date alone truncates them, and a span inside a fast request is often under 1 ms).
function when(iso) {
  const m = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$/.exec(iso);
  return m ? new Date(m[1] + m[3]).getTime() + Number(m[2] || 0) * 1000 : new Date(iso).getTime();
}
const count = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;

function fillSelect(select, items, label = (x) => x) {
  const previous = select.value;
  select.replaceChildren(...items.map((item) => el("option", { value: item }, label(item))));
  if (items.includes(previous)) select.value = previous;
}

// A horizontal bar inside a track: `start` and `length` are fractions of the track.
function bar(start, length, { cls = "", label = "", title = "" } = {}) {
  const left = Math.max(0, Math.min(1, start)) * 100;
  const width = Math.max(0, Math.min(1 - start, length)) * 100;
  // The label goes inside a wide bar, else beside it where there is room.
  let place = `left:${left + width + 0.5}%`;
  if (width > 25) place = `right:${100 - left - width + 0.5}%`;
  else if (left + width > 70) place = `right:${100 - left + 0.5}%`;
  return el(
    "div",
    { class: "span-track", title },
    el("div", { class: `span-bar ${cls}`, style: `left:${left}%;width:${width}%` }),
    label ? el("span", { class: width > 25 ? "span-label inside" : "span-label", style: place }, label) : null,
  );
}

// ---- tabs -----------------------------------------------------------------------------

const TABS = {
  chat: ["POST /v1/openai/v1/chat/completions", "GET /v1/models"],
  rag: ["POST /v1/openai/v1/files", "POST /v1/openai/v1/vector_stores", "POST /v1/openai/v1/vector_stores/{vector_store_id}/search"],
  agents: ["POST /v1/agents", "POST /v1/agents/{agent_id}/session"],
  traces: ["POST /v1/telemetry/traces", "POST /v1/telemetry/spans/{span_id}/tree"],
  cluster: ["GET /v1/stackray/cluster"],
};
const loaders = {};
let routes = new Set();

function selectTab(name, focus = false) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(`panel-${tab.dataset.tab}`).hidden = !selected;
    if (selected && focus) tab.focus();
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  loaders[name]?.();
}

function setUpTabs() {
  const shown = Object.keys(TABS).filter((name) => TABS[name].every((route) => routes.has(route)));
  for (const name of shown) $(`tab-${name}`).hidden = false;
  $("no-tabs").hidden = shown.length > 0;
  const tabs = () => shown.map((name) => $(`tab-${name}`));
  $("tabs").addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) selectTab(tab.dataset.tab);
  });
  // Arrow keys, Home and End move between tabs (the WAI-ARIA tabs pattern).
  $("tabs").addEventListener("keydown", (event) => {
    const list = tabs();
    const index = list.indexOf(document.activeElement);
    if (index < 0) return;
    const next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: list.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    selectTab(list[(next + list.length) % list.length].dataset.tab, true);
  });
  const fromHash = () => {
    const wanted = location.hash.slice(1);
    if (shown.length) selectTab(shown.includes(wanted) ? wanted : shown[0]);
  };
  window.addEventListener("hashchange", fromHash);
  fromHash();
}

// ---- models (shared by chat, RAG and agents) ------------------------------------------

let llmsPromise = null;
function llms() {
  llmsPromise ??= api("GET", "/v1/models", undefined, { quiet: true }).then((r) =>
    r.data.filter((m) => (m.model_type || "llm") === "llm").map((m) => m.identifier),
  );
  return llmsPromise;
}

// ---- Chat -----------------------------------------------------------------------------

const chat = { messages: [], controller: null, loaded: false };

loaders.chat = () =>
  guarded("chat-error", async () => {
    if (chat.loaded) return;
    fillSelect($("chat-model"), await llms());
    chat.loaded = true;
  });

function chatBody() {
  const system = $("chat-system").value.trim();
  const number = (id) => ($(id).value === "" ? undefined : Number($(id).value));
  return {
    model: $("chat-model").value,
    messages: [...(system ? [{ role: "system", content: system }] : []), ...chat.messages],
    temperature: number("chat-temperature"),
    top_p: number("chat-top-p"),
    max_tokens: number("chat-max-tokens"),
    stream: true,
    stream_options: { include_usage: true },
  };
}

async function sendChat(event) {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text || chat.controller) return;
  input.value = "";
  chat.messages.push({ role: "user", content: text });
  const log = $("chat-log");
  log.append(el("li", { class: "msg user" }, text));
  const answer = el("span", { class: "answer" });
  const tools = el("div");
  const stats = el("span", { class: "stats" }, "waiting for the first token…");
  const item = el("li", { class: "msg assistant" }, answer, tools, stats);
  log.append(item);
  log.scrollTop = log.scrollHeight;
  chat.controller = new AbortController();
  $("chat-stop").disabled = false;
  $("chat-submit").disabled = true;
  showError("chat-error", null);
  const started = performance.now();
  let first = null;
  let chunks = 0;
  let usage = null;
  let finish = null;
  const toolCalls = [];
  try {
    for await (const chunk of sse("/v1/openai/v1/chat/completions", chatBody(), chat.controller.signal)) {
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices || []) {
        const delta = choice.delta || {};
        if (delta.content) {
          first ??= performance.now();
          chunks += 1;
          answer.textContent += delta.content;
        }
        for (const call of delta.tool_calls || []) {
          const slot = (toolCalls[call.index ?? toolCalls.length] ??= { name: "", arguments: "" });
          slot.name += call.function?.name || "";
          slot.arguments += call.function?.arguments || "";
          tools.replaceChildren(...toolCalls.map((c) => el("div", { class: "tool-call" }, `tool call: ${c.name}(${c.arguments})`)));
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
      log.scrollTop = log.scrollHeight;
    }
    chat.messages.push({ role: "assistant", content: answer.textContent });
  } catch (error) {
    if (error.name !== "AbortError") {
      showError("chat-error", error);
      item.remove();
      chat.messages.pop();
      return;
    }
    finish = "stopped";
  } finally {
    chat.controller = null;
    $("chat-stop").disabled = true;
    $("chat-submit").disabled = false;
  }
  const total = performance.now() - started;
  const tokens = usage
    ? `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`
    : `${count(chunks, "streamed chunk")} (the provider reported no token usage)`;
  stats.textContent = `${tokens} · first token ${first ? ms(first - started) : "–"} · total ${ms(total)}${finish ? ` · ${finish}` : ""}`;
}

function setUpChat() {
  $("chat-send").addEventListener("submit", sendChat);
  $("chat-form").addEventListener("submit", (event) => event.preventDefault());
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("chat-send").requestSubmit();
  });
  $("chat-stop").addEventListener("click", () => chat.controller?.abort());
  $("chat-clear").addEventListener("click", () => {
    chat.controller?.abort();
    chat.messages = [];
    $("chat-log").replaceChildren();
  });
}

// ---- RAG ------------------------------------------------------------------------------

const rag = { loaded: false, names: new Map() };
const STORES = "/v1/openai/v1/vector_stores";

async function loadStores(select) {
  const page = await api("GET", STORES, undefined, { quiet: true });
  const stores = page.data || [];
  for (const s of stores) rag.names.set(s.id, s.name || s.id);
  fillSelect($("rag-store"), stores.map((s) => s.id), (id) => `${rag.names.get(id)} (${id.slice(0, 12)}…)`);
  if (select) $("rag-store").value = select;
  await loadStoreFiles();
}

async function fileName(fileId) {
  if (!rag.names.has(fileId)) {
    try {
      rag.names.set(fileId, (await api("GET", `/v1/openai/v1/files/${fileId}`, undefined, { quiet: true })).filename);
    } catch {
      rag.names.set(fileId, fileId);
    }
  }
  return rag.names.get(fileId);
}

function fileRow(name, status, detail = "") {
  return el("tr", {}, el("td", {}, name), el("td", { class: `status-${status}` }, status, detail ? el("small", {}, ` ${detail}`) : null));
}

async function loadStoreFiles() {
  const store = $("rag-store").value;
  const rows = $("rag-file-rows");
  if (!store) return rows.replaceChildren();
  const page = await api("GET", `${STORES}/${store}/files`, undefined, { quiet: true });
  const files = page.data || [];
  const made = await Promise.all(files.map(async (f) => fileRow(await fileName(f.id), f.status, f.last_error?.message || "")));
  rows.replaceChildren(...made);
}

async function ensureStore() {
  if ($("rag-store").value) return $("rag-store").value;
  const created = await api("POST", STORES, { name: $("rag-store-name").value.trim() || "playground" });
  await loadStores(created.id);
  return created.id;
}

async function addFiles(files) {
  const store = await ensureStore();
  const rows = $("rag-file-rows");
  await Promise.all(
    Array.from(files, async (file) => {
      let row = fileRow(file.name, "uploading");
      rows.append(row);
      const setStatus = (status, detail = "") => {
        const next = fileRow(file.name, status, detail);
        row.replaceWith(next);
        row = next;
      };
      try {
        const form = new FormData();
        form.append("file", file, file.name);
        form.append("purpose", "assistants");
        const uploaded = await api("POST", "/v1/openai/v1/files", undefined, { form });
        rag.names.set(uploaded.id, uploaded.filename);
        setStatus("in_progress");
        let attached = await api("POST", `${STORES}/${store}/files`, { file_id: uploaded.id });
        // Ingestion may finish later: poll until the file leaves in_progress (bounded).
        for (let i = 0; attached.status === "in_progress" && i < 120; i++) {
          await new Promise((r) => setTimeout(r, 500));
          attached = await api("GET", `${STORES}/${store}/files/${uploaded.id}`, undefined, { quiet: true });
        }
        setStatus(attached.status, attached.last_error?.message || "");
      } catch (error) {
        setStatus("failed", error.message);
      }
    }),
  );
}

function chunkItem(filename, score, text) {
  return el(
    "li",
    { class: "chunk" },
    el("header", {}, el("strong", {}, filename), el("span", {}, `score ${Number(score).toFixed(3)}`)),
    el("p", {}, text),
  );
}

async function ask(event) {
  event.preventDefault();
  const question = $("rag-question").value.trim();
  const store = $("rag-store").value;
  if (!store) throw new StackError("create a vector store and add files first");
  const answer = $("rag-answer");
  const chunks = $("rag-chunks");
  answer.replaceChildren();
  chunks.replaceChildren();
  const started = performance.now();
  if ($("rag-mode").value === "search") {
    const page = await api("POST", `${STORES}/${store}/search`, { query: question, max_num_results: 5 });
    answer.append(el("p", { class: "stats" }, `${count(page.data.length, "chunk")} in ${ms(performance.now() - started)}`));
    for (const hit of page.data) {
      const text = (hit.content || []).map((c) => c.text || "").join("\n");
      chunks.append(chunkItem(hit.filename || (await fileName(hit.file_id)), hit.score, text));
    }
    return;
  }
  const response = await api("POST", "/v1/openai/v1/responses", {
    model: $("rag-model").value,
    input: question,
    tools: [{ type: "file_search", vector_store_ids: [store] }],
    include: ["file_search_call.results"],
  });
  let found = 0;
  for (const item of response.output || []) {
    if (item.type === "file_search_call") {
      for (const r of item.results || []) {
        found += 1;
        chunks.append(chunkItem(r.filename || (await fileName(r.file_id)), r.score, r.text || ""));
      }
    } else if (item.type === "message") {
      const text = (item.content || []).map((c) => c.text || "").join("");
      answer.append(el("p", { class: "msg assistant" }, text));
    }
  }
  const usage = response.usage ? ` · ${response.usage.input_tokens} in + ${response.usage.output_tokens} out tokens` : "";
  answer.append(el("p", { class: "stats" }, `${count(found, "chunk")} retrieved · ${ms(performance.now() - started)}${usage}`));
}

loaders.rag = () =>
  guarded("rag-error", async () => {
    if (rag.loaded) return;
    rag.loaded = true;
    await loadStores();
    if (routes.has("POST /v1/openai/v1/responses")) fillSelect($("rag-model"), await llms());
    else $("rag-mode").querySelector('[value="responses"]').remove();
  });

function setUpRag() {
  $("rag-store").addEventListener("change", () => guarded("rag-error", loadStoreFiles));
  $("rag-store-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded("rag-error", async () => {
      const created = await api("POST", STORES, { name: $("rag-store-name").value.trim() || "playground" });
      $("rag-store-name").value = "";
      await loadStores(created.id);
    });
  });
  $("rag-files").addEventListener("change", (event) => {
    const files = [...event.target.files];
    event.target.value = "";
    guarded("rag-error", () => addFiles(files));
  });
  const drop = $("rag-drop");
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      $("rag-files").click();
    }
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    guarded("rag-error", () => addFiles(event.dataTransfer.files));
  });
  $("rag-mode").addEventListener("change", () => ($("rag-model-label").hidden = $("rag-mode").value !== "responses"));
  $("rag-ask").addEventListener("submit", (event) => guarded("rag-error", () => ask(event), event.submitter));
}

// ---- Agents ---------------------------------------------------------------------------

const agent = { id: null, session: null, loaded: false };

// builtin::rag searches the vector stores given as its `vector_db_ids` argument: offer
// the stack's stores (those made in the RAG tab too) when that tool group is registered.
async function loadAgentStores() {
  if (!document.querySelector('input[name="toolgroup"][value="builtin::rag"]') || !routes.has(`GET ${STORES}`)) return;
  const stores = (await api("GET", STORES, undefined, { quiet: true })).data || [];
  fillSelect($("agent-rag-stores"), stores.map((s) => s.id), (id) => stores.find((s) => s.id === id).name || id);
  $("agent-rag-label").hidden = false;
}

loaders.agents = () =>
  guarded("agent-error", async () => {
    if (agent.loaded) return loadAgentStores();
    agent.loaded = true;
    fillSelect($("agent-model"), await llms());
    const checkboxes = async (route, path, fieldset, name, idOf) => {
      if (!routes.has(route)) return;
      const items = (await api("GET", path, undefined, { quiet: true })).data || [];
      if (!items.length) return;
      fieldset.append(...items.map((x) => el("label", { class: "check" }, el("input", { type: "checkbox", name, value: idOf(x) }), idOf(x))));
      fieldset.hidden = false;
    };
    await checkboxes("GET /v1/toolgroups", "/v1/toolgroups", $("agent-toolgroups"), "toolgroup", (g) => g.identifier);
    await checkboxes("GET /v1/shields", "/v1/shields", $("agent-shields"), "shield", (s) => s.identifier);
    await loadAgentStores();
  });

async function createAgent(event) {
  event.preventDefault();
  const checked = (name) => [...document.querySelectorAll(`input[name="${name}"]:checked`)].map((x) => x.value);
  const shields = checked("shield");
  const created = await api("POST", "/v1/agents", {
    agent_config: {
      model: $("agent-model").value,
      instructions: $("agent-instructions").value,
      toolgroups: checked("toolgroup").map((group) => {
        const stores = [...$("agent-rag-stores").selectedOptions].map((o) => o.value);
        return group === "builtin::rag" && stores.length ? { name: group, args: { vector_db_ids: stores } } : group;
      }),
      input_shields: shields,
      output_shields: shields,
      enable_session_persistence: true,
    },
  });
  const session = await api("POST", `/v1/agents/${created.agent_id}/session`, { session_name: `playground ${new Date().toISOString()}` });
  Object.assign(agent, { id: created.agent_id, session: session.session_id });
  $("agent-ids").textContent = `agent ${agent.id} · session ${agent.session}`;
  $("agent-submit").disabled = false;
  $("agent-input").placeholder = "Message the agent (Ctrl+Enter runs the turn)";
  $("agent-turns").replaceChildren();
}

// Message content as text: a string, or the text of a list of content items.
function contentText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content) && content.every((c) => c?.type === "text")) return content.map((c) => c.text).join("");
  return JSON.stringify(content);
}

function stepDetail(step) {
  const pre = (value) => el("pre", {}, typeof value === "string" ? value : JSON.stringify(value, null, 2));
  switch (step.step_type) {
    case "inference": {
      const response = step.model_response || {};
      const text = contentText(response.content);
      return [pre(text), ...(response.tool_calls || []).map((c) => el("div", { class: "tool-call" }, `tool call: ${c.tool_name}(${JSON.stringify(c.arguments)})`))];
    }
    case "tool_execution":
      return [
        ...(step.tool_calls || []).map((c) => el("div", { class: "tool-call" }, `${c.tool_name}(${JSON.stringify(c.arguments)})`)),
        ...(step.tool_responses || []).map((r) => pre(`${r.tool_name} → ${contentText(r.content)}`)),
      ];
    case "shield_call":
      return [pre(step.violation ? `violation: ${step.violation.user_message || step.violation.violation_level}` : "no violation")];
    case "memory_retrieval":
      return [pre(`vector dbs: ${step.vector_db_ids}\n${contentText(step.inserted_context)}`)];
    default:
      return [pre(step)];
  }
}

function drawSteps(list, steps, turnStart, turnEnd) {
  const total = Math.max(1, turnEnd - turnStart);
  list.replaceChildren(
    ...steps.map((step) => {
      const start = when(step.started_at || turnStart) - turnStart;
      const duration = step.completed_at && step.started_at ? when(step.completed_at) - when(step.started_at) : 0;
      return el(
        "li",
        { class: "step", "data-step-type": step.step_type },
        el("span", {}, step.step_type.replace("_", " ")),
        bar(start / total, duration / total, { label: ms(duration), title: `${step.step_type}: ${ms(duration)} from ${ms(start)}` }),
        el("details", {}, el("summary", {}, "details"), ...stepDetail(step)),
      );
    }),
  );
}

async function runTurn(event) {
  event.preventDefault();
  if (!agent.session) throw new StackError("create an agent first");
  const text = $("agent-input").value.trim();
  if (!text) return;
  $("agent-input").value = "";
  const answer = el("div", { class: "answer" });
  const steps = el("ol", { class: "steps", "aria-label": "Steps" });
  const stats = el("p", { class: "stats" }, "running…");
  const card = el("article", { class: "turn" }, el("div", { class: "msg user" }, text), answer, steps, stats);
  $("agent-turns").prepend(card);
  const started = performance.now();
  const done = [];
  const path = `/v1/agents/${agent.id}/session/${agent.session}/turn`;
  for await (const chunk of sse(path, { messages: [{ role: "user", content: text }], stream: true })) {
    const payload = chunk.event?.payload || {};
    if (payload.event_type === "step_progress" && payload.delta?.type === "text") answer.textContent += payload.delta.text;
    else if (payload.event_type === "step_complete") {
      done.push(payload.step_details);
      const first = when(done[0].started_at);
      drawSteps(steps, done, first, Math.max(...done.map((s) => when(s.completed_at || s.started_at))));
    } else if (payload.event_type === "turn_complete") {
      const turn = payload.turn;
      if (turn.output_message) answer.textContent = contentText(turn.output_message.content);
      drawSteps(steps, turn.steps, when(turn.started_at), when(turn.completed_at || turn.started_at));
      stats.textContent = `${count(turn.steps.length, "step")} · turn ${ms(when(turn.completed_at) - when(turn.started_at))} on the stack · ${ms(performance.now() - started)} here`;
    } else if (payload.event_type === "turn_awaiting_input") {
      stats.textContent = "the turn waits for a client tool's result (not run by the playground)";
    }
  }
}

function setUpAgents() {
  $("agent-form").addEventListener("submit", (event) => guarded("agent-error", () => createAgent(event), event.submitter));
  $("agent-turn").addEventListener("submit", (event) => guarded("agent-error", () => runTurn(event), event.submitter));
  $("agent-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("agent-turn").requestSubmit();
  });
}

// ---- Traces ---------------------------------------------------------------------------

async function loadTraces() {
  const page = await api("POST", "/v1/telemetry/traces", { limit: 30, order_by: ["-start_time"] }, { quiet: true });
  const roots = await Promise.all(
    page.data.map((t) => api("GET", `/v1/telemetry/traces/${t.trace_id}/spans/${t.root_span_id}`, undefined, { quiet: true }).catch(() => null)),
  );
  const hide = $("traces-hide-page").checked;
  const list = $("traces-list");
  list.replaceChildren();
  page.data.forEach((trace, i) => {
    const name = roots[i]?.name || trace.root_span_id;
    if (hide && /^GET \/playground/.test(name)) return;
    const duration = trace.end_time ? ms(when(trace.end_time) - when(trace.start_time)) : "open";
    const button = el(
      "button",
      { type: "button", "data-trace-id": trace.trace_id, onclick: () => guarded("traces-error", () => showTrace(trace, name, button)) },
      name,
      el("small", {}, `${new Date(trace.start_time).toLocaleTimeString()} · ${duration}`),
    );
    list.append(el("li", {}, button));
  });
  if (!list.children.length) list.append(el("li", { class: "muted" }, "No traces yet: chat, ask or run a turn first."));
}

async function showTrace(trace, name, button) {
  for (const b of document.querySelectorAll("#traces-list button")) b.removeAttribute("aria-current");
  button?.setAttribute("aria-current", "true");
  const tree = await api("POST", `/v1/telemetry/spans/${trace.root_span_id}/tree`, {}, { quiet: true });
  const spans = Object.values(tree.data);
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const depth = (s) => (byId.has(s.parent_span_id) ? 1 + depth(byId.get(s.parent_span_id)) : 0);
  const t0 = Math.min(...spans.map((s) => when(s.start_time)));
  const t1 = Math.max(...spans.map((s) => when(s.end_time || s.start_time)));
  const total = Math.max(1, t1 - t0);
  // Parents before children, siblings by start time: the waterfall order.
  const children = new Map();
  for (const s of spans) {
    const key = byId.has(s.parent_span_id) ? s.parent_span_id : null;
    if (!children.has(key)) children.set(key, []);
    children.get(key).push(s);
  }
  const ordered = [];
  const walk = (key) => {
    for (const s of (children.get(key) || []).sort((a, b) => when(a.start_time) - when(b.start_time))) {
      ordered.push(s);
      walk(s.span_id);
    }
  };
  walk(null);
  $("trace-title").textContent = `${name} · ${spans.length} spans · ${ms(total)}`;
  $("trace-waterfall").replaceChildren(
    ...ordered.map((s) => {
      const d = depth(s);
      const attrs = s.attributes || {};
      const where = attrs["stackray.deployment"] || "";
      const replica = attrs["stackray.replica"] ? ` ${String(attrs["stackray.replica"]).slice(0, 8)}` : "";
      const duration = when(s.end_time || s.start_time) - when(s.start_time);
      return el(
        "div",
        { class: "span-row", role: "listitem", "data-span-id": s.span_id },
        el("div", { class: "span-name", style: `padding-left:${d * 0.9}rem`, title: s.name }, s.name, where ? el("small", {}, ` ${where}${replica}`) : null),
        bar((when(s.start_time) - t0) / total, duration / total, {
          cls: s.status === "error" ? "error" : `d${d % 4}`,
          label: ms(duration),
          title: `${s.name}\n${where}${replica}\nstart +${ms(when(s.start_time) - t0)}, ${ms(duration)}`,
        }),
      );
    }),
  );
}

loaders.traces = () => guarded("traces-error", loadTraces);

function setUpTraces() {
  $("traces-refresh").addEventListener("click", (event) => guarded("traces-error", loadTraces, event.currentTarget));
  $("traces-hide-page").addEventListener("change", () => guarded("traces-error", loadTraces));
}

// ---- Cluster --------------------------------------------------------------------------

async function loadCluster() {
  const status = await api("GET", "/v1/stackray/cluster", undefined, { quiet: true });
  $("cluster-summary").textContent = status.serve
    ? `Ray Serve application ${status.application}: ${count(status.deployments.length, "deployment")} on ${count(status.nodes.length, "node")}`
    : `${count(status.deployments.length, "deployment")} of the graph, running in this one process (not under Ray Serve)`;
  $("cluster-deployments").replaceChildren(
    ...status.deployments.map((d) =>
      el(
        "tr",
        {},
        el("td", {}, d.name),
        el("td", {}, d.api ? `${d.kind} (${d.api})` : d.kind),
        el("td", { class: `status-${d.status}` }, d.status, d.message ? el("small", {}, ` ${d.message}`) : null),
        el("td", {}, Object.entries(d.replicas || {}).map(([k, v]) => `${v} ${k}`).join(", ") || "–"),
        el("td", {}, (d.calls || []).join(", ") || "–"),
      ),
    ),
  );
  $("cluster-nodes-table").hidden = !status.nodes.length;
  $("cluster-nodes").replaceChildren(
    ...status.nodes.map((n) =>
      el("tr", {}, el("td", {}, n.node_id.slice(0, 12)), el("td", {}, n.address), el("td", {}, n.alive ? "yes" : "no"), el("td", {}, String(n.cpus)), el("td", {}, String(n.gpus))),
    ),
  );
}

loaders.cluster = () => guarded("cluster-error", loadCluster);

function setUpCluster() {
  $("cluster-refresh").addEventListener("click", (event) => guarded("cluster-error", loadCluster, event.currentTarget));
}

// ---- start ----------------------------------------------------------------------------

function setUpToken() {
  const input = $("api-token");
  input.value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
    else sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
}

async function start() {
  setUpToken();
  setUpChat();
  setUpRag();
  setUpAgents();
  setUpTraces();
  setUpCluster();
  try {
    const [listing, version] = await Promise.all([
      api("GET", "/v1/inspect/routes", undefined, { quiet: true }),
      api("GET", "/v1/version", undefined, { quiet: true }),
    ]);
    // Every declared route is listed; one of an API the stack does not serve has no
    // provider types (it answers 404). The gateway's own routes have none either.
    const own = (r) => r.route.startsWith("/v1/stackray/") || ["/v1/inspect/routes", "/v1/version"].includes(r.route);
    routes = new Set(
      listing.data
        .filter((r) => r.provider_types.length > 0 || own(r))
        .map((r) => `${r.method} ${r.route.replace(/\{(\w+):path\}/g, "{$1}")}`),
    );
    $("stack-info").textContent = `stackray ${version.version} · ${location.host}`;
  } catch (error) {
    $("stack-info").textContent = `cannot read the stack's routes: ${error.message}`;
    if (error.message.startsWith("401")) $("stack-info").textContent += " (give your API key or token above)";
  }
  setUpTabs();
  document.body.dataset.ready = "true";
}

start();
