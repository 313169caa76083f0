// Calls the app's JSON endpoint with fetch and shows the answer on the page.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const output = document.getElementById("hello-output");
  try {
    const response = await fetch(output.dataset.url, { headers: { Accept: "application/json" } });
    const data = await response.json();
    output.textContent = `${data.message} (server time ${data.time}, answered by ${data.dyno})`;
  } catch (error) {
    output.textContent = `The server did not answer: ${error.message}`;
  }
});
