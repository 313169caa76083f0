// A module of the front end: imported by main.js, bundled with it.
export function bundledNote(document) {
  const note = document.createElement("p");
  note.id = "bundled-note";
  note.textContent = "This line comes from assets/, bundled by esbuild when the app was built.";
  return note;
}
