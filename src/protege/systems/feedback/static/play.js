// Play a BabyAI level with the keyboard to demonstrate it. Each key press is one step, sent in order
// with its sequence number; a step whose answer was lost is sent again with the same `seq`, which
// the server answers from its record without stepping twice (an idempotent retry).
import { api, HttpError, setupHeader, typing, whoAmI } from "/static/api.js";

// MiniGrid's action numbers.
const ACTIONS = { ArrowLeft: 0, ArrowRight: 1, ArrowUp: 2, k: 3, d: 4, t: 5, Enter: 6 };
const RETRY_MS = 1000;
const $ = (id) => document.getElementById(id);

const state = { playId: null, step: 0, finished: false, keys: [], sending: false };

function setStatus(text) {
  $("status").textContent = text;
}

function showFrame(frame) {
  $("frame").src = frame;
  $("frame").hidden = false;
}

function render() {
  $("step").textContent = String(state.step);
  $("pending").textContent = String(state.keys.length);
}

async function start(event) {
  event.preventDefault();
  document.activeElement?.blur(); // the keys belong to the level now, not to the form
  const body = { level: $("level").value.trim() };
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  try {
    const play = await api("/api/play", { method: "POST", body });
    Object.assign(state, { playId: play.play_id, step: play.step, finished: false, keys: [] });
    $("mission").textContent = play.mission;
    $("outcome").textContent = "playing";
    showFrame(play.frame);
    setStatus("");
    render();
  } catch (error) {
    setStatus(`Could not start the level (${error.message}).`);
  }
}

/** Send queued key presses one at a time, in order; retry a step until the server answers. */
async function drain() {
  if (state.sending) return;
  state.sending = true;
  try {
    while (state.keys.length && !state.finished) {
      const { playId, action, seq } = state.keys[0];
      let result;
      try {
        result = await api(`/api/play/${encodeURIComponent(playId)}/step`, { method: "POST", body: { action, seq } });
      } catch (error) {
        if (error instanceof HttpError && error.status >= 400 && error.status < 500 && error.status !== 429) {
          setStatus(`The server refused the step (${error.message}); start again.`);
          state.keys = [];
          break;
        }
        setStatus("Connection problem: the step is retried.");
        render();
        await new Promise((resolve) => window.setTimeout(resolve, RETRY_MS));
        continue;
      }
      state.keys.shift();
      if (playId !== state.playId) continue; // an answer for a play the person already left
      state.step = result.step;
      showFrame(result.frame);
      setStatus("");
      if (result.terminated || result.truncated) finish(result);
      render();
    }
  } finally {
    state.sending = false;
    render();
  }
}

function finish(result) {
  state.finished = true;
  state.keys = [];
  const won = result.terminated && result.reward > 0;
  $("outcome").textContent = won
    ? `success (reward ${Number(result.reward).toFixed(2)}), saved as a demonstration`
    : result.truncated ? "out of time, saved" : "episode over, saved";
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
  if (!(event.key in ACTIONS) || state.playId === null) return;
  event.preventDefault();
  if (state.finished) return;
  const seq = state.step + state.keys.length + 1; // the step number this action will produce
  state.keys.push({ playId: state.playId, action: ACTIONS[event.key], seq });
  render();
  drain();
}

async function main() {
  try {
    setupHeader(await whoAmI());
  } catch (error) {
    setStatus(`The server cannot be reached (${error.message}).`);
    return;
  }
  $("start-form").addEventListener("submit", start);
  document.addEventListener("keydown", onKey);
}

main();
