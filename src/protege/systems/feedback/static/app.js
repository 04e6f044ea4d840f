// The episode viewer: watch an episode frame by frame and mark progress, regress, success, failure.
// Marks go through the durable queue (queue.js); the viewer shows the server's marks overlaid with
// the queued (unsent) ones, so what the person sees is what will be stored.
import { api, csrf, el, setupHeader, typing, whoAmI } from "/static/api.js";
import { MarkQueue } from "/static/queue.js";

const STEPS_PER_SECOND = 2; // playback rate at 1x; BabyAI episodes are 5-60 steps
const KINDS = { p: "progress", r: "regress", s: "success", f: "failure" };
const $ = (id) => document.getElementById(id);

const state = {
  episode: null, // {id, mission, level, length, frames, rewards, marks}
  assignmentId: null,
  step: 0,
  timer: null,
  speed: 1,
  marks: new Map(), // uuid -> {uuid, episode_id, step, kind, comment, deleted}: server state + ours
  undo: [], // uuids of live marks, the last made last
};
let queue = null;

function setStatus(text) {
  $("status").textContent = text;
}

// ---- marks -------------------------------------------------------------------------------------

/** The marks of the open episode: the server's, overlaid with this browser's unsent states. */
function liveMarks() {
  const merged = new Map(state.marks);
  for (const entry of queue.entries()) {
    if (entry.body.episode_id === state.episode?.id) merged.set(entry.uuid, { uuid: entry.uuid, ...entry.body, pending: true });
  }
  return [...merged.values()].filter((m) => !m.deleted).sort((a, b) => a.step - b.step);
}

function putMark(mark) {
  const { uuid, episode_id, step, kind, comment, deleted } = mark;
  try {
    queue.put(uuid, { episode_id, step, kind, comment, deleted });
  } catch (error) {
    setStatus(`This browser could not save the mark (${error.message}); it was not recorded.`);
    return false;
  }
  // Once acknowledged the entry leaves the queue; the view keeps it as the server's state.
  state.marks.set(uuid, { uuid, episode_id, step, kind, comment, deleted });
  return true;
}

function addMark(kind) {
  if (!state.episode) return;
  const mark = { uuid: crypto.randomUUID(), episode_id: state.episode.id, step: state.step, kind, comment: "", deleted: false };
  if (putMark(mark)) {
    state.undo.push(mark.uuid);
    $("comment").value = "";
  }
  render();
}

function findMark(uuid) {
  return liveMarks().find((m) => m.uuid === uuid) ?? null;
}

/** Undo = the same UUID sent again with deleted: true (a retry-safe upsert, like the mark itself). */
function undoLast() {
  while (state.undo.length) {
    const mark = findMark(state.undo.pop());
    if (mark) {
      putMark({ ...mark, deleted: true });
      setStatus(`Undone: ${mark.kind} at step ${mark.step}.`);
      render();
      return;
    }
  }
  setStatus("Nothing to undo.");
}

function saveComment(event) {
  event.preventDefault();
  const mark = findMark(state.undo[state.undo.length - 1]);
  if (!mark) {
    setStatus("Make a mark first; the comment belongs to the last mark.");
    return;
  }
  putMark({ ...mark, comment: $("comment").value.slice(0, 1000) });
  $("comment").value = "";
  $("comment").blur(); // back to the hotkeys
  render();
}

// ---- playback ----------------------------------------------------------------------------------

function seek(step) {
  if (!state.episode) return;
  state.step = Math.max(0, Math.min(state.episode.length, step));
  if (state.step === state.episode.length) pause();
  render();
}

function play() {
  if (!state.episode) return;
  if (state.step >= state.episode.length) state.step = 0;
  window.clearInterval(state.timer);
  state.timer = window.setInterval(() => seek(state.step + 1), 1000 / (STEPS_PER_SECOND * state.speed));
  render();
}

function pause() {
  window.clearInterval(state.timer);
  state.timer = null;
}

function togglePlay() {
  if (state.timer === null) play();
  else pause();
  render();
}

function setSpeed(speed) {
  state.speed = speed;
  if (state.timer !== null) play();
}

// ---- drawing -----------------------------------------------------------------------------------

function render() {
  const episode = state.episode;
  $("queue-count").textContent = String(queue.size);
  $("queue-status").classList.toggle("pending", queue.size > 0);
  $("queue-note").textContent = queue.size > 0 ? queue.lastError : "";
  if (queue.rejected().length) $("queue-status").title = `${queue.rejected().length} marks rejected by the server are kept in this browser`;
  $("viewer").hidden = !episode;
  $("empty").hidden = Boolean(episode);
  if (!episode) return;
  $("frame").src = episode.frames[state.step];
  $("timeline").value = String(state.step);
  $("step").textContent = String(state.step);
  const reward = state.step > 0 ? episode.rewards[state.step - 1] : null;
  $("reward").textContent = reward ? `reward ${Number(reward).toFixed(2)}` : "";
  $("play").textContent = state.timer === null ? "Play" : "Pause";
  const marks = liveMarks();
  $("ticks").replaceChildren(
    ...marks.map((m) => {
      const tick = el("span", { className: `tick kind-${m.kind}`, title: `${m.kind} at step ${m.step}` });
      tick.style.left = `${(100 * m.step) / Math.max(1, episode.length)}%`; // CSSOM, allowed by the CSP
      return tick;
    }),
  );
  $("mark-list").replaceChildren(
    ...marks.map((m) => {
      const item = el("li", { className: `kind-${m.kind}` }, `step ${m.step} · ${m.kind}`);
      if (m.comment) item.append(el("q", {}, m.comment));
      if (m.pending) item.append(el("span", { className: "pending-badge" }, "unsent"));
      item.addEventListener("click", () => seek(m.step));
      return item;
    }),
  );
}

