// cnnlab's page: draw or upload an image, POST it to /predict, show the top-k, the Grad-CAM overlay
// and the model card. Plain JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
let card = null;
let drawn = false;
let requestNumber = 0;

function setStatus(text, state) {
  $("status").textContent = text;
  $("status").dataset.state = state;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearResult() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("warnings").hidden = true;
  $("warnings").replaceChildren();
  $("predictions").replaceChildren();
  $("top-class").textContent = "–";
  $("gradcam").removeAttribute("src");
}

function showPrediction(prediction) {
  const list = $("predictions");
  list.replaceChildren();
  for (const entry of prediction.top) {
    const item = document.createElement("li");
    item.className = "prediction";
    item.dataset.class = entry.class;
    const name = document.createElement("span");
    name.className = "class-name";
    name.textContent = entry.class;
    const track = document.createElement("span");
    track.className = "bar-track";
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = (100 * entry.probability).toFixed(1) + "%";
    track.appendChild(bar);
    const probability = document.createElement("span");
    probability.className = "probability";
    probability.textContent = entry.probability.toFixed(3);
    item.append(name, track, probability);
    list.appendChild(item);
  }
  $("top-class").textContent = prediction.top[0].class;
  const warnings = $("warnings");
  for (const text of prediction.warnings || []) {
    const item = document.createElement("li");
    item.textContent = text;
    warnings.appendChild(item);
  }
  warnings.hidden = !(prediction.warnings || []).length;
  if (prediction.gradcam) $("gradcam").src = prediction.gradcam;
}

async function predict(blob, name) {
  const number = ++requestNumber;
  clearResult();
  $("input-preview").src = URL.createObjectURL(blob);
  setStatus("predicting…", "busy");
  const form = new FormData();
  form.append("file", blob, name);
  form.append("gradcam", "true");
  form.append("invert", $("invert").checked ? "true" : "false");
  form.append("top_k", $("top-k").value || "3");
  try {
    const response = await fetch("/predict", { method: "POST", body: form });
    const data = await response.json();
    if (number !== requestNumber) return; // a newer request took over
    if (!response.ok) {
      showError(data.error || ("HTTP " + response.status));
      setStatus("error", "error");
      return;
    }
    showPrediction(data.predictions[0]);
    setStatus("ready", "ready");
  } catch (err) {
    if (number !== requestNumber) return;
    showError("request failed: " + err);
    setStatus("error", "error");
  }
}

// ----- drawing (white strokes on black, like MNIST)
const canvas = $("canvas");
const context = canvas.getContext("2d");

function clearCanvas() {
  context.fillStyle = "#000";
  context.fillRect(0, 0, canvas.width, canvas.height);
  drawn = false;
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
}

let drawing = false;
canvas.addEventListener("pointerdown", (event) => {
  drawing = true;
  canvas.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  context.beginPath();
  context.moveTo(x, y);
  context.lineTo(x + 0.01, y);
  context.stroke();
});
canvas.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const [x, y] = point(event);
  context.lineTo(x, y);
  context.stroke();
  drawn = true;
});
// The drawing framed as MNIST digits are (LeCun et al.): the strokes' bounding box scaled to fit
// 20/28 of the side, centred on the strokes' centre of mass, on black.
function mnistFramed() {
  const size = canvas.width;
  const pixels = context.getImageData(0, 0, size, size).data;
  let top = size, left = size, bottom = -1, right = -1, mass = 0, sumX = 0, sumY = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const value = pixels[(y * size + x) * 4];
      if (value > 0) {
        top = Math.min(top, y); bottom = Math.max(bottom, y);
        left = Math.min(left, x); right = Math.max(right, x);
        mass += value; sumX += value * x; sumY += value * y;
      }
    }
  }
  const out = document.createElement("canvas");
  out.width = out.height = size;
  const target = out.getContext("2d");
  target.fillStyle = "#000";
  target.fillRect(0, 0, size, size);
  if (bottom < 0) return out;
  const width = right - left + 1, height = bottom - top + 1;
  const scale = (size * 20 / 28) / Math.max(width, height);
  const centreX = (sumX / mass - left) * scale, centreY = (sumY / mass - top) * scale;
  target.imageSmoothingEnabled = true;
  target.drawImage(canvas, left, top, width, height, size / 2 - centreX, size / 2 - centreY, width * scale, height * scale);
  return out;
}

function sendDrawing() {
  mnistFramed().toBlob((blob) => predict(blob, "drawing.png"), "image/png");
}

function endStroke() {
  if (!drawing) return;
  drawing = false;
  drawn = true;
  sendDrawing();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);
$("clear").addEventListener("click", () => { clearCanvas(); clearResult(); });

function setUpCanvas() {
  clearCanvas();
  context.strokeStyle = "#fff";
  context.lineWidth = 22;
  context.lineCap = "round";
  context.lineJoin = "round";
}

// ----- files
$("file-input").addEventListener("change", () => {
  const file = $("file-input").files[0];
  if (file) predict(file, file.name);
});
const zone = $("drop-zone");
zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) predict(file, file.name);
});
$("invert").addEventListener("change", () => {
  if (drawn) sendDrawing();
  else if ($("file-input").files[0]) predict($("file-input").files[0], $("file-input").files[0].name);
});

// ----- model card
function addCardRow(term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  $("model-card").append(dt, dd);
}

async function loadCard() {
  try {
    const response = await fetch("/model");
    card = await response.json();
  } catch (err) {
    setStatus("cannot reach the server: " + err, "error");
    return;
  }
  $("title").textContent = "cnnlab: " + card.model + " (" + card.run + ")";
  document.title = "cnnlab: " + card.model;
  addCardRow("model", card.model + " (" + card.parameters.toLocaleString() + " parameters)");
  addCardRow("dataset", card.dataset);
  addCardRow("classes", card.classes.join(", "));
  addCardRow("input", card.image_size.join("x") + ", " + card.channels + " channel(s); network input " + card.input_shape.join("x"));
  addCardRow("preprocessing", "normalize " + card.preprocessing.normalize + ", pad " + card.preprocessing.pad);
  if (card.test_metrics) addCardRow("test accuracy", card.test_metrics.accuracy.toFixed(4) + " on " + card.test_metrics.n + " images");
  if (card.training_background) addCardRow("training images", card.training_background + " background");
  addCardRow("Grad-CAM layer", card.gradcam_layer);
  if (card.confusion_matrix_url) {
    $("confusion-matrix").src = card.confusion_matrix_url;
    $("confusion-matrix").hidden = false;
  }
  $("top-k").max = card.classes.length;
  $("draw-section").hidden = card.channels !== 1;
  setUpCanvas();
  setStatus("ready", "ready");
}

loadCard();
