// Calls the app's JSON endpoint with fetch and shows the answer on the page.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("hello-button");
  const output = document.getElementById("hello-output");
  if (!button || !output) {
    return;
  }

  async function sayHello() {
    button.disabled = true;
    try {
      const response = await fetch(button.dataset.url, {
        headers: { Accept: "application/json" },
      });
      if (!response.ok) {
        throw new Error(`HTTP ${response.status}`);
      }
      const data = await response.json();
      output.textContent = `${data.message} (server time ${data.time}, answered by ${data.dyno})`;
      output.classList.remove("text-danger");
    } catch (error) {
      output.textContent = `The server did not answer: ${error.message}`;
      output.classList.add("text-danger");
    } finally {
      button.disabled = false;
    }
  }

  button.addEventListener("click", sayHello);
  sayHello();
});
