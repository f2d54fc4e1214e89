// Helpline console: turns a mouse selection into offsets in the stored text, polls the retraining job.
// Vendored, no dependencies, no CDN: the console works offline. Content-Security-Policy allows no
// inline script, so everything the pages do in the browser is here.
"use strict";

// Characters from the start of `para` to (node, offset): the length of the range's text, which is the
// text node data the server rendered (not the laid-out whitespace).
function offsetIn(para, node, offset) {
  const range = document.createRange();
  range.setStart(para, 0);
  range.setEnd(node, offset);
  return range.toString().length;
}

function paraOf(node) {
  const element = node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
  return element ? element.closest(".para") : null;
}

// The stored text of a selectable box: a JSON data block the server wrote with the exact text.
function storedText(box) {
  return JSON.parse(document.getElementById(box.dataset.text).textContent);
}

function onSelection() {
  const selection = document.getSelection();
  if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return;
  const range = selection.getRangeAt(0);
  const first = paraOf(range.startContainer);
  const last = paraOf(range.endContainer);
  if (!first || !last) return;
  const box = first.closest(".selectable");
  if (!box || box !== last.closest(".selectable")) return;
  const text = storedText(box);
  let start = Number(first.dataset.start) + offsetIn(first, range.startContainer, range.startOffset);
  let end = Number(last.dataset.start) + offsetIn(last, range.endContainer, range.endOffset);
  while (start < end && /\s/.test(text[start])) start++;
  while (end > start && /\s/.test(text[end - 1])) end--;
  if (end <= start) return;
  const form = document.getElementById(box.dataset.form);
  form.elements.answer_start.value = String(start);
  form.elements.answer_text.value = text.slice(start, end);
  if (form.elements.passage_id && box.dataset.passageId) form.elements.passage_id.value = box.dataset.passageId;
  if (form.elements.unanswerable) form.elements.unanswerable.checked = false;
  const preview = form.querySelector("#answer-preview, .answer-preview");
  if (preview) preview.textContent = text.slice(start, end);
  document.querySelectorAll(".selectable.chosen").forEach((el) => el.classList.remove("chosen"));
  box.classList.add("chosen");
}

function confirmForms() {
  document.querySelectorAll("form.confirm").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm("Are you sure?")) event.preventDefault();
    });
  });
}

function pollJob() {
  const job = document.getElementById("job");
  if (!job || job.dataset.state !== "running") return;
  const timer = window.setInterval(async () => {
    const response = await fetch("/api/train", { credentials: "same-origin" });
    if (!response.ok) return;
    const status = await response.json();
    document.getElementById("job-state").textContent = status.state;
    document.getElementById("job-stage").textContent =
      status.stage ? `${status.stage}${status.total ? ` (${status.step}/${status.total})` : ""}` : "";
    document.getElementById("job-progress").value = status.fraction;
    document.getElementById("job-message").textContent = status.message;
    if (status.state !== "running") {
      window.clearInterval(timer);
      window.location.reload();
    }
  }, 1000);
}

document.addEventListener("selectionchange", onSelection);
document.addEventListener("DOMContentLoaded", () => {
  confirmForms();
  pollJob();
});
