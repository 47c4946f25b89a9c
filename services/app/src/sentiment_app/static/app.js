// Sends the review to the app's JSON API and shows the answer. No build step, no dependencies.
"use strict";

(function () {
  const form = document.getElementById("review-form");
  const review = document.getElementById("review");
  const button = document.getElementById("submit");
  const resultText = document.getElementById("result-text");
  const details = document.getElementById("result-details");
  const apiPath = form.dataset.apiPath;

  function show(message, kind) {
    resultText.textContent = message;
    resultText.className = kind;
  }

  function showAnswer(answer) {
    const label = String(answer.sentiment);
    show("The review reads " + label + ".", "sentiment " + (label === "positive" ? "positive" : "negative"));
    document.getElementById("result-confidence").textContent =
      typeof answer.confidence === "number" ? Math.round(answer.confidence * 100) + " %" : "unknown";
    document.getElementById("result-model").textContent = answer.model_version || "unknown";
    document.getElementById("result-variant").textContent = answer.variant || "unknown";
    details.hidden = false;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    details.hidden = true;
    const text = review.value;
    if (!text.trim()) {
      show("Please type a review first.", "error");
      review.focus();
      return;
    }
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    show("Asking the model…", "pending");
    try {
      const response = await fetch(apiPath, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify({ review: text }),
      });
      let answer = null;
      try {
        answer = await response.json();
      } catch (_ignored) {
        answer = null;
      }
      if (response.ok && answer) {
        showAnswer(answer);
      } else {
        const why = answer && answer.message ? answer.message : "HTTP " + response.status;
        show("Sorry, no answer this time: " + why, "error");
      }
    } catch (_err) {
      show("Sorry, the app could not be reached. Check your connection and try again.", "error");
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
})();