// ---- assignments -------------------------------------------------------------------------------

async function loadAssignments() {
  const assignments = await api("/api/assignments");
  $("assignment-list").replaceChildren(
    ...assignments.map((a) => {
      const button = el("button", { type: "button" }, a.mission);
      button.append(el("small", {}, ` ${a.level} · ${a.length} steps${a.done ? " · done" : ""}`));
      button.addEventListener("click", () => openEpisode(a.episode_id, a.id));
      const item = el("li", { className: a.done ? "done" : "" }, button);
      if (a.episode_id === state.episode?.id) item.classList.add("current");
      return item;
    }),
  );
  return assignments;
}

async function openEpisode(episodeId, assignmentId) {
  pause();
  const episode = await api(`/api/episodes/${encodeURIComponent(episodeId)}`);
  state.episode = episode;
  state.assignmentId = assignmentId ?? null;
  state.step = 0;
  state.marks = new Map(episode.marks.map((m) => [m.uuid, { ...m, episode_id: episode.id }]));
  // Undo order after a reload: the server's marks, then this browser's unsent ones (oldest first).
  const unsent = queue.entries().filter((e) => e.body.episode_id === episode.id).map((e) => e.uuid);
  state.undo = [...episode.marks.map((m) => m.uuid).filter((u) => !unsent.includes(u)), ...unsent];
  for (const url of episode.frames) new Image().src = url; // warm the cache: smooth playback
  $("mission").textContent = episode.mission;
  $("level").textContent = episode.level;
  $("length").textContent = String(episode.length);
  $("timeline").max = String(episode.length);
  window.history.replaceState(null, "", `#episode=${encodeURIComponent(episode.id)}&assignment=${encodeURIComponent(assignmentId ?? "")}`);
  setStatus("");
  render();
  loadAssignments().catch(() => {});
}

/** Finish the open assignment (if any) and lease the next episode. */
async function next() {
  try {
    if (state.assignmentId) await api(`/api/assignments/${encodeURIComponent(state.assignmentId)}/done`, { method: "POST" });
    const assignment = await api("/api/assignments/next", { method: "POST" });
    if (assignment === null) {
      state.episode = null;
      state.assignmentId = null;
      window.history.replaceState(null, "", "/");
      setStatus("No more episodes to mark. Thank you!");
      render();
      loadAssignments().catch(() => {});
      return;
    }
    await openEpisode(assignment.episode_id, assignment.id);
  } catch (error) {
    setStatus(`Could not open the next episode (${error.message}); your marks are safe, try again.`);
  }
}

// ---- keys and buttons --------------------------------------------------------------------------

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
  const key = event.key;
  if (key === " ") togglePlay();
  else if (key === "ArrowLeft") seek(state.step - (event.shiftKey ? 10 : 1));
  else if (key === "ArrowRight") seek(state.step + (event.shiftKey ? 10 : 1));
  else if (key === "Home") seek(0);
  else if (key === "End") seek(state.episode?.length ?? 0);
  else if (KINDS[key]) addMark(KINDS[key]);
  else if (key === "z") undoLast();
  else if (key === "n") next();
  else return;
  event.preventDefault();
}

function wire() {
  document.addEventListener("keydown", onKey);
  const click = (id, fn) =>
    $(id).addEventListener("click", (event) => {
      event.currentTarget.blur(); // keep Space and arrows for the viewer, not the focused button
      fn();
    });
  click("play", togglePlay);
  click("back", () => seek(state.step - 1));
  click("forward", () => seek(state.step + 1));
  click("undo", undoLast);
  click("next", next);
  for (const [key, kind] of Object.entries(KINDS)) click(`mark-${kind}`, () => addMark(kind));
  $("timeline").addEventListener("input", (event) => seek(Number(event.target.value)));
  $("speed").addEventListener("change", (event) => {
    setSpeed(Number(event.target.value));
    event.target.blur();
  });
  $("comment-form").addEventListener("submit", saveComment);
}

async function main() {
  let me;
  try {
    me = await whoAmI();
  } catch (error) {
    setStatus(`The server cannot be reached (${error.message}).`);
    return;
  }
  setupHeader(me);
  queue = new MarkQueue(me.user, {
    getCsrf: csrf,
    refreshCsrf: whoAmI,
    onChange: render,
    onAuthLost: () => setStatus("Your session ended: sign in again; unsent marks stay in this browser."),
  });
  wire();
  queue.start(); // retry whatever an earlier page left unsent
  render();
  const params = new URLSearchParams(window.location.hash.slice(1));
  try {
    await loadAssignments();
    if (params.get("episode")) await openEpisode(params.get("episode"), params.get("assignment") || null);
  } catch (error) {
    setStatus(`Could not load your assignments (${error.message}).`);
  }
}

main();
