// The front end's entry point: esbuild bundles it and what it imports into one file
// (`npm run build`, which corral runs on every deploy) that the page loads.
import { bundledNote } from "./note.js";

document.addEventListener("DOMContentLoaded", () => {
  const main = document.querySelector("main");
  if (main) {
    main.append(bundledNote(document));
  }
});
